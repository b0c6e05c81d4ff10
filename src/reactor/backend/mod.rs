//! The reactor's backends: the one small interface between the reactor's logic (registrations,
//! keys, the readiness cache, callbacks) and the operating system's poller.
//!
//! ```
//! // The same program on either backend: chosen when the loop is built, not when it is compiled.
//! for backend in [solo::Backend::Mio, solo::Backend::Polling] {
//!     let el = solo::EventLoop::builder().backend(backend).build().unwrap();
//!     let v = el.run_until_complete(async {
//!         solo::time::sleep(std::time::Duration::from_millis(1)).await;
//!         7
//!     });
//!     assert_eq!(v.unwrap(), 7);
//! }
//! ```
//!
//! # Modes, and why each registration uses the one it does
//!
//! | mode | the kernel reports a ready fd | `epoll_ctl` per event | trap |
//! | --- | --- | --- | --- |
//! | edge | once per change to ready | none | *lost wakeups*: an edge nobody remembers is gone, so readiness must be cached until an operation sees `WouldBlock` |
//! | level | at every wait while it is ready | none | *thundering events*: a ready fd nobody drains is reported again and again |
//! | oneshot | once, then the registration is disarmed | one re-arm per wait | *re-arm storms*, and lost wakeups if a re-arm is forgotten |
//!
//! * **mio** (`mio.rs`) offers only edge. `Async` sources use it as designed (readiness cached,
//!   cleared on `WouldBlock`, zero syscalls per operation). asyncio's readers are
//!   level-triggered, so after each reader or writer callback the reactor re-arms the fd
//!   ([`Backend::rearm_callback`]: one `EPOLL_CTL_MOD`), which makes the kernel report it
//!   again if it is still ready.
//! * **polling** (`polling.rs`, smol's poller) offers all three, and solo uses **oneshot**, as
//!   smol's `async-io` does. For `Async` sources, the fd is armed only when a task waits on it
//!   (after `WouldBlock`), so a socket nobody waits on raises no events however often it
//!   becomes ready; the price is one `EPOLL_CTL_MOD` per wait. The arm is made *after* the
//!   readiness was cleared, and arming reports an fd that is already ready, so data that
//!   arrived between the `WouldBlock` and the arm wakes the task (no lost wakeup). Readers and
//!   writers are re-armed after each call, as on mio. On Linux solo waits on the crate's epoll
//!   fd itself (one `epoll_wait`, where the crate's `wait` makes five syscalls: `polling.rs`).
//!
//!   Level would look like the natural fit for asyncio's readers (no re-arm: the kernel reports
//!   a ready fd at every wait by itself), and it was tried: it loses one guarantee. A
//!   level registration whose fd is closed vanishes from the kernel without a word, while the
//!   re-arm after each callback is what tells solo that a reader's fd was closed under it
//!   (`EBADF`/`ENOENT`), so that it can report and drop the reader at once. Readers behave the
//!   same on both backends, and the suite checks it.
//!
//! `BENCHMARKS.md` measures both on echo and kv, with the syscalls they make per request.
//!
//! # The interface
//!
//! A backend registers an fd under a token (the reactor's key: slot and generation), changes or
//! deletes the registration, waits for events, and reports each as a token and readiness bits.
//! [`Backend::rearm_callback`] and [`Backend::arm_async`] are where the modes differ; everything
//! else, including what an event *means*, is the reactor's. A third backend (io_uring's poll,
//! kqueue directly) is a third file and a third arm of the enum: static dispatch, one `match`
//! per call, no trait objects on the hot path.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

mod mio;
mod polling;

/// Which poller a loop uses; see [`Builder::backend`](crate::Builder::backend).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// mio: epoll (kqueue elsewhere), edge-triggered. The default.
    #[default]
    Mio,
    /// The `polling` crate: oneshot registrations, for readers and `Async` sources alike.
    Polling,
}

impl Backend {
    /// The backend `SOLO_BACKEND` asks for (`mio` or `polling`); `None` when unset. An unknown
    /// name is an error that says which names exist.
    pub(crate) fn from_env() -> io::Result<Option<Backend>> {
        match std::env::var("SOLO_BACKEND") {
            Err(_) => Ok(None),
            Ok(v) => match v.trim().to_ascii_lowercase().as_str() {
                "" => Ok(None),
                "mio" => Ok(Some(Backend::Mio)),
                "polling" => Ok(Some(Backend::Polling)),
                other => Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("SOLO_BACKEND={other:?}: the backends are \"mio\" and \"polling\""),
                )),
            },
        }
    }

    /// Its name, as `SOLO_BACKEND` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Mio => "mio",
            Backend::Polling => "polling",
        }
    }
}

/// Which directions a registration asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Interest {
    pub(crate) read: bool,
    pub(crate) write: bool,
}

impl Interest {
    pub(crate) const BOTH: Interest = Interest {
        read: true,
        write: true,
    };
    pub(crate) const NONE: Interest = Interest {
        read: false,
        write: false,
    };
}

/// How a registration is used, which decides its mode on backends that have several.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Use {
    /// Reader and writer callbacks: level-triggered meaning.
    Callbacks,
    /// An `Async` source with a readiness cache.
    Async,
}

/// What a backend reports about an fd: readable, writable, closed for reading or writing, in
/// error (the reactor's bits).
pub(crate) const READABLE: u8 = 1;
pub(crate) const WRITABLE: u8 = 2;
pub(crate) const READ_CLOSED: u8 = 4;
pub(crate) const WRITE_CLOSED: u8 = 8;
pub(crate) const ERROR: u8 = 16;

/// Syscalls a backend made: what debug mode's stats show, per backend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) waits: u64,
    pub(crate) adds: u64,
    pub(crate) modifies: u64,
    pub(crate) deletes: u64,
}

/// Wakes a loop blocked in its backend's wait, from any thread.
#[derive(Debug)]
pub(crate) enum RemoteWaker {
    Mio(::mio::Waker),
    Polling(polling::PollingWaker),
}

impl RemoteWaker {
    pub(crate) fn wake(&self) -> io::Result<()> {
        match self {
            RemoteWaker::Mio(w) => w.wake(),
            RemoteWaker::Polling(w) => w.wake(),
        }
    }
}

/// A backend: one of the pollers, behind one interface.
pub(crate) enum Poller {
    Mio(mio::MioPoller),
    Polling(polling::PollingPoller),
}

impl Poller {
    pub(crate) fn new(backend: Backend) -> io::Result<(Poller, RemoteWaker)> {
        Ok(match backend {
            Backend::Mio => {
                let (p, w) = mio::MioPoller::new()?;
                (Poller::Mio(p), w)
            }
            Backend::Polling => {
                let (p, w) = polling::PollingPoller::new()?;
                (Poller::Polling(p), w)
            }
        })
    }

    pub(crate) fn as_raw_fd(&self) -> RawFd {
        use std::os::fd::AsRawFd;
        match self {
            Poller::Mio(p) => p.poll.as_raw_fd(),
            Poller::Polling(p) => p.poller.as_raw_fd(),
        }
    }

    pub(crate) fn backend(&self) -> Backend {
        match self {
            Poller::Mio(_) => Backend::Mio,
            Poller::Polling(_) => Backend::Polling,
        }
    }

    /// Registers `fd` under `token`. `EEXIST`: the number is registered already (the same open
    /// file); `EPERM`: it cannot be polled (a regular file).
    pub(crate) fn add(
        &mut self,
        fd: RawFd,
        token: usize,
        interest: Interest,
        how: Use,
    ) -> io::Result<()> {
        match self {
            Poller::Mio(p) => p.add(fd, token, interest),
            Poller::Polling(p) => p.add(fd, token, interest, how),
        }
    }

    /// Changes a registration. `ENOENT`: the number does not name the registered file (closed
    /// and reused); `EBADF`: nothing is open under it.
    pub(crate) fn modify(
        &mut self,
        fd: RawFd,
        token: usize,
        interest: Interest,
        how: Use,
    ) -> io::Result<()> {
        match self {
            Poller::Mio(p) => p.modify(fd, token, interest),
            Poller::Polling(p) => p.modify(fd, token, interest, how),
        }
    }

    /// Deletes a registration (errors mean the kernel forgot it already).
    pub(crate) fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        match self {
            Poller::Mio(p) => p.delete(fd),
            Poller::Polling(p) => p.delete(fd),
        }
    }

    /// After a reader or writer callback ran: makes the backend report the fd again if it is
    /// still ready (a re-arm on both: edge needs it for asyncio's level meaning, oneshot was
    /// disarmed by the event). Its error is how a closed fd is noticed.
    pub(crate) fn rearm_callback(
        &mut self,
        fd: RawFd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        self.modify(fd, token, interest, Use::Callbacks)
    }

    /// Whether an event disarms the registration (oneshot), so that whoever still waits on it
    /// must arm it again ([`Poller::arm_async`], or a re-arm of a callback source).
    pub(crate) fn is_oneshot(&self) -> bool {
        matches!(self, Poller::Polling(_))
    }

    /// A task waits on an `Async` source in these directions: arms the registration for them
    /// (oneshot backends; an edge backend is always armed).
    pub(crate) fn arm_async(
        &mut self,
        fd: RawFd,
        token: usize,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Poller::Mio(_) => Ok(()),
            Poller::Polling(p) => p.modify(fd, token, interest, Use::Async),
        }
    }

    /// Waits for events for at most `timeout`. An interrupted wait (a signal) is a wait that
    /// found nothing.
    pub(crate) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self {
            Poller::Mio(p) => p.wait(timeout),
            Poller::Polling(p) => p.wait(timeout),
        }
    }

    /// Whether the last wait found events (a remote wake-up counts on mio and on polling's Linux
    /// path; the crate's `notify`, used elsewhere, reports none, which is why the spin also asks
    /// the loop's remote queue).
    pub(crate) fn has_events(&self) -> bool {
        match self {
            Poller::Mio(p) => p.has_events(),
            Poller::Polling(p) => p.has_events(),
        }
    }

    /// Calls `f(token, readiness bits)` for each event of the last wait, remote wake-ups left
    /// out.
    #[inline]
    pub(crate) fn for_each_event(&self, f: impl FnMut(usize, u8)) {
        match self {
            Poller::Mio(p) => p.for_each_event(f),
            Poller::Polling(p) => p.for_each_event(f),
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        match self {
            Poller::Mio(p) => p.counters,
            Poller::Polling(p) => p.counters,
        }
    }
}

/// An interrupted wait is a wait that found nothing.
fn not_interrupted(r: io::Result<()>, clear: impl FnOnce()) -> io::Result<()> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::Interrupted => {
            clear();
            Ok(())
        }
        r => r,
    }
}

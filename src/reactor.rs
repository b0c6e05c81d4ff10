//! The reactor: file descriptors, mio, and what to do when one becomes ready.
//!
//! # The idea
//!
//! mio tells us *when* a file descriptor changes state; the reactor remembers *what to do* about
//! it. Each registered fd is a [`Source`] in a slab, and its slab index is its mio `Token`, so an
//! event finds its source in O(1). A source is one of two kinds:
//!
//! * **callbacks** — asyncio's `add_reader`/`add_writer`. asyncio's readers are
//!   *level-triggered*: a reader that leaves data in the socket is called again on the next
//!   iteration. mio is edge-triggered, so after each reader or writer callback the reactor re-arms
//!   the fd (`epoll_ctl(MOD)`), which makes the kernel report it again if it is still ready. That
//!   is one syscall per callback invocation, the price of asyncio's semantics.
//! * **async** — the futures path ([`Async`](crate::Async), [`net`](crate::net)). The fd is
//!   registered once for both directions, edge-triggered, and the reactor *caches* readiness: an
//!   event sets the ready bits and wakes the waiting task; an operation that hits `WouldBlock`
//!   clears its bit and stores the task's waker. No `epoll_ctl` per read or write, and no extra
//!   `read` just to learn that a socket is empty.
//!
//! # Invariants
//!
//! * A callback registration is re-armed after every invocation, and deregistered when its last
//!   callback is removed.
//! * An async source's ready bit is cleared only by the operation that saw `WouldBlock` (or a
//!   short read/write), so an edge is never lost: data that arrives after the `WouldBlock` causes
//!   a new edge.
//! * The reactor never calls user code while it is borrowed: callbacks are queued and wakers are
//!   collected, then run or woken by the loop after the borrow ends.
//!
//! # Spinning before sleeping
//!
//! A loop that sleeps in `epoll_wait` must be woken, and the wake is paid by whoever makes the fd
//! ready: a peer's `write` on another CPU has to pull the sleeping thread back onto its CPU (an
//! inter-processor interrupt, and on a virtual machine an exit to the hypervisor). A loop that
//! finishes its work faster than requests arrive sleeps between every batch and makes its peers
//! pay that each time; a saturated server such as Redis under load never sleeps and never makes
//! them pay. [`Builder::spin_before_sleep`](crate::Builder::spin_before_sleep) lets the loop poll
//! without blocking for a while before it sleeps (glommio's `spin_before_park`, Linux's
//! `busy_poll`): under steady traffic it never sleeps.
//!
//! Spinning is wasted when events are further apart than the spin, so the reactor spins only
//! while it pays: a spin that finds nothing disarms it, and it re-arms when a sleep ends with
//! events within the spin time, a sign that they come close together again. Sparse traffic
//! therefore costs one wasted spin per change of pace, not one per wake-up.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::panic::Location;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Token};
use slab::Slab;

use crate::CallbackKind;

/// A reader or writer callback.
pub(crate) type IoFn = Box<dyn FnMut()>;

/// A reader or writer callback lent out to run (see [`Reactor::take_callback`]); hand it back
/// with [`Reactor::restore_callback`].
pub(crate) struct TakenCallback {
    pub(crate) f: IoFn,
    /// The registration's generation when it was taken: if it changed by the time the callback
    /// comes back, the callback was removed or replaced while it ran.
    gen: u64,
    /// Where it was registered.
    pub(crate) site: &'static Location<'static>,
    pub(crate) fd: RawFd,
    /// Reader, writer or signal handler.
    pub(crate) kind: CallbackKind,
}

/// The token of the loop's cross-thread waker.
pub(crate) const WAKER_TOKEN: Token = Token(usize::MAX);

/// A direction of readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read,
    Write,
}

const READABLE: u8 = 1;
const WRITABLE: u8 = 2;
const READ_CLOSED: u8 = 4;
const WRITE_CLOSED: u8 = 8;
const ERROR: u8 = 16;

impl Dir {
    /// The readiness bits that let an operation in this direction make progress.
    fn bits(self) -> u8 {
        match self {
            Dir::Read => READABLE | READ_CLOSED | ERROR,
            Dir::Write => WRITABLE | WRITE_CLOSED | ERROR,
        }
    }
}

/// A reader or writer callback and where it was registered.
pub(crate) struct IoCallback {
    f: Option<Box<dyn FnMut()>>,
    pub(crate) site: &'static Location<'static>,
    kind: CallbackKind,
    /// Bumped by every add/remove, so a callback that finishes running knows whether it was
    /// replaced or removed meanwhile.
    gen: u64,
    /// Taken out of the slot because it is running right now.
    running: bool,
}

impl IoCallback {
    fn empty() -> IoCallback {
        IoCallback {
            f: None,
            site: Location::caller(),
            kind: CallbackKind::Reader,
            gen: 0,
            running: false,
        }
    }

    fn is_set(&self) -> bool {
        self.f.is_some() || self.running
    }
}

enum Kind {
    Callbacks {
        reader: IoCallback,
        writer: IoCallback,
    },
    Async {
        readiness: u8,
        read_waker: Option<Waker>,
        write_waker: Option<Waker>,
    },
}

struct Source {
    fd: RawFd,
    kind: Kind,
}

/// What an I/O event asks the loop to do.
#[derive(Debug)]
pub(crate) enum IoAction {
    /// Run the reader or writer callback of this token.
    Call(usize, Dir),
}

/// The reactor. Owned by the loop, behind a `RefCell`.
pub(crate) struct Reactor {
    poll: mio::Poll,
    events: Events,
    sources: Slab<Source>,
    by_fd: HashMap<RawFd, usize>,
    /// How long to poll without blocking before a blocking poll (zero: never spin).
    spin: Duration,
    /// Whether the next wait spins: cleared by a spin that found nothing, set again by a sleep
    /// that ended with events within the spin time.
    spin_armed: bool,
    /// Waits allowed to block that reached the blocking poll (after any spin).
    sleeps: u64,
    /// Waits allowed to block that spun.
    spins: u64,
    /// Waits allowed to block that found events while spinning.
    spin_hits: u64,
}

/// The spin time `SOLO_SPIN_US` asks for, in microseconds (unset or not a number: zero).
pub(crate) fn env_spin() -> Duration {
    std::env::var("SOLO_SPIN_US")
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::ZERO, Duration::from_micros)
}

fn interest_of(reader: bool, writer: bool) -> Option<Interest> {
    match (reader, writer) {
        (true, true) => Some(Interest::READABLE | Interest::WRITABLE),
        (true, false) => Some(Interest::READABLE),
        (false, true) => Some(Interest::WRITABLE),
        (false, false) => None,
    }
}

impl Reactor {
    pub(crate) fn new(spin: Duration) -> io::Result<(Reactor, mio::Waker)> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        Ok((
            Reactor {
                poll,
                events: Events::with_capacity(1024),
                sources: Slab::new(),
                by_fd: HashMap::new(),
                spin,
                spin_armed: true,
                sleeps: 0,
                spins: 0,
                spin_hits: 0,
            },
            waker,
        ))
    }

    /// The spin figures for [`Stats`](crate::debug::Stats): (sleeps, spins, spin hits).
    pub(crate) fn spin_stats(&self) -> (u64, u64, u64) {
        (self.sleeps, self.spins, self.spin_hits)
    }

    /// Waits for events for at most `timeout` (`None`: until an event). A wait that may block
    /// first spins (polls without blocking) for up to the spin time, if armed, and then blocks
    /// for what is left of `timeout`.
    pub(crate) fn poll(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return self.wait(timeout);
        }
        if self.spin.is_zero() {
            self.sleeps += 1;
            return self.wait(timeout);
        }
        let mut timeout = timeout;
        if self.spin_armed {
            self.spins += 1;
            let start = Instant::now();
            loop {
                self.wait(Some(Duration::ZERO))?;
                if !self.events.is_empty() {
                    self.spin_hits += 1;
                    return Ok(());
                }
                let spent = start.elapsed();
                if timeout.is_some_and(|t| spent >= t) {
                    return Ok(()); // the deadline came while spinning
                }
                if spent >= self.spin {
                    timeout = timeout.map(|t| t - spent);
                    self.spin_armed = false;
                    break;
                }
            }
        }
        self.sleeps += 1;
        let slept = Instant::now();
        self.wait(timeout)?;
        if !self.events.is_empty() && slept.elapsed() < self.spin {
            self.spin_armed = true;
        }
        Ok(())
    }

    /// One backend poll. An interrupted wait (a signal) counts as a wait with no events.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        match self.poll.poll(&mut self.events, timeout) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {
                self.events.clear();
                Ok(())
            }
            r => r,
        }
    }

    /// Turns the events of the last poll into actions and wakers. The cross-thread waker's
    /// event carries nothing to act on: it only ends the wait, and the loop learns what other
    /// threads sent from their queue's own flag.
    pub(crate) fn dispatch(&mut self, actions: &mut Vec<IoAction>, wakers: &mut Vec<Waker>) {
        for ev in self.events.iter() {
            let token = ev.token();
            if token == WAKER_TOKEN {
                continue;
            }
            let Some(src) = self.sources.get_mut(token.0) else {
                continue; // deregistered after the poll returned
            };
            let mut bits = 0;
            if ev.is_readable() {
                bits |= READABLE;
            }
            if ev.is_writable() {
                bits |= WRITABLE;
            }
            if ev.is_read_closed() {
                bits |= READ_CLOSED;
            }
            if ev.is_write_closed() {
                bits |= WRITE_CLOSED;
            }
            if ev.is_error() {
                bits |= ERROR;
            }
            match &mut src.kind {
                Kind::Callbacks { reader, writer } => {
                    if bits & Dir::Read.bits() != 0 && reader.f.is_some() {
                        actions.push(IoAction::Call(token.0, Dir::Read));
                    }
                    if bits & Dir::Write.bits() != 0 && writer.f.is_some() {
                        actions.push(IoAction::Call(token.0, Dir::Write));
                    }
                }
                Kind::Async {
                    readiness,
                    read_waker,
                    write_waker,
                } => {
                    *readiness |= bits;
                    if bits & Dir::Read.bits() != 0 {
                        wakers.extend(read_waker.take());
                    }
                    if bits & Dir::Write.bits() != 0 {
                        wakers.extend(write_waker.take());
                    }
                }
            }
        }
    }

    // ---- callbacks: add_reader / add_writer ----

    /// Sets the reader or writer callback of `fd`, registering or re-arming it with mio.
    /// Returns the callback it replaced, for the caller to drop after the borrow ends.
    pub(crate) fn set_callback(
        &mut self,
        fd: RawFd,
        dir: Dir,
        f: Box<dyn FnMut()>,
        site: &'static Location<'static>,
        kind: CallbackKind,
    ) -> io::Result<Option<IoFn>> {
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid file descriptor {fd}"),
            ));
        }
        let registry = self.poll.registry();
        if let Some(&token) = self.by_fd.get(&fd) {
            let Kind::Callbacks { reader, writer } = &self.sources[token].kind else {
                unreachable!("by_fd only indexes callback sources")
            };
            let interest = match dir {
                Dir::Read => interest_of(true, writer.is_set()),
                Dir::Write => interest_of(reader.is_set(), true),
            }
            .expect("non-empty");
            match registry.reregister(&mut SourceFd(&fd), Token(token), interest) {
                Ok(()) => {}
                // The fd was closed and its number reused since we registered it: the kernel
                // forgot the old registration, so register afresh.
                Err(e) if e.raw_os_error() == Some(libc_enoent()) => {
                    registry.register(&mut SourceFd(&fd), Token(token), interest)?;
                }
                Err(e) => return Err(annotate(e, fd)),
            }
        } else {
            let entry = self.sources.vacant_entry();
            let token = entry.key();
            let interest = match dir {
                Dir::Read => Interest::READABLE,
                Dir::Write => Interest::WRITABLE,
            };
            registry
                .register(&mut SourceFd(&fd), Token(token), interest)
                .map_err(|e| annotate(e, fd))?;
            entry.insert(Source {
                fd,
                kind: Kind::Callbacks {
                    reader: IoCallback::empty(),
                    writer: IoCallback::empty(),
                },
            });
            self.by_fd.insert(fd, token);
        }
        let token = self.by_fd[&fd];
        let Kind::Callbacks { reader, writer } = &mut self.sources[token].kind else {
            unreachable!()
        };
        let slot = match dir {
            Dir::Read => reader,
            Dir::Write => writer,
        };
        let old = slot.f.replace(f);
        slot.site = site;
        slot.kind = kind;
        slot.gen += 1;
        slot.running = false;
        Ok(old)
    }

    /// Removes the reader or writer callback of `fd`; true if there was one. Returns the removed
    /// callback so the caller can drop it outside the borrow (its destructor is user code).
    pub(crate) fn remove_callback(
        &mut self,
        fd: RawFd,
        dir: Dir,
    ) -> (bool, Option<Box<dyn FnMut()>>) {
        let Some(&token) = self.by_fd.get(&fd) else {
            return (false, None);
        };
        let Kind::Callbacks { reader, writer } = &mut self.sources[token].kind else {
            unreachable!()
        };
        let (slot, other) = match dir {
            Dir::Read => (reader, writer),
            Dir::Write => (writer, reader),
        };
        let had = slot.is_set();
        let f = slot.f.take();
        slot.gen += 1;
        slot.running = false;
        let keep_other = other.is_set();
        if !had {
            return (false, None);
        }
        if keep_other {
            let interest = match dir {
                Dir::Read => Interest::WRITABLE,
                Dir::Write => Interest::READABLE,
            };
            // If the fd was closed meanwhile this fails; the other callback is then reported by
            // `rearm` when it next runs, so the error can be ignored here.
            let _ = self
                .poll
                .registry()
                .reregister(&mut SourceFd(&fd), Token(token), interest);
        } else {
            // Errors mean the fd is already closed, which removed it from epoll anyway.
            let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
            self.sources.remove(token);
            self.by_fd.remove(&fd);
        }
        (true, f)
    }

    /// Takes a callback out to run it; `None` if it was removed since the event was queued.
    pub(crate) fn take_callback(&mut self, token: usize, dir: Dir) -> Option<TakenCallback> {
        let src = self.sources.get_mut(token)?;
        let fd = src.fd;
        let Kind::Callbacks { reader, writer } = &mut src.kind else {
            return None;
        };
        let slot = match dir {
            Dir::Read => reader,
            Dir::Write => writer,
        };
        let f = slot.f.take()?;
        slot.running = true;
        Some(TakenCallback {
            f,
            gen: slot.gen,
            site: slot.site,
            fd,
            kind: slot.kind,
        })
    }

    /// Puts a callback back after it ran (unless it was removed or replaced meanwhile) and
    /// re-arms the fd for level-triggered semantics. An error means the fd was closed while
    /// registered: the registration is dropped and the error is returned for reporting.
    /// Callbacks that are no longer registered are handed back, for the caller to drop after
    /// the reactor's borrow ends (their destructors are user code).
    pub(crate) fn restore_callback(
        &mut self,
        token: usize,
        dir: Dir,
        taken: TakenCallback,
    ) -> (Vec<IoFn>, io::Result<()>) {
        let TakenCallback { f, gen, .. } = taken;
        let Some(src) = self.sources.get_mut(token) else {
            return (vec![f], Ok(()));
        };
        let fd = src.fd;
        let Kind::Callbacks { reader, writer } = &mut src.kind else {
            return (vec![f], Ok(()));
        };
        let slot = match dir {
            Dir::Read => &mut *reader,
            Dir::Write => &mut *writer,
        };
        if slot.gen != gen {
            return (vec![f], Ok(()));
        }
        slot.running = false;
        slot.f = Some(f);
        let interest = interest_of(reader.is_set(), writer.is_set()).expect("one is set");
        match self
            .poll
            .registry()
            .reregister(&mut SourceFd(&fd), Token(token), interest)
        {
            Ok(()) => (Vec::new(), Ok(())),
            Err(e) => {
                let Kind::Callbacks { reader, writer } = &mut self.sources[token].kind else {
                    unreachable!()
                };
                let left = reader.f.take().into_iter().chain(writer.f.take()).collect();
                self.sources.remove(token);
                self.by_fd.remove(&fd);
                (left, Err(annotate(e, fd)))
            }
        }
    }

    // ---- async sources: the futures path ----

    /// Registers `fd` for both directions, edge-triggered, with readiness caching.
    pub(crate) fn register_async(&mut self, fd: RawFd) -> io::Result<usize> {
        let entry = self.sources.vacant_entry();
        let token = entry.key();
        self.poll
            .registry()
            .register(
                &mut SourceFd(&fd),
                Token(token),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| annotate(e, fd))?;
        entry.insert(Source {
            fd,
            kind: Kind::Async {
                readiness: 0,
                read_waker: None,
                write_waker: None,
            },
        });
        Ok(token)
    }

    /// Removes an async source. Returns its wakers so the caller drops them outside the borrow.
    pub(crate) fn deregister_async(
        &mut self,
        token: usize,
    ) -> Option<(Option<Waker>, Option<Waker>)> {
        let src = self.sources.try_remove(token)?;
        // The fd may already be closed by its owner; that removed it from epoll already.
        let _ = self.poll.registry().deregister(&mut SourceFd(&src.fd));
        match src.kind {
            Kind::Async {
                read_waker,
                write_waker,
                ..
            } => Some((read_waker, write_waker)),
            Kind::Callbacks { .. } => None,
        }
    }

    /// Ready if the cached readiness allows `dir`; otherwise stores the waker.
    pub(crate) fn poll_ready(&mut self, token: usize, dir: Dir, cx: &mut Context<'_>) -> Poll<()> {
        let Some(Source {
            kind:
                Kind::Async {
                    readiness,
                    read_waker,
                    write_waker,
                },
            ..
        }) = self.sources.get_mut(token)
        else {
            return Poll::Ready(()); // gone: let the operation run and report its own error
        };
        if *readiness & dir.bits() != 0 {
            return Poll::Ready(());
        }
        let slot = match dir {
            Dir::Read => read_waker,
            Dir::Write => write_waker,
        };
        match slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Forgets that `dir` is ready (the operation saw `WouldBlock`, or a short read/write).
    pub(crate) fn clear_ready(&mut self, token: usize, dir: Dir) {
        if let Some(Source {
            kind: Kind::Async { readiness, .. },
            ..
        }) = self.sources.get_mut(token)
        {
            *readiness &= !match dir {
                Dir::Read => READABLE,
                Dir::Write => WRITABLE,
            };
        }
    }

    /// How many fds are registered (callbacks and async sources).
    pub(crate) fn len(&self) -> usize {
        self.sources.len()
    }

    /// Empties the reactor, returning the callbacks and wakers for the caller to drop.
    pub(crate) fn drain(&mut self) -> Vec<Box<dyn std::any::Any>> {
        let mut out: Vec<Box<dyn std::any::Any>> = Vec::new();
        for src in self.sources.drain() {
            let _ = self.poll.registry().deregister(&mut SourceFd(&src.fd));
            match src.kind {
                Kind::Callbacks { reader, writer } => {
                    out.extend(reader.f.map(|f| Box::new(f) as Box<dyn std::any::Any>));
                    out.extend(writer.f.map(|f| Box::new(f) as Box<dyn std::any::Any>));
                }
                Kind::Async {
                    read_waker,
                    write_waker,
                    ..
                } => {
                    out.extend(read_waker.map(|w| Box::new(w) as Box<dyn std::any::Any>));
                    out.extend(write_waker.map(|w| Box::new(w) as Box<dyn std::any::Any>));
                }
            }
        }
        self.by_fd.clear();
        out
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("sources", &self.sources.len())
            .finish()
    }
}

fn libc_enoent() -> i32 {
    2 // ENOENT on Linux and the BSDs
}

/// Adds the fd to the OS error's message, keeping its kind and code.
fn annotate(e: io::Error, fd: RawFd) -> io::Error {
    let what = match e.raw_os_error() {
        Some(9) => "not an open file descriptor",
        Some(1) => "this kind of file cannot be polled (regular files are always ready)",
        Some(17) => "already registered with this loop by another owner",
        _ => "cannot be registered",
    };
    io::Error::new(e.kind(), format!("fd {fd}: {what} ({e})"))
}

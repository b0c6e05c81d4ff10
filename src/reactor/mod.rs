//! The reactor: file descriptors, mio, and what to do when one becomes ready.
//!
//! ```
//! use std::io::Write;
//! use std::os::unix::net::UnixStream;
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let (a, mut b) = UnixStream::pair().unwrap();
//! let h2 = h.clone();
//! h.add_reader(&a, move || h2.stop()).unwrap(); // a callback source
//! b.write_all(b"x").unwrap(); // an event for its token
//! el.run_forever().unwrap();
//! assert!(h.remove_reader(&a));
//! ```
//!
//! # The idea
//!
//! mio tells us *when* a file descriptor changes state; the reactor remembers *what to do* about
//! it. Each registered fd is a [`Source`] in a slab, and its mio `Token` is its slab index plus a
//! generation, so an event finds its source in O(1) and never a newer registration that reused
//! the slot. A source is one of two kinds (`callbacks.rs`, `async_sources.rs`):
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
//!   collected, then run or woken by the loop after the borrow ends; what it unregisters is
//!   handed back for the loop to drop.
//! * `by_fd` names, for each fd number, the one live registration of that number (of either
//!   kind). A registration whose number the backend shows to be closed or reused is evicted
//!   without a syscall and handed to the loop ([`Reactor::take_evicted`]); a removal deletes the
//!   number from the backend only if `by_fd` still names that registration.
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
//!
//! # Napping before sleeping
//!
//! Spinning saves the peers' wake-ups by spending the loop's CPU. A *nap*
//! ([`Builder::nap_before_sleep`](crate::Builder::nap_before_sleep)) saves them by not waiting
//! on the poller at all: the loop sleeps a fixed short time (`thread::sleep`), then polls
//! without blocking and takes everything that arrived meanwhile in one go. While it naps, no
//! thread waits on its epoll instance, so a peer's `write` wakes nobody (the kernel notes the
//! readiness and returns), and the loop's own wake-up is a timer on its own CPU. Under dense
//! traffic that is cheaper for everyone: the peers pay no wake-ups, and the loop wakes once per
//! nap rather than once per arrival and handles more events per wake. The price is latency:
//! an event that arrives during a nap waits for its end (the nap, plus the OS's timer slack,
//! 50 µs by default for an ordinary thread), and so does a wake from another thread or a signal.
//! It is armed and disarmed as the spin is: a nap that finds nothing disarms it (the loop then
//! waits on the poller as usual), and a sleep that ends with events within the nap time arms it
//! again. A nap never outlasts the wait it replaces, so a timer is not delayed by it.

use std::collections::HashMap;
use std::io;
use std::os::fd::RawFd;
use std::task::Waker;
use std::time::{Duration, Instant};

use slab::Slab;

mod async_sources;
mod backend;
mod callbacks;

pub use backend::Backend;
pub(crate) use backend::RemoteWaker;
use backend::{
    Counters, Interest, Poller, Use, ERROR, READABLE, READ_CLOSED, WRITABLE, WRITE_CLOSED,
};

use callbacks::IoCallback;
pub(crate) use callbacks::Unregistered;

/// A reader or writer callback.
pub(crate) type IoFn = Box<dyn FnMut()>;

/// A direction of readiness.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    Read,
    Write,
}

impl Dir {
    /// The readiness bits that let an operation in this direction make progress.
    fn bits(self) -> u8 {
        match self {
            Dir::Read => READABLE | READ_CLOSED | ERROR,
            Dir::Write => WRITABLE | WRITE_CLOSED | ERROR,
        }
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
        /// The directions the backend will report. Always both on an edge backend; on a
        /// oneshot one, none after each event, until a waiting task arms it again.
        armed: Interest,
    },
}

impl Kind {
    /// Takes a registration apart: its callbacks and its wakers, for the loop to drop (or wake)
    /// outside the reactor's borrow.
    fn release_into(self, callbacks: &mut Vec<Unregistered>, wakers: &mut Vec<Waker>) {
        match self {
            Kind::Callbacks { reader, writer } => callbacks.extend(
                [reader, writer]
                    .into_iter()
                    .filter_map(IoCallback::unregister),
            ),
            Kind::Async {
                read_waker,
                write_waker,
                ..
            } => wakers.extend(read_waker.into_iter().chain(write_waker)),
        }
    }
}

struct Source {
    fd: RawFd,
    /// The token this registration was made with: its slot and its generation. An event or a
    /// key that carries another generation is for an older registration of the same slot.
    token: usize,
    kind: Kind,
}

/// A token is a slab slot in its low half and a registration generation in its high half, so a
/// slot reused by a new registration gets a new token: an event queued for the old one, or an
/// old `Async`'s key, can never reach the new one.
const SLOT_BITS: u32 = usize::BITS / 2;
/// (The all-ones slot is never handed out: backends may use it for keys of their own.)
const SLOT_MASK: usize = (1 << SLOT_BITS) - 1;
const GEN_MASK: usize = usize::MAX >> SLOT_BITS;

/// A registration found stale: its fd was closed while registered, and the number was given to
/// another file that was then registered (or the kernel refused to re-arm it). What it held, for
/// the loop to report and drop outside the reactor's borrow.
pub(crate) struct Evicted {
    pub(crate) fd: RawFd,
    /// Its reader and writer callbacks.
    pub(crate) callbacks: Vec<Unregistered>,
    /// Wakers of tasks that waited on an `Async` source.
    pub(crate) wakers: Vec<Waker>,
}

/// What an I/O event asks the loop to do.
#[derive(Debug)]
pub(crate) enum IoAction {
    /// Run the reader or writer callback of this token.
    Call(usize, Dir),
}

/// The reactor. Owned by the loop, behind a `RefCell`.
pub(crate) struct Reactor {
    /// The OS poller behind the one backend interface (`backend/`).
    poller: Poller,
    /// Oneshot `Async` sources to arm again after this dispatch (a task still waits on them).
    rearm: Vec<(RawFd, usize, Interest, Use)>,
    sources: Slab<Source>,
    /// The live registration of each fd number, of either kind (callbacks or `Async`).
    by_fd: HashMap<RawFd, usize>,
    /// The generation of the last registration (tokens' high half).
    next_gen: usize,
    /// Stale registrations found since the loop last asked.
    evicted: Vec<Evicted>,
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
    /// How long to nap (sleep without waiting on the poller) before a blocking poll (zero:
    /// never). Never both a spin and a nap (the builder refuses).
    nap: Duration,
    /// Whether the next wait naps: cleared by a nap that found nothing, set again by a sleep
    /// that ended with events within the nap time.
    nap_armed: bool,
    /// Waits allowed to block that napped.
    naps: u64,
    /// Naps after which events (or remote work) were waiting.
    nap_hits: u64,
}

/// The longest nap the builder accepts: a nap is meant to gather microseconds of arrivals, and
/// every event that comes during one waits for its end.
pub(crate) const MAX_NAP: Duration = Duration::from_millis(1);

/// The spin time `SOLO_SPIN_US` asks for, in microseconds (unset or empty: zero).
pub(crate) fn env_spin() -> io::Result<Duration> {
    env_micros("SOLO_SPIN_US")
}

/// The nap time `SOLO_NAP_US` asks for, in microseconds (unset or empty: zero).
pub(crate) fn env_nap() -> io::Result<Duration> {
    env_micros("SOLO_NAP_US")
}

/// A whole number of microseconds from `var`; `InvalidInput` for anything else (`20us`, `-5`),
/// so that a typo does not silently turn the setting off.
fn env_micros(var: &str) -> io::Result<Duration> {
    let Some(v) = std::env::var_os(var) else {
        return Ok(Duration::ZERO);
    };
    let text = v.to_string_lossy();
    let text = text.trim();
    if text.is_empty() {
        return Ok(Duration::ZERO);
    }
    text.parse::<u64>().map(Duration::from_micros).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("solo: {var}={text:?} is not a whole number of microseconds"),
        )
    })
}

impl Reactor {
    pub(crate) fn new(
        spin: Duration,
        nap: Duration,
        backend: Backend,
    ) -> io::Result<(Reactor, RemoteWaker)> {
        let (poller, waker) = Poller::new(backend)?;
        Ok((
            Reactor {
                poller,
                rearm: Vec::new(),
                sources: Slab::new(),
                by_fd: HashMap::new(),
                next_gen: 0,
                evicted: Vec::new(),
                spin,
                spin_armed: true,
                sleeps: 0,
                spins: 0,
                spin_hits: 0,
                nap,
                nap_armed: true,
                naps: 0,
                nap_hits: 0,
            },
            waker,
        ))
    }

    /// The backend's fd (epoll's), for a host that waits on it.
    pub(crate) fn as_raw_fd(&self) -> RawFd {
        self.poller.as_raw_fd()
    }

    /// The spin figures for [`Stats`](crate::debug::Stats): (sleeps, spins, spin hits).
    pub(crate) fn spin_stats(&self) -> (u64, u64, u64) {
        (self.sleeps, self.spins, self.spin_hits)
    }

    /// The nap figures for [`Stats`](crate::debug::Stats): (naps, nap hits).
    pub(crate) fn nap_stats(&self) -> (u64, u64) {
        (self.naps, self.nap_hits)
    }

    /// The backend in use, and the syscalls it made: waits, and registrations added, modified
    /// and deleted.
    pub(crate) fn backend_stats(&self) -> (Backend, u64, u64, u64, u64) {
        let Counters {
            waits,
            adds,
            modifies,
            deletes,
        } = self.poller.counters();
        (self.poller.backend(), waits, adds, modifies, deletes)
    }

    /// Waits for events for at most `timeout` (`None`: until an event). A wait that may block
    /// first spins (polls without blocking) for up to the spin time, or naps for the nap time
    /// (never longer than `timeout`) and then polls without blocking, if armed; and then blocks
    /// for what is left of `timeout`.
    ///
    /// `remote_work` says whether another thread queued work: its wake-up may be consumed by a
    /// spinning wait without showing as an event (polling reports no event for `notify`), so the
    /// spin asks it too, and never goes on to block while work is waiting.
    pub(crate) fn poll(
        &mut self,
        timeout: Option<Duration>,
        remote_work: impl Fn() -> bool,
    ) -> io::Result<()> {
        if timeout == Some(Duration::ZERO) {
            return self.wait(timeout);
        }
        if !self.nap.is_zero() {
            return self.nap_then_sleep(timeout, remote_work);
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
                if self.poller.has_events() || remote_work() {
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
        if (self.poller.has_events() || remote_work()) && slept.elapsed() < self.spin {
            self.spin_armed = true;
        }
        Ok(())
    }

    /// `poll` for a loop that naps: see the module docs, "Napping before sleeping".
    fn nap_then_sleep(
        &mut self,
        mut timeout: Option<Duration>,
        remote_work: impl Fn() -> bool,
    ) -> io::Result<()> {
        if self.nap_armed {
            self.naps += 1;
            let start = Instant::now();
            let nap = timeout.map_or(self.nap, |t| t.min(self.nap));
            std::thread::sleep(nap);
            self.wait(Some(Duration::ZERO))?;
            if self.poller.has_events() || remote_work() {
                self.nap_hits += 1;
                return Ok(());
            }
            // Only a whole nap that found nothing says traffic has thinned; one cut short by a
            // near timer says nothing about it.
            if nap == self.nap {
                self.nap_armed = false;
            }
            if let Some(t) = timeout {
                match t.checked_sub(start.elapsed()) {
                    Some(left) if !left.is_zero() => timeout = Some(left),
                    _ => return Ok(()), // the deadline came during the nap
                }
            }
        }
        self.sleeps += 1;
        let slept = Instant::now();
        self.wait(timeout)?;
        if (self.poller.has_events() || remote_work()) && slept.elapsed() < self.nap {
            self.nap_armed = true;
        }
        Ok(())
    }

    /// One backend poll. An interrupted wait (a signal) counts as a wait with no events.
    fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.poller.wait(timeout)
    }

    /// Turns the events of the last poll into actions and wakers. The cross-thread waker's
    /// event carries nothing to act on: it only ends the wait, and the loop learns what other
    /// threads sent from their queue's own flag.
    pub(crate) fn dispatch(&mut self, actions: &mut Vec<IoAction>, wakers: &mut Vec<Waker>) {
        let oneshot = self.poller.is_oneshot();
        let Reactor {
            poller,
            sources,
            rearm,
            ..
        } = self;
        poller.for_each_event(|token, bits| {
            let Some(src) = lookup(sources, token) else {
                return; // deregistered, or an older registration of a reused slot
            };
            match &mut src.kind {
                Kind::Callbacks { reader, writer } => {
                    let queued = actions.len();
                    if bits & Dir::Read.bits() != 0 && reader.is_waiting() {
                        actions.push(IoAction::Call(token, Dir::Read));
                    }
                    if bits & Dir::Write.bits() != 0 && writer.is_waiting() {
                        actions.push(IoAction::Call(token, Dir::Write));
                    }
                    // A queued callback re-arms its source when it runs; an event that queued
                    // nothing must not leave a oneshot registration disarmed.
                    if oneshot && actions.len() == queued {
                        let interest = Interest {
                            read: reader.is_waiting(),
                            write: writer.is_waiting(),
                        };
                        rearm.push((src.fd, token, interest, Use::Callbacks));
                    }
                }
                Kind::Async {
                    readiness,
                    read_waker,
                    write_waker,
                    armed,
                } => {
                    *readiness |= bits;
                    if bits & Dir::Read.bits() != 0 {
                        wakers.extend(read_waker.take());
                    }
                    if bits & Dir::Write.bits() != 0 {
                        wakers.extend(write_waker.take());
                    }
                    if oneshot {
                        // The event disarmed the registration; a task still waiting on the
                        // other direction needs it armed again.
                        *armed = Interest {
                            read: read_waker.is_some(),
                            write: write_waker.is_some(),
                        };
                        if *armed != Interest::NONE {
                            rearm.push((src.fd, token, *armed, Use::Async));
                        }
                    }
                }
            }
        });
        for (fd, token, interest, how) in self.rearm.drain(..) {
            // An error means the fd was closed; its owner's next operation reports that.
            let _ = self.poller.modify(fd, token, interest, how);
        }
    }

    // ---- registrations: keys, generations, stale fds ----

    /// The source a token names, if it is still the registration the token was made for.
    fn get_mut(&mut self, token: usize) -> Option<&mut Source> {
        lookup(&mut self.sources, token)
    }

    /// Registers `fd` with the backend under a fresh token and records it. If the kernel takes
    /// the registration although a source of ours is indexed under the same number, that source
    /// is stale (its file was closed while registered and the number reused): it is evicted.
    fn insert_source(
        &mut self,
        fd: RawFd,
        interest: Interest,
        how: Use,
        kind: Kind,
    ) -> io::Result<usize> {
        let slot = self.sources.vacant_key();
        if slot >= SLOT_MASK {
            return Err(io::Error::other(format!(
                "fd {fd}: too many registrations with one loop ({slot})"
            )));
        }
        self.next_gen = (self.next_gen + 1) & GEN_MASK;
        let token = (self.next_gen << SLOT_BITS) | slot;
        self.poller
            .add(fd, token, interest, how)
            .map_err(|e| annotate(e, fd))?;
        let key = self.sources.insert(Source { fd, token, kind });
        debug_assert_eq!(key, slot);
        // After the insert: evicting frees a slot, which must not be the one the token names.
        if let Some(old) = self.by_fd.insert(fd, token) {
            self.evict(old);
        }
        Ok(token)
    }

    /// Forgets a stale registration without a syscall (the kernel dropped it when its file was
    /// closed, or its number now belongs to another registration) and keeps what it held for
    /// the loop to report and drop ([`Reactor::take_evicted`]). The caller fixes `by_fd`.
    fn evict(&mut self, token: usize) {
        let Some(src) = self.sources.try_remove(token & SLOT_MASK) else {
            return;
        };
        debug_assert_eq!(src.token, token);
        let mut evicted = Evicted {
            fd: src.fd,
            callbacks: Vec::new(),
            wakers: Vec::new(),
        };
        src.kind
            .release_into(&mut evicted.callbacks, &mut evicted.wakers);
        self.evicted.push(evicted);
    }

    /// Removes a registration that is being given up by its owner. The fd is deleted from the
    /// backend only if the number still names this registration: after a close and reuse it may
    /// name another one, which must not be torn down.
    fn remove_source(&mut self, token: usize) -> Option<Source> {
        let src = self.sources.try_remove(token & SLOT_MASK)?;
        debug_assert_eq!(src.token, token);
        if self.by_fd.get(&src.fd) == Some(&token) {
            self.by_fd.remove(&src.fd);
            // Errors mean the fd is closed already, which removed it from the backend anyway.
            let _ = self.poller.delete(src.fd);
        }
        Some(src)
    }

    /// Registrations found stale since the last call, for the loop to report.
    pub(crate) fn take_evicted(&mut self) -> Vec<Evicted> {
        std::mem::take(&mut self.evicted)
    }

    /// Gives back what a burst of registrations left (see `reclaim.rs`).
    pub(crate) fn release_memory(&mut self) {
        crate::reclaim::slab(&mut self.sources);
        crate::reclaim::map(&mut self.by_fd);
        crate::reclaim::vec(&mut self.evicted);
    }

    /// How many fds are registered (callbacks and async sources).
    pub(crate) fn len(&self) -> usize {
        self.sources.len()
    }

    /// Empties the reactor, returning the callbacks and wakers for the caller to drop.
    pub(crate) fn drain(&mut self) -> (Vec<Unregistered>, Vec<Waker>) {
        let (mut callbacks, mut wakers) = (Vec::new(), Vec::new());
        for src in self.sources.drain() {
            let _ = self.poller.delete(src.fd);
            src.kind.release_into(&mut callbacks, &mut wakers);
        }
        self.by_fd.clear();
        (callbacks, wakers)
    }
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("sources", &self.sources.len())
            .finish()
    }
}

/// The source `token` names, if the slot still holds the registration the token was made for.
fn lookup(sources: &mut Slab<Source>, token: usize) -> Option<&mut Source> {
    sources
        .get_mut(token & SLOT_MASK)
        .filter(|s| s.token == token)
}

/// Adds the fd to the OS error's message, keeping its kind and code.
fn annotate(e: io::Error, fd: RawFd) -> io::Error {
    let what = match e.raw_os_error() {
        Some(libc::EBADF) => "not an open file descriptor",
        Some(libc::EPERM) => "this kind of file cannot be polled (regular files are always ready)",
        Some(libc::EEXIST) => {
            "already registered with this loop by another owner (an `Async` or a socket of \
             solo::net)"
        }
        _ => "cannot be registered",
    };
    io::Error::new(e.kind(), format!("fd {fd}: {what} ({e})"))
}

/// The nap's arming, driven through `poll` with nothing registered (only the cross-thread
/// waker's fd is in the poller): no event ever comes, so each outcome is fixed.
#[cfg(test)]
mod nap_tests {
    use super::*;

    const NAP: Duration = Duration::from_millis(1);

    #[test]
    fn a_nap_cut_short_by_the_timeout_keeps_napping_armed_and_a_whole_one_disarms_it() {
        let (mut r, _waker) = Reactor::new(Duration::ZERO, NAP, Backend::Mio).unwrap();
        // The wait's timeout (a timer 200 µs away) is shorter than the nap: the nap is cut to
        // it, finds nothing, and proves nothing about the traffic.
        r.poll(Some(Duration::from_micros(200)), || false).unwrap();
        assert_eq!(r.nap_stats(), (1, 0));
        assert!(r.nap_armed);
        assert_eq!(
            r.sleeps, 0,
            "the timeout came during the nap: no sleep after it"
        );
        // A whole nap that finds nothing disarms napping; the loop then sleeps out the rest.
        r.poll(Some(Duration::from_millis(5)), || false).unwrap();
        assert_eq!(r.nap_stats(), (2, 0));
        assert!(!r.nap_armed);
        assert_eq!(r.sleeps, 1);
        // Disarmed: the next wait sleeps at once.
        r.poll(Some(Duration::from_millis(2)), || false).unwrap();
        assert_eq!(r.nap_stats(), (2, 0));
        assert_eq!(r.sleeps, 2);
    }

    #[test]
    fn remote_work_found_after_a_nap_is_a_hit() {
        let (mut r, _waker) = Reactor::new(Duration::ZERO, NAP, Backend::Polling).unwrap();
        r.poll(None, || true).unwrap();
        assert_eq!(r.nap_stats(), (1, 1));
        assert!(r.nap_armed);
        assert_eq!(r.sleeps, 0);
    }
}

//! The `polling` backend (smol's poller): oneshot registrations. See the parent module for why
//! oneshot, and not level or edge.
//!
//! ```
//! let el = solo::EventLoop::builder().backend(solo::Backend::Polling).build().unwrap();
//! assert_eq!(el.run_until_complete(async { 1 }).unwrap(), 1);
//! ```
//!
//! # Waiting without the crate's extra syscalls (Linux)
//!
//! `polling::Poller::wait` on Linux makes five syscalls per wait where one is needed: it sets a
//! `timerfd` to the timeout (`timerfd_settime`) and re-arms it (`epoll_ctl`), waits, then reads
//! its notification eventfd and re-arms that (`read`, `epoll_ctl`), whether or not anybody
//! notified it. At one wait per request (an echo server with one client) that is 8 syscalls per
//! round trip instead of 4. So on Linux this backend registers through the crate (its oneshot
//! flags) but waits itself: one `epoll_wait` on the crate's epoll fd, with the timeout in
//! milliseconds rounded up (timers have 1 ms ticks; mio does the same). Remote wake-ups then
//! cannot use `Poller::notify`, whose eventfd only the crate's `wait` reads and re-arms; they
//! use an eventfd of ours, registered edge-triggered, as `mio::Waker` does: each `write` raises
//! one event, and the loop never reads it (only a full counter, 2^64 - 2 wakes, is drained by the
//! waker itself). Elsewhere the crate's `wait` and `notify` are used as they are.

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use polling::{Event, PollMode, Poller};

use super::{
    not_interrupted, Counters, Interest, RemoteWaker, Use, ERROR, READABLE, READ_CLOSED, WRITABLE,
};

pub(crate) struct PollingPoller {
    pub(super) poller: Arc<Poller>,
    events: Events,
    pub(super) counters: Counters,
}

fn event(token: usize, i: Interest) -> Event {
    Event::new(token, i.read, i.write)
}

/// Oneshot for both uses (see the parent module); `how` is kept so that a mode per use stays a
/// one-line change, for whoever wants to measure level-triggered readers.
fn mode(how: Use) -> PollMode {
    match how {
        Use::Callbacks | Use::Async => PollMode::Oneshot,
    }
}

/// The fd as `polling` takes it for `modify` and `delete`.
///
/// `BorrowedFd` promises an open fd. The reactor may pass a number whose file was closed behind
/// its back (a user who broke the rule "deregister before closing"): the number then goes to
/// `epoll_ctl` only, which answers `EBADF` or `ENOENT` (how the reactor finds out), and nothing
/// reads from or writes to it.
fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: see above; the `BorrowedFd` is used for one `epoll_ctl` call and dropped, and
    // `epoll_ctl` tolerates any number.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

impl PollingPoller {
    pub(super) fn new() -> io::Result<(PollingPoller, RemoteWaker)> {
        let poller = Arc::new(Poller::new()?);
        let (events, waker) = Events::new(&poller)?;
        Ok((
            PollingPoller {
                poller,
                events,
                counters: Counters::default(),
            },
            RemoteWaker::Polling(waker),
        ))
    }

    pub(super) fn add(&mut self, fd: RawFd, token: usize, i: Interest, how: Use) -> io::Result<()> {
        self.counters.adds += 1;
        // SAFETY: `add` requires that the fd be deleted from the poller before it is closed. The
        // reactor deletes every registration it gives up; a user who closes a registered fd
        // anyway breaks only their own registration: on epoll the kernel drops it with the
        // file, and the reactor evicts it when the number comes back (see `reactor/mod.rs`).
        unsafe { self.poller.add_with_mode(fd, event(token, i), mode(how)) }
    }

    pub(super) fn modify(
        &mut self,
        fd: RawFd,
        token: usize,
        i: Interest,
        how: Use,
    ) -> io::Result<()> {
        self.counters.modifies += 1;
        self.poller
            .modify_with_mode(borrow(fd), event(token, i), mode(how))
    }

    pub(super) fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        self.counters.deletes += 1;
        self.poller.delete(borrow(fd))
    }

    pub(super) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.counters.waits += 1;
        let r = self.events.wait(&self.poller, timeout);
        not_interrupted(r, || self.events.clear())
    }

    pub(super) fn has_events(&self) -> bool {
        self.events.any()
    }

    #[inline]
    pub(super) fn for_each_event(&self, f: impl FnMut(usize, u8)) {
        self.events.for_each(f)
    }
}

/// The readiness bits of one event (the crate's meaning: `EPOLLHUP` also reads as closed).
fn bits(readable: bool, writable: bool, hup: bool, err: bool) -> u8 {
    let mut bits = 0;
    if readable {
        bits |= READABLE;
    }
    if writable {
        bits |= WRITABLE;
    }
    if hup {
        bits |= READ_CLOSED;
    }
    if err {
        bits |= ERROR;
    }
    bits
}

#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) use direct::{Events, PollingWaker};
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) use portable::{Events, PollingWaker};

/// Linux: one `epoll_wait` per wait on the crate's epoll fd, and an eventfd of ours for remote
/// wake-ups (see the module's documentation).
#[cfg(any(target_os = "linux", target_os = "android"))]
mod direct {
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::Arc;
    use std::time::Duration;

    use polling::{Event, PollMode, Poller};

    use super::bits;

    /// The remote waker's key: a slot the reactor never hands out (`insert_source` refuses the
    /// all-ones slot), and not the crate's own `NOTIFY_KEY` (`usize::MAX`), which it refuses.
    const WAKER_KEY: usize = crate::reactor::SLOT_MASK;
    /// The crate's key for its own notifier and timer fds; they raise no event here (nobody
    /// notifies the crate's notifier, and its timer is armed only by the crate's `wait`), but an
    /// event with it would carry nothing for the reactor either.
    const NOTIFY_KEY: usize = usize::MAX;
    const CAPACITY: usize = 1024;

    /// Wakes the loop from any thread: one `write` to an eventfd registered edge-triggered.
    #[derive(Debug)]
    pub(crate) struct PollingWaker {
        pub(super) fd: OwnedFd,
    }

    impl PollingWaker {
        pub(crate) fn wake(&self) -> io::Result<()> {
            let one = 1u64.to_ne_bytes();
            loop {
                // SAFETY: an 8-byte write from a live local buffer to an eventfd we own.
                let n = unsafe { libc::write(self.fd.as_raw_fd(), one.as_ptr().cast(), 8) };
                if n >= 0 {
                    return Ok(());
                }
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::Interrupted => continue,
                    // The counter is full (2^64 - 2 wakes nobody read): empty it, and the next
                    // write raises a new edge.
                    io::ErrorKind::WouldBlock => {
                        let mut sink = [0u8; 8];
                        // SAFETY: an 8-byte read into a live local buffer from our eventfd.
                        unsafe { libc::read(self.fd.as_raw_fd(), sink.as_mut_ptr().cast(), 8) };
                    }
                    _ => return Err(e),
                }
            }
        }
    }

    /// The events of the last wait, as the kernel wrote them.
    pub(crate) struct Events {
        buf: Vec<libc::epoll_event>,
        len: usize,
    }

    impl Events {
        pub(crate) fn new(poller: &Arc<Poller>) -> io::Result<(Events, PollingWaker)> {
            // SAFETY: eventfd takes no pointers; the fd it returns is owned by the `OwnedFd`.
            let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: `fd` was just returned by eventfd, and nothing else owns it.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: the eventfd lives in the waker, which the loop's `Shared` holds as long as
            // the loop (and so the poller) exists; the registration goes when the epoll fd is
            // closed with the poller, or with the eventfd if that is closed first.
            unsafe {
                poller.add_with_mode(&fd, Event::readable(WAKER_KEY), PollMode::Edge)?;
            }
            let events = Events {
                buf: vec![libc::epoll_event { events: 0, u64: 0 }; CAPACITY],
                len: 0,
            };
            Ok((events, PollingWaker { fd }))
        }

        pub(crate) fn clear(&mut self) {
            self.len = 0;
        }

        pub(crate) fn wait(
            &mut self,
            poller: &Poller,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            self.clear();
            let ms = match timeout {
                None => -1,
                // Rounded up, so a timer is never woken for early; capped at epoll's maximum.
                Some(t) => t
                    .as_nanos()
                    .div_ceil(1_000_000)
                    .min(libc::c_int::MAX as u128) as libc::c_int,
            };
            // SAFETY: the buffer is valid for `CAPACITY` events and the kernel writes at most that
            // many; the fd is the crate's epoll fd, open as long as `poller`.
            let n = unsafe {
                libc::epoll_wait(
                    poller.as_raw_fd(),
                    self.buf.as_mut_ptr(),
                    CAPACITY as libc::c_int,
                    ms,
                )
            };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            self.len = n as usize;
            Ok(())
        }

        pub(crate) fn any(&self) -> bool {
            self.len > 0
        }

        #[inline]
        pub(crate) fn for_each(&self, mut f: impl FnMut(usize, u8)) {
            for e in &self.buf[..self.len] {
                // Copied out: the struct is packed on x86-64.
                let (flags, key) = (e.events as libc::c_int, e.u64 as usize);
                if key == WAKER_KEY || key == NOTIFY_KEY {
                    continue;
                }
                let readable =
                    flags & (libc::EPOLLIN | libc::EPOLLHUP | libc::EPOLLERR | libc::EPOLLPRI) != 0;
                let writable = flags & (libc::EPOLLOUT | libc::EPOLLHUP | libc::EPOLLERR) != 0;
                let hup = flags & libc::EPOLLHUP != 0;
                let err = flags & libc::EPOLLERR != 0;
                f(key, bits(readable, writable, hup, err));
            }
        }
    }
}

/// The waker and the wait, on a real epoll fd and eventfd.
#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use std::os::fd::AsRawFd;
    use std::time::Duration;

    use super::super::RemoteWaker;
    use super::PollingPoller;

    fn poller() -> (PollingPoller, super::PollingWaker) {
        match PollingPoller::new().unwrap() {
            (p, RemoteWaker::Polling(w)) => (p, w),
            _ => unreachable!("the polling backend makes a polling waker"),
        }
    }

    /// Events of the last wait that reach the reactor.
    fn reported(p: &PollingPoller) -> usize {
        let mut n = 0;
        p.for_each_event(|_, _| n += 1);
        n
    }

    #[test]
    fn each_wake_ends_one_wait_and_the_loop_never_reads_the_eventfd() {
        let (mut p, w) = poller();
        p.wait(Some(Duration::ZERO)).unwrap();
        assert!(!p.has_events());
        for _ in 0..3 {
            w.wake().unwrap();
            // A blocking wait returns at once: the wake is an edge on the eventfd.
            p.wait(None).unwrap();
            assert!(p.has_events(), "a wake ends the wait");
            assert_eq!(reported(&p), 0, "the waker's event is not a registration's");
            // Not read, yet not reported again: edge-triggered.
            p.wait(Some(Duration::ZERO)).unwrap();
            assert!(!p.has_events());
        }
        assert_eq!(p.counters.waits, 7, "one epoll_wait per wait, counted");
    }

    #[test]
    fn a_wake_from_another_thread_ends_a_blocking_wait() {
        let (mut p, w) = poller();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            w.wake().unwrap();
            w
        });
        p.wait(Some(Duration::from_secs(30))).unwrap();
        assert!(p.has_events());
        drop(t.join().unwrap());
    }

    #[test]
    fn a_full_eventfd_counter_is_emptied_by_the_waker() {
        let (mut p, w) = poller();
        // The most an eventfd holds: 2^64 - 2. The next write would block.
        let full = (u64::MAX - 1).to_ne_bytes();
        // SAFETY: an 8-byte write from a live local buffer to the waker's eventfd.
        let n = unsafe { libc::write(w.fd.as_raw_fd(), full.as_ptr().cast(), 8) };
        assert_eq!(n, 8);
        p.wait(Some(Duration::ZERO)).unwrap();
        assert!(p.has_events());
        w.wake().unwrap();
        p.wait(Some(Duration::ZERO)).unwrap();
        assert!(p.has_events(), "the wake after the drain is a new edge");
    }

    #[test]
    fn a_wait_with_a_timeout_below_a_millisecond_does_not_return_before_it() {
        let (mut p, _w) = poller();
        let start = std::time::Instant::now();
        p.wait(Some(Duration::from_micros(300))).unwrap();
        assert!(!p.has_events());
        // Rounded up to 1 ms: a timer's wait never ends before its deadline.
        assert!(start.elapsed() >= Duration::from_micros(300));
    }
}

/// Elsewhere: the crate's own `wait` and `notify`.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
mod portable {
    use std::io;
    use std::sync::Arc;
    use std::time::Duration;

    use polling::Poller;

    use super::bits;

    /// Wakes the loop from any thread: `Poller::notify`.
    #[derive(Debug)]
    pub(crate) struct PollingWaker {
        poller: Arc<Poller>,
    }

    impl PollingWaker {
        pub(crate) fn wake(&self) -> io::Result<()> {
            self.poller.notify()
        }
    }

    pub(crate) struct Events {
        events: polling::Events,
    }

    impl Events {
        pub(crate) fn new(poller: &Arc<Poller>) -> io::Result<(Events, PollingWaker)> {
            let events = Events {
                events: polling::Events::new(),
            };
            Ok((
                events,
                PollingWaker {
                    poller: poller.clone(),
                },
            ))
        }

        pub(crate) fn clear(&mut self) {
            self.events.clear();
        }

        pub(crate) fn wait(
            &mut self,
            poller: &Poller,
            timeout: Option<Duration>,
        ) -> io::Result<()> {
            self.events.clear();
            poller.wait(&mut self.events, timeout).map(drop)
        }

        pub(crate) fn any(&self) -> bool {
            !self.events.is_empty()
        }

        #[inline]
        pub(crate) fn for_each(&self, mut f: impl FnMut(usize, u8)) {
            // `Events::iter` leaves out the poller's own notifications.
            for ev in self.events.iter() {
                f(
                    ev.key,
                    bits(
                        ev.readable,
                        ev.writable,
                        ev.is_interrupt(),
                        ev.is_err() == Some(true),
                    ),
                );
            }
        }
    }
}

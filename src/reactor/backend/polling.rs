//! The `polling` backend (smol's poller): oneshot registrations, `Poller::notify` for remote
//! wake-ups. See the parent module for why oneshot, and not level or edge.
//!
//! ```
//! let el = solo::EventLoop::builder().backend(solo::Backend::Polling).build().unwrap();
//! assert_eq!(el.run_until_complete(async { 1 }).unwrap(), 1);
//! ```

use std::io;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use polling::{Event, Events, PollMode, Poller};

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
        Ok((
            PollingPoller {
                poller: poller.clone(),
                events: Events::new(),
                counters: Counters::default(),
            },
            RemoteWaker::Polling(poller),
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
        self.events.clear();
        let r = self.poller.wait(&mut self.events, timeout).map(drop);
        not_interrupted(r, || self.events.clear())
    }

    pub(super) fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    #[inline]
    pub(super) fn for_each_event(&self, mut f: impl FnMut(usize, u8)) {
        // `Events::iter` leaves out the poller's own notifications.
        for ev in self.events.iter() {
            let mut bits = 0;
            if ev.readable {
                bits |= READABLE;
            }
            if ev.writable {
                bits |= WRITABLE;
            }
            if ev.is_interrupt() {
                bits |= READ_CLOSED;
            }
            if ev.is_err() == Some(true) {
                bits |= ERROR;
            }
            f(ev.key, bits);
        }
    }
}

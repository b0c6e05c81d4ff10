//! The mio backend: epoll (kqueue on the BSDs), edge-triggered, a `mio::Waker` for remote
//! wake-ups.
//!
//! ```
//! let el = solo::EventLoop::builder().backend(solo::Backend::Mio).build().unwrap();
//! assert_eq!(el.run_until_complete(async { 1 }).unwrap(), 1);
//! ```

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use mio::unix::SourceFd;
use mio::{Events, Token};

use super::{
    not_interrupted, Counters, Interest, RemoteWaker, ERROR, READABLE, READ_CLOSED, WRITABLE,
    WRITE_CLOSED,
};

/// The token of the loop's cross-thread waker (never a registration's: slots stay below it).
const WAKER_TOKEN: Token = Token(usize::MAX);

pub(crate) struct MioPoller {
    pub(super) poll: mio::Poll,
    events: Events,
    pub(super) counters: Counters,
}

fn interest(i: Interest) -> mio::Interest {
    match (i.read, i.write) {
        (true, true) => mio::Interest::READABLE | mio::Interest::WRITABLE,
        (false, true) => mio::Interest::WRITABLE,
        // mio has no empty interest; a registration with neither is not made.
        _ => mio::Interest::READABLE,
    }
}

impl MioPoller {
    pub(super) fn new() -> io::Result<(MioPoller, RemoteWaker)> {
        let poll = mio::Poll::new()?;
        let waker = mio::Waker::new(poll.registry(), WAKER_TOKEN)?;
        Ok((
            MioPoller {
                poll,
                events: Events::with_capacity(1024),
                counters: Counters::default(),
            },
            RemoteWaker::Mio(waker),
        ))
    }

    pub(super) fn add(&mut self, fd: RawFd, token: usize, i: Interest) -> io::Result<()> {
        self.counters.adds += 1;
        self.poll
            .registry()
            .register(&mut SourceFd(&fd), Token(token), interest(i))
    }

    pub(super) fn modify(&mut self, fd: RawFd, token: usize, i: Interest) -> io::Result<()> {
        self.counters.modifies += 1;
        self.poll
            .registry()
            .reregister(&mut SourceFd(&fd), Token(token), interest(i))
    }

    pub(super) fn delete(&mut self, fd: RawFd) -> io::Result<()> {
        self.counters.deletes += 1;
        self.poll.registry().deregister(&mut SourceFd(&fd))
    }

    pub(super) fn wait(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.counters.waits += 1;
        let r = self.poll.poll(&mut self.events, timeout);
        not_interrupted(r, || self.events.clear())
    }

    pub(super) fn has_events(&self) -> bool {
        !self.events.is_empty() // the waker's event included: it too ends a spin
    }

    #[inline]
    pub(super) fn for_each_event(&self, mut f: impl FnMut(usize, u8)) {
        for ev in self.events.iter() {
            if ev.token() == WAKER_TOKEN {
                continue;
            }
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
            f(ev.token().0, bits);
        }
    }
}

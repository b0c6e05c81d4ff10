//! The futures side of the reactor: [`Async`](crate::Async) sources, registered once for both
//! directions, with readiness cached from edge events.
//!
//! ```
//! use std::io::Write;
//! use std::os::unix::net::UnixStream;
//!
//! let el = solo::EventLoop::new().unwrap();
//! let (a, mut b) = UnixStream::pair().unwrap();
//! el.run_until_complete(async move {
//!     let a = solo::Async::new(a).unwrap();
//!     b.write_all(b"x").unwrap();
//!     a.readable().await.unwrap(); // the edge event set the cached bit
//! }).unwrap();
//! ```
//!
//! An event sets readiness bits and wakes the waiting task; an operation that hits `WouldBlock`
//! clears its bit and stores the task's waker ([`Reactor::poll_ready`]). No `epoll_ctl` per
//! read or write, and no extra `read` just to learn that a socket is empty.

use std::io;
use std::os::fd::RawFd;
use std::task::{Context, Poll, Waker};

use super::{Dir, Interest, Kind, Reactor, Source, Use, READABLE, WRITABLE};

impl Reactor {
    /// Registers `fd` for both directions, edge-triggered, with readiness caching.
    pub(crate) fn register_async(&mut self, fd: RawFd) -> io::Result<usize> {
        let kind = Kind::Async {
            readiness: 0,
            read_waker: None,
            write_waker: None,
            armed: Interest::BOTH,
        };
        self.insert_source(fd, Interest::BOTH, Use::Async, kind)
    }

    /// Removes an async source. Returns its wakers so the caller drops them outside the borrow.
    pub(crate) fn deregister_async(
        &mut self,
        token: usize,
    ) -> Option<(Option<Waker>, Option<Waker>)> {
        self.get_mut(token)?;
        match self.remove_source(token)?.kind {
            Kind::Async {
                read_waker,
                write_waker,
                ..
            } => Some((read_waker, write_waker)),
            Kind::Callbacks { .. } => None,
        }
    }

    /// Ready if the cached readiness allows `dir`; otherwise stores the waker, and on a oneshot
    /// backend arms the registration for `dir` if it is not (after the readiness was cleared,
    /// so an fd that became ready since is reported at once: no lost wakeup). An error if the
    /// registration is gone: its fd was closed behind its owner's back and the number reused.
    pub(crate) fn poll_ready(
        &mut self,
        token: usize,
        dir: Dir,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        let Some(Source {
            fd,
            kind:
                Kind::Async {
                    readiness,
                    read_waker,
                    write_waker,
                    armed,
                },
            ..
        }) = self.get_mut(token)
        else {
            return Poll::Ready(Err(io::Error::other(
                "the fd was closed while registered with the loop, and its number was reused; \
                 an Async must own its fd until it is dropped or into_inner is called",
            )));
        };
        if *readiness & dir.bits() != 0 {
            return Poll::Ready(Ok(()));
        }
        let slot = match dir {
            Dir::Read => read_waker,
            Dir::Write => write_waker,
        };
        match slot {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => *slot = Some(cx.waker().clone()),
        }
        let wanted = match dir {
            Dir::Read => Interest {
                read: true,
                ..*armed
            },
            Dir::Write => Interest {
                write: true,
                ..*armed
            },
        };
        if wanted != *armed {
            *armed = wanted;
            let fd = *fd;
            // An error means the fd is closed; the next operation on it reports that.
            let _ = self.poller.arm_async(fd, token, wanted);
        }
        Poll::Pending
    }

    /// Forgets that `dir` is ready and makes the backend report the fd again if it is still
    /// ready: for an operation that failed, where no `WouldBlock` will come. On an edge backend
    /// that is a re-registration; on a oneshot one, the next wait arms it (`poll_ready`).
    pub(crate) fn rearm_async(&mut self, token: usize, dir: Dir) {
        self.clear_ready(token, dir);
        if self.poller.is_oneshot() {
            return;
        }
        if let Some(src) = self.get_mut(token) {
            let fd = src.fd;
            // An error means the fd is closed; its owner's next operation reports that.
            let _ = self.poller.modify(fd, token, Interest::BOTH, Use::Async);
        }
    }

    /// Forgets that `dir` is ready (the operation saw `WouldBlock`, or a short read/write).
    pub(crate) fn clear_ready(&mut self, token: usize, dir: Dir) {
        if let Some(Source {
            kind: Kind::Async { readiness, .. },
            ..
        }) = self.get_mut(token)
        {
            *readiness &= !match dir {
                Dir::Read => READABLE,
                Dir::Write => WRITABLE,
            };
        }
    }
}

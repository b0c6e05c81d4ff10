//! The callback side of the reactor: asyncio's `add_reader`/`add_writer`, level-triggered on
//! an edge-triggered backend.
//!
//! ```
//! use std::io::Write;
//! use std::os::unix::net::UnixStream;
//! use std::{cell::Cell, rc::Rc};
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let (a, mut b) = UnixStream::pair().unwrap();
//! b.write_all(b"unread").unwrap();
//! let calls = Rc::new(Cell::new(0));
//! let (c, h2) = (calls.clone(), h.clone());
//! // Never reads: level-triggered, so it is called again each iteration while data waits.
//! h.add_reader(&a, move || { c.set(c.get() + 1); if c.get() == 3 { h2.stop() } }).unwrap();
//! el.run_forever().unwrap();
//! assert_eq!(calls.get(), 3);
//! ```
//!
//! A source of this kind holds a reader and a writer slot. The loop *lends* a callback out to run
//! it ([`Reactor::take_callback`]) and hands it back ([`Reactor::restore_callback`]), which
//! re-arms the fd (`epoll_ctl(MOD)`) so that the kernel reports it again if it is still ready:
//! the price of asyncio's semantics, one syscall per call. While a callback is lent out it may
//! remove or replace itself; the slot's generation tells `restore_callback` not to put it back.

use std::io;
use std::os::fd::RawFd;
use std::panic::Location;

use super::{annotate, Dir, Interest, IoFn, Kind, Reactor, Source, Use, SLOT_MASK};
use crate::CallbackKind;

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

/// A reader or writer callback that is no longer registered (replaced, removed, or its fd
/// found closed), with where it was registered: the loop drops it outside the reactor's borrow,
/// behind the panic guard, and names the site if its destructor panics.
pub(crate) struct Unregistered {
    pub(crate) f: IoFn,
    pub(crate) site: &'static Location<'static>,
    pub(crate) kind: CallbackKind,
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
    pub(super) fn empty() -> IoCallback {
        IoCallback {
            f: None,
            site: Location::caller(),
            kind: CallbackKind::Reader,
            gen: 0,
            running: false,
        }
    }

    /// Whether a callback is registered and waiting (not lent out to run).
    pub(super) fn is_waiting(&self) -> bool {
        self.f.is_some()
    }

    fn is_set(&self) -> bool {
        self.f.is_some() || self.running
    }

    pub(super) fn unregister(self) -> Option<Unregistered> {
        let (site, kind) = (self.site, self.kind);
        self.f.map(|f| Unregistered { f, site, kind })
    }
}

fn interest_of(read: bool, write: bool) -> Interest {
    Interest { read, write }
}

impl Reactor {
    // ---- callbacks: add_reader / add_writer ----

    /// Sets the reader or writer callback of `fd`, registering or re-arming it with mio.
    /// Returns the callback it replaced, for the caller to drop after the borrow ends.
    ///
    /// An fd that was closed while registered and whose number came back as a new file is
    /// recognised by the backend's answer (`ENOENT` to a re-arm of the number: the kernel does
    /// not know the new file): the old registration is evicted and the new file registered
    /// afresh. An fd that a live `Async` owns is refused (`EEXIST`).
    pub(crate) fn set_callback(
        &mut self,
        fd: RawFd,
        dir: Dir,
        f: IoFn,
        site: &'static Location<'static>,
        kind: CallbackKind,
    ) -> io::Result<Option<Unregistered>> {
        if fd < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid file descriptor {fd}"),
            ));
        }
        let mut token = None;
        if let Some(&t) = self.by_fd.get(&fd) {
            if let Some(Source {
                kind: Kind::Callbacks { reader, writer },
                ..
            }) = self.get_mut(t)
            {
                let interest = match dir {
                    Dir::Read => interest_of(true, writer.is_set()),
                    Dir::Write => interest_of(reader.is_set(), true),
                };
                match self.poller.modify(fd, t, interest, Use::Callbacks) {
                    Ok(()) => token = Some(t),
                    // The number names a file the kernel does not have registered: ours was
                    // closed. Register the new file below.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                        self.by_fd.remove(&fd);
                        self.evict(t);
                    }
                    Err(e) => {
                        if e.raw_os_error() == Some(libc::EBADF) {
                            // Closed, and not reused: the registration is dead.
                            self.by_fd.remove(&fd);
                            self.evict(t);
                        }
                        return Err(annotate(e, fd));
                    }
                }
            }
            // An `Async` source: `insert_source` finds out whether it is live (`EEXIST`, an
            // error) or stale (the kernel takes the new file, and it is evicted).
        }
        let token = match token {
            Some(t) => t,
            None => {
                let interest = interest_of(dir == Dir::Read, dir == Dir::Write);
                let callbacks = Kind::Callbacks {
                    reader: IoCallback::empty(),
                    writer: IoCallback::empty(),
                };
                self.insert_source(fd, interest, Use::Callbacks, callbacks)?
            }
        };
        let Some(Source {
            kind: Kind::Callbacks { reader, writer },
            ..
        }) = self.get_mut(token)
        else {
            unreachable!("the token was just found or made for a callback source")
        };
        let slot = match dir {
            Dir::Read => reader,
            Dir::Write => writer,
        };
        let old = slot.f.replace(f).map(|f| Unregistered {
            f,
            site: slot.site,
            kind: slot.kind,
        });
        slot.site = site;
        slot.kind = kind;
        slot.gen += 1;
        slot.running = false;
        Ok(old)
    }

    /// Removes the reader or writer callback of `fd` and returns it (`None`: there was none),
    /// for the caller to drop outside the borrow (its destructor is user code). A callback that
    /// is running right now counts as registered; it is dropped when it returns.
    pub(crate) fn remove_callback(&mut self, fd: RawFd, dir: Dir) -> Option<Option<Unregistered>> {
        let &token = self.by_fd.get(&fd)?;
        let Some(Source {
            kind: Kind::Callbacks { reader, writer },
            ..
        }) = self.get_mut(token)
        else {
            return None; // an `Async` owns this number
        };
        let (slot, other) = match dir {
            Dir::Read => (reader, writer),
            Dir::Write => (writer, reader),
        };
        let had = slot.is_set();
        let removed = slot.f.take().map(|f| Unregistered {
            f,
            site: slot.site,
            kind: slot.kind,
        });
        slot.gen += 1;
        slot.running = false;
        let keep_other = other.is_set();
        if !had {
            return None;
        }
        if keep_other {
            let interest = interest_of(dir == Dir::Write, dir == Dir::Read);
            let rearmed = self.poller.modify(fd, token, interest, Use::Callbacks);
            if let Err(e) = rearmed {
                if matches!(e.raw_os_error(), Some(libc::ENOENT | libc::EBADF)) {
                    // The fd was closed while registered: the other callback is dead too.
                    self.by_fd.remove(&fd);
                    self.evict(token);
                }
            }
        } else {
            self.remove_source(token);
        }
        Some(removed)
    }

    /// Takes a callback out to run it; `None` if it was removed since the event was queued (or
    /// the token is of an older registration that reused the slot).
    pub(crate) fn take_callback(&mut self, token: usize, dir: Dir) -> Option<TakenCallback> {
        let src = self.get_mut(token)?;
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
    ) -> (Vec<Unregistered>, io::Result<()>) {
        let TakenCallback {
            f,
            gen,
            fd,
            site,
            kind,
        } = taken;
        let gone = |f| vec![Unregistered { f, site, kind }];
        let Some(Source {
            kind: Kind::Callbacks { reader, writer },
            ..
        }) = self.get_mut(token)
        else {
            return (gone(f), Ok(()));
        };
        let slot = match dir {
            Dir::Read => &mut *reader,
            Dir::Write => &mut *writer,
        };
        if slot.gen != gen {
            return (gone(f), Ok(()));
        }
        slot.running = false;
        slot.f = Some(f);
        let interest = interest_of(reader.is_set(), writer.is_set());
        match self.poller.rearm_callback(fd, token, interest) {
            Ok(()) => (Vec::new(), Ok(())),
            Err(e) => {
                let src = self.sources.remove(token & SLOT_MASK);
                if self.by_fd.get(&fd) == Some(&token) {
                    self.by_fd.remove(&fd);
                }
                let Kind::Callbacks { reader, writer } = src.kind else {
                    unreachable!("matched as callbacks above")
                };
                let left = [reader, writer]
                    .into_iter()
                    .filter_map(IoCallback::unregister)
                    .collect();
                (left, Err(annotate(e, fd)))
            }
        }
    }
}

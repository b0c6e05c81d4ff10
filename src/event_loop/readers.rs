//! asyncio's readers, writers and signal handlers: callbacks that run when an fd is ready or a
//! signal arrives.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::os::unix::net::UnixStream;
//! use std::{cell::RefCell, rc::Rc};
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let (mut a, b) = UnixStream::pair().unwrap();
//! b.set_nonblocking(true).unwrap();
//! let got = Rc::new(RefCell::new(Vec::new()));
//! let (g, h2, fd) = (got.clone(), h.clone(), b.try_clone().unwrap());
//! h.add_reader(&b, move || {
//!     let mut buf = [0; 16];
//!     let n = (&fd).read(&mut buf).unwrap();
//!     g.borrow_mut().extend_from_slice(&buf[..n]);
//!     h2.remove_reader(&fd);
//!     h2.stop();
//! }).unwrap();
//! a.write_all(b"ping").unwrap();
//! el.run_forever().unwrap();
//! assert_eq!(*got.borrow(), b"ping");
//! ```
//!
//! The reactor keeps the callbacks (it must find them from an event's token); this room is the
//! `Handle` side. Replaced or removed callbacks are dropped after the reactor's borrow ends,
//! behind the panic guard, because their destructors are user code.
//!
//! # Deregister before you close
//!
//! Remove a reader or writer (or drop the `Async`) *before* closing its fd. The kernel forgets a
//! registration when the file is closed, and hands the number to the next file opened. If a
//! registered fd is closed anyway, solo notices when the number is used again (by `add_reader`,
//! `add_writer`, or an `Async` on the new file) or when the old callback is re-armed: the old
//! registration is removed, its callbacks are dropped and the exception handler is told ("fd N
//! was closed while registered and its number reused"), and the new file gets a registration of
//! its own. Nothing that belongs to the new file is torn down or taken over; until the number is
//! reused, the old callbacks simply never run again.

use std::io;
use std::os::fd::AsRawFd;
use std::panic::Location;

use super::Handle;
use crate::callback::CallbackKind;
use crate::error;
use crate::reactor::Dir;

impl Handle {
    /// Calls `f` whenever `fd` is readable (level-triggered, as in asyncio: a reader that leaves
    /// data unread is called again on the next iteration). Replaces an existing reader.
    ///
    /// Remove it before closing the fd (see the module docs on what solo does otherwise).
    ///
    /// # Errors
    /// - on a closed loop: [`Error::LoopClosed`](crate::Error::LoopClosed) (`f` is dropped);
    /// - if `fd` is negative: `InvalidInput`;
    /// - if `fd` is not an open file descriptor (`EBADF`), cannot be polled (a regular file:
    ///   `EPERM`), or is registered with this loop by an [`Async`](crate::Async) or a
    ///   [`net`](crate::net) object (`EEXIST`): the OS's error, with the fd in the message.
    #[track_caller]
    pub fn add_reader(&self, fd: &impl AsRawFd, f: impl FnMut() + 'static) -> io::Result<()> {
        self.add_io(fd.as_raw_fd(), Dir::Read, Box::new(f))
    }

    /// Calls `f` whenever `fd` is writable (level-triggered). Replaces an existing writer.
    ///
    /// # Errors
    /// As [`add_reader`](Handle::add_reader).
    #[track_caller]
    pub fn add_writer(&self, fd: &impl AsRawFd, f: impl FnMut() + 'static) -> io::Result<()> {
        self.add_io(fd.as_raw_fd(), Dir::Write, Box::new(f))
    }

    #[track_caller]
    fn add_io(&self, fd: i32, dir: Dir, f: Box<dyn FnMut()>) -> io::Result<()> {
        let kind = match dir {
            Dir::Read => CallbackKind::Reader,
            Dir::Write => CallbackKind::Writer,
        };
        self.add_io_kind(fd, dir, f, kind)
    }

    #[track_caller]
    fn add_io_kind(
        &self,
        fd: i32,
        dir: Dir,
        f: Box<dyn FnMut()>,
        kind: CallbackKind,
    ) -> io::Result<()> {
        let site = Location::caller();
        if self.inner.closed.get() {
            self.inner.drop_guarded(f, kind, site);
            return Err(error::loop_closed(match dir {
                Dir::Read => "Handle::add_reader",
                Dir::Write => "Handle::add_writer",
            }));
        }
        let replaced = self.inner.set_io_callback(fd, dir, f, site, kind)?;
        if let Some(old) = replaced {
            self.inner.drop_unregistered(old);
        }
        Ok(())
    }

    /// Calls `f` on the loop thread, as an ordinary callback, when the process receives
    /// `signal` (a `libc::SIG*` number). Deliveries between two iterations are coalesced into
    /// one call. Replaces an existing handler for the same signal.
    ///
    /// # Errors
    /// - for SIGKILL, SIGSTOP, the fault signals (SIGSEGV, SIGILL, SIGFPE) and numbers out of
    ///   range: `InvalidInput`;
    /// - on a closed loop: [`Error::LoopClosed`](crate::Error::LoopClosed) (`f` is dropped);
    /// - with no fd left for the signal's pipe: the OS's error.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let el = solo::EventLoop::new().unwrap();
    /// let h = el.handle();
    /// let got = Rc::new(Cell::new(false));
    /// let (g, h2) = (got.clone(), h.clone());
    /// h.add_signal_handler(libc::SIGUSR2, move || { g.set(true); h2.stop(); }).unwrap();
    /// // SAFETY: sending a signal to ourselves.
    /// unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
    /// el.run_forever().unwrap();
    /// assert!(got.get());
    /// assert!(h.remove_signal_handler(libc::SIGUSR2));
    /// assert!(h.add_signal_handler(libc::SIGKILL, || {}).is_err());
    /// ```
    #[track_caller]
    pub fn add_signal_handler(&self, signal: i32, mut f: impl FnMut() + 'static) -> io::Result<()> {
        if self.inner.closed.get() {
            let site = Location::caller();
            self.inner.drop_guarded(f, CallbackKind::Signal, site);
            return Err(error::loop_closed("Handle::add_signal_handler"));
        }
        let (fd, drain_end) = {
            let mut signals = self.inner.signals.borrow_mut();
            let read = signals.watch(signal)?;
            (read.as_raw_fd(), read.try_clone()?)
        };
        let cb = Box::new(move || {
            crate::signal_pipe::drain(&drain_end);
            f();
        });
        self.add_io_kind(fd, Dir::Read, cb, CallbackKind::Signal)
    }

    /// Removes the handler for `signal`; returns whether there was one. When no loop in the
    /// process handles the signal any more, it behaves as before the first handler: its default
    /// action if that was its disposition (SIGINT terminates again), otherwise the handler or
    /// the ignoring that was in place.
    pub fn remove_signal_handler(&self, signal: i32) -> bool {
        let read = self.inner.signals.borrow_mut().unwatch(signal);
        match read {
            Some(read) => {
                self.inner.remove_io_callback(read.as_raw_fd(), Dir::Read);
                true
            }
            None => false,
        }
    }

    /// Stops watching `fd` for reading. Returns whether a reader was registered. Safe to call
    /// from inside the reader itself.
    pub fn remove_reader(&self, fd: &impl AsRawFd) -> bool {
        self.inner.remove_io_callback(fd.as_raw_fd(), Dir::Read)
    }

    /// Stops watching `fd` for writing. Returns whether a writer was registered.
    pub fn remove_writer(&self, fd: &impl AsRawFd) -> bool {
        self.inner.remove_io_callback(fd.as_raw_fd(), Dir::Write)
    }
}

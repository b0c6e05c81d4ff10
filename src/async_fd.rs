//! [`Async<T>`]: any file descriptor as a future-friendly I/O object. This is what
//! [`net`](crate::net) is built on.

use std::future::poll_fn;
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error;
use crate::reactor::Dir;
use crate::Handle;

/// An fd registered with a solo loop.
///
/// Wrap a socket, pipe, eventfd or device you opened yourself, and wait for readiness with
/// [`readable`](Async::readable) / [`writable`](Async::writable), or run an operation until it
/// stops returning `WouldBlock` with [`read_with`](Async::read_with) /
/// [`write_with`](Async::write_with).
///
/// The fd is switched to non-blocking mode and registered with the loop's reactor once, for
/// both directions; readiness is cached from edge-triggered events (see "The reactor" in
/// ARCHITECTURE.md), so a waiting task costs no syscall until the kernel reports the fd ready.
///
/// ```
/// use std::io::{Read, Write};
/// use std::os::unix::net::UnixStream;
/// let el = solo::EventLoop::new().unwrap();
/// el.run_until_complete(async {
///     let (a, mut b) = UnixStream::pair().unwrap();
///     let a = solo::Async::new(a).unwrap();
///     b.write_all(b"hi").unwrap();
///     let mut buf = [0u8; 2];
///     let n = a.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
///     assert_eq!(&buf[..n], b"hi");
/// }).unwrap();
/// ```
#[derive(Debug)]
pub struct Async<T: AsRawFd> {
    io: Option<T>,
    token: usize,
    handle: Handle,
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd the caller owns; F_GETFL/F_SETFL take no pointers.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    if flags & libc::O_NONBLOCK == 0 {
        // SAFETY: as above.
        if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

impl<T: AsRawFd> Async<T> {
    /// Registers `io` with the loop running on this thread.
    ///
    /// # Errors
    /// Outside a running loop ([`Error::OutsideLoop`](crate::Error::OutsideLoop)); if `io`
    /// cannot be switched to non-blocking mode or registered (the OS's error: `EBADF` for a
    /// closed fd, `EPERM` for a regular file, which epoll cannot watch).
    pub fn new(io: T) -> io::Result<Async<T>> {
        Async::new_for(io, "Async::new")
    }

    /// [`Async::new`] on behalf of the user's `call` (`"TcpListener::bind"`), which the error
    /// outside a running loop names.
    pub(crate) fn new_for(io: T, call: &'static str) -> io::Result<Async<T>> {
        let handle = Handle::try_current().ok_or_else(|| error::outside_loop(call))?;
        Async::with_handle_for(io, &handle, call)
    }

    /// Registers `io` with the given loop (which need not be running).
    ///
    /// # Errors
    /// On a closed loop ([`Error::LoopClosed`](crate::Error::LoopClosed)); if `io` cannot be
    /// switched to non-blocking mode or registered (the OS's error).
    pub fn with_handle(io: T, handle: &Handle) -> io::Result<Async<T>> {
        Async::with_handle_for(io, handle, "Async::with_handle")
    }

    /// [`Async::with_handle`] on behalf of the user's `call`, which the error on a closed loop
    /// names.
    pub(crate) fn with_handle_for(
        io: T,
        handle: &Handle,
        call: &'static str,
    ) -> io::Result<Async<T>> {
        if handle.is_closed() {
            return Err(error::loop_closed(call));
        }
        let fd = io.as_raw_fd();
        set_nonblocking(fd)?;
        let token = handle.inner.register_async(fd)?;
        Ok(Async {
            io: Some(io),
            token,
            handle: handle.clone(),
        })
    }

    /// The inner I/O object.
    pub fn get_ref(&self) -> &T {
        self.io.as_ref().expect("present until into_inner")
    }

    /// The inner I/O object, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        self.io.as_mut().expect("present until into_inner")
    }

    /// Deregisters and returns the inner object (still in non-blocking mode).
    pub fn into_inner(mut self) -> io::Result<T> {
        self.deregister();
        Ok(self.io.take().expect("present until into_inner"))
    }

    fn deregister(&mut self) {
        self.handle.inner.deregister_async(self.token);
    }

    /// Polls for readability: ready when the reactor has seen the fd readable (or closed, or
    /// in error) since the last `WouldBlock`.
    ///
    /// # Errors
    /// - once the loop is gone (dropped or shut down):
    ///   [`Error::LoopClosed`](crate::Error::LoopClosed), also for every read and write through
    ///   this `Async` (they wait for readiness here);
    /// - if the fd was closed while registered and its number reused by another file (kind
    ///   `Other`; an `Async` must own its fd).
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(Dir::Read, cx)
    }

    /// Polls for writability.
    ///
    /// # Errors
    /// As [`poll_readable`](Async::poll_readable).
    pub fn poll_writable(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_ready(Dir::Write, cx)
    }

    #[inline]
    fn poll_ready(&self, dir: Dir, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.handle.inner.poll_ready(self.token, dir, cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => {
                crate::await_point::pending(
                    || crate::await_point::Awaited::Io {
                        fd: self.as_raw_fd(),
                        write: dir == Dir::Write,
                    },
                    None,
                );
                Poll::Pending
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(self.ready_error(dir, e))),
        }
    }

    /// A closed loop dropped every registration: its error says so, rather than the reactor's
    /// "registration gone" (an fd closed behind its back). Out of line: the hot path of every
    /// read and write goes through `poll_ready`, and only its error path comes here.
    #[cold]
    #[inline(never)]
    fn ready_error(&self, dir: Dir, e: io::Error) -> io::Error {
        if !self.handle.is_closed() {
            return e;
        }
        error::loop_closed(match dir {
            Dir::Read => "Async::poll_readable",
            Dir::Write => "Async::poll_writable",
        })
    }

    pub(crate) fn clear(&self, dir: Dir) {
        self.handle.inner.clear_ready(self.token, dir);
    }

    /// Forgets `dir`'s readiness and asks the backend to report the fd again if it is still
    /// ready (one `epoll_ctl`): for error paths, where `WouldBlock` never comes to clear it.
    fn rearm(&self, dir: Dir) {
        self.handle.inner.rearm_async(self.token, dir);
    }

    /// Waits until the fd is readable.
    pub async fn readable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_readable(cx)).await
    }

    /// Waits until the fd is writable.
    pub async fn writable(&self) -> io::Result<()> {
        poll_fn(|cx| self.poll_writable(cx)).await
    }

    /// Runs a non-blocking read-side operation until it does not return `WouldBlock`.
    pub async fn read_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_with(Dir::Read, cx, &mut op)).await
    }

    /// Runs a non-blocking write-side operation until it does not return `WouldBlock`.
    pub async fn write_with<R>(&self, mut op: impl FnMut(&T) -> io::Result<R>) -> io::Result<R> {
        poll_fn(|cx| self.poll_with(Dir::Write, cx, &mut op)).await
    }

    /// Like [`read_with`](Async::read_with), with mutable access.
    pub async fn read_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        poll_fn(|cx| self.poll_with_mut(Dir::Read, cx, &mut op)).await
    }

    /// Like [`write_with`](Async::write_with), with mutable access.
    pub async fn write_with_mut<R>(
        &mut self,
        mut op: impl FnMut(&mut T) -> io::Result<R>,
    ) -> io::Result<R> {
        poll_fn(|cx| self.poll_with_mut(Dir::Write, cx, &mut op)).await
    }

    /// One attempt of a readiness-gated operation: ready state is cleared on `WouldBlock`, and
    /// then the waker is stored by the re-poll. Each completed operation spends a unit of the
    /// task's cooperative budget (`coop.rs`), so a source that is always ready cannot keep the
    /// task running forever. An error clears the cached readiness too, and re-arms the fd with
    /// the backend: if it is still ready (a listener whose `accept` keeps failing, a socket in
    /// error), the next poll says so, and the loop has had its turn in between.
    pub(crate) fn poll_with<R>(
        &self,
        dir: Dir,
        cx: &mut Context<'_>,
        op: &mut impl FnMut(&T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            if self.poll_ready(dir, cx)?.is_pending() {
                return Poll::Pending;
            }
            if self.handle.inner.budget().poll_proceed(cx).is_pending() {
                return Poll::Pending;
            }
            match op(self.get_ref()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.handle.inner.budget().refund();
                    self.clear(dir);
                }
                Err(e) => {
                    self.rearm(dir);
                    return Poll::Ready(Err(e));
                }
                r => return Poll::Ready(r),
            }
        }
    }

    fn poll_with_mut<R>(
        &mut self,
        dir: Dir,
        cx: &mut Context<'_>,
        op: &mut impl FnMut(&mut T) -> io::Result<R>,
    ) -> Poll<io::Result<R>> {
        loop {
            if self.poll_ready(dir, cx)?.is_pending() {
                return Poll::Pending;
            }
            if self.handle.inner.budget().poll_proceed(cx).is_pending() {
                return Poll::Pending;
            }
            match op(self.get_mut()) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.handle.inner.budget().refund();
                    self.clear(dir);
                }
                Err(e) => {
                    self.rearm(dir);
                    return Poll::Ready(Err(e));
                }
                r => return Poll::Ready(r),
            }
        }
    }

    /// A read that clears cached readiness after a short read, saving the `read` that would
    /// only return `WouldBlock`.
    pub(crate) fn poll_read_stream(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>>
    where
        for<'a> &'a T: Read,
    {
        let want = buf.len();
        let r = self.poll_with(Dir::Read, cx, &mut |io: &T| {
            let mut io = io;
            io.read(buf)
        });
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 && n < want {
                self.clear(Dir::Read);
            }
        }
        r
    }

    /// A read into uninitialized memory (for hyper's buffers), with the same readiness rules
    /// as [`poll_read_stream`](Async::poll_read_stream). Returns how many bytes the kernel
    /// wrote, which are then initialized.
    #[cfg(feature = "hyper")]
    pub(crate) fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>> {
        let fd = self.as_raw_fd();
        let want = buf.len();
        let r = self.poll_with(Dir::Read, cx, &mut |_io: &T| {
            // SAFETY: the pointer is valid for `want` bytes of writes (it comes from a live
            // `&mut [MaybeUninit<u8>]` of that length), and read(2) writes at most `want`.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), want) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 && n < want {
                self.clear(Dir::Read);
            }
        }
        r
    }

    pub(crate) fn poll_write_stream(
        &self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>>
    where
        for<'a> &'a T: Write,
    {
        let want = buf.len();
        let r = self.poll_with(Dir::Write, cx, &mut |io: &T| {
            let mut io = io;
            io.write(buf)
        });
        if let Poll::Ready(Ok(n)) = r {
            if n > 0 && n < want {
                self.clear(Dir::Write);
            }
        }
        r
    }
}

impl<T: AsRawFd> Drop for Async<T> {
    fn drop(&mut self) {
        if self.io.is_some() {
            self.deregister();
        }
    }
}

impl<T: AsRawFd> AsRawFd for Async<T> {
    fn as_raw_fd(&self) -> RawFd {
        self.get_ref().as_raw_fd()
    }
}

impl<T: AsRawFd + AsFd> AsFd for Async<T> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.get_ref().as_fd()
    }
}

impl<T: AsRawFd> futures_io::AsyncRead for Async<T>
where
    for<'a> &'a T: Read,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_read_stream(cx, buf)
    }

    fn poll_read_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(Dir::Read, cx, &mut |io: &T| {
            let mut io = io;
            io.read_vectored(bufs)
        })
    }
}

impl<T: AsRawFd> futures_io::AsyncWrite for Async<T>
where
    for<'a> &'a T: Write,
{
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.poll_write_stream(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.poll_with(Dir::Write, cx, &mut |io: &T| {
            let mut io = io;
            io.write_vectored(bufs)
        })
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_with(Dir::Write, cx, &mut |io: &T| {
            let mut io = io;
            io.flush()
        })
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

/// The fd paths (non-blocking switch, readiness cache, short reads, the raw `read` into
/// uninitialized memory for hyper) on a real socket pair; run under Miri in CI (`miri_` prefix).
///
/// The sockets here are read and written with `read(2)` and `write(2)` ([`RawSocket`],
/// [`write_fd`]), never through std's `Read`/`Write for UnixStream`: how std talks to a socket
/// changes between toolchains (it calls `recv` and `send(MSG_NOSIGNAL)`, which some Miri
/// versions reject on a socket pair with `ENOTSOCK`), and these tests are about solo's paths,
/// not std's. solo's own paths run unchanged on top: `poll_read_stream` and `poll_write_stream`
/// (readiness cache, short reads and writes) call `RawSocket`'s `Read`/`Write`, and
/// `poll_read_uninit` calls `libc::read` itself.
#[cfg(test)]
pub(crate) mod tests {
    use std::io::{self, Read, Write};
    use std::os::fd::{AsRawFd, RawFd};
    use std::os::unix::net::UnixStream;

    use futures::{AsyncReadExt, AsyncWriteExt};

    use super::Async;
    use crate::EventLoop;

    /// `write(2)` on `fd`: what Miri supports on a socket pair on every toolchain.
    pub(crate) fn write_fd(fd: RawFd, bytes: &[u8]) -> io::Result<usize> {
        // SAFETY: the pointer is valid for `bytes.len()` bytes of reads (a live slice);
        // write(2) reads at most that many.
        let n = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    /// A socket whose `Read` and `Write` are `read(2)` and `write(2)` (see the module's
    /// comment).
    struct RawSocket(UnixStream);

    impl AsRawFd for RawSocket {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_raw_fd()
        }
    }

    impl Read for &RawSocket {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            // SAFETY: the pointer is valid for `buf.len()` bytes of writes (a live `&mut`
            // slice); read(2) writes at most that many.
            let n = unsafe { libc::read(self.0.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        }
    }

    impl Write for &RawSocket {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            write_fd(self.0.as_raw_fd(), buf)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn raw_pair() -> (RawSocket, RawSocket) {
        let (a, b) = UnixStream::pair().unwrap();
        (RawSocket(a), RawSocket(b))
    }

    #[test]
    fn miri_async_fd_reads_writes_and_short_reads() {
        let el = EventLoop::new().unwrap();
        el.run_until_complete(async {
            let (a, b) = raw_pair();
            let mut a = Async::new(a).unwrap();
            let mut b = Async::new(b).unwrap();
            b.write_all(b"hello").await.unwrap();
            let mut buf = [0u8; 16];
            // A short read: the cache forgets readability, the next read waits for an event.
            assert_eq!(a.read(&mut buf).await.unwrap(), 5);
            assert_eq!(&buf[..5], b"hello");
            let reader = crate::Handle::current().spawn(async move {
                let mut buf = [0u8; 3];
                a.read_exact(&mut buf).await.unwrap();
                buf
            });
            crate::yield_now().await;
            // Behind solo's back: the reader learns of it from the event, not from a cache.
            assert_eq!(write_fd(b.as_raw_fd(), b"abc").unwrap(), 3);
            assert_eq!(&reader.await.unwrap(), b"abc");
            b.close().await.unwrap();
        })
        .unwrap();
    }

    #[cfg(feature = "hyper")]
    #[test]
    fn miri_read_into_uninitialized_memory() {
        let el = EventLoop::new().unwrap();
        el.run_until_complete(async {
            let (a, b) = UnixStream::pair().unwrap();
            let a = Async::new(a).unwrap();
            assert_eq!(write_fd(b.as_raw_fd(), b"xyz").unwrap(), 3);
            let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); 8];
            let n = std::future::poll_fn(|cx| a.poll_read_uninit(cx, &mut buf))
                .await
                .unwrap();
            assert_eq!(n, 3);
            // SAFETY: the kernel initialized the first `n` bytes.
            let got: Vec<u8> = buf[..n]
                .iter()
                .map(|b| unsafe { b.assume_init() })
                .collect();
            assert_eq!(got, b"xyz");
        })
        .unwrap();
    }
}

//! hyper 1.x on solo (feature `hyper`): its I/O, executor and timer traits for solo's types.
//!
//! - [`HyperIo`] wraps any futures-io stream ([`TcpStream`](crate::net::TcpStream),
//!   [`UnixStream`](crate::net::UnixStream), …) as `hyper::rt::Read + Write`;
//! - [`HyperExecutor`] spawns hyper's background futures as local tasks;
//! - [`HyperTimer`] gives hyper [`Sleep`]s on the loop's timer wheel and the
//!   loop's clock (so a manual clock drives hyper's timeouts too).
//!
//! ```no_run
//! use http_body_util::Full;
//! use hyper::{body::Bytes, server::conn::http1, service::service_fn, Response};
//! use solo::hyper::{HyperIo, HyperTimer};
//!
//! solo::run(async {
//!     let listener = solo::net::TcpListener::bind("127.0.0.1:8080").unwrap();
//!     loop {
//!         let (conn, _) = listener.accept().await.unwrap();
//!         solo::Handle::current().spawn(async move {
//!             let service = service_fn(|_req| async {
//!                 Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::from("hi"))))
//!             });
//!             let _ = http1::Builder::new()
//!                 .timer(HyperTimer)
//!                 .serve_connection(HyperIo::new(conn), service)
//!                 .await;
//!         });
//!     }
//! }).unwrap();
//! ```

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::AsyncWrite;

use crate::time::Sleep;
use crate::Handle;

/// A solo stream ([`TcpStream`](crate::net::TcpStream), [`UnixStream`](crate::net::UnixStream))
/// as hyper's `Read + Write`.
#[derive(Debug)]
pub struct HyperIo<T>(T);

impl<T> HyperIo<T> {
    /// Wraps a stream.
    pub fn new(io: T) -> HyperIo<T> {
        HyperIo(io)
    }

    /// The stream.
    pub fn into_inner(self) -> T {
        self.0
    }
}

/// Streams that can read into uninitialized memory, as hyper's buffers are: reading straight
/// into them saves zeroing the buffer before every read.
pub trait UninitRead {
    /// Reads into `buf`; on `Ok(n)` the first `n` bytes of `buf` are initialized.
    fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [std::mem::MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>>;
}

impl<T: UninitRead> ::hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ::hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: we never de-initialize bytes: the kernel only writes into the slice.
        let slice = unsafe { buf.as_mut() };
        let n = match self.0.poll_read_uninit(cx, slice) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        // SAFETY: `poll_read_uninit` initialized the first `n` bytes of the unfilled part.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> ::hyper::rt::Write for HyperIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }
}

/// hyper's executor: spawns its futures as tasks on the loop running on this thread.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperExecutor;

impl<F> ::hyper::rt::Executor<F> for HyperExecutor
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        drop(Handle::current().spawn(fut));
    }
}

/// hyper's timer: solo's sleeps and clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperTimer;

impl ::hyper::rt::Sleep for Sleep {}

impl ::hyper::rt::Timer for HyperTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(crate::time::sleep(duration))
    }

    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn ::hyper::rt::Sleep>> {
        Box::pin(crate::time::sleep_until(deadline))
    }

    fn now(&self) -> Instant {
        Handle::try_current().map_or_else(Instant::now, |h| h.time())
    }
}

/// hyper's `ReadBufCursor` path (the two unsafe blocks above) on a real socket pair; run under
/// Miri in CI (`miri_` prefix). The stream is an `Async` over a std socket, read the way
/// `solo::net`'s streams read for hyper (`Async::poll_read_uninit`); the peer writes with
/// `write(2)`, not std's socket `Write` (see the comment on `async_fd`'s tests).
#[cfg(test)]
mod tests {
    use std::io;
    use std::mem::MaybeUninit;
    use std::os::fd::AsRawFd;
    use std::os::unix::net::UnixStream;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::{HyperIo, UninitRead};
    use crate::async_fd::tests::write_fd;
    use crate::{Async, EventLoop};

    /// What `solo::net`'s `uninit_read!` implements for its streams, on a std socket pair.
    struct Stream(Async<UnixStream>);

    impl UninitRead for Stream {
        fn poll_read_uninit(
            &self,
            cx: &mut Context<'_>,
            buf: &mut [MaybeUninit<u8>],
        ) -> Poll<io::Result<usize>> {
            self.0.poll_read_uninit(cx, buf)
        }
    }

    #[test]
    fn miri_hyper_read_fills_an_uninitialized_buffer() {
        let el = EventLoop::new().unwrap();
        el.run_until_complete(async {
            let (a, b) = UnixStream::pair().unwrap();
            let mut io = HyperIo::new(Stream(Async::new(a).unwrap()));
            let request = b"GET / HTTP/1.1\r\n";
            assert_eq!(write_fd(b.as_raw_fd(), request).unwrap(), request.len());
            let mut storage = [MaybeUninit::<u8>::uninit(); 64];
            let mut buf = ::hyper::rt::ReadBuf::uninit(&mut storage);
            std::future::poll_fn(|cx| {
                ::hyper::rt::Read::poll_read(Pin::new(&mut io), cx, buf.unfilled())
            })
            .await
            .unwrap();
            assert_eq!(buf.filled(), request);
            // End of stream: a read that fills nothing.
            drop(b);
            let before = buf.filled().len();
            std::future::poll_fn(|cx| {
                ::hyper::rt::Read::poll_read(Pin::new(&mut io), cx, buf.unfilled())
            })
            .await
            .unwrap();
            assert_eq!(buf.filled().len(), before);
        })
        .unwrap();
    }
}

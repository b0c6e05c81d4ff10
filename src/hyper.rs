//! hyper 1.x on solo (feature `hyper`): its I/O, executor and timer traits for solo's types.
//!
//! - [`HyperIo`] wraps a stream as `hyper::rt::Read + Write`: solo's
//!   [`TcpStream`](crate::net::TcpStream) and [`UnixStream`](crate::net::UnixStream) with
//!   [`HyperIo::new`], zero-copy; a TLS stream from futures-rustls (HTTPS), or any other
//!   futures-io `AsyncRead + AsyncWrite + Unpin` stream, with [`HyperIo::from_futures_io`];
//! - [`HyperExecutor`] spawns hyper's background futures as local tasks, `!Send` ones included
//!   (HTTP/2's streams, server and client, run on the loop's one thread);
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
//!
//! # Zero-copy for solo's sockets, any futures-io stream through `FuturesIo`
//!
//! hyper reads into buffers it has not initialized (spare capacity of a `BytesMut`), through
//! `ReadBufCursor`. A futures-io `poll_read` takes `&mut [u8]`, initialized memory, so a generic
//! adapter has to zero the buffer before each read, as hyper-util's `TokioIo` does for tokio's
//! `ReadBuf`. solo's own sockets can do better: their [`UninitRead`] hands the unfilled memory
//! to `read(2)` as it is, which writes the bytes and never reads them.
//!
//! Rust has no stable specialization: one `impl` of hyper's `Read` for every futures-io stream
//! and another for solo's sockets (which are futures-io streams too) would overlap. So how
//! [`HyperIo`] reads is a trait of the stream, [`HyperRead`], with two implementations that
//! cannot overlap:
//!
//! - every [`UninitRead`] type (solo's `TcpStream` and `UnixStream`): zero-copy, and vectored
//!   writes (hyper's header and body buffers go out in one `writev(2)`);
//! - [`FuturesIo<T>`], a wrapper around any `T: AsyncRead + AsyncWrite + Unpin` (a TLS stream
//!   from futures-rustls, a stream of another runtime, a test double): it zeroes at most
//!   [`GENERIC_READ_MAX`] bytes of hyper's buffer per read (a TLS record's plaintext is at most
//!   16 KiB, so a TLS stream seldom has more to hand over at once; hyper reads again for the
//!   rest), and tells hyper to flatten its buffers, because a futures-io
//!   `poll_write_vectored` may write only the first one.
//!
//! `HyperIo::new(tcp_stream)` is the zero-copy path; `HyperIo::from_futures_io(tls_stream)`
//! (that is, `HyperIo::new(FuturesIo::new(tls_stream))`) the generic one. Passing a foreign
//! stream to `HyperIo::new` is a compile error that says to use `from_futures_io`. The choice is
//! made by the type, at compile time: no check runs per read. (A `TypeId` test inside one
//! generic `impl` would pick the path without a wrapper, but it would make this module name
//! `solo::net`'s types, which already name this module's [`UninitRead`]: a circle of modules.)
//!
//! ```no_run
//! # async fn f(
//! #     acceptor: futures_rustls::TlsAcceptor,
//! #     listener: solo::net::TcpListener,
//! # ) -> std::io::Result<()> {
//! use solo::hyper::HyperIo;
//! let (tcp, _) = listener.accept().await?;
//! let tls = acceptor.accept(tcp).await?; // futures-rustls: a futures-io stream
//! let io = HyperIo::from_futures_io(tls); // hyper's Read + Write, the generic path
//! # let _ = io;
//! # Ok(())
//! # }
//! ```

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead, AsyncWrite};
use hyper::rt::ReadBufCursor;

use crate::time::Sleep;
use crate::Handle;

/// The most bytes of hyper's buffer one read through [`FuturesIo`] zeroes and offers to the
/// stream (solo's sockets read into the buffer as it is, whatever its size).
pub const GENERIC_READ_MAX: usize = 16 * 1024;

/// A stream as hyper's `Read + Write`: solo's [`TcpStream`](crate::net::TcpStream) and
/// [`UnixStream`](crate::net::UnixStream) through [`HyperIo::new`] (read without zeroing
/// hyper's buffer), any other futures-io stream, TLS included, through
/// [`HyperIo::from_futures_io`].
///
/// The module doc explains the two paths.
#[derive(Debug)]
pub struct HyperIo<T>(T);

impl<T> HyperIo<T> {
    /// Wraps a stream that reads for hyper: one of solo's sockets, or a [`FuturesIo`].
    pub fn new(io: T) -> HyperIo<T> {
        HyperIo(io)
    }

    /// The stream.
    pub fn get_ref(&self) -> &T {
        &self.0
    }

    /// The stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.0
    }

    /// The stream.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> HyperIo<FuturesIo<T>> {
    /// Wraps any futures-io stream (a TLS stream, say): [`FuturesIo`]'s generic path.
    pub fn from_futures_io(io: T) -> HyperIo<FuturesIo<T>> {
        HyperIo(FuturesIo(io))
    }
}

/// Streams that can read into uninitialized memory, as hyper's buffers are: reading straight
/// into them saves zeroing the buffer before every read. solo's `TcpStream` and `UnixStream`
/// implement it; every implementation is a [`HyperRead`].
///
/// # Safety
///
/// [`HyperRead`] tells hyper that the first `n` bytes of its buffer are initialized when
/// `poll_read_uninit` returns `Ok(n)`: an implementation must have written those `n` bytes, and
/// `n` must not exceed `buf.len()`. (A longer `n` is clamped, but unwritten bytes cannot be
/// detected, hence `unsafe`.) So an implementation must say `unsafe impl`:
///
/// ```compile_fail
/// struct Liar;
/// impl solo::hyper::UninitRead for Liar {
///     fn poll_read_uninit(
///         &self,
///         _: &mut std::task::Context<'_>,
///         buf: &mut [std::mem::MaybeUninit<u8>],
///     ) -> std::task::Poll<std::io::Result<usize>> {
///         std::task::Poll::Ready(Ok(buf.len())) // claims bytes it never wrote
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not one of solo's sockets, so `HyperIo::new` cannot read it for hyper",
    note = "wrap a futures-io stream (a TLS stream, say) with `HyperIo::from_futures_io(stream)`"
)]
pub unsafe trait UninitRead {
    /// Reads into `buf`; on `Ok(n)` the first `n` bytes of `buf` are initialized.
    fn poll_read_uninit(
        &self,
        cx: &mut Context<'_>,
        buf: &mut [MaybeUninit<u8>],
    ) -> Poll<io::Result<usize>>;
}

/// How a stream reads into hyper's buffer, and whether its vectored writes pay: what
/// [`HyperIo`] needs besides `AsyncWrite`. Implemented for every [`UninitRead`] (solo's sockets,
/// zero-copy) and for [`FuturesIo`] (any futures-io stream); the module doc says why there are
/// two. A foreign stream given to [`HyperIo::new`] is refused at compile time, with a note that
/// points to [`HyperIo::from_futures_io`]:
///
/// ```compile_fail
/// fn hyper_io<T: hyper::rt::Read>(_: T) {}
/// hyper_io(solo::hyper::HyperIo::new(futures::io::Cursor::new(Vec::<u8>::new())));
/// ```
///
/// ```
/// fn hyper_io<T: hyper::rt::Read>(_: T) {}
/// hyper_io(solo::hyper::HyperIo::from_futures_io(futures::io::Cursor::new(Vec::<u8>::new())));
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not one of solo's sockets, so `HyperIo::new` cannot read it for hyper",
    note = "wrap a futures-io stream (a TLS stream, say) with `HyperIo::from_futures_io(stream)`"
)]
pub trait HyperRead {
    /// Whether `poll_write_vectored` writes several buffers at once, so that hyper should hand
    /// over its header and body buffers separately instead of copying them into one.
    const VECTORED_WRITES: bool;

    /// Reads into the unfilled part of hyper's buffer and advances it by the bytes read.
    fn poll_read_into(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>>;
}

impl<T: UninitRead + ?Sized> HyperRead for T {
    const VECTORED_WRITES: bool = true;

    fn poll_read_into(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        // SAFETY: we never de-initialize bytes: the kernel only writes into the slice.
        let slice = unsafe { buf.as_mut() };
        let slice_len = slice.len();
        let n = match self.poll_read_uninit(cx, slice) {
            Poll::Ready(Ok(n)) => n,
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        // SAFETY: `UninitRead`'s contract (an unsafe trait): `poll_read_uninit` initialized the
        // first `n` bytes of the unfilled part; clamped so that a wrong `n` cannot run past it.
        unsafe { buf.advance(n.min(slice_len)) };
        Poll::Ready(Ok(()))
    }
}

/// Any futures-io stream, read for hyper through initialized memory: the generic path of
/// [`HyperIo`] (build it with [`HyperIo::from_futures_io`]). It is also a futures-io stream
/// itself, forwarding to the one it wraps.
#[derive(Debug)]
pub struct FuturesIo<T>(T);

impl<T> FuturesIo<T> {
    /// Wraps a stream.
    pub fn new(io: T) -> FuturesIo<T> {
        FuturesIo(io)
    }

    /// The stream.
    pub fn get_ref(&self) -> &T {
        &self.0
    }

    /// The stream, mutably.
    pub fn get_mut(&mut self) -> &mut T {
        &mut self.0
    }

    /// The stream.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T: AsyncRead + Unpin> HyperRead for FuturesIo<T> {
    const VECTORED_WRITES: bool = false;

    fn poll_read_into(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let len = buf.remaining().min(GENERIC_READ_MAX);
        // SAFETY: we only write zeroes, which de-initializes no byte.
        let spare = &mut unsafe { buf.as_mut() }[..len];
        spare.fill(MaybeUninit::new(0));
        // SAFETY: every byte of `spare` was just initialized (to zero), and `MaybeUninit<u8>` has
        // the layout of `u8`.
        let slice = unsafe { &mut *(spare as *mut [MaybeUninit<u8>] as *mut [u8]) };
        let n = match Pin::new(&mut self.get_mut().0).poll_read(cx, slice) {
            // A stream claiming more than it was given is not trusted past the slice.
            Poll::Ready(Ok(n)) => n.min(len),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        };
        // SAFETY: the first `n <= len` bytes of the unfilled part were zeroed above, then read
        // into.
        unsafe { buf.advance(n) };
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for FuturesIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for FuturesIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write_vectored(cx, bufs)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

impl<T: HyperRead + Unpin> ::hyper::rt::Read for HyperIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read_into(cx, buf)
    }
}

impl<T: HyperRead + AsyncWrite + Unpin> ::hyper::rt::Write for HyperIo<T> {
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
        T::VECTORED_WRITES
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
///
/// It takes any `'static` future, `Send` or not, so it meets hyper's HTTP/2 bounds
/// (`Http2ServerConnExec` for `server::conn::http2::Builder::new(HyperExecutor)`,
/// `Http2ClientConnExec` for the client's) with `!Send` services and bodies: each HTTP/2 stream
/// is a local task (`examples/https.rs`). Like [`Handle::current`], it panics when called outside
/// a running loop, which hyper does only from the connection's own future, on the loop.
#[derive(Clone, Copy, Debug, Default)]
pub struct HyperExecutor;

impl<F> ::hyper::rt::Executor<F> for HyperExecutor
where
    F: Future + 'static,
{
    fn execute(&self, fut: F) {
        drop(Handle::current_for("solo::hyper::HyperExecutor::execute").spawn(fut));
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

/// hyper's `ReadBufCursor` paths (the unsafe blocks above) on a real socket pair; run under Miri
/// in CI (`miri_` prefix): the zero-copy one of solo's `UnixStream` and the zeroing one of any
/// other futures-io stream. The peer writes through solo's `AsyncWrite`, that is `write(2)`, not
/// std's socket `Write` (see the comment on `async_fd`'s tests).
#[cfg(test)]
mod tests {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
    use hyper::rt::{Read, ReadBuf, Write};

    use super::HyperIo;
    use crate::net::UnixStream;
    use crate::EventLoop;

    /// A futures-io stream that is not one of solo's types, as a TLS stream is not.
    struct Other(UnixStream);

    impl AsyncRead for Other {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut [u8],
        ) -> Poll<io::Result<usize>> {
            // The zeroing path hands over initialized memory.
            assert!(buf.iter().all(|&b| b == 0));
            Pin::new(&mut self.0).poll_read(cx, buf)
        }
    }

    impl AsyncWrite for Other {
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
        fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Pin::new(&mut self.0).poll_close(cx)
        }
    }

    /// Reads through `io` until the peer closes: the request, then an empty read.
    async fn read_all<T: Read + Unpin>(io: &mut T, mut peer: UnixStream, storage_len: usize) {
        let request = b"GET / HTTP/1.1\r\n";
        peer.write_all(request).await.unwrap();
        let mut storage = vec![std::mem::MaybeUninit::<u8>::uninit(); storage_len];
        let mut buf = ReadBuf::uninit(&mut storage);
        std::future::poll_fn(|cx| Read::poll_read(Pin::new(&mut *io), cx, buf.unfilled()))
            .await
            .unwrap();
        assert_eq!(buf.filled(), request);
        // End of stream: a read that fills nothing.
        drop(peer);
        let before = buf.filled().len();
        std::future::poll_fn(|cx| Read::poll_read(Pin::new(&mut *io), cx, buf.unfilled()))
            .await
            .unwrap();
        assert_eq!(buf.filled().len(), before);
    }

    #[test]
    fn miri_hyper_read_fills_an_uninitialized_buffer() {
        let el = EventLoop::new().unwrap();
        el.run_until_complete(async {
            let (a, b) = UnixStream::pair().unwrap();
            let mut io = HyperIo::new(a);
            assert!(io.is_write_vectored());
            read_all(&mut io, b, 64).await;
        })
        .unwrap();
    }

    #[test]
    fn miri_hyper_read_of_another_stream_zeroes_at_most_the_cap() {
        let el = EventLoop::new().unwrap();
        el.run_until_complete(async {
            let (a, b) = UnixStream::pair().unwrap();
            let mut io = HyperIo::from_futures_io(Other(a));
            assert!(!io.is_write_vectored());
            // A buffer over the cap: only the cap is zeroed and offered.
            read_all(&mut io, b, super::GENERIC_READ_MAX + 100).await;
        })
        .unwrap();
    }
}

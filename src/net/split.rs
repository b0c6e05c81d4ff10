//! A stream's halves: borrowed ([`ReadHalf`], [`WriteHalf`], from `split`) and owned
//! ([`OwnedReadHalf`], [`OwnedWriteHalf`], from `into_split`), for [`TcpStream`] and
//! [`UnixStream`]. One generic set instead of tokio's two (`tcp::ReadHalf`, `unix::ReadHalf`,
//! ...): `OwnedReadHalf<TcpStream>` is tokio's `tcp::OwnedReadHalf`.
//!
//! A half reads or writes through `&S`, which is itself `AsyncRead + AsyncWrite` for solo's
//! streams: the two directions of a socket have their own readiness and their own waker, so a
//! reader and a writer never wake each other.
//!
//! [`TcpStream`]: super::TcpStream
//! [`UnixStream`]: super::UnixStream

use std::fmt;
use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

/// The read half of a stream borrowed by `split` (`TcpStream::split`, `UnixStream::split`).
#[derive(Debug)]
pub struct ReadHalf<'a, S>(&'a S);

/// The write half of a stream borrowed by `split`; closing it shuts down the write direction
/// (the peer reads end of file), and the read half reads on.
#[derive(Debug)]
pub struct WriteHalf<'a, S>(&'a S);

/// Borrowed halves of `stream`.
pub(super) fn split<S>(stream: &mut S) -> (ReadHalf<'_, S>, WriteHalf<'_, S>) {
    let stream = &*stream;
    (ReadHalf(stream), WriteHalf(stream))
}

/// The read half of a stream split by `into_split`: it can move into another task than the
/// write half. Dropping both halves closes the socket.
#[derive(Debug)]
pub struct OwnedReadHalf<S>(Rc<S>);

/// The write half of a stream split by `into_split`. Closing it (`AsyncWriteExt::close`) shuts
/// down the write direction; dropping it does not (the read half keeps the socket open), so
/// close it when you are done writing.
#[derive(Debug)]
pub struct OwnedWriteHalf<S>(Rc<S>);

/// Owned halves of `stream`.
pub(super) fn into_split<S>(stream: S) -> (OwnedReadHalf<S>, OwnedWriteHalf<S>) {
    let s = Rc::new(stream);
    (OwnedReadHalf(s.clone()), OwnedWriteHalf(s))
}

/// The error of [`reunite`](OwnedReadHalf::reunite): the halves came from two different
/// streams. It hands both back.
pub struct ReuniteError<S>(pub OwnedReadHalf<S>, pub OwnedWriteHalf<S>);

impl<S> fmt::Debug for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReuniteError").finish_non_exhaustive()
    }
}

impl<S> fmt::Display for ReuniteError<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("tried to reunite the halves of two different streams")
    }
}

impl<S> std::error::Error for ReuniteError<S> {}

fn reunite<S>(r: OwnedReadHalf<S>, w: OwnedWriteHalf<S>) -> Result<S, ReuniteError<S>> {
    if !Rc::ptr_eq(&r.0, &w.0) {
        return Err(ReuniteError(r, w));
    }
    drop(w);
    // The two halves are the only owners of the `Rc` (it never leaves them), and one is gone.
    match Rc::try_unwrap(r.0) {
        Ok(s) => Ok(s),
        Err(_) => unreachable!("a stream's halves are the only owners of its Rc"),
    }
}

impl<'a, S> ReadHalf<'a, S> {
    /// The whole stream (addresses, options).
    pub fn stream(&self) -> &'a S {
        self.0
    }
}

impl<'a, S> WriteHalf<'a, S> {
    /// The whole stream (addresses, options).
    pub fn stream(&self) -> &'a S {
        self.0
    }
}

impl<S> OwnedReadHalf<S> {
    /// The whole stream (addresses, options), shared with the write half.
    pub fn stream(&self) -> &S {
        &self.0
    }

    /// Puts the stream back together; an error, which hands both halves back, if `write` is
    /// the half of another stream.
    pub fn reunite(self, write: OwnedWriteHalf<S>) -> Result<S, ReuniteError<S>> {
        reunite(self, write)
    }
}

impl<S> OwnedWriteHalf<S> {
    /// The whole stream (addresses, options), shared with the read half.
    pub fn stream(&self) -> &S {
        &self.0
    }

    /// Puts the stream back together (see [`OwnedReadHalf::reunite`]).
    pub fn reunite(self, read: OwnedReadHalf<S>) -> Result<S, ReuniteError<S>> {
        reunite(read, self)
    }
}

/// `AsyncRead` for a half that reaches its stream as `&S` through `$get`.
macro_rules! read_half {
    ($t:ty, |$h:ident| $get:expr) => {
        impl<S> AsyncRead for $t
        where
            for<'b> &'b S: AsyncRead,
        {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                let $h = &*self;
                let mut s: &S = $get;
                Pin::new(&mut s).poll_read(cx, buf)
            }

            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                let $h = &*self;
                let mut s: &S = $get;
                Pin::new(&mut s).poll_read_vectored(cx, bufs)
            }
        }
    };
}

/// `AsyncWrite` for a half that reaches its stream as `&S` through `$get`.
macro_rules! write_half {
    ($t:ty, |$h:ident| $get:expr) => {
        impl<S> AsyncWrite for $t
        where
            for<'b> &'b S: AsyncWrite,
        {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let $h = &*self;
                let mut s: &S = $get;
                Pin::new(&mut s).poll_write(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let $h = &*self;
                let mut s: &S = $get;
                Pin::new(&mut s).poll_write_vectored(cx, bufs)
            }

            fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let $h = &*self;
                let mut s: &S = $get;
                Pin::new(&mut s).poll_flush(cx)
            }

            fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let $h = &*self;
                let mut s: &S = $get;
                Pin::new(&mut s).poll_close(cx)
            }
        }
    };
}

read_half!(ReadHalf<'_, S>, |h| h.0);
read_half!(OwnedReadHalf<S>, |h| &h.0);
write_half!(WriteHalf<'_, S>, |h| h.0);
write_half!(OwnedWriteHalf<S>, |h| &h.0);

//! Unix-domain streams: [`UnixListener`], [`UnixStream`].

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::panic::Location;
use std::path::Path;
use std::task::{Context, Poll};

use super::{set_backlog, Incoming, DEFAULT_BACKLOG};
use crate::await_point::at;
use crate::reactor::Dir;
use crate::Async;

/// A Unix-domain listening socket.
#[derive(Debug)]
pub struct UnixListener {
    io: Async<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to a filesystem path, with a listen backlog of [`DEFAULT_BACKLOG`].
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let l = mio::net::UnixListener::bind(path)?;
        set_backlog(l.as_raw_fd(), DEFAULT_BACKLOG)?;
        Ok(UnixListener { io: Async::new(l)? })
    }

    /// Waits for a connection (`#[track_caller]`, as [`TcpListener::accept`]).
    #[track_caller]
    pub fn accept(&self) -> impl Future<Output = io::Result<UnixStream>> + '_ {
        let site = Location::caller();
        async move {
            let (s, _) = at(site, self.io.read_with(|l| l.accept())).await?;
            Ok(UnixStream { io: Async::new(s)? })
        }
    }

    /// Polls for a connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<UnixStream>> {
        match self.io.poll_with(Dir::Read, cx, &mut |l| l.accept()) {
            Poll::Ready(Ok((s, _))) => Poll::Ready(Async::new(s).map(|io| UnixStream { io })),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The connections of this listener, accepted as a production server must (see
    /// [`Incoming`]).
    #[track_caller]
    pub fn incoming(&self) -> Incoming<'_, UnixListener> {
        Incoming::new(self, std::panic::Location::caller())
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<std::os::unix::net::SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

/// A Unix-domain stream.
///
/// ```
/// use futures::{AsyncReadExt, AsyncWriteExt};
/// let el = solo::EventLoop::new().unwrap();
/// el.run_until_complete(async {
///     let (mut a, mut b) = solo::net::UnixStream::pair().unwrap();
///     a.write_all(b"hello").await.unwrap();
///     let mut buf = [0u8; 5];
///     b.read_exact(&mut buf).await.unwrap();
///     assert_eq!(&buf, b"hello");
/// }).unwrap();
/// ```
#[derive(Debug)]
pub struct UnixStream {
    io: Async<mio::net::UnixStream>,
}

impl UnixStream {
    /// Connects to the socket at `path`.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let s = UnixStream {
            io: Async::new(mio::net::UnixStream::connect(path)?)?,
        };
        s.io.writable().await?;
        if let Some(e) = s.io.get_ref().take_error()? {
            return Err(e);
        }
        Ok(s)
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((
            UnixStream { io: Async::new(a)? },
            UnixStream { io: Async::new(b)? },
        ))
    }

    /// Shuts down the read, write, or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }
}

uninit_read!(UnixStream);

stream_io!(UnixStream, |s| s.io, |s: &mio::net::UnixStream| s
    .shutdown(Shutdown::Write));
stream_io!(&UnixStream, |s| s.io, |s: &mio::net::UnixStream| s
    .shutdown(Shutdown::Write));

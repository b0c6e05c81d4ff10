//! Unix-domain streams: [`UnixListener`], [`UnixStream`].

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::fd::AsRawFd;
use std::os::unix::net::SocketAddr;
use std::panic::Location;
use std::path::Path;
use std::task::{Context, Poll};

use super::split::{self, OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
use super::{current, register, set_backlog, Incoming, DEFAULT_BACKLOG};
use crate::await_point::at;
use crate::reactor::Dir;
use crate::Async;

/// The longest socket path `sockaddr_un` holds, in bytes (107 on Linux: its `sun_path` is 108
/// bytes with the terminating NUL).
pub(super) const MAX_PATH: usize = std::mem::size_of::<libc::sockaddr_un>()
    - std::mem::offset_of!(libc::sockaddr_un, sun_path)
    - 1;

/// An error that names the path and the limit, for a path too long for `sockaddr_un` (std's
/// own says only "path must be shorter than SUN_LEN").
pub(super) fn check_path(path: &Path) -> io::Result<()> {
    let len = path.as_os_str().len();
    if len > MAX_PATH {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "Unix socket path {} is {len} bytes, longer than the {MAX_PATH} that \
                 sockaddr_un holds; use a shorter (or relative) path",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// A Unix-domain listening socket.
///
/// ```
/// use futures::{AsyncReadExt, AsyncWriteExt};
/// let dir = std::env::temp_dir().join(format!("solo-doc-unix-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("sock");
/// solo::run(async {
///     let l = solo::net::UnixListener::bind(&path).unwrap();
///     let mut c = solo::net::UnixStream::connect(&path).await.unwrap();
///     let mut s = l.accept().await.unwrap();
///     c.write_all(b"hi").await.unwrap();
///     let mut buf = [0; 2];
///     s.read_exact(&mut buf).await.unwrap();
///     assert_eq!(&buf, b"hi");
///     assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
/// }).unwrap();
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct UnixListener {
    io: Async<mio::net::UnixListener>,
}

impl UnixListener {
    /// Binds to a filesystem path, with a listen backlog of
    /// [`DEFAULT_BACKLOG`](super::DEFAULT_BACKLOG). An error outside a running loop (and then
    /// no socket file is created), if the path exists, or if it is longer than `sockaddr_un`
    /// holds.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixListener> {
        let h = current("UnixListener::bind")?;
        check_path(path.as_ref())?;
        let l = mio::net::UnixListener::bind(path)?;
        set_backlog(l.as_raw_fd(), DEFAULT_BACKLOG)?;
        Ok(UnixListener {
            io: Async::with_handle(l, &h)?,
        })
    }

    /// Wraps a bound, listening std socket (switched to non-blocking mode).
    pub fn from_std(l: std::os::unix::net::UnixListener) -> io::Result<UnixListener> {
        let h = current("UnixListener::from_std")?;
        l.set_nonblocking(true)?;
        Ok(UnixListener {
            io: Async::with_handle(mio::net::UnixListener::from_std(l), &h)?,
        })
    }

    /// Deregisters from the loop and returns the std socket, still in non-blocking mode. As
    /// [`TcpListener::into_std`](super::TcpListener::into_std).
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixListener> {
        Ok(self.io.into_inner()?.into())
    }

    /// Waits for a connection (`#[track_caller]`, as [`TcpListener::accept`]).
    ///
    /// [`TcpListener::accept`]: super::TcpListener::accept
    #[track_caller]
    pub fn accept(&self) -> impl Future<Output = io::Result<UnixStream>> + '_ {
        let site = Location::caller();
        async move {
            let (s, _) = at(site, self.io.read_with(|l| l.accept())).await?;
            UnixStream::accepted(s)
        }
    }

    /// Polls for a connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<UnixStream>> {
        match self.io.poll_with(Dir::Read, cx, &mut |l| l.accept()) {
            Poll::Ready(Ok((s, _))) => Poll::Ready(UnixStream::accepted(s)),
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
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

as_fd!(UnixListener, UnixStream);

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
    /// Connects to the socket at `path`. An error if nothing listens there (`NotFound` if no
    /// file, `ConnectionRefused` if no listener), if the path is longer than `sockaddr_un`
    /// holds, or outside a running loop.
    pub async fn connect(path: impl AsRef<Path>) -> io::Result<UnixStream> {
        let h = current("UnixStream::connect")?;
        check_path(path.as_ref())?;
        let s = UnixStream {
            io: Async::with_handle(mio::net::UnixStream::connect(path)?, &h)?,
        };
        s.io.writable().await?;
        if let Some(e) = s.io.get_ref().take_error()? {
            return Err(e);
        }
        Ok(s)
    }

    /// A connected pair.
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let h = current("UnixStream::pair")?;
        let (a, b) = mio::net::UnixStream::pair()?;
        Ok((
            UnixStream {
                io: Async::with_handle(a, &h)?,
            },
            UnixStream {
                io: Async::with_handle(b, &h)?,
            },
        ))
    }

    fn accepted(s: mio::net::UnixStream) -> io::Result<UnixStream> {
        Ok(UnixStream {
            io: register(s, "UnixListener::accept")?,
        })
    }

    /// Wraps a connected std stream (switched to non-blocking mode).
    pub fn from_std(s: std::os::unix::net::UnixStream) -> io::Result<UnixStream> {
        let h = current("UnixStream::from_std")?;
        s.set_nonblocking(true)?;
        Ok(UnixStream {
            io: Async::with_handle(mio::net::UnixStream::from_std(s), &h)?,
        })
    }

    /// Deregisters from the loop and returns the std stream, still in non-blocking mode. As
    /// [`TcpStream::into_std`](super::TcpStream::into_std): nothing of this stream can still
    /// be waiting.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixStream> {
        Ok(self.io.into_inner()?.into())
    }

    /// The local address (unnamed for a client's end or a pair).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The remote address (the listener's path for a client's end).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Shuts down the read, write, or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// The pending socket error (`SO_ERROR`), if any, clearing it.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Borrowed halves (see [`TcpStream::split`](super::TcpStream::split)).
    pub fn split(&mut self) -> (ReadHalf<'_, UnixStream>, WriteHalf<'_, UnixStream>) {
        split::split(self)
    }

    /// Owned halves that can move into different tasks; [`reunite`](OwnedReadHalf::reunite)
    /// puts them back together.
    pub fn into_split(self) -> (OwnedReadHalf<UnixStream>, OwnedWriteHalf<UnixStream>) {
        split::into_split(self)
    }
}

uninit_read!(UnixStream);

stream_io!(
    UnixStream,
    "UnixStream",
    |s| s.io,
    |s: &mio::net::UnixStream| s.shutdown(Shutdown::Write)
);
stream_io!(
    &UnixStream,
    "UnixStream",
    |s| s.io,
    |s: &mio::net::UnixStream| s.shutdown(Shutdown::Write)
);

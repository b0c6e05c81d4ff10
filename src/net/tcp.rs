//! TCP: [`TcpListener`] and [`TcpStream`].

use std::future::Future;
use std::io;
use std::net::ToSocketAddrs as StdToSocketAddrs;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::panic::Location;
use std::task::{Context, Poll};
use std::time::Duration;

use super::split::{self, OwnedReadHalf, OwnedWriteHalf, ReadHalf, WriteHalf};
use super::{
    current, each_addr, lookup_host, register, set_backlog, Incoming, ToSocketAddrs,
    DEFAULT_BACKLOG,
};
use crate::await_point::at;
use crate::reactor::Dir;
use crate::{Async, Handle};

/// A TCP listening socket. For options set before `listen` (`SO_REUSEPORT`, buffer sizes), see
/// [`TcpSocket`](super::TcpSocket).
///
/// ```
/// let el = solo::EventLoop::new().unwrap();
/// el.run_until_complete(async {
///     let l = solo::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = l.local_addr().unwrap();
///     let c = solo::Handle::current().spawn(solo::net::TcpStream::connect(addr));
///     let (_s, peer) = l.accept().await.unwrap();
///     assert_eq!(peer, c.await.unwrap().unwrap().local_addr().unwrap());
/// }).unwrap();
/// ```
#[derive(Debug)]
pub struct TcpListener {
    io: Async<mio::net::TcpListener>,
}

impl TcpListener {
    /// Binds to `addr` (the first address that works), with `SO_REUSEADDR` and a listen backlog
    /// of [`DEFAULT_BACKLOG`](super::DEFAULT_BACKLOG). An error outside a running loop.
    pub fn bind(addr: impl StdToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_as(addr, DEFAULT_BACKLOG, "TcpListener::bind")
    }

    /// Like [`bind`](TcpListener::bind), with the listen backlog of your choice (the kernel
    /// caps it at `net.core.somaxconn`).
    pub fn bind_with_backlog(addr: impl StdToSocketAddrs, backlog: i32) -> io::Result<TcpListener> {
        TcpListener::bind_as(addr, backlog, "TcpListener::bind_with_backlog")
    }

    fn bind_as(
        addr: impl StdToSocketAddrs,
        backlog: i32,
        call: &'static str,
    ) -> io::Result<TcpListener> {
        let h = current(call)?;
        let l = each_addr(addr, mio::net::TcpListener::bind)?;
        set_backlog(l.as_raw_fd(), backlog)?;
        TcpListener::with_handle(l, &h)
    }

    pub(super) fn with_handle(l: mio::net::TcpListener, h: &Handle) -> io::Result<TcpListener> {
        Ok(TcpListener {
            io: Async::with_handle(l, h)?,
        })
    }

    /// Wraps a bound, listening std socket (switched to non-blocking mode).
    pub fn from_std(l: std::net::TcpListener) -> io::Result<TcpListener> {
        let h = current("TcpListener::from_std")?;
        l.set_nonblocking(true)?;
        TcpListener::with_handle(mio::net::TcpListener::from_std(l), &h)
    }

    /// Deregisters from the loop and returns the std socket, still in non-blocking mode (call
    /// `set_nonblocking(false)` for blocking use). It takes the listener by value, so no accept
    /// of it can still be waiting; a waker left by an accept future polled and dropped earlier
    /// is dropped here, unwoken.
    pub fn into_std(self) -> io::Result<std::net::TcpListener> {
        Ok(self.io.into_inner()?.into())
    }

    /// Waits for a connection (the caller's line is kept for debug mode's task table).
    #[track_caller]
    pub fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + '_ {
        let site = Location::caller();
        async move {
            let (s, addr) = at(site, self.io.read_with(|l| l.accept())).await?;
            Ok((TcpStream::accepted(s)?, addr))
        }
    }

    /// The connections of this listener, accepted as a production server must: errors of one
    /// connection are skipped, running out of fds backs off and retries (see [`Incoming`]).
    #[track_caller]
    pub fn incoming(&self) -> Incoming<'_, TcpListener> {
        Incoming::new(self, std::panic::Location::caller())
    }

    /// Polls for a connection.
    pub fn poll_accept(&self, cx: &mut Context<'_>) -> Poll<io::Result<(TcpStream, SocketAddr)>> {
        match self.io.poll_with(Dir::Read, cx, &mut |l| l.accept()) {
            Poll::Ready(Ok((s, addr))) => Poll::Ready(TcpStream::accepted(s).map(|s| (s, addr))),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets `IP_TTL` for the connections accepted from now on.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }
}

as_fd!(TcpListener, TcpStream);

/// A TCP connection.
///
/// Read and write it with `futures::io`'s `AsyncReadExt`/`AsyncWriteExt`; closing it
/// (`close`) shuts down the write direction. Split it with [`split`](TcpStream::split)
/// (borrowed halves) or [`into_split`](TcpStream::into_split) (owned halves, for two tasks).
#[derive(Debug)]
pub struct TcpStream {
    io: Async<mio::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr`, trying each of its addresses in turn. Neither the connect nor the
    /// name resolution blocks the loop: a host name is resolved on the loop's executor (see
    /// [`lookup_host`]). A refused connection is an `io::Error` of kind `ConnectionRefused`.
    /// For options set before connecting, see [`TcpSocket`](super::TcpSocket).
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let h = current("TcpStream::connect")?;
        let mut last = None;
        for a in lookup_host(addr).await? {
            // Not `each_addr`: each attempt is awaited.
            let attempt = match mio::net::TcpStream::connect(a) {
                Ok(s) => TcpStream::finish_connect(s, &h, a).await,
                Err(e) => Err(e),
            };
            match attempt {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("lookup_host returns at least one address"))
    }

    /// Registers `s`, whose non-blocking connect to `addr` is under way, and waits for it.
    pub(super) async fn finish_connect(
        s: mio::net::TcpStream,
        h: &Handle,
        addr: SocketAddr,
    ) -> io::Result<TcpStream> {
        let s = TcpStream {
            io: Async::with_handle(s, h)?,
        };
        s.io.writable().await?;
        if let Some(e) = s.io.get_ref().take_error()? {
            return Err(e);
        }
        // Writable without an error may still mean "not connected" on some systems.
        match s.io.get_ref().peer_addr() {
            Ok(_) => Ok(s),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Err(io::Error::new(
                io::ErrorKind::ConnectionRefused,
                format!("connect to {addr} failed"),
            )),
            Err(e) => Err(e),
        }
    }

    fn accepted(s: mio::net::TcpStream) -> io::Result<TcpStream> {
        Ok(TcpStream {
            io: register(s, "TcpListener::accept")?,
        })
    }

    /// Wraps a connected std stream (switched to non-blocking mode).
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        let h = current("TcpStream::from_std")?;
        s.set_nonblocking(true)?;
        Ok(TcpStream {
            io: Async::with_handle(mio::net::TcpStream::from_std(s), &h)?,
        })
    }

    /// Deregisters from the loop and returns the std stream, still in non-blocking mode (call
    /// `set_nonblocking(false)` for blocking use); bytes not yet read stay in the socket. It
    /// takes the stream by value, so no read or write of it can still be waiting (owned halves
    /// must be [reunited](OwnedReadHalf::reunite) first); a waker left by a future polled and
    /// dropped earlier is dropped here, unwoken.
    pub fn into_std(self) -> io::Result<std::net::TcpStream> {
        Ok(self.io.into_inner()?.into())
    }

    /// The remote address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The local address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// Sets `TCP_NODELAY` (disables Nagle's algorithm).
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_nodelay(on)
    }

    /// Whether `TCP_NODELAY` is set.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.io.get_ref().nodelay()
    }

    /// Sets `IP_TTL`, the time-to-live of outgoing packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets `SO_LINGER`: with `Some(d)`, closing waits up to `d` for unsent data (with
    /// `Some(Duration::ZERO)` it resets the connection); `None` is the default. On a
    /// non-blocking socket, as here, a linger time makes `close(2)` itself block: prefer
    /// `Some(Duration::ZERO)` or `None`.
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        socket2::SockRef::from(self.io.get_ref()).set_linger(linger)
    }

    /// `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        socket2::SockRef::from(self.io.get_ref()).linger()
    }

    /// Shuts down the read, write, or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// The pending socket error (`SO_ERROR`), if any, clearing it.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Reads into `buf` without taking the bytes from the socket: the next read sees them
    /// again. Waits until there is something to peek (0 means end of file).
    #[track_caller]
    pub fn peek<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        at(Location::caller(), self.io.read_with(|s| s.peek(buf)))
    }

    /// Borrowed halves, for reading and writing at once in one task (`futures::join!`,
    /// `futures::io::copy(&mut r, &mut w)`): tokio's `split`, without a lock (each direction
    /// has its own readiness and waker).
    ///
    /// With `futures::AsyncReadExt` in scope, `stream.split()` is that trait's `split`, which
    /// takes the stream and shares it behind a lock: call this one as
    /// `TcpStream::split(&mut stream)`.
    pub fn split(&mut self) -> (ReadHalf<'_, TcpStream>, WriteHalf<'_, TcpStream>) {
        split::split(self)
    }

    /// Owned halves that can move into different tasks; [`reunite`](OwnedReadHalf::reunite)
    /// puts them back together.
    pub fn into_split(self) -> (TcpReadHalf, TcpWriteHalf) {
        split::into_split(self)
    }
}

/// The read half of [`TcpStream::into_split`] (tokio's `tcp::OwnedReadHalf`).
pub type TcpReadHalf = OwnedReadHalf<TcpStream>;

/// The write half of [`TcpStream::into_split`] (tokio's `tcp::OwnedWriteHalf`); closing it
/// shuts down the write direction.
pub type TcpWriteHalf = OwnedWriteHalf<TcpStream>;

uninit_read!(TcpStream);

stream_io!(
    TcpStream,
    "TcpStream",
    |s| s.io,
    |s: &mio::net::TcpStream| s.shutdown(Shutdown::Write)
);
stream_io!(
    &TcpStream,
    "TcpStream",
    |s| s.io,
    |s: &mio::net::TcpStream| s.shutdown(Shutdown::Write)
);

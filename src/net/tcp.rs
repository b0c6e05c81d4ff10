//! TCP: [`TcpListener`], [`TcpStream`] and its owned halves.

use std::future::Future;
use std::io;
use std::net::ToSocketAddrs as StdToSocketAddrs;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::Location;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::{each_addr, lookup_host, set_backlog, Incoming, ToSocketAddrs, DEFAULT_BACKLOG};
use crate::await_point::at;
use crate::reactor::Dir;
use crate::Async;

/// A TCP listening socket.
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
    /// of [`DEFAULT_BACKLOG`].
    pub fn bind(addr: impl StdToSocketAddrs) -> io::Result<TcpListener> {
        TcpListener::bind_with_backlog(addr, DEFAULT_BACKLOG)
    }

    /// Like [`bind`](TcpListener::bind), with the listen backlog of your choice (the kernel
    /// caps it at `net.core.somaxconn`).
    pub fn bind_with_backlog(addr: impl StdToSocketAddrs, backlog: i32) -> io::Result<TcpListener> {
        let l = each_addr(addr, mio::net::TcpListener::bind)?;
        set_backlog(l.as_raw_fd(), backlog)?;
        Ok(TcpListener { io: Async::new(l)? })
    }

    /// Wraps a bound, listening std socket.
    pub fn from_std(l: std::net::TcpListener) -> io::Result<TcpListener> {
        l.set_nonblocking(true)?;
        Ok(TcpListener {
            io: Async::new(mio::net::TcpListener::from_std(l))?,
        })
    }

    /// Waits for a connection (the caller's line is kept for debug mode's task table).
    #[track_caller]
    pub fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + '_ {
        let site = Location::caller();
        async move {
            let (s, addr) = at(site, self.io.read_with(|l| l.accept())).await?;
            Ok((TcpStream { io: Async::new(s)? }, addr))
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
            Poll::Ready(Ok((s, addr))) => {
                Poll::Ready(Async::new(s).map(|io| (TcpStream { io }, addr)))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }
}

impl AsRawFd for TcpListener {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

/// A TCP connection.
#[derive(Debug)]
pub struct TcpStream {
    io: Async<mio::net::TcpStream>,
}

impl TcpStream {
    /// Connects to `addr`, trying each of its addresses in turn. Neither the connect nor the
    /// name resolution blocks the loop: a host name is resolved on the loop's executor (see
    /// [`lookup_host`]).
    pub async fn connect(addr: impl ToSocketAddrs) -> io::Result<TcpStream> {
        let mut last = None;
        for a in lookup_host(addr).await? {
            // Not `each_addr`: each attempt is awaited.
            match TcpStream::connect_one(a).await {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("lookup_host returns at least one address"))
    }

    async fn connect_one(addr: SocketAddr) -> io::Result<TcpStream> {
        let s = TcpStream {
            io: Async::new(mio::net::TcpStream::connect(addr)?)?,
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

    /// Wraps a connected std stream.
    pub fn from_std(s: std::net::TcpStream) -> io::Result<TcpStream> {
        s.set_nonblocking(true)?;
        Ok(TcpStream {
            io: Async::new(mio::net::TcpStream::from_std(s))?,
        })
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

    /// Shuts down the read, write, or both halves.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// Splits into owned halves that can move into different tasks.
    pub fn into_split(self) -> (TcpReadHalf, TcpWriteHalf) {
        let s = Rc::new(self);
        (TcpReadHalf(s.clone()), TcpWriteHalf(s))
    }
}

uninit_read!(TcpStream);

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

stream_io!(TcpStream, |s| s.io, |s: &mio::net::TcpStream| s
    .shutdown(Shutdown::Write));
stream_io!(&TcpStream, |s| s.io, |s: &mio::net::TcpStream| s
    .shutdown(Shutdown::Write));
stream_io!(TcpReadHalf, |s| s.0.io, |_s: &mio::net::TcpStream| Ok(()));
stream_io!(TcpWriteHalf, |s| s.0.io, |s: &mio::net::TcpStream| s
    .shutdown(Shutdown::Write));

/// The read half of [`TcpStream::into_split`]. (It implements `AsyncWrite` only so the macro
/// stays simple; writing through it writes to the same socket.)
#[derive(Debug)]
pub struct TcpReadHalf(Rc<TcpStream>);

/// The write half of [`TcpStream::into_split`]; closing it shuts down the write direction.
#[derive(Debug)]
pub struct TcpWriteHalf(Rc<TcpStream>);

impl TcpReadHalf {
    /// The whole stream (shared with the write half).
    pub fn stream(&self) -> &TcpStream {
        &self.0
    }
}

impl TcpWriteHalf {
    /// The whole stream (shared with the read half).
    pub fn stream(&self) -> &TcpStream {
        &self.0
    }
}

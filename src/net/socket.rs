//! [`TcpSocket`]: a TCP socket set up before it listens or connects, on socket2.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::{current, TcpListener, TcpStream};

/// A TCP socket not yet listening or connected: set the options that must come first
/// (`SO_REUSEADDR`, `SO_REUSEPORT`, buffer sizes, `TCP_NODELAY`), [`bind`](TcpSocket::bind) if
/// you want, then [`listen`](TcpSocket::listen) or [`connect`](TcpSocket::connect). tokio's
/// `TcpSocket`, on [socket2](https://docs.rs/socket2).
///
/// Unlike [`TcpListener::bind`], a new socket has the system's defaults: no `SO_REUSEADDR`.
///
/// ```
/// use solo::net::TcpSocket;
/// solo::run(async {
///     let socket = TcpSocket::new_v4()?;
///     socket.set_reuseaddr(true)?;
///     socket.set_recv_buffer_size(1 << 20)?;
///     socket.bind("127.0.0.1:0".parse().unwrap())?;
///     let listener = socket.listen(4096)?;
///     let addr = listener.local_addr()?;
///
///     let client = TcpSocket::new_v4()?;
///     client.set_nodelay(true)?; // before the handshake
///     let stream = client.connect(addr).await?;
///     assert!(stream.nodelay()?);
///     let (_conn, peer) = listener.accept().await?;
///     assert_eq!(peer, stream.local_addr()?);
///     Ok::<_, std::io::Error>(())
/// }).unwrap().unwrap();
/// ```
///
/// `listen` and `connect` take the socket: a socket listens or connects once.
///
/// ```compile_fail
/// # async fn twice() -> std::io::Result<()> {
/// let socket = solo::net::TcpSocket::new_v4()?;
/// let _first = socket.listen(128)?;
/// let _second = socket.listen(128)?; // error: use of moved value `socket`
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TcpSocket {
    inner: Socket,
}

impl TcpSocket {
    fn new(domain: Domain) -> io::Result<TcpSocket> {
        // Close-on-exec is socket2's default on Unix; non-blocking from the start, so that
        // `connect` never blocks the loop.
        let inner = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
        inner.set_nonblocking(true)?;
        Ok(TcpSocket { inner })
    }

    /// A new IPv4 socket. Needs no loop: only `listen` and `connect` do.
    pub fn new_v4() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV4)
    }

    /// A new IPv6 socket.
    pub fn new_v6() -> io::Result<TcpSocket> {
        TcpSocket::new(Domain::IPV6)
    }

    /// Sets `SO_REUSEADDR`: bind to a port whose old connections are still in `TIME_WAIT`
    /// (what servers want on restart). It does not let two sockets listen on one port: that
    /// is [`set_reuseport`](TcpSocket::set_reuseport).
    pub fn set_reuseaddr(&self, on: bool) -> io::Result<()> {
        self.inner.set_reuse_address(on)
    }

    /// `SO_REUSEADDR`.
    pub fn reuseaddr(&self) -> io::Result<bool> {
        self.inner.reuse_address()
    }

    /// Sets `SO_REUSEPORT`: several sockets, each with it set before `bind`, listen on one
    /// port, and the kernel spreads the connections among them (one loop per thread, each with
    /// its own listener).
    pub fn set_reuseport(&self, on: bool) -> io::Result<()> {
        self.inner.set_reuse_port(on)
    }

    /// `SO_REUSEPORT`.
    pub fn reuseport(&self) -> io::Result<bool> {
        self.inner.reuse_port()
    }

    /// Sets `TCP_NODELAY` (no Nagle's algorithm) before the connection exists, so that its
    /// first bytes go out at once. Accepted connections do not inherit it from a listener on
    /// every system: set it on them too.
    pub fn set_nodelay(&self, on: bool) -> io::Result<()> {
        self.inner.set_tcp_nodelay(on)
    }

    /// `TCP_NODELAY`.
    pub fn nodelay(&self) -> io::Result<bool> {
        self.inner.tcp_nodelay()
    }

    /// Sets `SO_SNDBUF`. Linux doubles the value (for its bookkeeping) and caps it at
    /// `net.core.wmem_max`: read back what you got with [`send_buffer_size`].
    ///
    /// [`send_buffer_size`]: TcpSocket::send_buffer_size
    pub fn set_send_buffer_size(&self, size: u32) -> io::Result<()> {
        self.inner.set_send_buffer_size(size as usize)
    }

    /// `SO_SNDBUF`.
    pub fn send_buffer_size(&self) -> io::Result<u32> {
        self.inner
            .send_buffer_size()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Sets `SO_RCVBUF` (before `listen`, so that accepted connections inherit it, and before
    /// `connect`, so that the TCP window is negotiated for it). Linux doubles and caps it, as
    /// for [`set_send_buffer_size`](TcpSocket::set_send_buffer_size).
    pub fn set_recv_buffer_size(&self, size: u32) -> io::Result<()> {
        self.inner.set_recv_buffer_size(size as usize)
    }

    /// `SO_RCVBUF`.
    pub fn recv_buffer_size(&self) -> io::Result<u32> {
        self.inner
            .recv_buffer_size()
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// Sets `SO_KEEPALIVE`: the kernel probes an idle connection and reports a dead peer as
    /// an error on the next read.
    pub fn set_keepalive(&self, on: bool) -> io::Result<()> {
        self.inner.set_keepalive(on)
    }

    /// `SO_KEEPALIVE`.
    pub fn keepalive(&self) -> io::Result<bool> {
        self.inner.keepalive()
    }

    /// Sets `SO_LINGER` (see [`TcpStream::set_linger`] for why a linger time is a bad idea on
    /// a loop).
    pub fn set_linger(&self, linger: Option<Duration>) -> io::Result<()> {
        self.inner.set_linger(linger)
    }

    /// `SO_LINGER`.
    pub fn linger(&self) -> io::Result<Option<Duration>> {
        self.inner.linger()
    }

    /// Binds to `addr`. An error if the address is in use (`AddrInUse`: another socket listens
    /// there, unless both set [`set_reuseport`](TcpSocket::set_reuseport)), if this socket is
    /// already bound (`InvalidInput`), or if `addr` is of the other IP family.
    pub fn bind(&self, addr: SocketAddr) -> io::Result<()> {
        self.inner.bind(&SockAddr::from(addr))
    }

    /// The bound address (`0.0.0.0:0` or `[::]:0` before `bind`).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "not an IP socket address"))
    }

    /// Listens, with a queue of `backlog` pending connections (the kernel caps it at
    /// `net.core.somaxconn`), and registers the listener with the running loop. Without
    /// `bind`, the system picks a port. An error outside a running loop (checked first: the
    /// socket does not start listening).
    pub fn listen(self, backlog: u32) -> io::Result<TcpListener> {
        let h = current("TcpSocket::listen")?;
        self.inner
            .listen(i32::try_from(backlog).unwrap_or(i32::MAX))?;
        let std: std::net::TcpListener = self.inner.into();
        TcpListener::with_handle(mio::net::TcpListener::from_std(std), &h)
    }

    /// Connects to `addr` without blocking the loop and waits for the handshake. A refused
    /// connection is an `io::Error` of kind `ConnectionRefused`. An error outside a running
    /// loop (checked first: no packet is sent).
    pub async fn connect(self, addr: SocketAddr) -> io::Result<TcpStream> {
        let h = current("TcpSocket::connect")?;
        match self.inner.connect(&SockAddr::from(addr)) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(e),
        }
        let std: std::net::TcpStream = self.inner.into();
        TcpStream::finish_connect(mio::net::TcpStream::from_std(std), &h, addr).await
    }
}

impl AsRawFd for TcpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.inner.as_raw_fd()
    }
}

impl AsFd for TcpSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.inner.as_fd()
    }
}

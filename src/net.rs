//! Sockets as futures: TCP, UDP and Unix-domain, on the loop running on this thread.
//!
//! Each type is an [`Async`] around a mio socket. Streams implement futures-io's `AsyncRead`
//! and `AsyncWrite` (vectored too), so `futures::io` combinators and codecs work on them. A
//! stream splits into halves two ways: borrowed, since `&TcpStream` is itself `AsyncRead +
//! AsyncWrite` (`let (mut r, mut w) = (&stream, &stream);`), or owned with
//! [`TcpStream::into_split`].
//!
//! Constructors register with the loop running on this thread and return an error outside one.
//!
//! # Names and the loop
//!
//! Resolving a host name (`"example.com:80"`) can take seconds, so the `async` functions,
//! [`TcpStream::connect`] and [`lookup_host`], take this module's [`ToSocketAddrs`]: IP
//! addresses are used at once and names are resolved on the loop's executor
//! ([`run_in_executor`](crate::Handle::run_in_executor)), never on the loop. The synchronous
//! ones (`bind`, [`UdpSocket::connect`]) take std's `ToSocketAddrs` and resolve on the calling
//! thread, as std does: give them IP addresses, or resolve first with [`lookup_host`].

use std::future::Future;
use std::io::{self, IoSlice, IoSliceMut};
use std::net::ToSocketAddrs as StdToSocketAddrs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};
use std::panic::Location;
use std::path::Path;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use crate::await_point::at;
use crate::reactor::Dir;
use crate::{Async, Handle};

mod incoming;

pub use incoming::{Incoming, Listener, ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN};

/// Tries `op` on each address `addr` resolves to; the first success, or the last error.
fn each_addr<T>(
    addr: impl StdToSocketAddrs,
    mut op: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T> {
    let mut last = None;
    for a in non_empty(addr.to_socket_addrs()?.collect())? {
        match op(a) {
            Ok(v) => return Ok(v),
            Err(e) => last = Some(e),
        }
    }
    Err(last.expect("non_empty returns at least one address"))
}

fn non_empty(addrs: Vec<SocketAddr>) -> io::Result<Vec<SocketAddr>> {
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "address resolved to nothing",
        ));
    }
    Ok(addrs)
}

/// What an address argument needs before it can be used.
mod sealed {
    use std::net::SocketAddr;

    #[derive(Debug)]
    pub enum Lookup {
        /// IP addresses: nothing to resolve.
        Ready(Vec<SocketAddr>),
        /// `"host:port"`, to be resolved off the loop.
        HostPort(String),
        /// A host and a port, to be resolved off the loop.
        Host(String, u16),
    }

    pub trait Sealed {
        fn into_lookup(self) -> Lookup;
    }
}
use sealed::{Lookup, Sealed};

/// Addresses that [`TcpStream::connect`] and [`lookup_host`] accept: the types std's
/// `ToSocketAddrs` accepts (`SocketAddr`, `(IpAddr, u16)`, `"host:port"`, `("host", port)`,
/// `&[SocketAddr]`, …), with one difference: a host name is resolved on the loop's executor,
/// not on the loop thread. Sealed: it is implemented here for those types only.
pub trait ToSocketAddrs: Sealed {}

macro_rules! ready_addrs {
    ($($t:ty),*) => {$(
        impl Sealed for $t {
            fn into_lookup(self) -> Lookup {
                Lookup::Ready(vec![SocketAddr::from(self)])
            }
        }
        impl ToSocketAddrs for $t {}
    )*};
}
ready_addrs!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16)
);

impl Sealed for &[SocketAddr] {
    fn into_lookup(self) -> Lookup {
        Lookup::Ready(self.to_vec())
    }
}
impl ToSocketAddrs for &[SocketAddr] {}

impl Sealed for &str {
    fn into_lookup(self) -> Lookup {
        match self.parse::<SocketAddr>() {
            Ok(a) => Lookup::Ready(vec![a]),
            Err(_) => Lookup::HostPort(self.to_owned()),
        }
    }
}
impl ToSocketAddrs for &str {}

impl Sealed for String {
    fn into_lookup(self) -> Lookup {
        match self.parse::<SocketAddr>() {
            Ok(a) => Lookup::Ready(vec![a]),
            Err(_) => Lookup::HostPort(self),
        }
    }
}
impl ToSocketAddrs for String {}

impl Sealed for &String {
    fn into_lookup(self) -> Lookup {
        self.as_str().into_lookup()
    }
}
impl ToSocketAddrs for &String {}

impl Sealed for (&str, u16) {
    fn into_lookup(self) -> Lookup {
        match self.0.parse::<IpAddr>() {
            Ok(ip) => Lookup::Ready(vec![SocketAddr::new(ip, self.1)]),
            Err(_) => Lookup::Host(self.0.to_owned(), self.1),
        }
    }
}
impl ToSocketAddrs for (&str, u16) {}

impl Sealed for (String, u16) {
    fn into_lookup(self) -> Lookup {
        (self.0.as_str(), self.1).into_lookup()
    }
}
impl ToSocketAddrs for (String, u16) {}

/// Resolves `host` to its socket addresses. IP addresses come back at once; a host name is
/// resolved with the system resolver (`getaddrinfo`) on the loop's executor, so the loop runs on
/// while it waits. An error if nothing is found, or outside a running loop when there is a name
/// to resolve.
///
/// ```
/// let el = solo::EventLoop::new().unwrap();
/// el.run_until_complete(async {
///     let addrs = solo::net::lookup_host(("127.0.0.1", 80)).await.unwrap();
///     assert_eq!(addrs, ["127.0.0.1:80".parse().unwrap()]);
///     assert!(solo::net::lookup_host("no port here").await.is_err());
/// })
/// .unwrap();
/// ```
pub async fn lookup_host(host: impl ToSocketAddrs) -> io::Result<Vec<SocketAddr>> {
    let resolve: Box<dyn FnOnce() -> io::Result<Vec<SocketAddr>> + Send> = match host.into_lookup()
    {
        Lookup::Ready(addrs) => return non_empty(addrs),
        Lookup::HostPort(s) => Box::new(move || Ok(s.to_socket_addrs()?.collect())),
        Lookup::Host(h, port) => {
            Box::new(move || Ok((h.as_str(), port).to_socket_addrs()?.collect()))
        }
    };
    let handle = Handle::try_current().ok_or_else(|| {
        io::Error::other("solo::net::lookup_host called outside a running solo event loop")
    })?;
    let addrs = handle
        .run_in_executor(resolve)
        .await
        .map_err(|e| io::Error::other(format!("name resolution failed: {e}")))??;
    non_empty(addrs)
}

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

/// The listen backlog of `bind`: tokio's and the kernel's usual `somaxconn` floor. std and mio
/// use 128, which a burst of connects overflows: the kernel then drops SYNs and clients wait a
/// second to retry.
pub const DEFAULT_BACKLOG: i32 = 1024;

/// Sets the listen backlog of a listening socket (calling `listen` again updates it).
fn set_backlog(fd: RawFd, backlog: i32) -> io::Result<()> {
    // SAFETY: listen(2) on an fd we own; no pointers involved.
    if unsafe { libc::listen(fd, backlog) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
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

/// hyper reads straight into its uninitialized buffers through these streams' `Async`.
macro_rules! uninit_read {
    ($($t:ty),*) => {$(
        #[cfg(feature = "hyper")]
        impl crate::hyper::UninitRead for $t {
            fn poll_read_uninit(
                &self,
                cx: &mut Context<'_>,
                buf: &mut [std::mem::MaybeUninit<u8>],
            ) -> Poll<io::Result<usize>> {
                self.io.poll_read_uninit(cx, buf)
            }
        }
    )*};
}

uninit_read!(TcpStream, UnixStream);

impl AsRawFd for TcpStream {
    fn as_raw_fd(&self) -> RawFd {
        self.io.as_raw_fd()
    }
}

/// Implements futures-io traits for a stream type `$t` whose `Async` is reached by `$io`.
macro_rules! stream_io {
    ($t:ty, |$s:ident| $io:expr, $shutdown:expr) => {
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                let $s = &*self;
                $io.poll_read_stream(cx, buf)
            }

            fn poll_read_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &mut [IoSliceMut<'_>],
            ) -> Poll<io::Result<usize>> {
                let $s = &*self;
                $io.poll_with(Dir::Read, cx, &mut |io| {
                    let mut io = io;
                    std::io::Read::read_vectored(&mut io, bufs)
                })
            }
        }

        impl AsyncWrite for $t {
            fn poll_write(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &[u8],
            ) -> Poll<io::Result<usize>> {
                let $s = &*self;
                $io.poll_write_stream(cx, buf)
            }

            fn poll_write_vectored(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                bufs: &[IoSlice<'_>],
            ) -> Poll<io::Result<usize>> {
                let $s = &*self;
                $io.poll_with(Dir::Write, cx, &mut |io| {
                    let mut io = io;
                    std::io::Write::write_vectored(&mut io, bufs)
                })
            }

            fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }

            fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                let $s = &*self;
                let shutdown: fn(&_) -> io::Result<()> = $shutdown;
                Poll::Ready(match shutdown($io.get_ref()) {
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
                    r => r,
                })
            }
        }
    };
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

/// A UDP socket.
///
/// ```
/// let el = solo::EventLoop::new().unwrap();
/// el.run_until_complete(async {
///     let a = solo::net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = solo::net::UdpSocket::bind("127.0.0.1:0").unwrap();
///     a.send_to(b"ping", b.local_addr().unwrap()).await.unwrap();
///     let mut buf = [0u8; 8];
///     let (n, from) = b.recv_from(&mut buf).await.unwrap();
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
/// }).unwrap();
/// ```
#[derive(Debug)]
pub struct UdpSocket {
    io: Async<mio::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr`.
    pub fn bind(addr: impl StdToSocketAddrs) -> io::Result<UdpSocket> {
        let s = each_addr(addr, mio::net::UdpSocket::bind)?;
        Ok(UdpSocket { io: Async::new(s)? })
    }

    /// Sets the default peer for `send`/`recv`, and filters incoming datagrams to it.
    pub fn connect(&self, addr: impl StdToSocketAddrs) -> io::Result<()> {
        each_addr(addr, |a| self.io.get_ref().connect(a))
    }

    /// Sends a datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.write_with(|s| s.send(buf)).await
    }

    /// Receives a datagram from the connected peer (`#[track_caller]`, as `accept`).
    #[track_caller]
    pub fn recv<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        at(Location::caller(), self.io.read_with(|s| s.recv(buf)))
    }

    /// Sends a datagram to `target`.
    pub async fn send_to(&self, buf: &[u8], target: SocketAddr) -> io::Result<usize> {
        self.io.write_with(|s| s.send_to(buf, target)).await
    }

    /// Receives a datagram and its sender.
    #[track_caller]
    pub fn recv_from<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + 'a {
        at(Location::caller(), self.io.read_with(|s| s.recv_from(buf)))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }
}

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

stream_io!(UnixStream, |s| s.io, |s: &mio::net::UnixStream| s
    .shutdown(Shutdown::Write));
stream_io!(&UnixStream, |s| s.io, |s: &mio::net::UnixStream| s
    .shutdown(Shutdown::Write));

//! Sockets as futures: TCP, UDP and Unix-domain, on the loop running on this thread.
//!
//! ```
//! use futures::{AsyncReadExt, AsyncWriteExt};
//! use solo::net::{TcpListener, TcpSocket, TcpStream};
//!
//! solo::run(async {
//!     let listener = TcpListener::bind("127.0.0.1:0")?;
//!     let addr = listener.local_addr()?;
//!     let server = solo::Handle::current().spawn(async move {
//!         let (mut conn, _peer) = listener.accept().await?;
//!         // `TcpStream::split`: with `AsyncReadExt` in scope, `conn.split()` is that trait's.
//!         let (mut r, mut w) = TcpStream::split(&mut conn);
//!         futures::io::copy(&mut r, &mut w).await // echo until the client closes
//!     });
//!     // A builder for the options a socket needs before it connects.
//!     let socket = TcpSocket::new_v4()?;
//!     socket.set_nodelay(true)?;
//!     let mut client = socket.connect(addr).await?;
//!     client.write_all(b"ping").await?;
//!     client.close().await?; // shuts down the write side: the echo loop ends
//!     let mut back = Vec::new();
//!     client.read_to_end(&mut back).await?;
//!     assert_eq!(back, b"ping");
//!     assert_eq!(server.await.unwrap()?, 4);
//!     Ok::<_, std::io::Error>(())
//! })
//! .unwrap()
//! .unwrap();
//! ```
//!
//! Each type is an [`Async`] around a mio socket: [`TcpListener`], [`TcpStream`],
//! [`TcpSocket`] (a builder for options set before `bind`, `listen` or `connect`, on socket2),
//! [`UdpSocket`], [`UnixListener`], [`UnixStream`], [`UnixDatagram`]. Streams implement
//! futures-io's `AsyncRead` and `AsyncWrite` (vectored too), so `futures::io` combinators and
//! codecs work on them. A stream splits into halves two ways: borrowed, with `split` (or
//! directly: `&TcpStream` is itself `AsyncRead + AsyncWrite`), or owned, with `into_split`,
//! halves that can move into different tasks and [`reunite`](OwnedReadHalf::reunite).
//!
//! Constructors register with the loop running on this thread; outside one they return an
//! error that names the call (`TcpListener::bind called outside a running solo event loop`),
//! and they check that before they touch the system: no socket file is left behind, no SYN is
//! sent. A socket stays tied to the loop it was made on: once that loop is dropped, its
//! operations return errors (never hang); `into_std` hands the socket to other code.
//!
//! # Names and the loop
//!
//! Resolving a host name (`"example.com:80"`) can take seconds, so the `async` functions,
//! [`TcpStream::connect`] and [`lookup_host`], take this module's [`ToSocketAddrs`]: IP
//! addresses are used at once and names are resolved on the loop's executor
//! ([`run_in_executor`](crate::Handle::run_in_executor)), never on the loop. The synchronous
//! ones (`bind`, [`UdpSocket::connect`]) take std's `ToSocketAddrs` and resolve on the calling
//! thread, as std does: give them IP addresses, or resolve first with [`lookup_host`].

use std::io;
use std::net::ToSocketAddrs as StdToSocketAddrs;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, RawFd};

use crate::{Async, Handle};

mod incoming;

pub use incoming::{Incoming, Listener, ACCEPT_BACKOFF_MAX, ACCEPT_BACKOFF_MIN};

/// The loop running on this thread, or the error that names `call`. Constructors ask first,
/// before they create, bind or connect anything.
fn current(call: &'static str) -> io::Result<Handle> {
    Handle::try_current().ok_or_else(|| crate::error::outside_loop(call))
}

/// Registers `io` with the loop running on this thread; outside one, the error names `call`.
fn register<T: AsRawFd>(io: T, call: &'static str) -> io::Result<Async<T>> {
    Async::with_handle_for(io, &current(call)?, call)
}

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
    let handle = current("solo::net::lookup_host")?;
    let addrs = handle.run_in_executor(resolve).await.map_err(|e| {
        const CALL: &str = "solo::net::lookup_host";
        if e.is_cancelled() {
            // The loop's own pool drops jobs unrun only once it is shut down.
            crate::error::loop_closed(CALL)
        } else {
            let message = e.to_string();
            let message = message.strip_prefix("task panicked: ").unwrap_or(&message);
            crate::Error::JobPanicked {
                call: CALL,
                message: message.to_string(),
            }
            .into()
        }
    })??;
    non_empty(addrs)
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

/// hyper reads straight into its uninitialized buffers through these streams' `Async`.
macro_rules! uninit_read {
    ($($t:ty),*) => {$(
        #[cfg(feature = "hyper")]
        // SAFETY: `Async::poll_read_uninit` reads with read(2) into `buf` and returns the count
        // the kernel wrote, never more than `buf.len()`: those bytes are initialized.
        unsafe impl crate::hyper::UninitRead for $t {
            fn poll_read_uninit(
                &self,
                cx: &mut std::task::Context<'_>,
                buf: &mut [std::mem::MaybeUninit<u8>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                self.io.poll_read_uninit(cx, buf)
            }
        }
    )*};
}

/// A read or write of `call` (`"TcpStream::poll_read"`) that failed because the socket's loop
/// is gone names the user's call, not the `Async` inside. Only the error path pays.
#[inline(always)]
pub(crate) fn named<T>(
    p: std::task::Poll<io::Result<T>>,
    call: &'static str,
) -> std::task::Poll<io::Result<T>> {
    match p {
        std::task::Poll::Ready(Err(e)) => std::task::Poll::Ready(Err(rename(e, call))),
        p => p,
    }
}

#[cold]
#[inline(never)]
fn rename(e: io::Error, call: &'static str) -> io::Error {
    match crate::Error::of(&e) {
        Some(crate::Error::LoopClosed { .. }) => crate::error::loop_closed(call),
        _ => e,
    }
}

/// Implements futures-io traits for a stream type `$t` (named `$name` in errors) whose `Async`
/// is reached by `$io`.
macro_rules! stream_io {
    ($t:ty, $name:literal, |$s:ident| $io:expr, $shutdown:expr) => {
        impl futures_io::AsyncRead for $t {
            fn poll_read(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &mut [u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $s = &*self;
                crate::net::named($io.poll_read_stream(cx, buf), concat!($name, "::poll_read"))
            }

            fn poll_read_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $s = &*self;
                let r = $io.poll_with(crate::reactor::Dir::Read, cx, &mut |io| {
                    let mut io = io;
                    std::io::Read::read_vectored(&mut io, bufs)
                });
                crate::net::named(r, concat!($name, "::poll_read_vectored"))
            }
        }

        impl futures_io::AsyncWrite for $t {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $s = &*self;
                crate::net::named(
                    $io.poll_write_stream(cx, buf),
                    concat!($name, "::poll_write"),
                )
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                let $s = &*self;
                let r = $io.poll_with(crate::reactor::Dir::Write, cx, &mut |io| {
                    let mut io = io;
                    std::io::Write::write_vectored(&mut io, bufs)
                });
                crate::net::named(r, concat!($name, "::poll_write_vectored"))
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::task::Poll::Ready(Ok(()))
            }

            fn poll_close(
                self: std::pin::Pin<&mut Self>,
                _cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                let $s = &*self;
                let shutdown: fn(&_) -> std::io::Result<()> = $shutdown;
                std::task::Poll::Ready(match shutdown($io.get_ref()) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotConnected => Ok(()),
                    r => r,
                })
            }
        }
    };
}

/// `AsRawFd` and `AsFd` for socket types whose `Async` is their field `io`.
macro_rules! as_fd {
    ($($t:ty),*) => {$(
        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.io.as_raw_fd()
            }
        }

        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.io.as_fd()
            }
        }
    )*};
}

// After the macros: the modules below use them.
mod socket;
mod split;
mod tcp;
mod udp;
mod unix;
mod unix_datagram;

pub use socket::TcpSocket;
pub use split::{OwnedReadHalf, OwnedWriteHalf, ReadHalf, ReuniteError, WriteHalf};
pub use tcp::{TcpListener, TcpReadHalf, TcpStream, TcpWriteHalf};
pub use udp::UdpSocket;
pub use unix::{UnixListener, UnixStream};
pub use unix_datagram::UnixDatagram;

//! Unix-domain datagrams: [`UnixDatagram`].

use std::future::Future;
use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::panic::Location;
use std::path::Path;

use super::current;
use super::unix::check_path;
use crate::await_point::at;
use crate::Async;

/// A Unix-domain datagram socket: messages keep their boundaries, and within one host they are
/// reliable and ordered.
///
/// ```
/// let dir = std::env::temp_dir().join(format!("solo-doc-dgram-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let (server_path, client_path) = (dir.join("server"), dir.join("client"));
/// solo::run(async {
///     let server = solo::net::UnixDatagram::bind(&server_path).unwrap();
///     let client = solo::net::UnixDatagram::bind(&client_path).unwrap();
///     client.send_to(b"ping", &server_path).await.unwrap();
///     let mut buf = [0; 16];
///     let (n, from) = server.recv_from(&mut buf).await.unwrap();
///     assert_eq!(&buf[..n], b"ping");
///     // The sender is bound, so it can be answered.
///     server.send_to(b"pong", from.as_pathname().unwrap()).await.unwrap();
///     let n = client.recv(&mut buf).await.unwrap();
///     assert_eq!(&buf[..n], b"pong");
/// }).unwrap();
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct UnixDatagram {
    io: Async<mio::net::UnixDatagram>,
}

impl UnixDatagram {
    fn register(s: mio::net::UnixDatagram, h: &crate::Handle) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram {
            io: Async::with_handle(s, h)?,
        })
    }

    /// Binds to a filesystem path. An error outside a running loop (and then no socket file is
    /// created), if the path exists, or if it is longer than `sockaddr_un` holds.
    pub fn bind(path: impl AsRef<Path>) -> io::Result<UnixDatagram> {
        let h = current("UnixDatagram::bind")?;
        check_path(path.as_ref())?;
        UnixDatagram::register(mio::net::UnixDatagram::bind(path)?, &h)
    }

    /// A socket bound to no path: it can send (with [`send_to`](UnixDatagram::send_to), or
    /// after [`connect`](UnixDatagram::connect)) but nobody can answer it.
    pub fn unbound() -> io::Result<UnixDatagram> {
        let h = current("UnixDatagram::unbound")?;
        UnixDatagram::register(mio::net::UnixDatagram::unbound()?, &h)
    }

    /// A pair of sockets connected to each other.
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let h = current("UnixDatagram::pair")?;
        let (a, b) = mio::net::UnixDatagram::pair()?;
        Ok((
            UnixDatagram::register(a, &h)?,
            UnixDatagram::register(b, &h)?,
        ))
    }

    /// Wraps a std socket (switched to non-blocking mode).
    pub fn from_std(s: std::os::unix::net::UnixDatagram) -> io::Result<UnixDatagram> {
        let h = current("UnixDatagram::from_std")?;
        s.set_nonblocking(true)?;
        UnixDatagram::register(mio::net::UnixDatagram::from_std(s), &h)
    }

    /// Deregisters from the loop and returns the std socket, still in non-blocking mode. As
    /// [`TcpStream::into_std`](super::TcpStream::into_std): nothing of this socket can still be
    /// waiting.
    pub fn into_std(self) -> io::Result<std::os::unix::net::UnixDatagram> {
        Ok(self.io.into_inner()?.into())
    }

    /// Sets the default peer for [`send`](UnixDatagram::send)/[`recv`](UnixDatagram::recv), and
    /// receives from it only. An error if nobody is bound at `path` (`NotFound`, or
    /// `ConnectionRefused` for a file that is no socket in use).
    pub fn connect(&self, path: impl AsRef<Path>) -> io::Result<()> {
        check_path(path.as_ref())?;
        self.io.get_ref().connect(path)
    }

    /// Sends a datagram to the connected peer.
    pub async fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.io.write_with(|s| s.send(buf)).await
    }

    /// Receives a datagram (`#[track_caller]`, as `accept`); a datagram longer than `buf` is
    /// cut to its length.
    #[track_caller]
    pub fn recv<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        at(Location::caller(), self.io.read_with(|s| s.recv(buf)))
    }

    /// Sends a datagram to the socket bound at `path`. An error if nobody is bound there
    /// (`NotFound` without a file, `ConnectionRefused` with one that no socket uses).
    pub async fn send_to(&self, buf: &[u8], path: impl AsRef<Path>) -> io::Result<usize> {
        let path = path.as_ref();
        check_path(path)?;
        self.io.write_with(|s| s.send_to(buf, path)).await
    }

    /// Receives a datagram and its sender's address (unnamed for an unbound sender).
    #[track_caller]
    pub fn recv_from<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + 'a {
        at(Location::caller(), self.io.read_with(|s| s.recv_from(buf)))
    }

    /// The bound address (unnamed for an unbound socket).
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer's address.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// Shuts down the read, write, or both directions: after `Shutdown::Write`, sends fail;
    /// after `Shutdown::Read`, receives return 0 at once.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.io.get_ref().shutdown(how)
    }

    /// The pending socket error (`SO_ERROR`), if any, clearing it.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }
}

as_fd!(UnixDatagram);

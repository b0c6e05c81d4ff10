//! UDP: [`UdpSocket`].

use std::future::Future;
use std::io;
use std::net::ToSocketAddrs as StdToSocketAddrs;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::panic::Location;

use super::{current, each_addr};
use crate::await_point::at;
use crate::Async;

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
    /// Binds to `addr` (the first address that works). An error outside a running loop.
    pub fn bind(addr: impl StdToSocketAddrs) -> io::Result<UdpSocket> {
        let h = current("UdpSocket::bind")?;
        let s = each_addr(addr, mio::net::UdpSocket::bind)?;
        Ok(UdpSocket {
            io: Async::with_handle(s, &h)?,
        })
    }

    /// Wraps a bound std socket (switched to non-blocking mode).
    pub fn from_std(s: std::net::UdpSocket) -> io::Result<UdpSocket> {
        let h = current("UdpSocket::from_std")?;
        s.set_nonblocking(true)?;
        Ok(UdpSocket {
            io: Async::with_handle(mio::net::UdpSocket::from_std(s), &h)?,
        })
    }

    /// Deregisters from the loop and returns the std socket, still in non-blocking mode;
    /// datagrams not yet received stay in the socket. As [`TcpStream::into_std`]: nothing of
    /// this socket can still be waiting.
    ///
    /// [`TcpStream::into_std`]: super::TcpStream::into_std
    pub fn into_std(self) -> io::Result<std::net::UdpSocket> {
        Ok(self.io.into_inner()?.into())
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

    /// Like [`recv`](UdpSocket::recv), leaving the datagram in the socket for the next receive.
    #[track_caller]
    pub fn peek<'a>(&'a self, buf: &'a mut [u8]) -> impl Future<Output = io::Result<usize>> + 'a {
        at(Location::caller(), self.io.read_with(|s| s.peek(buf)))
    }

    /// Like [`recv_from`](UdpSocket::recv_from), leaving the datagram in the socket for the
    /// next receive.
    #[track_caller]
    pub fn peek_from<'a>(
        &'a self,
        buf: &'a mut [u8],
    ) -> impl Future<Output = io::Result<(usize, SocketAddr)>> + 'a {
        at(Location::caller(), self.io.read_with(|s| s.peek_from(buf)))
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().local_addr()
    }

    /// The connected peer.
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.io.get_ref().peer_addr()
    }

    /// The pending socket error (`SO_ERROR`), if any, clearing it: an ICMP "port
    /// unreachable" for an earlier datagram to a connected peer shows up here, or as the error
    /// of the next `recv`.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        self.io.get_ref().take_error()
    }

    /// Sets `IP_TTL`, the time-to-live of outgoing packets.
    pub fn set_ttl(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_ttl(ttl)
    }

    /// `IP_TTL`.
    pub fn ttl(&self) -> io::Result<u32> {
        self.io.get_ref().ttl()
    }

    /// Sets `SO_BROADCAST`: whether datagrams may be sent to a broadcast address.
    pub fn set_broadcast(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_broadcast(on)
    }

    /// `SO_BROADCAST`.
    pub fn broadcast(&self) -> io::Result<bool> {
        self.io.get_ref().broadcast()
    }

    /// Joins the IPv4 multicast group `group` on the interface with address `interface`
    /// (`Ipv4Addr::UNSPECIFIED`: the system's choice).
    pub fn join_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().join_multicast_v4(&group, &interface)
    }

    /// Leaves an IPv4 multicast group joined with [`join_multicast_v4`](Self::join_multicast_v4).
    pub fn leave_multicast_v4(&self, group: Ipv4Addr, interface: Ipv4Addr) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v4(&group, &interface)
    }

    /// Joins the IPv6 multicast group `group` on the interface with index `interface` (0: the
    /// system's choice).
    pub fn join_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().join_multicast_v6(group, interface)
    }

    /// Leaves an IPv6 multicast group joined with [`join_multicast_v6`](Self::join_multicast_v6).
    pub fn leave_multicast_v6(&self, group: &Ipv6Addr, interface: u32) -> io::Result<()> {
        self.io.get_ref().leave_multicast_v6(group, interface)
    }

    /// Sets `IP_MULTICAST_LOOP`: whether this host receives the IPv4 multicast datagrams it
    /// sends.
    pub fn set_multicast_loop_v4(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v4(on)
    }

    /// `IP_MULTICAST_LOOP`.
    pub fn multicast_loop_v4(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v4()
    }

    /// Sets `IP_MULTICAST_TTL`, the time-to-live of outgoing IPv4 multicast datagrams (1, the
    /// default, keeps them on the local network).
    pub fn set_multicast_ttl_v4(&self, ttl: u32) -> io::Result<()> {
        self.io.get_ref().set_multicast_ttl_v4(ttl)
    }

    /// `IP_MULTICAST_TTL`.
    pub fn multicast_ttl_v4(&self) -> io::Result<u32> {
        self.io.get_ref().multicast_ttl_v4()
    }

    /// Sets `IPV6_MULTICAST_LOOP`, as [`set_multicast_loop_v4`](Self::set_multicast_loop_v4)
    /// for IPv6.
    pub fn set_multicast_loop_v6(&self, on: bool) -> io::Result<()> {
        self.io.get_ref().set_multicast_loop_v6(on)
    }

    /// `IPV6_MULTICAST_LOOP`.
    pub fn multicast_loop_v6(&self) -> io::Result<bool> {
        self.io.get_ref().multicast_loop_v6()
    }
}

as_fd!(UdpSocket);

//! The complete net types on real sockets: loopback TCP and UDP, Unix paths in a temp dir.
//! Halves and `reunite`, `UnixDatagram`, `TcpSocket`, options, `into_std`/`from_std`, the bad
//! inputs of each, and the streams (`Interval`, `Incoming`, `Signal`).

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use solo::net::{
    TcpListener, TcpSocket, TcpStream, UdpSocket, UnixDatagram, UnixListener, UnixStream,
};
use solo::{EventLoop, Handle};

mod common;

/// A fresh directory under the system's temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(test: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("solo-nt-{}-{test}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A port nobody listens on (bound by std and closed at once).
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// A path longer than `sockaddr_un` holds (108 bytes on Linux).
fn long_path(dir: &TempDir) -> PathBuf {
    dir.path(&"x".repeat(200))
}

fn assert_path_too_long(r: std::io::Result<impl std::fmt::Debug>) {
    let e = r.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
    assert!(e.to_string().contains("longer than the 107"), "{e}");
}

// ---- halves ----

#[test]
fn tcp_borrowed_halves_read_and_write_at_once() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (l, addr) = common::local_listener();
        let server = Handle::current().spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            // `TcpStream::split`, not `s.split()`: with `AsyncReadExt` in scope, that is the trait's
            // split, which takes the stream.
            let (mut r, mut w) = TcpStream::split(&mut s);
            assert_eq!(r.stream().local_addr().unwrap(), addr);
            let n = futures::io::copy(&mut r, &mut w).await.unwrap();
            w.close().await.unwrap();
            n
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
        let (mut r, mut w) = TcpStream::split(&mut c);
        assert_eq!(w.stream().peer_addr().unwrap(), addr);
        // Larger than both socket buffers: only reading while writing gets it through.
        let writer = async {
            w.write_all(&big).await.unwrap();
            w.close().await.unwrap();
        };
        let reader = async {
            let mut back = Vec::new();
            r.read_to_end(&mut back).await.unwrap();
            back
        };
        let ((), back) = futures::join!(writer, reader);
        assert!(back == big);
        assert_eq!(server.await.unwrap(), big.len() as u64);
    })
    .unwrap();
}

#[test]
fn owned_halves_reunite_and_halves_of_two_streams_do_not() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (l, addr) = common::local_listener();
        let a = TcpStream::connect(addr).await.unwrap();
        let (mut a_peer, _) = l.accept().await.unwrap();
        let b = TcpStream::connect(addr).await.unwrap();
        let (_b_peer, _) = l.accept().await.unwrap();
        let a_local = a.local_addr().unwrap();
        let (ar, aw) = a.into_split();
        let (br, bw) = b.into_split();

        let err = ar.reunite(bw).unwrap_err();
        assert_eq!(
            err.to_string(),
            "tried to reunite the halves of two different streams"
        );
        let boxed: Box<dyn std::error::Error> = Box::new(err);
        let solo::net::ReuniteError(ar, bw) = *boxed
            .downcast::<solo::net::ReuniteError<TcpStream>>()
            .unwrap();
        // Both halves came back intact: the right pairs reunite (from either side).
        let mut a = ar.reunite(aw).unwrap();
        let b = bw.reunite(br).unwrap();
        assert_eq!(a.local_addr().unwrap(), a_local);
        assert_ne!(b.local_addr().unwrap(), a_local);
        a.write_all(b"whole again").await.unwrap();
        let mut buf = [0u8; 11];
        a_peer.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"whole again");
    })
    .unwrap();
}

#[test]
fn unix_stream_addresses_halves_and_std_round_trip() {
    let _watchdog = common::watchdog!();
    let dir = TempDir::new("unix_stream");
    let path = dir.path("sock");
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let l = UnixListener::bind(&path).unwrap();
        assert_eq!(l.local_addr().unwrap().as_pathname(), Some(path.as_path()));
        let c = UnixStream::connect(&path).await.unwrap();
        let s = l.accept().await.unwrap();
        assert_eq!(c.peer_addr().unwrap().as_pathname(), Some(path.as_path()));
        assert!(c.local_addr().unwrap().is_unnamed());
        assert_eq!(s.local_addr().unwrap().as_pathname(), Some(path.as_path()));
        assert!(s.peer_addr().unwrap().is_unnamed());

        // Owned halves in two tasks: the reader echoes what the writer of the peer sends.
        let (mut r, mut w) = c.into_split();
        let h = Handle::current();
        let writer = h.spawn(async move {
            for i in 0..50u8 {
                w.write_all(&[i]).await.unwrap();
            }
            w
        });
        let reader = h.spawn(async move {
            let mut got = vec![0u8; 50];
            r.read_exact(&mut got).await.unwrap();
            (r, got)
        });
        let mut s = s;
        let mut got = vec![0u8; 50];
        s.read_exact(&mut got).await.unwrap();
        s.write_all(&got).await.unwrap();
        let w = writer.await.unwrap();
        let (r, echoed) = reader.await.unwrap();
        assert_eq!(echoed, (0..50u8).collect::<Vec<_>>());
        let c = r.reunite(w).unwrap();

        // Out to std: non-blocking still, and unread bytes stay in the socket.
        s.write_all(b"left for std").await.unwrap();
        let mut std_c = c.into_std().unwrap();
        let mut buf = [0u8; 12];
        std_c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"left for std");
        assert_eq!(
            std_c.read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
        // And back.
        let mut c = UnixStream::from_std(std_c).unwrap();
        s.write_all(b"back").await.unwrap();
        let mut buf = [0u8; 4];
        c.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"back");

        // Borrowed halves of a Unix stream.
        let (mut r, mut w) = UnixStream::split(&mut c);
        w.write_all(b"ping").await.unwrap();
        s.read_exact(&mut buf).await.unwrap();
        s.write_all(&buf).await.unwrap();
        r.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        w.close().await.unwrap(); // shuts down the write side only
        assert_eq!(s.read(&mut buf).await.unwrap(), 0);
        assert!(c.take_error().unwrap().is_none());

        // A blocking std listener wrapped, and out again.
        let std_l = l.into_std().unwrap();
        let l = UnixListener::from_std(std_l).unwrap();
        let _c2 = UnixStream::connect(&path).await.unwrap();
        let _s2 = l.accept().await.unwrap();
    })
    .unwrap();
}

// ---- UnixDatagram ----

#[test]
fn unix_datagram_bound_unbound_connected_and_paired() {
    let _watchdog = common::watchdog!();
    let dir = TempDir::new("dgram");
    let (sp, cp) = (dir.path("server"), dir.path("client"));
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let server = UnixDatagram::bind(&sp).unwrap();
        assert_eq!(
            server.local_addr().unwrap().as_pathname(),
            Some(sp.as_path())
        );
        let client = UnixDatagram::bind(&cp).unwrap();
        let mut buf = [0u8; 64];

        // A waiting receiver is woken by a datagram sent later.
        let h = Handle::current();
        let cp2 = cp.clone();
        let waiter = h.spawn(async move {
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).await.unwrap();
            assert_eq!(from.as_pathname(), Some(cp2.as_path()));
            (server, buf[..n].to_vec())
        });
        solo::yield_now().await;
        assert_eq!(client.send_to(b"one", &sp).await.unwrap(), 3);
        let (server, got) = waiter.await.unwrap();
        assert_eq!(got, b"one");
        // Boundaries are kept: two sends, two receives.
        client.send_to(b"two", &sp).await.unwrap();
        client.send_to(b"three", &sp).await.unwrap();
        assert_eq!(server.recv(&mut buf).await.unwrap(), 3);
        assert_eq!(server.recv(&mut buf).await.unwrap(), 5);

        // An unbound sender is unnamed, and cannot be answered.
        let anon = UnixDatagram::unbound().unwrap();
        assert!(anon.local_addr().unwrap().is_unnamed());
        anon.send_to(b"anon", &sp).await.unwrap();
        let (n, from) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from.is_unnamed()), (&b"anon"[..], true));

        // Connected: send/recv, and datagrams from others are filtered out.
        client.connect(&sp).unwrap();
        assert_eq!(
            client.peer_addr().unwrap().as_pathname(),
            Some(sp.as_path())
        );
        client.send(b"connected").await.unwrap();
        let (n, _) = server.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"connected");
        anon.send_to(b"ignored", &cp).await.unwrap_err(); // cp only hears sp now
        server.send_to(b"reply", &cp).await.unwrap();
        assert_eq!(client.recv(&mut buf).await.unwrap(), 5);

        // A pair, then shutdown: after Write, sends fail; the peer reads on.
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(b"x").await.unwrap();
        assert_eq!(b.recv(&mut buf).await.unwrap(), 1);
        a.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            a.send(b"y").await.unwrap_err().kind(),
            ErrorKind::BrokenPipe
        );
        assert!(a.take_error().unwrap().is_none());

        // std round trip keeps queued datagrams.
        b.send(b"queued").await.unwrap();
        let mut std_a = a.into_std().unwrap();
        let n = std_a.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"queued");
        let _ = &mut std_a;
        let a = UnixDatagram::from_std(std_a).unwrap();
        b.send(b"again").await.unwrap();
        assert_eq!(a.recv(&mut buf).await.unwrap(), 5);
    })
    .unwrap();
}

#[test]
fn unix_datagram_to_a_path_nobody_binds() {
    let _watchdog = common::watchdog!();
    let dir = TempDir::new("dgram_nobody");
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let s = UnixDatagram::unbound().unwrap();
        let missing = dir.path("missing");
        let e = s.send_to(b"x", &missing).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        assert_eq!(s.connect(&missing).unwrap_err().kind(), ErrorKind::NotFound);
        // A file that is not a socket.
        let file = dir.path("file");
        std::fs::write(&file, b"").unwrap();
        let e = s.send_to(b"x", &file).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        // The file of a socket that is gone: refused, and binding there again is AddrInUse.
        let gone = dir.path("gone");
        drop(UnixDatagram::bind(&gone).unwrap());
        let e = s.send_to(b"x", &gone).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        assert_eq!(
            UnixDatagram::bind(&gone).unwrap_err().kind(),
            ErrorKind::AddrInUse
        );
        // The same for streams.
        let e = UnixStream::connect(&missing).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
        let e = UnixStream::connect(&gone).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        // The socket is still usable after all that.
        let (a, b) = UnixDatagram::pair().unwrap();
        a.send(b"fine").await.unwrap();
        let mut buf = [0u8; 4];
        assert_eq!(b.recv(&mut buf).await.unwrap(), 4);
    })
    .unwrap();
}

#[test]
fn a_path_too_long_for_sockaddr_un_is_a_clear_error() {
    let _watchdog = common::watchdog!();
    let dir = TempDir::new("long");
    let long = long_path(&dir);
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        assert_path_too_long(UnixListener::bind(&long));
        assert_path_too_long(UnixStream::connect(&long).await);
        assert_path_too_long(UnixDatagram::bind(&long));
        let s = UnixDatagram::unbound().unwrap();
        assert_path_too_long(s.connect(&long));
        assert_path_too_long(s.send_to(b"x", &long).await);
        // 107 bytes is the limit: a path of exactly that length binds, one more does not.
        let room = 107 - dir.0.as_os_str().len() - 1;
        let exact = dir.path(&"y".repeat(room));
        assert_eq!(exact.as_os_str().len(), 107);
        UnixDatagram::bind(&exact).unwrap();
        assert_path_too_long(UnixDatagram::bind(dir.path(&"y".repeat(room + 1))));
    })
    .unwrap();
    assert!(!long.exists());
}

// ---- TcpSocket ----

#[test]
fn tcp_socket_options_listen_and_connect() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let s = TcpSocket::new_v4().unwrap();
        assert!(!s.reuseaddr().unwrap());
        s.set_reuseaddr(true).unwrap();
        assert!(s.reuseaddr().unwrap());
        s.set_reuseport(true).unwrap();
        assert!(s.reuseport().unwrap());
        s.set_nodelay(true).unwrap();
        assert!(s.nodelay().unwrap());
        s.set_keepalive(true).unwrap();
        assert!(s.keepalive().unwrap());
        s.set_linger(Some(Duration::ZERO)).unwrap();
        assert_eq!(s.linger().unwrap(), Some(Duration::ZERO));
        s.set_linger(None).unwrap();
        s.set_send_buffer_size(64 * 1024).unwrap();
        s.set_recv_buffer_size(64 * 1024).unwrap();
        // Linux doubles what it is given (and caps it at the system maximum).
        assert!(s.send_buffer_size().unwrap() >= 64 * 1024);
        assert!(s.recv_buffer_size().unwrap() >= 64 * 1024);
        assert_eq!(s.local_addr().unwrap().port(), 0);
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = s.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        let l = s.listen(16).unwrap();
        assert_eq!(l.local_addr().unwrap(), addr);

        let c = TcpSocket::new_v4().unwrap();
        c.set_nodelay(true).unwrap();
        let mut c = c.connect(addr).await.unwrap();
        assert!(c.nodelay().unwrap());
        let (mut s, peer) = l.accept().await.unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        c.write_all(b"via TcpSocket").await.unwrap();
        let mut buf = [0u8; 13];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"via TcpSocket");

        // listen without bind: the system picks a port.
        let l2 = TcpSocket::new_v4().unwrap().listen(8).unwrap();
        assert_ne!(l2.local_addr().unwrap().port(), 0);
    })
    .unwrap();
}

#[test]
fn tcp_socket_v6_when_the_host_has_it() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let s = TcpSocket::new_v6().unwrap();
        if let Err(e) = s.bind("[::1]:0".parse().unwrap()) {
            // No IPv6 loopback in this container: the error is the system's, and clear.
            assert_eq!(e.kind(), ErrorKind::AddrNotAvailable, "{e}");
            return;
        }
        let addr = s.local_addr().unwrap();
        assert!(addr.is_ipv6());
        let l = s.listen(8).unwrap();
        let c = TcpSocket::new_v6().unwrap().connect(addr).await.unwrap();
        let (_s, peer) = l.accept().await.unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
    })
    .unwrap();
}

#[test]
fn connecting_to_a_closed_port_is_refused_not_hung() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let addr = closed_port();
        let e = TcpSocket::new_v4()
            .unwrap()
            .connect(addr)
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        let e = TcpStream::connect(addr).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");
        // The loop is fine afterwards.
        let (l, addr) = common::local_listener();
        let _c = TcpSocket::new_v4().unwrap().connect(addr).await.unwrap();
        let _s = l.accept().await.unwrap();
    })
    .unwrap();
}

#[test]
fn binding_an_address_in_use_with_and_without_reuse() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        // A listener that allows others on its port...
        let first = TcpSocket::new_v4().unwrap();
        first.set_reuseport(true).unwrap();
        first.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = first.local_addr().unwrap();
        let first = first.listen(16).unwrap();

        // ...refuses a socket without SO_REUSEPORT, with or without SO_REUSEADDR.
        let plain = TcpSocket::new_v4().unwrap();
        assert_eq!(plain.bind(addr).unwrap_err().kind(), ErrorKind::AddrInUse);
        let reuseaddr = TcpSocket::new_v4().unwrap();
        reuseaddr.set_reuseaddr(true).unwrap();
        assert_eq!(
            reuseaddr.bind(addr).unwrap_err().kind(),
            ErrorKind::AddrInUse
        );
        let e = TcpListener::bind(addr).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddrInUse, "{e}");

        // ...and lets one with SO_REUSEPORT listen too, while the first still listens.
        let second = TcpSocket::new_v4().unwrap();
        second.set_reuseport(true).unwrap();
        second.bind(addr).unwrap();
        let second = second.listen(16).unwrap();
        assert_eq!(second.local_addr().unwrap(), addr);
        assert_eq!(first.local_addr().unwrap(), addr);
        // With the first gone, the port's connections go to the second.
        drop(first);
        let mut c = TcpStream::connect(addr).await.unwrap();
        let (mut s, peer) = second.accept().await.unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        c.write_all(b"!").await.unwrap();
        let mut buf = [0u8; 1];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"!");
    })
    .unwrap();
}

#[test]
fn tcp_socket_bad_inputs() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        // Bound twice.
        let s = TcpSocket::new_v4().unwrap();
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let e = s.bind("127.0.0.1:0".parse().unwrap()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        // The other family, for bind and for connect.
        let s = TcpSocket::new_v4().unwrap();
        assert!(s.bind("[::1]:0".parse().unwrap()).is_err());
        let v6: SocketAddr = "[::1]:9".parse().unwrap();
        assert!(TcpSocket::new_v4().unwrap().connect(v6).await.is_err());
        // A listener's socket cannot connect, a connected one cannot listen: `listen` and
        // `connect` take the socket (a compile_fail doctest on TcpSocket shows the second
        // `listen` rejected). A port below 1024 needs privileges this test may have, so only
        // the kinds that do not depend on it are asserted.
        let zero_port: SocketAddr = "0.0.0.0:0".parse().unwrap();
        let e = TcpSocket::new_v4()
            .unwrap()
            .connect(zero_port)
            .await
            .unwrap_err();
        assert!(
            matches!(
                e.kind(),
                ErrorKind::ConnectionRefused | ErrorKind::AddrNotAvailable
            ),
            "{e:?}"
        );
    })
    .unwrap();
}

// ---- options of TcpStream, TcpListener, UdpSocket ----

#[test]
fn tcp_stream_peek_ttl_linger_and_std_round_trip() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (l, addr) = common::local_listener();
        l.set_ttl(42).unwrap();
        assert_eq!(l.ttl().unwrap(), 42);
        let mut c = TcpStream::connect(addr).await.unwrap();
        let (s, _) = l.accept().await.unwrap();

        // A peek waits for data, and leaves it for the read.
        let h = Handle::current();
        let peeker = h.spawn(async move {
            let mut buf = [0u8; 16];
            let n = s.peek(&mut buf).await.unwrap();
            (s, buf[..n].to_vec())
        });
        solo::yield_now().await;
        c.write_all(b"peekaboo").await.unwrap();
        let (mut s, peeked) = peeker.await.unwrap();
        assert_eq!(peeked, b"peekaboo");
        let mut buf = [0u8; 8];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"peekaboo");

        c.set_ttl(7).unwrap();
        assert_eq!(c.ttl().unwrap(), 7);
        assert_eq!(c.linger().unwrap(), None);
        c.set_linger(Some(Duration::ZERO)).unwrap();
        assert_eq!(c.linger().unwrap(), Some(Duration::ZERO));
        assert!(c.take_error().unwrap().is_none());

        // Out to std and back, with bytes in flight.
        s.write_all(b"in flight").await.unwrap();
        let mut std_c = c.into_std().unwrap();
        let mut buf = [0u8; 9];
        std_c.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"in flight");
        std_c.write_all(b"from std").unwrap();
        let mut c = TcpStream::from_std(std_c).unwrap();
        let mut buf = [0u8; 8];
        s.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"from std");
        // Linger zero: dropping resets the connection.
        drop(c.close().await);
        drop(c);
        let mut rest = Vec::new();
        let r = s.read_to_end(&mut rest).await;
        assert!(
            matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset) || r.is_ok(),
            "{r:?}"
        );

        let std_l = l.into_std().unwrap();
        let l = TcpListener::from_std(std_l).unwrap();
        let _c = TcpStream::connect(addr).await.unwrap();
        let _s = l.accept().await.unwrap();
    })
    .unwrap();
}

#[test]
fn udp_peek_ttl_broadcast_multicast_and_std_round_trip() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        let (aa, ba) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        a.send_to(b"first", ba).await.unwrap();
        let mut buf = [0u8; 16];
        let (n, from) = b.peek_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"first"[..], aa));
        // Still there: peeked, not taken.
        let (n, from) = b.recv_from(&mut buf).await.unwrap();
        assert_eq!((&buf[..n], from), (&b"first"[..], aa));
        b.connect(aa).unwrap();
        a.send_to(b"second", ba).await.unwrap();
        assert_eq!(b.peek(&mut buf).await.unwrap(), 6);
        assert_eq!(b.recv(&mut buf).await.unwrap(), 6);
        assert_eq!(&buf[..6], b"second");

        a.set_ttl(9).unwrap();
        assert_eq!(a.ttl().unwrap(), 9);
        assert!(!a.broadcast().unwrap());
        a.set_broadcast(true).unwrap();
        assert!(a.broadcast().unwrap());
        a.set_multicast_loop_v4(false).unwrap();
        assert!(!a.multicast_loop_v4().unwrap());
        a.set_multicast_ttl_v4(3).unwrap();
        assert_eq!(a.multicast_ttl_v4().unwrap(), 3);

        // Multicast membership on the loopback interface; leaving a group not joined is an
        // error.
        let group = Ipv4Addr::new(239, 255, 77, 1);
        let m = UdpSocket::bind("0.0.0.0:0").unwrap();
        m.join_multicast_v4(group, Ipv4Addr::LOCALHOST).unwrap();
        m.leave_multicast_v4(group, Ipv4Addr::LOCALHOST).unwrap();
        let e = m
            .leave_multicast_v4(group, Ipv4Addr::LOCALHOST)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::AddrNotAvailable, "{e}");
        // Joining something that is no multicast group is refused.
        assert!(m
            .join_multicast_v4(Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::LOCALHOST)
            .is_err());

        // An ICMP "port unreachable" for a connected socket is an error, not a hang.
        let dead = {
            let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
            s.local_addr().unwrap()
        };
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.connect(dead).unwrap();
        c.send(b"anyone?").await.unwrap();
        let e = c.recv(&mut buf).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}");

        // std round trip keeps the queued datagram.
        a.send_to(b"queued", ba).await.unwrap();
        let std_b = b.into_std().unwrap();
        let n = std_b.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"queued");
        let b = UdpSocket::from_std(std_b).unwrap();
        a.send_to(b"back", ba).await.unwrap();
        assert_eq!(b.recv(&mut buf).await.unwrap(), 4);
    })
    .unwrap();
}

// ---- into_std, loops gone, no loop ----

/// A waker that counts its wakes; its `Arc`'s count tells how many clones are alive.
struct CountingWaker(AtomicUsize);

impl futures::task::ArcWake for CountingWaker {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// `into_std` takes the socket, so nothing can be waiting on it. What a waiting future leaves
/// behind when it is dropped first (its waker, with the loop) is dropped by `into_std`,
/// unwoken; the std socket is non-blocking and gets the bytes that arrive later.
#[test]
fn into_std_after_a_waiting_future_was_dropped() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (a, mut b) = UnixStream::pair().unwrap();
        let counter = Arc::new(CountingWaker(AtomicUsize::new(0)));
        let waker = futures::task::waker(counter.clone());
        let mut cx = Context::from_waker(&waker);
        let mut buf = [0u8; 8];
        {
            let mut a_ref = &a;
            let mut read = a_ref.read(&mut buf);
            assert!(matches!(
                std::pin::Pin::new(&mut read).poll(&mut cx),
                Poll::Pending
            ));
        }
        drop(waker);
        assert_eq!(Arc::strong_count(&counter), 2, "the loop keeps the waker");
        let mut std_a = a.into_std().unwrap();
        assert_eq!(Arc::strong_count(&counter), 1, "into_std dropped it");
        b.write_all(b"later").await.unwrap();
        for _ in 0..3 {
            solo::yield_now().await;
        }
        assert_eq!(counter.0.load(Ordering::SeqCst), 0, "never woken");
        let n = std_a.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"later");
        assert_eq!(
            std_a.read(&mut buf).unwrap_err().kind(),
            ErrorKind::WouldBlock
        );
    })
    .unwrap();
}

use std::future::Future;

/// A socket outlives its loop: its operations fail at once (never hang), and `into_std` still
/// hands the socket back.
#[test]
fn sockets_whose_loop_is_gone_fail_and_can_still_leave() {
    let _watchdog = common::watchdog!();
    let dir = TempDir::new("gone");
    let path = dir.path("d");
    let el = EventLoop::new().unwrap();
    let (l, c, s, u, d, (pa, pb)) = el
        .run_until_complete(async {
            let (l, addr) = common::local_listener();
            let c = TcpStream::connect(addr).await.unwrap();
            let (s, _) = l.accept().await.unwrap();
            let u = UdpSocket::bind("127.0.0.1:0").unwrap();
            let d = UnixDatagram::bind(&path).unwrap();
            (l, c, s, u, d, UnixStream::pair().unwrap())
        })
        .unwrap();
    drop(el);
    let el2 = EventLoop::new().unwrap();
    el2.run_until_complete(async {
        let mut buf = [0u8; 4];
        assert!(l.accept().await.is_err());
        assert!((&c).write(b"x").await.is_err());
        assert!((&s).read(&mut buf).await.is_err());
        assert!(u.recv_from(&mut buf).await.is_err());
        assert!(d.recv(&mut buf).await.is_err());
        assert!((&pa).read(&mut buf).await.is_err());
        // Addresses and options need no loop.
        assert!(c.peer_addr().is_ok());
        // Out to std and into this loop: it works again.
        let mut pb = UnixStream::from_std(pb.into_std().unwrap()).unwrap();
        let mut pa = pa.into_std().unwrap();
        pa.write_all(b"alive").unwrap();
        let mut buf = [0u8; 5];
        pb.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"alive");
        drop((l, c, s, u, d));
    })
    .unwrap();
}

#[test]
fn every_net_constructor_outside_a_loop_names_the_call() {
    let _watchdog = common::watchdog!();
    let dir = TempDir::new("outside");
    let path = dir.path("sock");
    fn check<T: std::fmt::Debug>(call: &str, r: std::io::Result<T>) {
        let e = r.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{call} called outside a running solo event loop; start one with solo::run or \
                 #[solo::main]"
            )
        );
    }
    check("TcpListener::bind", TcpListener::bind("127.0.0.1:0"));
    check(
        "TcpListener::bind_with_backlog",
        TcpListener::bind_with_backlog("127.0.0.1:0", 8),
    );
    let std_l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_l.local_addr().unwrap();
    check(
        "TcpStream::connect",
        futures::executor::block_on(TcpStream::connect(addr)),
    );
    let std_c = std::net::TcpStream::connect(addr).unwrap();
    check("TcpStream::from_std", TcpStream::from_std(std_c));
    check("TcpListener::from_std", TcpListener::from_std(std_l));
    check("UdpSocket::bind", UdpSocket::bind("127.0.0.1:0"));
    let std_u = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    check("UdpSocket::from_std", UdpSocket::from_std(std_u));
    check("UnixListener::bind", UnixListener::bind(&path));
    assert!(!path.exists(), "no socket file left behind");
    let std_ul = std::os::unix::net::UnixListener::bind(&path).unwrap();
    check(
        "UnixStream::connect",
        futures::executor::block_on(UnixStream::connect(&path)),
    );
    check("UnixListener::from_std", UnixListener::from_std(std_ul));
    check("UnixStream::pair", UnixStream::pair());
    let (sa, _sb) = std::os::unix::net::UnixStream::pair().unwrap();
    check("UnixStream::from_std", UnixStream::from_std(sa));
    let dpath = dir.path("dgram");
    check("UnixDatagram::bind", UnixDatagram::bind(&dpath));
    assert!(!dpath.exists(), "no socket file left behind");
    check("UnixDatagram::unbound", UnixDatagram::unbound());
    check("UnixDatagram::pair", UnixDatagram::pair());
    let (da, _db) = std::os::unix::net::UnixDatagram::pair().unwrap();
    check("UnixDatagram::from_std", UnixDatagram::from_std(da));
    // A TcpSocket needs no loop until it listens or connects.
    let s = TcpSocket::new_v4().unwrap();
    s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    check("TcpSocket::listen", s.listen(8));
    check(
        "TcpSocket::connect",
        futures::executor::block_on(TcpSocket::new_v4().unwrap().connect(closed_port())),
    );
    check(
        "solo::net::lookup_host",
        futures::executor::block_on(solo::net::lookup_host(("localhost", 80))),
    );
}

// ---- streams ----

#[test]
fn interval_incoming_and_signal_are_streams() {
    fn is_stream<S: futures::Stream>(_: &S) {}
    let _watchdog = common::watchdog!();
    let (el, clock) = common::manual();
    el.run_until_complete(async {
        let iv = solo::time::interval(Duration::from_secs(1));
        is_stream(&iv);
        let start = Handle::current().time();
        let ticks: Vec<_> = iv.take(3).collect().await;
        assert_eq!(
            ticks,
            [0, 1, 2].map(|s| start + Duration::from_secs(s)).to_vec()
        );

        let (l, addr) = common::local_listener();
        let mut incoming = l.incoming();
        is_stream(&incoming);
        let c = TcpStream::connect(addr).await.unwrap();
        let (s, peer) = StreamExt::next(&mut incoming).await.unwrap().unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        drop(s);

        // Signal streams (tests/signal_streams.rs drives them with real signals).
        fn stream_type<S: futures::Stream<Item = ()>>() {}
        stream_type::<solo::signal::Signal>();
    })
    .unwrap();
    assert_eq!(clock.elapsed(), Duration::from_secs(2));
}

//! Sockets as futures on real loopback sockets.

use std::io::{Read, Write};
use std::net::Shutdown;
use std::rc::Rc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use solo::net::{TcpListener, TcpStream, UdpSocket, UnixListener, UnixStream};
use solo::{Async, EventLoop, Handle};

mod common;

#[test]
fn tcp_echo_round_trip_with_vectored_writes() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (l, addr) = common::local_listener();
        let server = Handle::current().spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            let mut buf = vec![0u8; 4096];
            loop {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..n]).await.unwrap();
            }
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.set_nodelay(true).unwrap();
        assert!(c.nodelay().unwrap());
        assert_eq!(c.peer_addr().unwrap(), addr);
        let bufs = [
            std::io::IoSlice::new(b"hello "),
            std::io::IoSlice::new(b"world"),
        ];
        let n = c.write_vectored(&bufs).await.unwrap();
        assert_eq!(n, 11);
        let mut got = [0u8; 11];
        c.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"hello world");
        // A large payload, larger than the socket buffers, needs many partial writes.
        let big: Vec<u8> = (0..4_000_000u32).map(|i| i as u8).collect();
        let (mut r, mut w) = (&c, &c);
        let writer = async {
            w.write_all(&big).await.unwrap();
        };
        let reader = async {
            let mut back = vec![0u8; big.len()];
            r.read_exact(&mut back).await.unwrap();
            back
        };
        let (_, back) = futures::join!(writer, reader);
        assert!(back == big);
        c.close().await.unwrap();
        server.await.unwrap();
    })
    .unwrap();
}

#[test]
fn owned_halves_move_into_separate_tasks() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (l, addr) = common::local_listener();
        let h = Handle::current();
        let client = h.spawn(async move {
            let s = TcpStream::connect(addr).await.unwrap();
            let (mut r, mut w) = s.into_split();
            let h = Handle::current();
            let wt = h.spawn(async move {
                for i in 0..100u8 {
                    w.write_all(&[i]).await.unwrap();
                }
                w.close().await.unwrap();
            });
            let mut all = Vec::new();
            r.read_to_end(&mut all).await.unwrap();
            wt.await.unwrap();
            all
        });
        let (mut s, _) = l.accept().await.unwrap();
        let mut got = Vec::new();
        s.read_to_end(&mut got).await.unwrap();
        s.write_all(&got).await.unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let echoed = client.await.unwrap();
        assert_eq!(echoed, (0..100u8).collect::<Vec<_>>());
    })
    .unwrap();
}

#[test]
fn connect_to_a_closed_port_is_an_error() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let r = el
        .run_until_complete(TcpStream::connect(("127.0.0.1", port)))
        .unwrap();
    assert_eq!(r.unwrap_err().kind(), std::io::ErrorKind::ConnectionRefused);
}

#[test]
fn sockets_outside_a_loop_are_an_error_not_a_panic() {
    let e = TcpListener::bind("127.0.0.1:0").unwrap_err();
    assert!(e.to_string().contains("outside a running solo event loop"));
}

#[test]
fn udp_connected_and_unconnected() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let a = UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = UdpSocket::bind("127.0.0.1:0").unwrap();
        a.connect(b.local_addr().unwrap()).unwrap();
        b.connect(a.local_addr().unwrap()).unwrap();
        assert_eq!(a.peer_addr().unwrap(), b.local_addr().unwrap());
        a.send(b"one").await.unwrap();
        let mut buf = [0u8; 16];
        let n = b.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"one");
        let c = UdpSocket::bind("127.0.0.1:0").unwrap();
        c.send_to(b"two", a.local_addr().unwrap()).await.unwrap();
        // a is connected to b, so c's datagram is filtered out; b's gets through.
        b.send(b"three").await.unwrap();
        let n = a.recv(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"three");
    })
    .unwrap();
}

#[test]
fn unix_listener_and_stream() {
    let _watchdog = common::watchdog!();
    let dir = std::env::temp_dir().join(format!("solo-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sock");
    let _ = std::fs::remove_file(&path);
    let el = EventLoop::new().unwrap();
    let p2 = path.clone();
    el.run_until_complete(async move {
        let l = UnixListener::bind(&p2).unwrap();
        let client = Handle::current().spawn(async move {
            let mut s = UnixStream::connect(&p2).await.unwrap();
            s.write_all(b"over unix").await.unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut back = String::new();
            s.read_to_string(&mut back).await.unwrap();
            back
        });
        let mut s = l.accept().await.unwrap();
        let mut got = String::new();
        s.read_to_string(&mut got).await.unwrap();
        s.write_all(got.to_uppercase().as_bytes()).await.unwrap();
        drop(s);
        assert_eq!(client.await.unwrap(), "OVER UNIX");
    })
    .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn async_wraps_any_fd_and_waits_for_readiness() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    el.run_until_complete(async move {
        let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        let a = Async::new(a).unwrap();
        let b = Rc::new(b);
        let b2 = b.clone();
        h.call_later(Duration::from_millis(5), move || {
            (&*b2).write_all(b"late").unwrap();
        });
        a.readable().await.unwrap();
        let mut buf = [0u8; 8];
        let n = a.read_with(|s| (&*s).read(&mut buf)).await.unwrap();
        assert_eq!(&buf[..n], b"late");
        a.writable().await.unwrap();
        let inner = a.into_inner().unwrap();
        drop(inner);
        let mut rest = Vec::new();
        (&*b).read_to_end(&mut rest).unwrap();
        assert!(rest.is_empty());
    })
    .unwrap();
}

fn raise_fd_limit(want: u64) -> u64 {
    // SAFETY: getrlimit/setrlimit with a valid pointer to a local struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        let target = want.min(lim.rlim_max);
        if lim.rlim_cur < target {
            lim.rlim_cur = target;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim);
        lim.rlim_cur
    }
}

/// A listener's backlog holds a burst of connects even before the server accepts any: with
/// std's and mio's backlog of 128 the kernel would drop SYNs and each late client would wait a
/// second for its retry.
#[test]
fn a_burst_of_connects_fits_in_the_listen_backlog() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let l = el
        .run_until_complete(async { TcpListener::bind("127.0.0.1:0") })
        .unwrap()
        .unwrap();
    let addr = l.local_addr().unwrap();
    let clients = std::thread::spawn(move || {
        (0..600)
            .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)))
            .take_while(|c| c.is_ok()) // stop at the first dropped SYN
            .count()
    })
    .join()
    .unwrap();
    assert_eq!(clients, 600, "connects beyond the backlog timed out");
    drop(l);
}

/// Not a test: the client side of the scale test, run by it as a child process (so that each
/// process needs only 10,000 fds). Opens `SOLO_SCALE_N` connections to `SOLO_SCALE_ADDR` and
/// holds them until its standard input closes.
#[test]
#[ignore = "helper process for ten_thousand_idle_connections_and_a_burst_of_a_thousand"]
fn scale_client_helper() {
    let addr: std::net::SocketAddr = std::env::var("SOLO_SCALE_ADDR")
        .expect("run by the scale test")
        .parse()
        .unwrap();
    let n: usize = std::env::var("SOLO_SCALE_N").unwrap().parse().unwrap();
    raise_fd_limit(n as u64 + 200);
    let conns: Vec<_> = (0..n)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(conns);
}

/// 10,000 idle connections held open on one loop (their client ends in a child process), then a
/// burst of 1,000 connects at once from this process, all echoing; bounded in time.
#[test]
fn ten_thousand_idle_connections_and_a_burst_of_a_thousand() {
    let _watchdog = common::watchdog!(Duration::from_secs(300));
    const IDLE: usize = 10_000;
    let limit = raise_fd_limit(25_000);
    assert!(limit >= 12_500, "fd limit {limit} too low for this test");
    let el = EventLoop::new().unwrap();
    let result = el.run_until_complete(solo::time::timeout(Duration::from_secs(120), async move {
        let h = Handle::current();
        let l = Rc::new(TcpListener::bind("127.0.0.1:0").unwrap());
        let addr = l.local_addr().unwrap();
        let held = Rc::new(std::cell::RefCell::new(Vec::new()));
        let (l2, held2) = (l.clone(), held.clone());
        let acceptor = h.spawn(async move {
            loop {
                let (mut s, _) = l2.accept().await.unwrap();
                if held2.borrow().len() < IDLE {
                    held2.borrow_mut().push(s);
                } else {
                    Handle::current().spawn(async move {
                        let mut b = [0u8; 1];
                        s.read_exact(&mut b).await.unwrap();
                        s.write_all(&b).await.unwrap();
                    });
                }
            }
        });
        let mut child = common::rerun("scale_client_helper")
            .arg("--ignored")
            .env("SOLO_SCALE_ADDR", addr.to_string())
            .env("SOLO_SCALE_N", IDLE.to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        while held.borrow().len() < IDLE {
            solo::time::sleep(Duration::from_millis(10)).await;
            assert!(child.try_wait().unwrap().is_none(), "client process died");
        }
        // Burst: 1,000 connects started at once.
        let burst: Vec<_> = (0..1_000u32)
            .map(|i| {
                h.spawn(async move {
                    let mut s = TcpStream::connect(addr).await.unwrap();
                    s.write_all(&[i as u8]).await.unwrap();
                    let mut b = [0u8; 1];
                    s.read_exact(&mut b).await.unwrap();
                    b[0] == i as u8
                })
            })
            .collect();
        for t in burst {
            assert!(t.await.unwrap());
        }
        // The idle ones are all still connected.
        let alive = held
            .borrow()
            .iter()
            .filter(|s| s.peer_addr().is_ok())
            .count();
        acceptor.cancel();
        drop(child.stdin.take()); // lets the client process exit
        child.wait().unwrap();
        alive
    }));
    assert_eq!(result.unwrap(), Ok(IDLE), "finished within the time bound");
}

/// A host name is resolved on the loop's executor, an IP address is not: with the pool's only
/// thread held by a job, a connect to "localhost" waits (and the loop runs on: a connect to
/// 127.0.0.1 and its accept complete meanwhile), and it finishes once the thread is free.
#[test]
fn connect_resolves_host_names_on_the_executor_not_on_the_loop() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::builder().executor_threads(1).build().unwrap();
    el.run_until_complete(async {
        let h = Handle::current();
        let (l, addr) = common::local_listener();
        let port = addr.port();

        let (release, held) = std::sync::mpsc::channel::<()>();
        let (started, pool_busy) = std::sync::mpsc::channel::<()>();
        let hold = h.run_in_executor(move || {
            started.send(()).unwrap();
            held.recv().unwrap();
        });
        pool_busy.recv().unwrap(); // the only pool thread is now taken

        let by_name = h.spawn(TcpStream::connect(("localhost", port)));
        let by_ip = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (_first, _) = l.accept().await.unwrap();
        for _ in 0..10 {
            solo::yield_now().await;
        }
        assert!(
            !by_name.is_finished(),
            "resolution is queued behind the held job"
        );

        release.send(()).unwrap();
        hold.await.unwrap();
        let s = by_name.await.unwrap().unwrap();
        let (_second, _) = l.accept().await.unwrap();
        assert_eq!(s.peer_addr().unwrap(), by_ip.peer_addr().unwrap());
    })
    .unwrap();
}

#[test]
fn lookup_host_takes_ip_addresses_at_once_and_names_on_the_pool() {
    let _watchdog = common::watchdog!();
    // IP addresses need no loop and no thread.
    let direct = futures::executor::block_on(solo::net::lookup_host("127.0.0.1:7"));
    let want: std::net::SocketAddr = "127.0.0.1:7".parse().unwrap();
    assert_eq!(direct.unwrap(), [want]);
    let v4 = std::net::SocketAddrV4::new(std::net::Ipv4Addr::LOCALHOST, 7);
    for got in [
        futures::executor::block_on(solo::net::lookup_host(v4)),
        futures::executor::block_on(solo::net::lookup_host((std::net::Ipv4Addr::LOCALHOST, 7))),
        futures::executor::block_on(solo::net::lookup_host(("127.0.0.1", 7))),
        futures::executor::block_on(solo::net::lookup_host(&[want][..])),
    ] {
        assert_eq!(got.unwrap(), [want]);
    }
    // A name does, and outside a loop that is a clear error, not a panic.
    let err = futures::executor::block_on(solo::net::lookup_host(("localhost", 7))).unwrap_err();
    assert!(
        err.to_string()
            .contains("outside a running solo event loop"),
        "{err}"
    );

    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let addrs = solo::net::lookup_host(String::from("localhost:7"))
            .await
            .unwrap();
        assert!(addrs.iter().all(|a| a.ip().is_loopback() && a.port() == 7));
        let none: &[std::net::SocketAddr] = &[];
        let e = solo::net::lookup_host(none).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        assert!(solo::net::lookup_host("no port here").await.is_err());
    })
    .unwrap();
}

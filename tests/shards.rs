//! `solo::shards`: N loops on N threads. The rules of a run (results, failures, stops, the
//! grace), messages between shards, the two ways of sharing a port, and the sharded example
//! servers under real clients; signal tests run in a child process (`common::with_env!`), so
//! that a SIGTERM never reaches the test runner.

use std::io::{self, Read, Write};
#[cfg(feature = "hyper")]
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream as StdStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use solo::shards::{Builder, FailureKind, Flags, Port, ShardsError, Share, StopReason};

mod common;

#[allow(dead_code)]
#[path = "../examples/echo.rs"]
mod echo;

#[cfg(feature = "hyper")]
#[allow(dead_code)]
#[path = "../examples/hello_http.rs"]
mod hello_http;

/// A few shards that only the test stops, with a short grace.
fn shards(n: usize) -> Builder {
    Builder::new()
        .count(n)
        .signals(false)
        .grace(Duration::from_secs(2))
}

/// A blocking client with timeouts, so that no test waits forever on a socket.
fn client(addr: SocketAddr) -> StdStream {
    let c = StdStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

fn echo_once(c: &mut StdStream, msg: &[u8]) -> io::Result<()> {
    c.write_all(msg)?;
    let mut back = vec![0u8; msg.len()];
    c.read_exact(&mut back)?;
    assert_eq!(back, msg);
    Ok(())
}

fn failure_of(err: &ShardsError) -> (usize, &FailureKind) {
    let f = err.failures();
    assert_eq!(f.len(), 1, "one failed shard expected: {err}");
    (f[0].index, &f[0].kind)
}

// ---- the run ----

#[test]
fn results_come_back_in_shard_order() {
    let _watchdog = common::watchdog!();
    let out = shards(4)
        .run(|shard| async move {
            assert_eq!(solo::shards::current_index(), Some(shard.index()));
            assert_eq!(shard.count(), 4);
            solo::time::sleep(Duration::from_millis(5 * (4 - shard.index() as u64))).await;
            Ok::<_, io::Error>(shard.index() * 2)
        })
        .unwrap();
    assert_eq!(out, vec![0, 2, 4, 6]);
}

/// The entry runs inside its shard's running loop from its first line: it may listen, spawn
/// and use `Handle::current` before any await.
#[test]
fn the_entry_is_called_inside_the_running_loop() {
    let _watchdog = common::watchdog!();
    let port = Port::bind("127.0.0.1:0", Share::Acceptor).unwrap();
    let out = shards(2)
        .run(|shard| {
            let listener = port.listener(&shard);
            let task = solo::Handle::current().spawn(async { 7 });
            async move {
                drop(listener?);
                Ok::<_, io::Error>(task.await.unwrap())
            }
        })
        .unwrap();
    assert_eq!(out, vec![7, 7]);
}

#[test]
fn zero_shards_is_a_clear_error() {
    let _watchdog = common::watchdog!();
    let err = shards(0)
        .run(|_| async { Ok::<_, io::Error>(()) })
        .unwrap_err();
    assert!(matches!(err, ShardsError::Config(_)), "{err:?}");
    assert!(err.to_string().contains("at least 1"), "{err}");
}

#[test]
fn run_inside_a_running_loop_is_an_error() {
    let _watchdog = common::watchdog!();
    let err = solo::run(async { shards(2).run(|_| async { Ok::<_, io::Error>(()) }) })
        .unwrap()
        .unwrap_err();
    assert!(
        err.to_string().contains("inside a running solo loop"),
        "{err}"
    );
}

/// More shards than CPUs works; pinned, shard `i` is on the `i % n`-th allowed CPU, so the
/// list wraps and CPUs are shared.
#[test]
fn more_shards_than_cpus_work_and_pinning_wraps() {
    let _watchdog = common::watchdog!();
    let cpus = std::thread::available_parallelism().unwrap().get();
    let n = cpus * 2 + 1;
    let out = shards(n)
        .pin(true)
        .run(|shard| async move { Ok::<_, io::Error>(shard.core()) })
        .unwrap();
    assert_eq!(out.len(), n);
    if out[0].is_some() {
        // Pinning worked here: the allowed CPUs, in turn, then again from the first (the
        // allowed set may be smaller than the machine).
        let period = (1..n).find(|&p| out[p] == out[0]).unwrap();
        assert!(period <= cpus);
        for (i, c) in out.iter().enumerate() {
            assert_eq!(*c, out[i % period], "shard {i}");
        }
    }
}

#[test]
fn a_shard_that_panics_at_start_stops_the_others() {
    let _watchdog = common::watchdog!();
    let err = shards(3)
        .run(|shard| {
            if shard.index() == 1 {
                panic!("boom at start");
            }
            async move { Ok::<_, io::Error>(shard.stopped().await) }
        })
        .unwrap_err();
    let (index, kind) = failure_of(&err);
    assert_eq!(index, 1);
    assert!(
        matches!(kind, FailureKind::Panicked(m) if m == "boom at start"),
        "{kind:?}"
    );
    assert!(
        err.to_string().contains("shard 1 panicked: boom at start"),
        "{err}"
    );
}

#[test]
fn a_loop_that_cannot_be_built_fails_its_shard() {
    let _watchdog = common::watchdog!();
    let err = shards(2)
        .loop_builder(|i| {
            let b = solo::EventLoop::builder();
            if i == 1 {
                b.debug(true).monitor("0.0.0.0:0") // refused: not loopback
            } else {
                b
            }
        })
        .run(|shard| async move { Ok::<_, io::Error>(shard.stopped().await) })
        .unwrap_err();
    let (index, kind) = failure_of(&err);
    assert_eq!(index, 1);
    assert!(matches!(kind, FailureKind::Startup(_)), "{kind:?}");
    // And a loop builder that panics.
    let err = shards(2)
        .loop_builder(|i| {
            assert!(i != 0, "no loop for shard 0");
            solo::EventLoop::builder()
        })
        .run(|shard| async move { Ok::<_, io::Error>(shard.stopped().await) })
        .unwrap_err();
    let (index, kind) = failure_of(&err);
    assert_eq!(index, 0);
    assert!(
        matches!(kind, FailureKind::Panicked(m) if m.contains("no loop")),
        "{kind:?}"
    );
}

#[test]
fn an_error_returned_by_a_shard_stops_the_others() {
    let _watchdog = common::watchdog!();
    let err = shards(3)
        .run(|shard| async move {
            if shard.index() == 0 {
                solo::time::sleep(Duration::from_millis(20)).await;
                return Err(io::Error::other("bad config"));
            }
            let why = shard.stopped().await;
            assert_eq!(why, StopReason::ShardFailed(0));
            Ok(())
        })
        .unwrap_err();
    let (index, kind) = failure_of(&err);
    assert_eq!(index, 0);
    assert!(matches!(kind, FailureKind::Error(e) if e.to_string() == "bad config"));
    assert!(
        err.to_string().contains("shard 0 failed: bad config"),
        "{err}"
    );
}

#[test]
fn a_shard_that_ignores_the_stop_is_cancelled_after_the_grace() {
    let _watchdog = common::watchdog!();
    let err = shards(2)
        .grace(Duration::from_millis(100))
        .run(|shard| async move {
            if shard.index() == 0 {
                shard.stop_all();
                return Ok::<_, io::Error>(shard.stopped().await);
            }
            std::future::pending::<()>().await;
            unreachable!()
        })
        .unwrap_err();
    let (index, kind) = failure_of(&err);
    assert_eq!(index, 1);
    assert!(matches!(kind, FailureKind::Cancelled(_)), "{kind:?}");
}

#[test]
fn a_stopper_stops_the_shards_from_outside() {
    let _watchdog = common::watchdog!();
    let b = shards(3);
    let stopper = b.stopper();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        stopper.stop();
    });
    let out = b
        .run(|shard| async move { Ok::<_, io::Error>(shard.stopped().await) })
        .unwrap();
    assert_eq!(out, vec![StopReason::Stopper; 3]);
    t.join().unwrap();
}

/// `Handle::current().stop()` on a shard's loop is a normal end asked for from inside, as
/// `stop_all`: every shard stops, and the one that asked finishes its entry in its grace.
#[test]
fn a_loop_stop_inside_a_shard_stops_all_as_a_normal_end() {
    let _watchdog = common::watchdog!();
    let out = shards(3)
        .run(|shard| async move {
            if shard.index() == 1 {
                solo::Handle::current().stop();
                solo::yield_now().await;
            }
            let reason = shard.stopped().await;
            // The entry still runs after the stop: its loop goes on for the grace period.
            solo::time::sleep(Duration::from_millis(5)).await;
            Ok::<_, io::Error>(reason)
        })
        .unwrap();
    assert_eq!(out, vec![StopReason::Requested(1); 3]);
}

// ---- messages ----

#[test]
fn messages_run_on_the_target_shard_and_answer() {
    let _watchdog = common::watchdog!();
    // The entry may borrow from the caller: the shards count who has finished asking.
    let finished = AtomicUsize::new(0);
    let out = shards(3)
        .run(|shard| {
            let finished = &finished;
            async move {
                let me = shard.index();
                let mut seen = Vec::new();
                for p in shard.peers() {
                    // `ask` runs there; `spawn` builds a !Send future there.
                    let there = p.ask(solo::shards::current_index).await.unwrap();
                    let sum = p
                        .spawn(move || {
                            let rc = std::rc::Rc::new(me);
                            async move {
                                solo::yield_now().await;
                                *rc + 100
                            }
                        })
                        .await
                        .unwrap();
                    seen.push((there, sum));
                }
                // A shard that ended would answer no more: the last to finish stops them all.
                if finished.fetch_add(1, Ordering::AcqRel) + 1 == shard.count() {
                    shard.stop_all();
                }
                shard.stopped().await;
                Ok::<_, io::Error>(seen)
            }
        })
        .unwrap();
    for (me, seen) in out.iter().enumerate() {
        let want: Vec<_> = (0..3).map(|i| (Some(i), me + 100)).collect();
        assert_eq!(*seen, want);
    }
}

/// A message to a shard that has ended is refused at once; one queued when it stops, or whose
/// task it cancels, ends with an error; nothing waits forever.
#[test]
fn a_message_to_a_stopped_shard_is_an_error_to_the_sender() {
    let _watchdog = common::watchdog!();
    let out = shards(2)
        .run(|shard| async move {
            if shard.index() == 1 {
                // Shard 1 takes a task that never finishes, then ends: the task is cancelled.
                solo::time::sleep(Duration::from_millis(50)).await;
                return Ok(None);
            }
            let nope = shard.peer(2).unwrap_err();
            assert_eq!(nope.to_string(), "there is no shard 2: the shards are 0..2");
            assert!(!nope.was_delivered());
            assert!(nope.is_no_such_shard());
            // `?` in an entry returning io::Result: the io::Error carries the PeerError.
            let as_io = io::Error::from(nope.clone());
            assert_eq!(as_io.kind(), io::ErrorKind::InvalidInput);
            let inner = as_io
                .get_ref()
                .unwrap()
                .downcast_ref::<solo::shards::PeerError>();
            assert_eq!(inner, Some(&nope));
            let peer = shard.peer(1)?.clone();
            let never = peer.spawn(std::future::pending::<u8>);
            let cancelled = never.await.unwrap_err();
            assert!(cancelled.was_delivered());
            while !peer.is_stopped() {
                solo::time::sleep(Duration::from_millis(1)).await;
            }
            let refused = peer
                .call(|| unreachable!("ran on a stopped shard"))
                .unwrap_err();
            assert!(!refused.was_delivered());
            assert!(!refused.is_no_such_shard());
            assert_eq!(io::Error::from(refused).kind(), io::ErrorKind::BrokenPipe);
            let asked = peer.ask(|| 1).await.unwrap_err();
            assert_eq!(asked.shard(), 1);
            Ok::<_, io::Error>(Some((cancelled.to_string(), asked.to_string())))
        })
        .unwrap();
    let (cancelled, asked) = out[0].clone().unwrap();
    assert!(
        cancelled.contains("shard 1 dropped the message"),
        "{cancelled}"
    );
    assert!(asked.contains("shard 1 has stopped"), "{asked}");
}

// ---- signals, in a child process ----

/// SIGTERM while the shards are still starting (raised from a shard's loop builder, before
/// that shard has a loop): every shard starts, sees the stop, and ends; the run is a success.
#[test]
fn sigterm_during_startup_stops_every_shard() {
    let _watchdog = common::watchdog!();
    common::with_env!(&[("SOLO_SHARDS_SIGNAL_TEST", "1")], || {
        let out = Builder::new()
            .count(4)
            .grace(Duration::from_secs(5))
            .loop_builder(|i| {
                if i == 2 {
                    // SAFETY: sending a signal to our own process.
                    unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
                }
                solo::EventLoop::builder()
            })
            .run(|shard| async move { Ok::<_, io::Error>(shard.stopped().await) })
            .unwrap();
        let term = StopReason::Signal(solo::signal::SignalKind::terminate());
        assert_eq!(out, vec![term; 4]);
    });
}

/// SIGTERM to a sharded echo server under a client: the accept loops end, the run returns Ok,
/// and the client's connection is closed within the grace.
#[test]
fn sigterm_stops_a_sharded_echo_server() {
    let _watchdog = common::watchdog!();
    common::with_env!(&[("SOLO_SHARDS_SIGNAL_TEST", "2")], || {
        let port = Port::bind("127.0.0.1:0", Share::ReusePort).unwrap();
        let addr = port.local_addr();
        let c = std::thread::spawn(move || {
            let mut c = client(addr);
            echo_once(&mut c, b"before the signal").unwrap();
            // SAFETY: sending a signal to our own process.
            unsafe { libc::kill(libc::getpid(), libc::SIGTERM) };
            // The connection's task is cancelled at the end of the grace: end of file.
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
        });
        Builder::new()
            .count(2)
            .grace(Duration::from_millis(200))
            .run(|shard| echo::serve_shard(shard, port.clone()))
            .unwrap();
        c.join().unwrap();
        assert_eq!(port.stats().iter().map(|s| s.open).sum::<u64>(), 0);
    });
}

// ---- ports ----

/// Runs `count` shards of `serve` on a new port; returns the port, the stopper and the
/// thread running them.
#[allow(clippy::type_complexity)] // three plain parts, named in the comment
fn start<F, Fut, T>(
    count: usize,
    share: Share,
    serve: F,
) -> (
    Port,
    solo::shards::Stopper,
    std::thread::JoinHandle<Result<Vec<T>, ShardsError>>,
)
where
    F: Fn(solo::shards::Shard, Port) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = io::Result<T>> + 'static,
    T: Send + 'static,
{
    let port = Port::bind("127.0.0.1:0", share).unwrap();
    let b = shards(count);
    let stopper = b.stopper();
    let p = port.clone();
    let t = std::thread::spawn(move || b.run(|shard| serve(shard, p.clone())));
    (port, stopper, t)
}

/// Waits until the shards of `port` started listening (the acceptor itself waits for every
/// shard before its first hand-off; with SO_REUSEPORT a client may land on the first shards).
fn wait_listening(port: &Port, count: usize) {
    while port.stats().len() < count {
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn echo_shards_share_a_port_both_ways() {
    let _watchdog = common::watchdog!();
    for share in [Share::ReusePort, Share::Acceptor] {
        let (port, stopper, server) = start(3, share, echo::serve_shard);
        wait_listening(&port, 3);
        // 30 clients held open at once, each echoing.
        let mut clients: Vec<StdStream> = (0..30).map(|_| client(port.local_addr())).collect();
        for (i, c) in clients.iter_mut().enumerate() {
            echo_once(c, format!("client {i}").as_bytes()).unwrap();
        }
        let stats = port.stats();
        assert_eq!(stats.iter().map(|s| s.accepted).sum::<u64>(), 30, "{share}");
        assert_eq!(stats.iter().map(|s| s.open).sum::<u64>(), 30, "{share}");
        if share == Share::Acceptor {
            // The least-loaded rule spreads open connections evenly.
            for s in &stats {
                assert_eq!(s.open, 10, "{}", port.summary());
            }
        }
        drop(clients);
        stopper.stop();
        server.join().unwrap().unwrap();
        assert_eq!(port.stats().iter().map(|s| s.open).sum::<u64>(), 0);
    }
}

/// The acceptor counts a connection where it sends it, before that shard takes it, so a burst
/// spreads; as connections close, new ones go to the shards with room.
#[test]
fn the_acceptor_hands_new_connections_to_the_least_loaded_shard() {
    let _watchdog = common::watchdog!();
    let (port, stopper, server) = start(2, Share::Acceptor, echo::serve_shard);
    wait_listening(&port, 2);
    let mut held: Vec<StdStream> = (0..4).map(|_| client(port.local_addr())).collect();
    for c in &mut held {
        echo_once(c, b"x").unwrap();
    }
    // 2 and 2. Close both of one shard's connections (the 1st and 3rd went to shard 0).
    let open = |i: usize| port.stats()[i].open;
    assert_eq!((open(0), open(1)), (2, 2));
    held.remove(2);
    held.remove(0);
    while open(0) != 0 {
        std::thread::sleep(Duration::from_millis(1));
    }
    // The next two both go to shard 0, the least loaded.
    let mut more: Vec<StdStream> = (0..2).map(|_| client(port.local_addr())).collect();
    for c in &mut more {
        echo_once(c, b"y").unwrap();
    }
    assert_eq!((open(0), open(1)), (2, 2), "{}", port.summary());
    assert_eq!(port.stats()[0].accepted, 4);
    stopper.stop();
    server.join().unwrap().unwrap();
}

#[test]
fn a_port_on_an_address_in_use_is_an_error_at_bind() {
    let _watchdog = common::watchdog!();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    for share in [Share::Acceptor, Share::ReusePort] {
        let err = Port::bind(addr, share).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{share}");
    }
    assert!(Port::bind("no such host:1", Share::Acceptor).is_err());
}

#[test]
fn a_second_listener_on_one_shard_and_a_wrong_count_are_refused() {
    let _watchdog = common::watchdog!();
    let port = Port::bind("127.0.0.1:0", Share::ReusePort).unwrap();
    shards(2)
        .run(|shard| {
            let port = port.clone();
            async move {
                let first = port.listener(&shard)?;
                let again = port.listener(&shard).unwrap_err();
                assert_eq!(again.kind(), io::ErrorKind::AddrInUse);
                drop(first);
                // Dropped: the shard may listen again.
                drop(port.listener(&shard)?);
                Ok::<_, io::Error>(())
            }
        })
        .unwrap();
    let err = shards(3)
        .run(|shard| {
            let port = port.clone();
            async move { port.listener(&shard).map(drop) }
        })
        .unwrap_err();
    assert!(
        err.to_string().contains("serves a set of 2 shards, not 3"),
        "{err}"
    );
    // A bad mode on the command line.
    assert!("roundrobin".parse::<Share>().is_err());
    assert_eq!("reuseport".parse::<Share>(), Ok(Share::ReusePort));
}

/// In acceptor mode shard 0 may listen again after dropping its listener (the port keeps its
/// socket; connections wait in the backlog meanwhile), and a second acceptor port on the same
/// shards works beside the first.
#[test]
fn shard_0_listens_again_in_acceptor_mode_and_two_acceptor_ports_work() {
    let _watchdog = common::watchdog!();
    let a = Port::bind("127.0.0.1:0", Share::Acceptor).unwrap();
    let b = Port::bind("127.0.0.1:0", Share::Acceptor).unwrap();
    let (addr_a, addr_b) = (a.local_addr(), b.local_addr());
    let out = shards(1)
        .run(|shard| {
            let (a, b) = (a.clone(), b.clone());
            async move {
                let mut served = Vec::new();
                for round in 0..3 {
                    let la = a.listener(&shard)?;
                    let lb = b.listener(&shard)?;
                    for (l, addr) in [(&la, addr_a), (&lb, addr_b)] {
                        let client = std::thread::spawn(move || {
                            let mut c = client(addr);
                            echo_once(&mut c, format!("round {round}").as_bytes())
                        });
                        let mut conn = l.accept().await?.expect("not stopping").stream;
                        let mut buf = [0u8; 64];
                        let n = futures::AsyncReadExt::read(&mut conn, &mut buf).await?;
                        futures::AsyncWriteExt::write_all(&mut conn, &buf[..n]).await?;
                        served.push(String::from_utf8_lossy(&buf[..n]).into_owned());
                        // The client thread blocks; wait for it off the loop's thread.
                        solo::run_in_executor(move || client.join().unwrap())
                            .await
                            .map_err(|e| io::Error::other(e.to_string()))??;
                    }
                    drop((la, lb)); // and listen again
                }
                Ok::<_, io::Error>(served)
            }
        })
        .unwrap();
    let want: Vec<String> = (0..3)
        .flat_map(|r| [format!("round {r}"), format!("round {r}")])
        .collect();
    assert_eq!(out[0], want);
    assert_eq!(a.stats()[0].accepted, 3);
    assert_eq!(b.stats()[0].accepted, 3);
}

/// Connections the acceptor handed to a shard before its listener went away are served (they
/// are accepted already); only then does that shard's `accept` fail.
#[test]
fn connections_handed_over_before_the_acceptor_went_away_are_served() {
    let _watchdog = common::watchdog!();
    let port = Port::bind("127.0.0.1:0", Share::Acceptor).unwrap();
    let addr = port.local_addr();
    let acceptor_gone = std::sync::atomic::AtomicBool::new(false);
    let out = shards(2)
        .run(|shard| {
            let (port, gone) = (port.clone(), &acceptor_gone);
            async move {
                let l = port.listener(&shard)?;
                if shard.index() == 0 {
                    // Four clients, each sending "ping": two are handed to each shard.
                    let mut clients = Vec::new();
                    for _ in 0..4 {
                        let mut c = solo::net::TcpStream::connect(addr).await?;
                        futures::AsyncWriteExt::write_all(&mut c, b"ping").await?;
                        clients.push(c);
                    }
                    while port.stats()[1].open < 2 {
                        solo::time::sleep(Duration::from_millis(1)).await;
                    }
                    drop(l); // the acceptor goes, with shard 1's two still in its inbox
                    gone.store(true, Ordering::Release);
                    let mut answered = 0;
                    for c in &mut clients {
                        let mut buf = [0u8; 4];
                        // Shard 0's own two were closed with its listener: EOF.
                        if futures::AsyncReadExt::read_exact(c, &mut buf).await.is_ok() {
                            assert_eq!(&buf, b"pong");
                            answered += 1;
                        }
                    }
                    shard.stop_all();
                    return Ok::<_, io::Error>((answered, String::new()));
                }
                while !gone.load(Ordering::Acquire) {
                    solo::time::sleep(Duration::from_millis(1)).await;
                }
                let mut served = 0;
                let err = loop {
                    match l.accept().await {
                        Ok(Some(accepted)) => {
                            let mut s = accepted.stream;
                            let mut buf = [0u8; 4];
                            futures::AsyncReadExt::read_exact(&mut s, &mut buf).await?;
                            assert_eq!(&buf, b"ping");
                            futures::AsyncWriteExt::write_all(&mut s, b"pong").await?;
                            served += 1;
                        }
                        Ok(None) => break "stopped".to_string(),
                        Err(e) => break e.to_string(),
                    }
                };
                Ok((served, err))
            }
        })
        .unwrap();
    assert_eq!(out[1].0, 2, "shard 1 served its two");
    assert!(
        out[1].1.contains("acceptor shard's listener is gone"),
        "{}",
        out[1].1
    );
    assert_eq!(out[0].0, 2, "two clients got their answer");
}

/// Shard 0 drops its acceptor without a stop: the other shards' `accept` fails with a clear
/// error instead of waiting for connections that can never come.
#[test]
fn the_other_shards_hear_when_the_acceptor_is_gone() {
    let _watchdog = common::watchdog!();
    let port = Port::bind("127.0.0.1:0", Share::Acceptor).unwrap();
    let out = shards(2)
        .run(|shard| {
            let port = port.clone();
            async move {
                let l = port.listener(&shard)?;
                if shard.index() == 0 {
                    solo::time::sleep(Duration::from_millis(30)).await;
                    drop(l);
                    return Ok(String::new());
                }
                let err = l.accept().await.unwrap_err();
                Ok::<_, io::Error>(err.to_string())
            }
        })
        .unwrap();
    assert!(
        out[1].contains("acceptor shard's listener is gone"),
        "{}",
        out[1]
    );
}

/// Shard 2 panics in its accept loop after taking 3 connections (of its 8) while clients hammer all
/// shards: the panic is reported naming shard 2, the other shards stop cleanly (their
/// connections are closed after the grace), and every client ends.
#[test]
fn a_shard_that_panics_under_load_stops_the_others_cleanly() {
    let _watchdog = common::watchdog!();
    let port = Port::bind("127.0.0.1:0", Share::Acceptor).unwrap();
    let addr = port.local_addr();
    let done = Arc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..24)
        .map(|i| {
            let done = done.clone();
            std::thread::spawn(move || {
                let mut rounds = 0u64;
                if let Ok(mut c) = StdStream::connect(addr) {
                    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                    let msg = format!("client {i}");
                    while echo_once(&mut c, msg.as_bytes()).is_ok() {
                        rounds += 1;
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
                rounds
            })
        })
        .collect();
    let p = port.clone();
    let err = shards(3)
        .grace(Duration::from_millis(300))
        .run(|shard| {
            let port = p.clone();
            async move {
                let listener = port.listener(&shard)?;
                let mut taken = 0;
                while let Some(a) = listener.accept().await? {
                    taken += 1;
                    if shard.index() == 2 && taken == 3 {
                        // Let the clients run a while first.
                        solo::time::sleep(Duration::from_millis(50)).await;
                        panic!("boom under load");
                    }
                    let solo::shards::Accepted { stream, conn, .. } = a;
                    drop(solo::Handle::current().spawn(async move {
                        let _conn = conn;
                        let (mut r, mut w) = stream.into_split();
                        let _ = futures::io::copy(&mut r, &mut w).await;
                    }));
                }
                Ok::<_, io::Error>(())
            }
        })
        .unwrap_err();
    let (index, kind) = failure_of(&err);
    assert_eq!(index, 2);
    assert!(matches!(kind, FailureKind::Panicked(m) if m == "boom under load"));
    for c in clients {
        c.join().unwrap();
    }
    assert_eq!(done.load(Ordering::Relaxed), 24);
    assert_eq!(port.stats().iter().map(|s| s.open).sum::<u64>(), 0);
}

// ---- the sharded HTTP example ----

#[cfg(feature = "hyper")]
#[test]
fn hello_http_shards_answer_keep_alive_clients_both_ways() {
    let _watchdog = common::watchdog!();
    for share in [Share::ReusePort, Share::Acceptor] {
        let (port, stopper, server) = start(2, share, hello_http::serve_shard);
        wait_listening(&port, 2);
        let mut clients: Vec<_> = (0..6).map(|_| client(port.local_addr())).collect();
        for c in &mut clients {
            for _ in 0..3 {
                c.write_all(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
                    .unwrap();
            }
            let mut r = BufReader::new(c.try_clone().unwrap());
            for _ in 0..3 {
                let mut status = String::new();
                r.read_line(&mut status).unwrap();
                assert!(status.starts_with("HTTP/1.1 200"), "{status}");
                let mut len = 0;
                loop {
                    let mut h = String::new();
                    r.read_line(&mut h).unwrap();
                    if h == "\r\n" {
                        break;
                    }
                    if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let mut body = vec![0u8; len];
                r.read_exact(&mut body).unwrap();
                assert_eq!(body, b"Hello, World!");
            }
        }
        assert_eq!(port.stats().iter().map(|s| s.accepted).sum::<u64>(), 6);
        if share == Share::Acceptor {
            assert!(
                port.stats().iter().all(|s| s.open == 3),
                "{}",
                port.summary()
            );
        }
        drop(clients);
        stopper.stop();
        server.join().unwrap().unwrap();
    }
}

/// `Flags`: the examples' `--shards N [--share MODE] [--pin]`, with a clear error for each
/// bad input.
#[test]
fn shard_flags_are_read_with_clear_errors() {
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let flags = |s: &str| {
        Flags::take(args(s)).map(|(rest, f)| (rest, f.map(|f| (f.count, f.share, f.pin))))
    };
    assert_eq!(flags("").unwrap(), (vec![], None));
    assert_eq!(
        flags("127.0.0.1:1 --other x").unwrap(),
        (args("127.0.0.1:1 --other x"), None)
    );
    assert_eq!(
        flags("127.0.0.1:1 --shards 4 --share reuseport --pin").unwrap(),
        (args("127.0.0.1:1"), Some((4, Share::ReusePort, true)))
    );
    assert_eq!(
        flags("--pin --shards 2 x").unwrap(),
        (args("x"), Some((2, Share::Acceptor, true)))
    );
    // More shards than CPUs is allowed: they share the CPUs.
    assert_eq!(
        flags("--shards 512").unwrap().1,
        Some((512, Share::Acceptor, false))
    );
    for (bad, why) in [
        ("--shards", "--shards needs a count"),
        ("--shards 0", "at least 1"),
        ("--shards abc", "--shards abc: not a count"),
        ("--shards -1", "--shards -1: not a count"),
        ("--shards 2 --shards 3", "given twice"),
        ("--shards 2 --share", "--share needs a mode"),
        (
            "--shards 2 --share bogus",
            "--share bogus: unknown sharing mode 'bogus'",
        ),
        (
            "--shards 2 --share acceptor --share reuseport",
            "given twice",
        ),
        ("--pin", "go with --shards"),
        ("--share reuseport", "go with --shards"),
    ] {
        let err = Flags::take(args(bad)).unwrap_err();
        assert!(matches!(err, ShardsError::Config(_)), "{bad}: {err:?}");
        assert!(err.to_string().contains(why), "{bad}: {err}");
    }
    let f = Flags::take(args("--shards 3 --pin")).unwrap().1.unwrap();
    let out = f
        .builder()
        .signals(false)
        .run(|shard| async move { Ok::<_, io::Error>(shard.count()) })
        .unwrap();
    assert_eq!(out, vec![3; 3]);
}

/// `Flags::serve`: every shard's entry runs with the port, and shard 0 prints the port's
/// summary to stderr at each SIGUSR1 (whose default action would end the process). Run in a
/// child process, whose stderr the test reads.
#[test]
fn flags_serve_runs_the_shards_and_prints_the_summary_at_sigusr1() {
    let _watchdog = common::watchdog!();
    if std::env::var_os("SOLO_FLAGS_SERVE_CHILD").is_none() {
        let out = common::rerun(&common::test_name!())
            .args(["--include-ignored", "--nocapture"])
            .env("SOLO_FLAGS_SERVE_CHILD", "1")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{}\n{stderr}", out.status);
        assert!(String::from_utf8_lossy(&out.stdout).contains("1 passed"));
        assert!(stderr.contains("(reuseport):\n  shard   0:"), "{stderr}");
        assert!(stderr.contains("\n  shard   1:"), "{stderr}");
        return;
    }
    static LISTENING: AtomicUsize = AtomicUsize::new(0);
    let args = ["x", "--shards", "2", "--share", "reuseport"].map(String::from);
    let flags = Flags::take(args).unwrap().1.unwrap();
    let port = Port::bind("127.0.0.1:0", flags.share).unwrap();
    let out = flags
        .serve(&port, |shard, port| async move {
            let _listener = port.listener(&shard)?;
            LISTENING.fetch_add(1, Ordering::AcqRel); // shard 0's handler is in by now
            if shard.index() == 1 {
                while LISTENING.load(Ordering::Acquire) < 2 {
                    solo::time::sleep(Duration::from_millis(1)).await;
                }
                // SAFETY: sending a signal to our own process.
                unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
                solo::time::sleep(Duration::from_millis(50)).await;
                shard.stop_all();
            }
            shard.stopped().await;
            Ok::<_, io::Error>(shard.index())
        })
        .unwrap();
    assert_eq!(out, vec![0, 1]);
}

/// More shards than CPUs, through `Flags`, on a port: every shard serves.
#[test]
fn more_shards_than_cpus_serve_a_port() {
    let _watchdog = common::watchdog!();
    let n = std::thread::available_parallelism().map_or(1, |n| n.get()) + 2;
    let (port, stopper, server) = start(n, Share::Acceptor, echo::serve_shard);
    wait_listening(&port, n);
    let mut clients: Vec<StdStream> = (0..2 * n).map(|_| client(port.local_addr())).collect();
    for (i, c) in clients.iter_mut().enumerate() {
        echo_once(c, format!("client {i}").as_bytes()).unwrap();
    }
    assert!(
        port.stats().iter().all(|s| s.open == 2),
        "{}",
        port.summary()
    );
    drop(clients);
    stopper.stop();
    assert_eq!(server.join().unwrap().unwrap().len(), n);
}

// ---- the sharded kv ----

#[allow(dead_code)]
#[path = "../examples/kv.rs"]
mod kv;

fn resp(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    v
}

fn bulk(v: &str) -> String {
    format!("${}\r\n{v}\r\n", v.len())
}

/// Sends `requests` at once and checks that exactly `want` comes back.
fn pipeline(c: &mut StdStream, requests: &[Vec<&str>], want: &str) {
    let all: Vec<u8> = requests.iter().flat_map(|r| resp(r)).collect();
    c.write_all(&all).unwrap();
    let mut got = vec![0u8; want.len()];
    c.read_exact(&mut got).unwrap();
    assert_eq!(String::from_utf8_lossy(&got), want);
}

#[allow(clippy::type_complexity)] // as `start`'s
fn kv_shards(
    count: usize,
    share: Share,
) -> (
    Port,
    solo::shards::Stopper,
    std::thread::JoinHandle<Result<Vec<kv::ShardCounts>, ShardsError>>,
) {
    start(count, share, |shard, port| {
        kv::serve_shard(shard, port, kv::Limits::default())
    })
}

/// Thousands of keys set through one connection and read back through another, which the
/// acceptor put on a different shard; then the multi-key commands, fanned out and gathered.
#[test]
fn kv_keys_set_on_one_shard_are_read_back_on_another() {
    let _watchdog = common::watchdog!();
    let (port, stopper, server) = kv_shards(3, Share::Acceptor);
    wait_listening(&port, 3);
    let mut a = client(port.local_addr());
    pipeline(&mut a, &[vec!["PING"]], "+PONG\r\n");
    let mut b = client(port.local_addr());
    pipeline(&mut b, &[vec!["PING"]], "+PONG\r\n");
    // Two connections open, on two different shards.
    let open: Vec<u64> = port.stats().iter().map(|s| s.open).collect();
    assert_eq!(
        open.iter().filter(|&&o| o == 1).count(),
        2,
        "{}",
        port.summary()
    );

    let n = 3000;
    let keys: Vec<String> = (0..n).map(|i| format!("key:{i}")).collect();
    let values: Vec<String> = (0..n).map(|i| format!("value {i}")).collect();
    let sets: Vec<Vec<&str>> = (0..n).map(|i| vec!["SET", &keys[i], &values[i]]).collect();
    pipeline(&mut a, &sets, &"+OK\r\n".repeat(n));
    let gets: Vec<Vec<&str>> = keys.iter().map(|k| vec!["GET", k.as_str()]).collect();
    let want: String = values.iter().map(|v| bulk(v)).collect();
    pipeline(&mut b, &gets, &want);

    // MGET across shards, in key order, with a missing key among them.
    let mut mget = vec!["MGET"];
    mget.extend(keys[..50].iter().map(|k| k.as_str()));
    mget.push("no such key");
    let want = format!(
        "*51\r\n{}$-1\r\n",
        values[..50].iter().map(|v| bulk(v)).collect::<String>()
    );
    pipeline(&mut b, &[mget], &want);
    pipeline(
        &mut b,
        &[
            vec!["DBSIZE"],
            vec!["EXISTS", &keys[0], &keys[1], &keys[2], "nope"],
            vec!["DEL", &keys[0], &keys[1], "nope"],
            vec!["DBSIZE"],
            vec!["MSET", "m1", "1", "m2", "2", "m3", "3", "m4", "4"],
            vec!["MGET", "m4", "m3", "m2", "m1"],
            vec!["INCR", "m2"],
            vec!["MSET", "odd"],
            vec!["MGET"],
        ],
        &format!(
            ":{n}\r\n:3\r\n:2\r\n:{}\r\n+OK\r\n*4\r\n{}{}{}{}:3\r\n\
             -ERR wrong number of arguments for 'mset' command\r\n\
             -ERR wrong number of arguments for 'mget' command\r\n",
            n - 2,
            bulk("4"),
            bulk("3"),
            bulk("2"),
            bulk("1")
        ),
    );
    pipeline(&mut a, &[vec!["FLUSHALL"], vec!["DBSIZE"]], "+OK\r\n:0\r\n");
    drop((a, b));
    stopper.stop();
    server.join().unwrap().unwrap();
}

/// One client pipelines requests whose keys are owned by every shard, interleaved with
/// requests this shard answers itself: the replies come back in request order.
#[test]
fn kv_a_pipeline_spanning_every_shard_keeps_its_order() {
    let _watchdog = common::watchdog!();
    for share in [Share::Acceptor, Share::ReusePort] {
        let count = 4;
        let (port, stopper, server) = kv_shards(count, share);
        wait_listening(&port, count);
        // Two keys per shard.
        let mut keys: Vec<String> = Vec::new();
        for shard in 0..count {
            keys.extend(
                (0..)
                    .map(|i| format!("k{i}"))
                    .filter(|k| kv::owner(k.as_bytes(), count) == shard)
                    .take(2),
            );
        }
        let mut c = client(port.local_addr());
        for round in 0..3 {
            let mut reqs: Vec<Vec<String>> = Vec::new();
            let mut want = String::new();
            for (i, k) in keys.iter().enumerate() {
                let v = format!("{round}-{i}");
                reqs.push(vec!["SET".into(), k.clone(), v.clone()]);
                want.push_str("+OK\r\n");
                reqs.push(vec!["PING".into()]);
                want.push_str("+PONG\r\n");
                reqs.push(vec!["GET".into(), k.clone()]);
                want.push_str(&bulk(&v));
                reqs.push(vec!["ECHO".into(), format!("after {k}")]);
                want.push_str(&bulk(&format!("after {k}")));
            }
            // Backwards, so that the shards' replies come in the opposite order to theirs.
            for k in keys.iter().rev() {
                reqs.push(vec!["DEL".into(), k.clone()]);
                want.push_str(":1\r\n");
                reqs.push(vec!["EXISTS".into(), k.clone()]);
                want.push_str(":0\r\n");
            }
            let reqs: Vec<Vec<&str>> = reqs
                .iter()
                .map(|r| r.iter().map(String::as_str).collect())
                .collect();
            pipeline(&mut c, &reqs, &want);
        }
        drop(c);
        stopper.stop();
        server.join().unwrap().unwrap();
    }
}

/// A request for a key of a shard that has stopped gets an error in its reply's place; the
/// connection and the other replies go on.
#[test]
fn kv_a_request_for_a_stopped_shard_gets_an_error_in_its_place() {
    let _watchdog = common::watchdog!();
    let (port, stopper, server) = start(2, Share::Acceptor, |shard, port| async move {
        if shard.index() == 1 {
            return Ok(kv::ShardCounts::default()); // shard 1 ends at once: its keys have no owner
        }
        kv::serve_shard(shard, port, kv::Limits::default()).await
    });
    let k1 = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| kv::owner(k.as_bytes(), 2) == 1)
        .unwrap();
    let k0 = (0..)
        .map(|i| format!("k{i}"))
        .find(|k| kv::owner(k.as_bytes(), 2) == 0)
        .unwrap();
    let mut c = client(port.local_addr());
    pipeline(
        &mut c,
        &[
            vec!["SET", &k0, "here"],
            vec!["SET", &k1, "there"],
            vec!["MGET", &k0, &k1],
            vec!["GET", &k0],
        ],
        &format!(
            "+OK\r\n-ERR shard 1 is unavailable\r\n*2\r\n{}-ERR shard 1 is unavailable\r\n{}",
            bulk("here"),
            bulk("here")
        ),
    );
    drop(c);
    stopper.stop();
    server.join().unwrap().unwrap();
}

#[test]
fn kv_reads_its_shard_flags() {
    let args = |s: &str| s.split_whitespace().map(String::from).collect::<Vec<_>>();
    let (addr, limits, flags) =
        kv::parse_args(args("127.0.0.1:1 --shards 3 --reply-soft-limit 1k")).unwrap();
    assert_eq!(addr.as_deref(), Some("127.0.0.1:1"));
    assert_eq!(limits.reply_soft, 1000);
    assert_eq!(
        flags.map(|f| (f.count, f.share)),
        Some((3, Share::Acceptor))
    );
    for bad in [
        "--share reuseport",
        "--shards -1",
        "--shards 0",
        "--shards 2 --share x",
    ] {
        assert!(kv::parse_args(args(bad)).is_err(), "{bad}");
    }
}

/// One pipeline of hundreds of requests whose keys are owned by every shard, multi-key ones
/// among them: each reply comes back in its request's place.
#[test]
fn kv_a_pipeline_of_hundreds_of_requests_over_every_shard_keeps_its_order() {
    let _watchdog = common::watchdog!();
    let count = 4;
    let (port, stopper, server) = kv_shards(count, Share::ReusePort);
    wait_listening(&port, count);
    let keys: Vec<String> = (0..60).map(|i| format!("key:{i}")).collect();
    assert!((0..count).all(|s| keys.iter().any(|k| kv::owner(k.as_bytes(), count) == s)));
    let mut reqs: Vec<Vec<String>> = Vec::new();
    let mut want = String::new();
    let mut push = |r: &[&str], w: String| {
        reqs.push(r.iter().map(|s| s.to_string()).collect());
        want.push_str(&w);
    };
    for (i, k) in keys.iter().enumerate() {
        push(&["SET", k, &format!("v{i}")], "+OK\r\n".into());
        push(&["INCR", &format!("n:{k}")], ":1\r\n".into());
        push(&["PING"], "+PONG\r\n".into());
    }
    for (i, pair) in keys.chunks(2).enumerate() {
        push(&["GET", &pair[0]], bulk(&format!("v{}", 2 * i)));
        push(
            &["MGET", &pair[1], "nope", &pair[0]],
            format!(
                "*3\r\n{}$-1\r\n{}",
                bulk(&format!("v{}", 2 * i + 1)),
                bulk(&format!("v{}", 2 * i))
            ),
        );
        push(&["MSET", &pair[0], "a", &pair[1], "b"], "+OK\r\n".into());
        push(&["EXISTS", &pair[0], &pair[1], "nope"], ":2\r\n".into());
        push(&["INCR", &format!("n:{}", pair[1])], ":2\r\n".into());
    }
    push(&["DBSIZE"], format!(":{}\r\n", 2 * keys.len()));
    for pair in keys.chunks(2) {
        push(&["DEL", &pair[0], &pair[1], "nope"], ":2\r\n".into());
        push(&["GET", &pair[1]], "$-1\r\n".into());
    }
    push(&["DBSIZE"], format!(":{}\r\n", keys.len()));
    assert!(reqs.len() > 300, "{}", reqs.len());
    let reqs: Vec<Vec<&str>> = reqs
        .iter()
        .map(|r| r.iter().map(String::as_str).collect())
        .collect();
    let mut c = client(port.local_addr());
    pipeline(&mut c, &reqs, &want);
    // Again, now that the shards' buffers and envelopes are warm.
    pipeline(&mut c, &[vec!["FLUSHALL"]], "+OK\r\n");
    pipeline(&mut c, &reqs, &want);
    drop(c);
    stopper.stop();
    server.join().unwrap().unwrap();
}

/// A pipeline costs at most one message to each other shard, however many of its requests go
/// there: one connection sends batches of 16 requests over 4 shards, and the shard serving it
/// sends at most 3 messages a batch, carrying each request for another shard once.
#[test]
fn kv_a_batch_sends_at_most_one_message_to_each_other_shard() {
    let _watchdog = common::watchdog!();
    let count = 4;
    let (port, stopper, server) = kv_shards(count, Share::Acceptor);
    wait_listening(&port, count);
    let mut c = client(port.local_addr());
    pipeline(&mut c, &[vec!["PING"]], "+PONG\r\n");
    let home = port.stats().iter().position(|s| s.open == 1).unwrap();
    let batches = 50;
    let mut remote = 0;
    for b in 0..batches {
        let keys: Vec<String> = (0..16).map(|i| format!("b{b}:k{i}")).collect();
        remote += keys
            .iter()
            .filter(|k| kv::owner(k.as_bytes(), count) != home)
            .count();
        let reqs: Vec<Vec<&str>> = keys.iter().map(|k| vec!["SET", k.as_str(), "v"]).collect();
        pipeline(&mut c, &reqs, &"+OK\r\n".repeat(16));
    }
    drop(c);
    stopper.stop();
    let counts = server.join().unwrap().unwrap();
    let shard = counts[home];
    assert_eq!(shard.requests, 1 + 16 * batches as u64, "{shard}");
    assert_eq!(shard.forwarded, remote as u64, "{shard}");
    assert!(shard.messages <= 3 * batches as u64, "{shard}");
    assert!(shard.messages >= batches as u64, "{shard}");
    for (i, other) in counts.iter().enumerate().filter(|(i, _)| *i != home) {
        assert_eq!(other.messages, 0, "shard {i}: {other}");
    }
}

/// Many connections pipelining at once on two shards: the requests of several connections
/// share flights to the other shard, and every connection gets its own replies, in order.
#[test]
fn kv_many_connections_pipelining_at_once_get_their_own_replies() {
    let _watchdog = common::watchdog!();
    let (port, stopper, server) = kv_shards(2, Share::Acceptor);
    wait_listening(&port, 2);
    let addr = port.local_addr();
    let clients: Vec<_> = (0..12)
        .map(|c| {
            std::thread::spawn(move || {
                let mut conn = client(addr);
                for round in 0..40 {
                    let keys: Vec<String> = (0..8).map(|i| format!("c{c}:k{i}")).collect();
                    let values: Vec<String> =
                        (0..8).map(|i| format!("c{c}:r{round}:{i}")).collect();
                    let mut reqs: Vec<Vec<&str>> = Vec::new();
                    let mut want = String::new();
                    for (k, v) in keys.iter().zip(&values) {
                        reqs.push(vec!["SET", k, v]);
                        want.push_str("+OK\r\n");
                    }
                    for (k, v) in keys.iter().zip(&values).rev() {
                        reqs.push(vec!["GET", k]);
                        want.push_str(&bulk(v));
                    }
                    pipeline(&mut conn, &reqs, &want);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
    stopper.stop();
    let counts = server.join().unwrap().unwrap();
    let requests: u64 = counts.iter().map(|c| c.requests).sum();
    assert_eq!(requests, 12 * 40 * 16);
    let (messages, forwarded): (u64, u64) = counts
        .iter()
        .fold((0, 0), |(m, f), c| (m + c.messages, f + c.forwarded));
    // Each connection's batch needs the other shard at most once.
    assert!(messages <= 12 * 40, "{messages} messages");
    assert!(forwarded >= messages, "{forwarded} forwarded in {messages}");
}

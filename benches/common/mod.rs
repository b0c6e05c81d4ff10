//! The workloads, written once for each runtime, shared by `versus` (the quick table) and
//! `runtime` (criterion). Each function builds nothing but the work: runtimes and loops are
//! created by the caller and reused across iterations, as a long-running program would.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::future::Future;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::channel::oneshot;

/// A future that yields once: wakes itself and returns `Pending` the first time.
pub struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

pub fn yield_once() -> YieldOnce {
    YieldOnce(false)
}

pub fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

// ---- spawn_many ----

pub fn solo_spawn_many(el: &solo::EventLoop, n: usize) {
    let h = el.handle();
    el.run_until_complete(async move {
        let hs: Vec<_> = (0..n).map(|_| h.spawn(async {})).collect();
        for t in hs {
            t.await.unwrap();
        }
    })
    .unwrap();
}

pub fn tokio_spawn_many(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        let hs: Vec<_> = (0..n).map(|_| tokio::spawn(async {})).collect();
        for t in hs {
            t.await.unwrap();
        }
    });
}

pub fn smol_spawn_many(ex: &async_executor::LocalExecutor<'_>, n: usize) {
    futures::executor::block_on(ex.run(async {
        let hs: Vec<_> = (0..n).map(|_| ex.spawn(async {})).collect();
        for t in hs {
            t.await;
        }
    }));
}

// ---- chained_spawn ----

fn solo_chain(h: solo::Handle, left: usize, done: oneshot::Sender<()>) {
    if left == 0 {
        let _ = done.send(());
    } else {
        let h2 = h.clone();
        drop(h.spawn(async move { solo_chain(h2, left - 1, done) }));
    }
}

pub fn solo_chained_spawn(el: &solo::EventLoop, n: usize) {
    let h = el.handle();
    el.run_until_complete(async move {
        let (tx, rx) = oneshot::channel();
        solo_chain(h, n, tx);
        rx.await.unwrap();
    })
    .unwrap();
}

fn tokio_chain(left: usize, done: oneshot::Sender<()>) {
    if left == 0 {
        let _ = done.send(());
    } else {
        tokio::spawn(async move { tokio_chain(left - 1, done) });
    }
}

pub fn tokio_chained_spawn(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        let (tx, rx) = oneshot::channel();
        tokio_chain(n, tx);
        rx.await.unwrap();
    });
}

// ---- yield_many ----

pub fn solo_yield_many(el: &solo::EventLoop, tasks: usize, yields: usize) {
    let h = el.handle();
    el.run_until_complete(async move {
        let hs: Vec<_> = (0..tasks)
            .map(|_| {
                h.spawn(async move {
                    for _ in 0..yields {
                        solo::yield_now().await;
                    }
                })
            })
            .collect();
        for t in hs {
            t.await.unwrap();
        }
    })
    .unwrap();
}

pub fn tokio_yield_many(rt: &tokio::runtime::Runtime, tasks: usize, yields: usize) {
    rt.block_on(async move {
        let hs: Vec<_> = (0..tasks)
            .map(|_| {
                tokio::spawn(async move {
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                    }
                })
            })
            .collect();
        for t in hs {
            t.await.unwrap();
        }
    });
}

// ---- ping_pong ----

pub fn solo_ping_pong(el: &solo::EventLoop, pairs: usize) {
    let h = el.handle();
    el.run_until_complete(async move {
        let hs: Vec<_> = (0..pairs)
            .map(|_| {
                let (ping_tx, ping_rx) = oneshot::channel::<()>();
                let (pong_tx, pong_rx) = oneshot::channel::<()>();
                drop(h.spawn(async move {
                    ping_rx.await.unwrap();
                    pong_tx.send(()).unwrap();
                }));
                h.spawn(async move {
                    ping_tx.send(()).unwrap();
                    pong_rx.await.unwrap();
                })
            })
            .collect();
        for t in hs {
            t.await.unwrap();
        }
    })
    .unwrap();
}

pub fn tokio_ping_pong(rt: &tokio::runtime::Runtime, pairs: usize) {
    rt.block_on(async move {
        let hs: Vec<_> = (0..pairs)
            .map(|_| {
                let (ping_tx, ping_rx) = oneshot::channel::<()>();
                let (pong_tx, pong_rx) = oneshot::channel::<()>();
                tokio::spawn(async move {
                    ping_rx.await.unwrap();
                    pong_tx.send(()).unwrap();
                });
                tokio::spawn(async move {
                    ping_tx.send(()).unwrap();
                    pong_rx.await.unwrap();
                })
            })
            .collect();
        for t in hs {
            t.await.unwrap();
        }
    });
}

// ---- call_soon (solo only) against the raw floor ----

fn chain(h: &solo::Handle, left: Rc<std::cell::Cell<usize>>) {
    let n = left.get();
    if n == 0 {
        h.stop();
        return;
    }
    left.set(n - 1);
    let h2 = h.clone();
    h.call_soon(move || chain(&h2, left));
}

pub fn solo_call_soon_chain(el: &solo::EventLoop, n: usize) {
    chain(&el.handle(), Rc::new(std::cell::Cell::new(n)));
    el.run_forever().unwrap();
}

pub fn solo_call_soon_batch(el: &solo::EventLoop, n: usize) {
    let h = el.handle();
    let count = Rc::new(std::cell::Cell::new(0usize));
    for _ in 0..n {
        let c = count.clone();
        h.call_soon(move || c.set(c.get() + 1));
    }
    h.stop();
    el.run_forever().unwrap();
    assert_eq!(count.get(), n);
}

/// The floor: push, pop and call a boxed closure, nothing else. The queue is kept between runs,
/// as the loop keeps its ready queue, so neither pays for growing it.
pub fn floor_boxed_closures(n: usize) {
    thread_local! {
        static Q: std::cell::RefCell<VecDeque<Box<dyn FnOnce()>>> = Default::default();
    }
    Q.with(|q| floor_with(&mut q.borrow_mut(), n));
}

fn floor_with(q: &mut VecDeque<Box<dyn FnOnce()>>, n: usize) {
    let count = Rc::new(std::cell::Cell::new(0usize));
    for _ in 0..n {
        let c = count.clone();
        q.push_back(Box::new(move || c.set(c.get() + 1)));
    }
    while let Some(f) = q.pop_front() {
        f();
    }
    assert_eq!(count.get(), n);
}

// ---- timers ----

pub fn solo_timers_fire(el: &solo::EventLoop, n: usize) {
    let h = el.handle();
    el.run_until_complete(async move {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let d = Duration::from_micros((i as u64 * 100_000) / n as u64);
                h.spawn(solo::time::sleep(d))
            })
            .collect();
        for t in hs {
            t.await.unwrap();
        }
    })
    .unwrap();
}

pub fn tokio_timers_fire(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let d = Duration::from_micros((i as u64 * 100_000) / n as u64);
                tokio::spawn(tokio::time::sleep(d))
            })
            .collect();
        for t in hs {
            t.await.unwrap();
        }
    });
}

/// `timeout(1 s, f)` where `f` is pending once (so the timer is registered) and then ready (so
/// it is cancelled without firing).
pub fn solo_timeout(el: &solo::EventLoop, n: usize) {
    el.run_until_complete(async move {
        for _ in 0..n {
            solo::time::timeout(Duration::from_secs(1), yield_once())
                .await
                .unwrap();
        }
    })
    .unwrap();
}

pub fn tokio_timeout(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move {
        for _ in 0..n {
            tokio::time::timeout(Duration::from_secs(1), yield_once())
                .await
                .unwrap();
        }
    });
}

/// Polls each future once with the caller's waker (registering its timer), then returns.
pub async fn poll_all_once<F: Future>(futs: &mut [Pin<Box<F>>]) {
    std::future::poll_fn(|cx| {
        for f in futs.iter_mut() {
            let _ = f.as_mut().poll(cx);
        }
        Poll::Ready(())
    })
    .await
}

/// A million sleeps over an hour, each polled once (registering its timer), then dropped.
async fn solo_pending_timers_body(n: usize) {
    let mut v: Vec<_> = (0..n)
        .map(|i| {
            Box::pin(solo::time::sleep(Duration::from_millis(
                1 + (i as u64 * 3_600_000) / n as u64,
            )))
        })
        .collect();
    poll_all_once(&mut v).await;
    drop(v);
}

pub fn solo_pending_timers(el: &solo::EventLoop, n: usize) {
    el.run_until_complete(solo_pending_timers_body(n)).unwrap();
}

/// `pending_timers` inside a spawned task rather than the loop's main future: the timers keep
/// a task's waker instead of the main future's.
pub fn solo_pending_timers_task(el: &solo::EventLoop, n: usize) {
    let h = el.handle();
    el.run_until_complete(async move { h.spawn(solo_pending_timers_body(n)).await.unwrap() })
        .unwrap();
}

/// The floor of `pending_timers`: the same million boxed futures of `Sleep`'s size, each polled
/// once (returning `Pending` without registering anything) and dropped.
pub fn floor_pending_futures(el: &solo::EventLoop, n: usize) {
    struct Pending([u64; 5]);
    impl Future for Pending {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            std::hint::black_box(&self.0);
            Poll::Pending
        }
    }
    const _: () =
        assert!(std::mem::size_of::<Pending>() == std::mem::size_of::<solo::time::Sleep>());
    el.run_until_complete(async move {
        let mut v: Vec<_> = (0..n).map(|i| Box::pin(Pending([i as u64; 5]))).collect();
        poll_all_once(&mut v).await;
        drop(v);
    })
    .unwrap();
}

async fn tokio_pending_timers_body(n: usize) {
    let mut v: Vec<_> = (0..n)
        .map(|i| {
            Box::pin(tokio::time::sleep(Duration::from_millis(
                1 + (i as u64 * 3_600_000) / n as u64,
            )))
        })
        .collect();
    poll_all_once(&mut v).await;
    drop(v);
}

pub fn tokio_pending_timers(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(tokio_pending_timers_body(n));
}

pub fn tokio_pending_timers_task(rt: &tokio::runtime::Runtime, n: usize) {
    rt.block_on(async move { tokio::spawn(tokio_pending_timers_body(n)).await.unwrap() });
}

// ---- tcp_echo ----

/// The client: `conns` blocking connections on as many threads, each doing `rounds` 1 KiB
/// round trips. Returns the elapsed time.
pub fn echo_client(addr: SocketAddr, conns: usize, rounds: usize) -> Duration {
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(conns + 1));
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let b = barrier.clone();
            std::thread::spawn(move || {
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_nodelay(true).unwrap();
                let msg = [7u8; 1024];
                let mut back = [0u8; 1024];
                b.wait();
                for _ in 0..rounds {
                    s.write_all(&msg).unwrap();
                    s.read_exact(&mut back).unwrap();
                }
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join().unwrap();
    }
    start.elapsed()
}

/// A solo echo server on its own thread, its loop spinning for `spin` before it sleeps
/// (`Duration::ZERO`: the default loop, whatever `SOLO_SPIN_US` says); returns its address.
pub fn spawn_solo_echo(spin: Duration) -> SocketAddr {
    spawn_solo_echo_on(spin, solo::Backend::Mio, None)
}

/// The same server on the given backend. With `stats`, the loop runs in debug mode and sends
/// its stats over the channel each time a connection closes (for the syscall census).
pub fn spawn_solo_echo_on(
    spin: Duration,
    backend: solo::Backend,
    stats: Option<std::sync::mpsc::Sender<solo::debug::Stats>>,
) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use futures::{AsyncReadExt, AsyncWriteExt};
        let el = std::rc::Rc::new(
            solo::EventLoop::builder()
                .spin_before_sleep(spin)
                .backend(backend)
                .debug(stats.is_some())
                .build()
                .unwrap(),
        );
        let el2 = el.clone();
        el.run_until_complete(async move {
            let l = solo::net::TcpListener::bind("127.0.0.1:0").unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let (el3, stats) = (el2.clone(), stats.clone());
                s.set_nodelay(true).unwrap();
                drop(solo::Handle::current().spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                            }
                        }
                    }
                    if let (Some(tx), Some(st)) = (stats, el3.stats()) {
                        let _ = tx.send(st);
                    }
                }));
            }
        })
        .unwrap();
    });
    rx.recv().unwrap()
}

/// Syscalls per request of the echo server on `backend`: one connection, `rounds` 1 KiB
/// round trips, counted by the loop's debug stats (waits, and registrations modified).
pub fn echo_syscalls(backend: solo::Backend, rounds: usize) -> (f64, f64) {
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = spawn_solo_echo_on(Duration::ZERO, backend, Some(tx));
    echo_client(addr, 1, 10); // warm-up connection
    let before = rx.recv().unwrap();
    echo_client(addr, 1, rounds);
    let after = rx.recv().unwrap();
    let per = |a: u64, b: u64| (a - b) as f64 / rounds as f64;
    (
        per(after.backend_waits, before.backend_waits),
        per(after.backend_modifies, before.backend_modifies),
    )
}

/// The same server on tokio's current_thread runtime.
pub fn spawn_tokio_echo() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        tokio_rt().block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                s.set_nodelay(true).unwrap();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => {
                                if s.write_all(&buf[..n]).await.is_err() {
                                    return;
                                }
                            }
                        }
                    }
                });
            }
        });
    });
    rx.recv().unwrap()
}

// ---- solo::sync's channel against thread-safe channels, all on solo's loop ----
//
// The same workload over `solo::sync::channel`, `async_channel` (smol's) and tokio's
// `mpsc::unbounded_channel`, each run by tasks of the same solo loop: the executor is the same,
// so the difference is the channel's.

/// Ping-pong: a task sends `n` values one at a time and awaits each one's echo from another
/// task (two channels); every message is a wake-up of a waiting receiver.
pub fn sync_ping_pong_solo(el: &solo::EventLoop, n: usize) {
    use solo::sync::channel::unbounded;
    let h = el.handle();
    el.run_until_complete(async move {
        let (ping_tx, ping_rx) = unbounded::<usize>();
        let (pong_tx, pong_rx) = unbounded::<usize>();
        let echo = h.spawn(async move {
            while let Some(v) = ping_rx.recv().await {
                pong_tx.send(v).unwrap();
            }
        });
        let player = h.spawn(async move {
            for i in 0..n {
                ping_tx.send(i).unwrap();
                assert_eq!(pong_rx.recv().await, Some(i));
            }
        });
        player.await.unwrap();
        echo.await.unwrap();
    })
    .unwrap();
}

pub fn sync_ping_pong_async_channel(el: &solo::EventLoop, n: usize) {
    let h = el.handle();
    el.run_until_complete(async move {
        let (ping_tx, ping_rx) = async_channel::unbounded::<usize>();
        let (pong_tx, pong_rx) = async_channel::unbounded::<usize>();
        let echo = h.spawn(async move {
            while let Ok(v) = ping_rx.recv().await {
                pong_tx.try_send(v).unwrap();
            }
        });
        let player = h.spawn(async move {
            for i in 0..n {
                ping_tx.try_send(i).unwrap();
                assert_eq!(pong_rx.recv().await, Ok(i));
            }
        });
        player.await.unwrap();
        echo.await.unwrap();
    })
    .unwrap();
}

pub fn sync_ping_pong_tokio_mpsc(el: &solo::EventLoop, n: usize) {
    let h = el.handle();
    el.run_until_complete(async move {
        let (ping_tx, mut ping_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let (pong_tx, mut pong_rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        let echo = h.spawn(async move {
            while let Some(v) = ping_rx.recv().await {
                pong_tx.send(v).unwrap();
            }
        });
        let player = h.spawn(async move {
            for i in 0..n {
                ping_tx.send(i).unwrap();
                assert_eq!(pong_rx.recv().await, Some(i));
            }
        });
        player.await.unwrap();
        echo.await.unwrap();
    })
    .unwrap();
}

/// Fan-in: `producers` tasks each send `per` values into one channel, yielding after each
/// send (so they interleave), while one task receives them all.
pub fn sync_fan_in_solo(el: &solo::EventLoop, producers: usize, per: usize) {
    let h = el.handle();
    el.run_until_complete(async move {
        let (tx, rx) = solo::sync::channel::unbounded::<usize>();
        for _ in 0..producers {
            let tx = tx.clone();
            drop(h.spawn(async move {
                for i in 0..per {
                    tx.send(i).unwrap();
                    yield_once().await;
                }
            }));
        }
        drop(tx);
        let consumer = h.spawn(async move {
            let mut n = 0;
            while rx.recv().await.is_some() {
                n += 1;
            }
            n
        });
        assert_eq!(consumer.await.unwrap(), producers * per);
    })
    .unwrap();
}

pub fn sync_fan_in_async_channel(el: &solo::EventLoop, producers: usize, per: usize) {
    let h = el.handle();
    el.run_until_complete(async move {
        let (tx, rx) = async_channel::unbounded::<usize>();
        for _ in 0..producers {
            let tx = tx.clone();
            drop(h.spawn(async move {
                for i in 0..per {
                    tx.try_send(i).unwrap();
                    yield_once().await;
                }
            }));
        }
        drop(tx);
        let consumer = h.spawn(async move {
            let mut n = 0;
            while rx.recv().await.is_ok() {
                n += 1;
            }
            n
        });
        assert_eq!(consumer.await.unwrap(), producers * per);
    })
    .unwrap();
}

pub fn sync_fan_in_tokio_mpsc(el: &solo::EventLoop, producers: usize, per: usize) {
    let h = el.handle();
    el.run_until_complete(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<usize>();
        for _ in 0..producers {
            let tx = tx.clone();
            drop(h.spawn(async move {
                for i in 0..per {
                    tx.send(i).unwrap();
                    yield_once().await;
                }
            }));
        }
        drop(tx);
        let consumer = h.spawn(async move {
            let mut n = 0;
            while rx.recv().await.is_some() {
                n += 1;
            }
            n
        });
        assert_eq!(consumer.await.unwrap(), producers * per);
    })
    .unwrap();
}

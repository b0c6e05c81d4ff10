//! Both backends, side by side: the choice itself (builder and `SOLO_BACKEND`), the bad inputs
//! every backend must handle the same way, and what each costs in syscalls. (The whole suite
//! also runs once per backend in CI: `SOLO_BACKEND=polling cargo test`.)

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use solo::{Async, Backend, EventLoop};

mod common;

const BOTH: [Backend; 2] = [Backend::Mio, Backend::Polling];

fn on(backend: Backend) -> EventLoop {
    let el = EventLoop::builder().backend(backend).build().unwrap();
    assert_eq!(el.backend(), backend);
    el
}

#[test]
fn the_environment_picks_the_backend_and_an_unknown_name_is_an_error() {
    let _watchdog = common::watchdog!();
    common::with_env!(&[("SOLO_BACKEND", "polling")], || {
        assert_eq!(EventLoop::new().unwrap().backend(), Backend::Polling);
        // The builder's choice wins over the environment.
        let el = EventLoop::builder().backend(Backend::Mio).build().unwrap();
        assert_eq!(el.backend(), Backend::Mio);
    });
    common::with_env!(&[("SOLO_BACKEND", "MIO")], || {
        assert_eq!(EventLoop::new().unwrap().backend(), Backend::Mio);
    });
    common::with_env!(&[("SOLO_BACKEND", "io_uring")], || {
        let err = EventLoop::new().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("\"mio\" and \"polling\""), "{err}");
    });
    assert_eq!(Backend::Polling.name(), "polling");
}

/// An fd number nothing in this process has open: above any `RLIMIT_NOFILE` the tests run
/// under (or, where the limit is higher, far above the few hundred fds they use).
const NOTHING_OPEN: std::os::fd::RawFd = 999_999;

#[test]
fn bad_registrations_are_the_same_clear_errors_on_both() {
    let _watchdog = common::watchdog!();
    for backend in BOTH {
        let el = on(backend);
        let h = el.handle();
        // Removing what was never added.
        let (a, _b) = UnixStream::pair().unwrap();
        assert!(!h.remove_reader(&a), "{backend:?}");
        // A number with nothing open behind it. Not one just closed: another test's thread
        // may open a file and get that number back before we use it.
        drop(a);
        let err = h.add_reader(&NOTHING_OPEN, || {}).unwrap_err();
        assert!(
            err.to_string().contains("not an open file descriptor"),
            "{backend:?}: {err}"
        );
        // A file that cannot be polled.
        let file = std::fs::File::open("Cargo.toml").unwrap();
        let err = h.add_reader(&file, || {}).unwrap_err();
        assert!(
            err.to_string().contains("cannot be polled"),
            "{backend:?}: {err}"
        );
        // The same fd registered twice: a second reader replaces the first; a second `Async`
        // is refused.
        let (a, _b) = UnixStream::pair().unwrap();
        let b2 = a.try_clone().unwrap();
        el.run_until_complete(async {
            let first = Async::new(a).unwrap();
            // `b2` is another fd for the same socket: a different number, so it registers.
            let second = Async::new(b2).unwrap();
            let fd = first.get_ref().as_raw_fd();
            let err = h.add_reader(&fd, || {}).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::AlreadyExists, "{backend:?}");
            drop(second);
        })
        .unwrap();
    }
}

#[test]
fn ten_thousand_registrations_on_both() {
    let _watchdog = common::watchdog!(Duration::from_secs(120));
    let limit = {
        let mut rl = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit with a valid struct, on this process.
        unsafe {
            libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl);
            rl.rlim_cur = rl.rlim_max.min(25_000);
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
        rl.rlim_cur
    };
    assert!(limit >= 10_500, "fd limit {limit} too low for this test");
    for backend in BOTH {
        let el = on(backend);
        let h = el.handle();
        // 5,000 socket pairs, a reader on each end: 10,000 registrations.
        let pairs: Vec<_> = (0..5_000).map(|_| UnixStream::pair().unwrap()).collect();
        let calls = Rc::new(Cell::new(0u32));
        for (a, b) in &pairs {
            for end in [a, b] {
                let c = calls.clone();
                h.add_reader(end, move || c.set(c.get() + 1)).unwrap();
            }
        }
        // One end of every tenth pair becomes readable: exactly those readers run.
        for (_, b) in pairs.iter().step_by(10) {
            (&*b).write_all(b"x").unwrap();
        }
        common::run_once(&el);
        assert_eq!(calls.get(), 500, "{backend:?}");
        for (a, b) in &pairs {
            assert!(h.remove_reader(a) && h.remove_reader(b));
        }
    }
}

#[test]
fn a_remote_wake_ends_a_long_wait_on_both() {
    let _watchdog = common::watchdog!();
    for backend in BOTH {
        let el = on(backend);
        let remote = el.handle().remote();
        // A far timer: the loop sleeps in the backend until the other thread wakes it.
        el.handle().call_later(Duration::from_secs(3600), || {});
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            remote
                .call_soon_threadsafe(|| solo::Handle::current().stop())
                .unwrap();
        });
        el.run_forever().unwrap();
        t.join().unwrap();
    }
}

#[test]
fn readiness_between_a_would_block_and_the_rearm_is_not_lost_on_both() {
    let _watchdog = common::watchdog!();
    for backend in BOTH {
        let el = on(backend);
        let (a, mut b) = UnixStream::pair().unwrap();
        b.write_all(b"x").unwrap();
        let got = el
            .run_until_complete(async move {
                let a = Async::new(a).unwrap();
                let mut buf = [0u8; 8];
                // The first read takes the byte that made the socket readable; readiness stays
                // cached, so the second read runs, sees WouldBlock, and the data arrives right
                // then, before the task goes back to wait: the wait must still end.
                assert_eq!(a.read_with(|s| (&*s).read(&mut buf)).await.unwrap(), 1);
                let mut b = Some(b);
                a.read_with(|s| {
                    let r = (&*s).read(&mut buf);
                    if matches!(&r, Err(e) if e.kind() == io::ErrorKind::WouldBlock) {
                        if let Some(mut b) = b.take() {
                            b.write_all(b"late").unwrap();
                            std::mem::forget(b); // keep the peer open
                        }
                    }
                    r
                })
                .await
                .unwrap()
            })
            .unwrap();
        assert_eq!(got, 4, "{backend:?}");
    }
}

#[test]
fn what_each_backend_costs_in_syscalls() {
    let _watchdog = common::watchdog!();
    for backend in BOTH {
        let el = EventLoop::builder()
            .backend(backend)
            .debug(true)
            .build()
            .unwrap();
        let (a, b) = UnixStream::pair().unwrap();
        const ROUNDS: u64 = 100;
        let before = el.stats().unwrap();
        el.run_until_complete(async move {
            use futures::{AsyncReadExt, AsyncWriteExt};
            let (mut a, mut b) = (Async::new(a).unwrap(), Async::new(b).unwrap());
            let pong = solo::Handle::current().spawn(async move {
                let mut buf = [0u8; 1];
                for _ in 0..ROUNDS {
                    b.read_exact(&mut buf).await.unwrap();
                    b.write_all(&buf).await.unwrap();
                }
            });
            let mut buf = [0u8; 1];
            for _ in 0..ROUNDS {
                a.write_all(b"p").await.unwrap();
                a.read_exact(&mut buf).await.unwrap();
            }
            pong.await.unwrap();
        })
        .unwrap();
        let after = el.stats().unwrap();
        assert_eq!(after.backend, backend);
        assert_eq!(after.backend_adds - before.backend_adds, 2, "{backend:?}");
        let modifies = after.backend_modifies - before.backend_modifies;
        match backend {
            // Edge-triggered: registered once, never touched again.
            Backend::Mio => assert_eq!(modifies, 0),
            // Oneshot: armed each time a task waits (two waits per round trip, one per side).
            _ => assert!(
                modifies >= ROUNDS,
                "{modifies} re-arms for {ROUNDS} round trips"
            ),
        }
        assert!(after.backend_waits > before.backend_waits);
    }
}

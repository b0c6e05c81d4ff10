//! `solo::signal`: signal streams and `ctrl_c`, with real signals sent to this process. Signal
//! dispositions are process-wide and the tests of this file run on parallel threads, so each
//! test has a signal of its own, and a signal is only ever sent while a listener for it lives
//! (once none does, its default action, often "terminate", is back).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::task::Poll;
use std::time::Duration;

use futures::StreamExt;
use solo::signal::{ctrl_c, signal, Signal, SignalKind};
use solo::{EventLoop, Handle};

mod common;

/// Sends `sig` to the calling thread: its handler has run when this returns. (A signal sent to
/// the process may be taken by any thread, later; one that came after its last listener was
/// dropped would run the default action and end the whole test binary.)
fn raise(sig: i32) {
    // SAFETY: raise(3) sends a signal to the calling thread; no memory is involved.
    assert_eq!(unsafe { libc::raise(sig) }, 0);
}

/// Whether `s` has a delivery ready now (polls it once, without waiting).
fn ready_now(s: &mut Signal) -> bool {
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    matches!(s.poll_recv(&mut cx), Poll::Ready(Some(())))
}

#[test]
fn a_stream_yields_each_delivery_sent_from_another_thread() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let mut usr1 = signal(SignalKind::user_defined1()).unwrap();
        assert_eq!(usr1.kind(), SignalKind::user_defined1());
        for _ in 0..3 {
            // The loop is blocked in poll when the signal comes.
            let t = std::thread::spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                raise(libc::SIGUSR1);
            });
            assert_eq!(usr1.next().await, Some(()));
            t.join().unwrap();
        }
        // Nothing more is pending: the deliveries were consumed one by one.
        assert!(!ready_now(&mut usr1));
    })
    .unwrap();
}

#[test]
fn deliveries_between_two_polls_come_out_as_one() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let mut s = signal(SignalKind::from_raw(libc::SIGRTMIN() + 1)).unwrap();
        // Real-time signals are queued by the kernel, one byte each in the pipe: 100 of them,
        // more than the stream reads at once, delivered before the poll, are one item.
        for _ in 0..100 {
            raise(libc::SIGRTMIN() + 1);
        }
        assert_eq!(s.recv().await, Some(()));
        assert!(!ready_now(&mut s));
    })
    .unwrap();
}

#[test]
fn several_listeners_and_a_handler_all_see_one_signal() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let handled = std::rc::Rc::new(std::cell::Cell::new(0));
    let c = handled.clone();
    h.add_signal_handler(libc::SIGUSR2, move || c.set(c.get() + 1))
        .unwrap();
    el.run_until_complete(async {
        let mut listeners: Vec<Signal> = (0..3)
            .map(|_| signal(SignalKind::user_defined2()).unwrap())
            .collect();
        raise(libc::SIGUSR2);
        for l in &mut listeners {
            assert_eq!(l.recv().await, Some(()));
        }
        while handled.get() == 0 {
            solo::yield_now().await;
        }
        // One more, after one listener is gone: the others still see it.
        drop(listeners.pop());
        raise(libc::SIGUSR2);
        for l in &mut listeners {
            assert_eq!(l.recv().await, Some(()));
        }
    })
    .unwrap();
    assert!(h.remove_signal_handler(libc::SIGUSR2));
}

#[test]
fn ctrl_c_completes_on_sigint() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        // Made inside the loop: listening from this call on, so a SIGINT before the first
        // poll counts.
        let c = ctrl_c();
        raise(libc::SIGINT);
        c.await.unwrap();
    })
    .unwrap();
    // Made outside a loop: it listens from its first poll, which must be inside one.
    let c = ctrl_c();
    el.run_until_complete(async {
        let t = std::thread::spawn(|| {
            std::thread::sleep(Duration::from_millis(20));
            raise(libc::SIGINT);
        });
        let mut c = c;
        // Poll once so that it listens, then let the thread send.
        let first = futures::poll!(&mut c);
        assert!(first.is_pending());
        c.await.unwrap();
        t.join().unwrap();
    })
    .unwrap();
}

#[test]
fn named_kinds_and_bad_kinds() {
    let _watchdog = common::watchdog!();
    assert_eq!(SignalKind::terminate().as_raw(), libc::SIGTERM);
    assert_eq!(SignalKind::child().to_string(), "SIGCHLD");
    assert_eq!(SignalKind::from_raw(libc::SIGHUP), SignalKind::hangup());
    assert_eq!(SignalKind::from_raw(40).to_string(), "signal 40");
    assert_eq!(SignalKind::from_raw(40).name(), None);
    assert_eq!(i32::from(SignalKind::quit()), libc::SIGQUIT);
    assert_eq!(
        format!("{:?}", SignalKind::window_change()),
        "SignalKind(SIGWINCH)"
    );
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        for sig in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, -1, 65, 1000] {
            let e = signal(SignalKind::from_raw(sig)).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{sig}: {e}");
        }
    })
    .unwrap();
}

#[test]
fn signal_streams_and_closed_loops() {
    let _watchdog = common::watchdog!();
    // Outside a running loop: an error, not a panic.
    let e = signal(SignalKind::from_raw(libc::SIGRTMIN() + 2)).unwrap_err();
    assert!(e.to_string().contains("outside a running"), "{e}");
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let mut s = Signal::with_handle(SignalKind::from_raw(libc::SIGRTMIN() + 2), &h).unwrap();
    // A delivery while the loop is not running is kept for it.
    raise(libc::SIGRTMIN() + 2);
    assert_eq!(el.run_until_complete(s.recv()).unwrap(), Some(()));
    drop(el);
    // The loop is gone: the stream has ended, also for one that a signal reaches afterwards.
    raise(libc::SIGRTMIN() + 2);
    assert_eq!(futures::executor::block_on(s.next()), None);
    assert_eq!(futures::executor::block_on(s.recv()), None);
    // A new stream, or ctrl_c, on the closed loop: errors.
    let e = Signal::with_handle(SignalKind::from_raw(libc::SIGRTMIN() + 2), &h).unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
    drop(s);
    // ctrl_c outside any loop fails when polled.
    let e = futures::executor::block_on(ctrl_c()).unwrap_err();
    assert!(e.to_string().contains("outside a running"), "{e}");
}

#[test]
fn listeners_dropped_while_signals_arrive() {
    let _watchdog = common::watchdog!();
    let sig = libc::SIGHUP; // its default action terminates: a keeper listens all along
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let mut keeper = signal(SignalKind::hangup()).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let s2 = stop.clone();
        let sender = std::thread::spawn(move || {
            let mut sent = 0u64;
            while !s2.load(Ordering::Relaxed) {
                raise(sig);
                sent += 1;
                std::thread::yield_now();
            }
            sent
        });
        let mut seen = 0;
        for i in 0..300 {
            let mut l = signal(SignalKind::hangup()).unwrap();
            if i % 2 == 0 {
                // Dropped with a delivery waiting in its pipe, or while one is being written.
                if l.recv().await.is_some() {
                    seen += 1;
                }
            }
            drop(l);
            if i % 10 == 0 {
                solo::yield_now().await;
            }
        }
        stop.store(true, Ordering::Relaxed);
        let sent = sender.join().unwrap();
        assert!(sent > 0);
        assert_eq!(seen, 150);
        // The keeper saw deliveries, and still does.
        assert_eq!(keeper.recv().await, Some(()));
        raise(sig);
        assert_eq!(keeper.recv().await, Some(()));
    })
    .unwrap();
}

#[test]
fn several_loops_each_see_the_same_signal() {
    let _watchdog = common::watchdog!();
    const LOOPS: usize = 4;
    let listening = Arc::new(Barrier::new(LOOPS + 1));
    let threads: Vec<_> = (0..LOOPS)
        .map(|_| {
            let listening = listening.clone();
            std::thread::spawn(move || {
                let el = EventLoop::new().unwrap();
                el.run_until_complete(async {
                    let mut alarm = signal(SignalKind::alarm()).unwrap();
                    listening.wait();
                    alarm.recv().await
                })
                .unwrap()
            })
        })
        .collect();
    listening.wait();
    raise(libc::SIGALRM); // once, for the process
    for t in threads {
        assert_eq!(t.join().unwrap(), Some(()));
    }
}

#[test]
fn a_stream_made_for_a_loop_that_is_not_current() {
    let _watchdog = common::watchdog!();
    let (a, b) = (EventLoop::new().unwrap(), EventLoop::new().unwrap());
    let mut on_a = Signal::with_handle(SignalKind::window_change(), &a.handle()).unwrap();
    b.run_until_complete(async {
        // Running b; on_a belongs to a.
        assert!(Handle::current().is_running());
        raise(libc::SIGWINCH);
    })
    .unwrap();
    assert_eq!(a.run_until_complete(on_a.recv()).unwrap(), Some(()));
}

/// Run in a child process by the tests below: its last step may kill the process. `SIG` in
/// the environment names the signal (`TERM`, or `RT` for `SIGRTMIN() + 3`, a signal
/// signal-hook's table does not know).
#[test]
#[ignore = "helper process for dropping_the_last_stream_restores_the_default_action"]
fn stream_default_helper() {
    let _watchdog = common::watchdog!();
    use std::io::Write;
    let sig = match std::env::var("SIG").as_deref() {
        Ok("RT") => libc::SIGRTMIN() + 3,
        _ => libc::SIGTERM,
    };
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let mut s = signal(SignalKind::from_raw(sig)).unwrap();
        raise(sig);
        assert_eq!(s.recv().await, Some(()));
    })
    .unwrap();
    println!("caught once");
    std::io::stdout().flush().unwrap();
    raise(sig); // no listener left: the default action, which terminates
    std::thread::sleep(Duration::from_secs(5));
    println!("survived");
}

#[test]
fn dropping_the_last_stream_restores_the_default_action() {
    let _watchdog = common::watchdog!();
    use std::os::unix::process::ExitStatusExt;
    for (name, sig) in [("TERM", libc::SIGTERM), ("RT", libc::SIGRTMIN() + 3)] {
        let out = common::rerun("stream_default_helper")
            .args(["--ignored", "--nocapture"])
            .env("SIG", name)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(stdout.contains("caught once"), "{name}: {stdout}");
        assert!(!stdout.contains("survived"), "{name}: {stdout}");
        assert_eq!(out.status.signal(), Some(sig), "{name}: {:?}", out.status);
    }
}

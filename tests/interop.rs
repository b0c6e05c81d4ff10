//! solo and other runtimes: a tokio-only crate (reqwest) through async-compat
//! (`examples/tokio_crate`); solo's loop run inside tokio's `block_on` (what stalls, and the
//! `tokio-detect` notice); solo inside solo.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use solo::{CallbackKind, EventLoop, RunError};

mod common;

#[cfg(feature = "hyper")]
#[allow(dead_code)]
#[path = "../examples/tokio_crate.rs"]
mod tokio_crate;

#[cfg(feature = "hyper")]
#[test]
fn a_tokio_only_crate_runs_on_solo_through_async_compat() {
    let _watchdog = common::watchdog!();
    let got = tokio_crate::run().unwrap();
    let bodies: Vec<_> = got.iter().map(|(s, b)| (*s, b.as_str())).collect();
    assert_eq!(
        bodies,
        [
            (200, "solo served /one"),
            (200, "solo served /two"),
            (200, "solo served /three")
        ]
    );
}

#[cfg(feature = "hyper")]
#[test]
fn a_tokio_only_crate_reports_its_errors_on_solo() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let client = async_compat::Compat::new(async {
            reqwest::Client::builder().no_proxy().build().unwrap()
        })
        .await;
        // Nothing listens there: a connection error, not a hang or a panic.
        let (l, addr) = common::local_listener();
        drop(l);
        let url = format!("http://{addr}/");
        let e = tokio_crate::fetch(&client, &url, Duration::from_secs(10)).await;
        assert!(e.is_err());
        // A server that accepts and never answers: tokio's timer (inside Compat) ends the wait.
        let (l, addr) = common::local_listener();
        let url = format!("http://{addr}/");
        let e = tokio_crate::fetch(&client, &url, Duration::from_millis(50))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("deadline"), "{e}");
        drop(l);
    })
    .unwrap();
}

/// What the docs say happens without detection: inside a current_thread runtime's `block_on`,
/// tokio's tasks and timers do not run while solo's loop runs, and run again afterwards.
/// With the `tokio-detect` feature the run is also reported, naming the call and its site.
#[test]
fn solo_inside_tokio_block_on_stalls_tokio_and_is_reported_with_tokio_detect() {
    let _watchdog = common::watchdog!();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let fired = Arc::new(AtomicBool::new(false));
        let f = fired.clone();
        let tokio_task = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            f.store(true, Ordering::SeqCst);
        });

        let el = EventLoop::new().unwrap();
        let notices = Rc::new(RefCell::new(Vec::new()));
        let n = notices.clone();
        el.handle().set_exception_handler(move |ctx| {
            assert_eq!(ctx.kind(), CallbackKind::Loop);
            n.borrow_mut().push(ctx.to_string());
        });
        let line = line!() + 1;
        let out = el.run_until_complete(async {
            solo::time::sleep(Duration::from_millis(20)).await;
            7
        });
        assert_eq!(out, Ok(7), "the run goes on either way");
        // tokio's task could not run: this thread was in solo's loop.
        assert!(!fired.load(Ordering::SeqCst));

        let notices = notices.borrow().clone();
        if cfg!(feature = "tokio-detect") {
            assert_eq!(notices.len(), 1, "{notices:?}");
            let n = &notices[0];
            assert!(
                n.contains("EventLoop::run_until_complete called at tests/interop.rs:"),
                "{n}"
            );
            assert!(
                n.contains(&format!(":{line}:")),
                "the user's line {line}: {n}"
            );
            assert!(
                n.contains("inside a tokio runtime, a current_thread runtime"),
                "{n}"
            );
            assert!(n.contains("async_compat::Compat"), "{n}");
        } else {
            assert!(notices.is_empty(), "{notices:?}");
        }
        drop(el);
        // Back in tokio's hands, its task runs.
        tokio_task.await.unwrap();
        assert!(fired.load(Ordering::SeqCst));
    });
}

#[cfg(feature = "tokio-detect")]
#[test]
fn tokio_detect_reports_run_forever_in_a_multi_thread_runtime_and_stays_quiet_outside() {
    let _watchdog = common::watchdog!();
    let notices = Rc::new(RefCell::new(Vec::new()));
    let run_forever_once = |notices: &Rc<RefCell<Vec<String>>>| {
        let el = EventLoop::new().unwrap();
        let n = notices.clone();
        el.handle()
            .set_exception_handler(move |ctx| n.borrow_mut().push(ctx.to_string()));
        el.stop();
        el.run_forever().unwrap();
    };
    // Outside any runtime: nothing to say.
    run_forever_once(&notices);
    assert!(notices.borrow().is_empty(), "{:?}", notices.borrow());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .build()
        .unwrap();
    rt.block_on(async { run_forever_once(&notices) });
    let got = notices.borrow();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(
        got[0].contains("EventLoop::run_forever called at"),
        "{}",
        got[0]
    );
    assert!(got[0].contains("a multi-thread runtime"), "{}", got[0]);
}

#[test]
fn solo_run_inside_a_running_solo_loop_is_an_error() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let (inner, outer_again) = el
        .run_until_complete(async {
            let inner = solo::run(async { 1 });
            let other = EventLoop::new().unwrap();
            let outer_again = other.run_until_complete(async { 2 });
            (inner, outer_again)
        })
        .unwrap();
    let e = inner.unwrap_err();
    assert!(e.to_string().contains("another loop"), "{e}");
    assert_eq!(outer_again, Err(RunError::AnotherLoopRunning));
    // The outer loop is unharmed.
    assert_eq!(el.run_until_complete(async { 3 }), Ok(3));
}

/// The porting guide's claims about select: `futures::select!` and `tokio::select!` (a macro
/// that only polls, with tokio's thread-local RNG) both work on solo's loop with no tokio
/// runtime, and the losing branch is dropped (cancelled).
#[test]
fn select_macros_and_tokio_sync_work_on_solo_without_a_tokio_runtime() {
    use futures::FutureExt;
    let _watchdog = common::watchdog!();
    let (el, _clock) = common::manual();
    el.run_until_complete(async {
        let (tx, rx) = futures::channel::oneshot::channel::<u32>();
        solo::Handle::current().call_later(Duration::from_secs(1), move || {
            let _ = tx.send(5);
        });
        let mut rx = rx.fuse();
        let mut long = Box::pin(solo::time::sleep(Duration::from_secs(60)).fuse());
        let got = futures::select! {
            v = rx => v.unwrap(),
            _ = long => 0,
        };
        assert_eq!(got, 5);

        let got = tokio::select! {
            _ = solo::time::sleep(Duration::from_secs(60)) => "sleep",
            _ = solo::time::sleep(Duration::from_secs(2)) => "short",
        };
        assert_eq!(got, "short");

        // tokio's sync primitives are runtime-agnostic.
        let (tx, mut rx) = tokio::sync::mpsc::channel(1);
        let task = solo::Handle::current().spawn(async move {
            for i in 0..3 {
                tx.send(i).await.unwrap();
            }
        });
        let mut seen = Vec::new();
        while let Some(i) = rx.recv().await {
            seen.push(i);
        }
        assert_eq!(seen, [0, 1, 2]);
        task.await.unwrap();
        assert!(tokio::runtime::Handle::try_current().is_err());
    })
    .unwrap();
}

//! The free functions on the running loop (`solo::spawn`, `spawn_named`, `call_soon`,
//! `call_later`, `call_at`, `run_in_executor`): they find the loop from a task, a callback and a
//! nested task, and outside a running loop they panic with a message that names the call and
//! says how to start a loop.

mod common;

use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::Duration;

use solo::{EventLoop, ManualClock};

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("expected a panic");
    if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else if let Some(s) = payload.downcast_ref::<&str>() {
        s.to_string()
    } else {
        panic!("a panic payload that is not a string")
    }
}

fn expected(call: &str) -> String {
    format!(
        "{call} called outside a running solo event loop; start one with solo::run, \
         EventLoop::run_until_complete or #[solo::main]"
    )
}

#[test]
fn each_one_outside_a_loop_panics_naming_itself() {
    let _watchdog = common::watchdog!();
    type Call = Box<dyn FnOnce()>;
    let cases: Vec<(&str, Call)> = vec![
        ("solo::spawn", Box::new(|| drop(solo::spawn(async {})))),
        (
            "solo::spawn_named",
            Box::new(|| drop(solo::spawn_named("n", async {}))),
        ),
        ("solo::call_soon", Box::new(|| drop(solo::call_soon(|| {})))),
        (
            "solo::call_later",
            Box::new(|| drop(solo::call_later(Duration::ZERO, || {}))),
        ),
        (
            "solo::call_at",
            Box::new(|| drop(solo::call_at(std::time::Instant::now(), || {}))),
        ),
        (
            "solo::run_in_executor",
            Box::new(|| drop(solo::run_in_executor(|| 1))),
        ),
        (
            "Handle::current",
            Box::new(|| drop(solo::Handle::current())),
        ),
    ];
    for (call, f) in cases {
        assert_eq!(panic_message(f), expected(call));
    }
}

#[test]
fn a_built_loop_that_is_not_running_does_not_count() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    assert_eq!(
        panic_message(|| drop(solo::spawn(async {}))),
        expected("solo::spawn")
    );
    // After a run the loop is no longer current either.
    el.run_until_complete(async {}).unwrap();
    assert_eq!(
        panic_message(|| drop(solo::call_soon(|| {}))),
        expected("solo::call_soon")
    );
}

#[test]
#[should_panic(
    expected = "solo::spawn called outside a running solo event loop; start one with solo::run, \
                EventLoop::run_until_complete or #[solo::main]"
)]
fn spawn_outside_a_loop_should_panic() {
    drop(solo::spawn(async { 1 }));
}

#[test]
fn from_a_task_nested_tasks_and_callbacks() {
    let _watchdog = common::watchdog!();
    let log = Rc::new(RefCell::new(Vec::new()));
    let l = log.clone();
    let out = solo::run(async move {
        let l2 = l.clone();
        // A task that spawns a task that spawns a task.
        let outer = solo::spawn(async move {
            let l3 = l2.clone();
            let inner = solo::spawn_named("inner", async move {
                let deepest = solo::spawn(async { 3 });
                l3.borrow_mut().push("inner");
                deepest.await.unwrap()
            });
            l2.borrow_mut().push("outer");
            inner.await.unwrap() + 1
        });
        // A callback that schedules a callback and spawns a task.
        let (tx, rx) = futures::channel::oneshot::channel();
        let l4 = l.clone();
        solo::call_soon(move || {
            let l5 = l4.clone();
            solo::call_soon(move || l5.borrow_mut().push("nested callback"));
            l4.borrow_mut().push("callback");
            let t = solo::spawn(async { 10 });
            let _ = tx.send(t);
        });
        let from_callback = rx.await.unwrap().await.unwrap();
        let from_pool = solo::run_in_executor(|| 100).await.unwrap();
        outer.await.unwrap() + from_callback + from_pool
    })
    .unwrap();
    assert_eq!(out, 4 + 10 + 100);
    let log = log.borrow();
    for what in ["outer", "inner", "callback", "nested callback"] {
        assert!(log.contains(&what), "{what} missing from {log:?}");
    }
    // FIFO: the callback scheduled first ran before the one it scheduled.
    let pos = |w| log.iter().position(|x| *x == w).unwrap();
    assert!(pos("callback") < pos("nested callback"));
}

/// Lets the loop go round `n` times.
async fn turns(n: usize) {
    for _ in 0..n {
        solo::yield_now().await;
    }
}

#[test]
fn call_later_and_call_at_use_the_loops_clock() {
    let _watchdog = common::watchdog!();
    let clock = ManualClock::new();
    let el = EventLoop::builder().clock(clock.clone()).build().unwrap();
    let fired = Rc::new(RefCell::new(Vec::new()));
    let f = fired.clone();
    let c = clock.clone();
    el.run_until_complete(async move {
        let (f1, f2, f3) = (f.clone(), f.clone(), f.clone());
        solo::call_later(Duration::from_secs(5), move || {
            f1.borrow_mut().push("later 5s")
        });
        let at = solo::Handle::current().time() + Duration::from_secs(2);
        solo::call_at(at, move || f2.borrow_mut().push("at 2s"));
        let cancelled = solo::call_later(Duration::from_secs(1), move || {
            f3.borrow_mut().push("cancelled")
        });
        cancelled.cancel();
        turns(3).await;
        assert!(
            f.borrow().is_empty(),
            "nothing is due before the clock moves"
        );
        c.advance(Duration::from_secs(3));
        turns(3).await;
        assert_eq!(*f.borrow(), ["at 2s"]);
        c.advance(Duration::from_secs(3));
        turns(3).await;
    })
    .unwrap();
    assert_eq!(*fired.borrow(), ["at 2s", "later 5s"]);
}

#[test]
fn spawn_named_shows_its_name_in_debug_mode() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::builder().debug(true).build().unwrap();
    let names = el
        .run_until_complete(async {
            let t = solo::spawn_named("the named one", std::future::pending::<()>());
            solo::time::sleep(Duration::ZERO).await;
            let names: Vec<_> = solo::Handle::current()
                .tasks()
                .into_iter()
                .filter_map(|t| Some((t.name?, t.site)))
                .collect();
            t.cancel();
            names
        })
        .unwrap();
    let (_, site) = names
        .iter()
        .find(|(n, _)| n == "the named one")
        .unwrap_or_else(|| panic!("{names:?}"));
    // The spawn site is the caller's line, not the free function's.
    assert!(site.file().ends_with("free_functions.rs"), "{site}");
}

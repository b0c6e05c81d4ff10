//! `TaskGroup`: joining in completion order, asyncio's rule on failure (siblings cancelled in
//! the next iteration, the first failure reported with the others attached), shutdown, drop,
//! and bad input: children that panic at once, a group used after shutdown, after a failure,
//! after its loop is gone.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use solo::sync::Event;
use solo::{ChildError, EventLoop, Handle, TaskGroup};

mod common;

use common::{run_once, Counted};

type Log = Rc<RefCell<Vec<String>>>;

/// What the exception handler sees, as its `Display`.
fn handler_log(h: &Handle) -> Log {
    let seen: Log = Rc::default();
    let s = seen.clone();
    h.set_exception_handler(move |ctx| s.borrow_mut().push(ctx.to_string()));
    seen
}

/// Yields `n` times, then returns `v`.
async fn after(n: usize, v: u32) -> u32 {
    for _ in 0..n {
        solo::yield_now().await;
    }
    v
}

#[test]
fn join_next_yields_each_child_in_the_order_they_finish() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let got = el
        .run_until_complete(async move {
            let mut g = TaskGroup::new(&h);
            assert!(g.join_next().await.is_none(), "empty: None at once");
            g.spawn(after(3, 3));
            g.spawn(after(1, 1));
            g.spawn_named("two", after(2, 2));
            assert_eq!(g.len(), 3);
            let mut got = Vec::new();
            while let Some(r) = g.join_next().await {
                got.push(r.unwrap());
                assert_eq!(g.len(), 3 - got.len());
            }
            assert!(g.is_empty());
            got
        })
        .unwrap();
    assert_eq!(got, [1, 2, 3]);
    let h = el.handle();
    let all = el
        .run_until_complete(async move {
            let g = TaskGroup::new(&h);
            for i in (0..4).rev() {
                g.spawn(after(i, i as u32));
            }
            g.join_all().await
        })
        .unwrap();
    assert_eq!(all.unwrap(), [0, 1, 2, 3]);
}

#[test]
fn a_failing_child_cancels_its_siblings_and_join_all_reports_it_first() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = handler_log(&h);
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let err = el
        .run_until_complete(async move {
            let g = TaskGroup::new(&h);
            g.spawn(async { 1 });
            g.spawn(async {
                solo::yield_now().await;
                panic!("child boom")
            });
            for _ in 0..3 {
                let c = Counted(d.clone());
                g.spawn(async move {
                    let _c = c;
                    std::future::pending::<u32>().await
                });
            }
            g.join_all().await.unwrap_err()
        })
        .unwrap();
    assert!(err.first().is_panic());
    assert_eq!(err.first().to_string(), "task panicked: child boom");
    assert!(err.others().is_empty());
    assert_eq!((err.completed(), err.cancelled()), (&[1][..], 3));
    assert_eq!(drops.get(), 3, "the pending siblings were dropped");
    assert!(
        err.to_string()
            .starts_with("a task of the group failed: task panicked: child boom"),
        "{err}"
    );
    // The panic itself, for resume_unwind, is the child's own payload.
    let (first, _, _) = err.into_parts();
    let ChildError::Join(e) = first; // `Failed(Infallible)` cannot be
    assert_eq!(
        *e.try_into_panic().unwrap().downcast::<&str>().unwrap(),
        "child boom"
    );
    drop(el);
    assert!(seen.borrow().is_empty(), "retrieved: never reported");
}

#[test]
fn children_that_panic_in_the_same_iteration_are_all_attached_to_the_first() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = handler_log(&h);
    let err = el
        .run_until_complete(async move {
            let g = TaskGroup::new(&h);
            for i in 0..4u32 {
                g.spawn(async move {
                    solo::yield_now().await;
                    panic!("child {i}")
                });
            }
            g.spawn(after(1_000, 9)); // cancelled before it ends
            g.join_all().await.unwrap_err()
        })
        .unwrap();
    // All four were due in the same iteration: the siblings' cancel comes in the next one, as
    // asyncio's done-callback does, so every failure is kept.
    assert_eq!(err.first().to_string(), "task panicked: child 0");
    let others: Vec<String> = err.others().iter().map(|e| e.to_string()).collect();
    assert_eq!(
        others,
        [
            "task panicked: child 1",
            "task panicked: child 2",
            "task panicked: child 3"
        ]
    );
    assert_eq!(err.cancelled(), 1);
    assert!(err.to_string().contains("(and 3 more failed; "), "{err}");
    drop(el);
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

#[test]
fn try_spawn_fails_the_group_with_the_error() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let err = el
        .run_until_complete(async move {
            let g = TaskGroup::<u32, String>::fallible(&h);
            g.try_spawn(async { Ok(1) });
            g.spawn(async { 2 }); // an infallible child in a fallible group
            g.try_spawn_named("reader", async {
                solo::yield_now().await;
                Err("disk full".to_string())
            });
            g.try_spawn(std::future::pending());
            assert!(!g.has_failed());
            g.join_all().await.unwrap_err()
        })
        .unwrap();
    assert_eq!(err.first().to_string(), "task failed: disk full");
    assert!(!err.first().is_panic() && !err.first().is_cancelled());
    assert_eq!(err.cancelled(), 1);
    let (first, others, mut completed) = err.into_parts();
    completed.sort();
    assert_eq!(completed, [1, 2]);
    assert!(others.is_empty());
    assert_eq!(first.into_failed().as_deref(), Some("disk full"));
    // join_next sees the same, one at a time.
    let h = el.handle();
    let last = el
        .run_until_complete(async move {
            let mut g = TaskGroup::<u32, &str>::fallible(&h);
            g.try_spawn(async { Err("no") });
            let next = g.join_next().await.unwrap();
            assert!(matches!(next, Err(ChildError::Failed("no"))));
            assert!(g.has_failed());
            // Spawned into a failed group: cancelled before its first poll.
            let polled = Rc::new(Cell::new(false));
            let p = polled.clone();
            g.spawn(async move {
                p.set(true);
                1
            });
            let next = g.join_next().await.unwrap();
            assert!(next.unwrap_err().is_cancelled());
            assert!(!polled.get());
            g.join_all().await
        })
        .unwrap();
    assert_eq!(last.unwrap(), Vec::<u32>::new());
}

#[test]
fn shutdown_cancels_the_rest_waits_and_leaves_the_group_usable() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = handler_log(&h);
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let after_shutdown = el
        .run_until_complete(async move {
            let mut g = TaskGroup::new(&h);
            g.spawn(async { 1 });
            for _ in 0..3 {
                let c = Counted(d.clone());
                g.spawn(async move {
                    let _c = c;
                    std::future::pending::<u32>().await
                });
            }
            solo::yield_now().await;
            g.shutdown().await;
            assert_eq!(d.get(), 3, "every child is gone when shutdown returns");
            assert!(g.is_empty());
            assert!(g.join_next().await.is_none());
            g.shutdown().await; // twice: nothing to do
                                // Used after shutdown: a group as new.
            g.spawn(async { 5 });
            g.join_all().await.unwrap()
        })
        .unwrap();
    assert_eq!(after_shutdown, [5]);
    assert_eq!(drops.get(), 3);
    assert!(seen.borrow().is_empty());
}

#[test]
fn dropping_the_group_cancels_its_children_and_reports_a_panic_nobody_joined() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = handler_log(&h);
    let drops = Rc::new(Cell::new(0));
    let g = TaskGroup::new(&h);
    let line = line!() + 1;
    g.spawn_named("fragile", async { panic!("unjoined") });
    for _ in 0..2 {
        let c = Counted(drops.clone());
        g.spawn(async move {
            let _c = c;
            std::future::pending::<()>().await
        });
    }
    run_once(&el); // the panic happens; the siblings' cancel is queued
    assert!(seen.borrow().is_empty(), "the group may still join it");
    // Dropped outside the running loop: reported when the loop runs next.
    drop(g);
    run_once(&el);
    assert_eq!(
        *seen.borrow(),
        [format!(
            "solo: task \"fragile\" (spawned at {}:{line}:7) failed: panicked: unjoined \
             (task exception was never retrieved: its JoinHandle was dropped without being \
             awaited, while the loop was not running)",
            file!()
        )]
    );
    assert_eq!(drops.get(), 2, "the children were cancelled");
    // Dropped inside the loop: reported at once.
    let g = TaskGroup::new(&h);
    g.spawn(async { panic!("again") });
    run_once(&el);
    h.call_soon(move || drop(g));
    run_once(&el);
    assert_eq!(seen.borrow().len(), 2);
    assert!(seen.borrow()[1].ends_with("dropped without being awaited)"));
    drop(el);
    assert_eq!(seen.borrow().len(), 2);
}

#[test]
fn a_group_whose_loop_is_gone_yields_its_children_as_cancelled() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let go = Rc::new(Event::new());
    let mut g = TaskGroup::new(&h);
    for _ in 0..2 {
        let go = go.clone();
        g.spawn(async move { go.wait().await });
    }
    run_once(&el);
    drop(el);
    // Spawned on a closed loop: never runs, cancelled too.
    g.spawn(async {});
    let mut results = Vec::new();
    futures::executor::block_on(async {
        while let Some(r) = g.join_next().await {
            results.push(r);
        }
    });
    assert_eq!(results.len(), 3);
    assert!(results
        .iter()
        .all(|r| r.as_ref().unwrap_err().is_cancelled()));
    drop(h);
}

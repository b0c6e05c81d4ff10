//! Graceful shutdown: `EventLoop::shutdown` and `solo::run`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use solo::{EventLoop, Handle};

mod common;

use common::Counted;

#[test]
fn shutdown_lets_tasks_finish_then_cancels_the_rest_exactly_once() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = common::manual();
    let h = el.handle();
    let drops = Rc::new(Cell::new(0));
    let finished = Rc::new(Cell::new(false));
    let (c, f) = (Counted(drops.clone()), finished.clone());
    h.spawn(async move {
        let _c = c;
        solo::time::sleep(Duration::from_millis(20)).await;
        f.set(true);
    });
    let c = Counted(drops.clone());
    h.spawn_named("never", async move {
        let _c = c;
        std::future::pending::<()>().await;
    });
    let c = Counted(drops.clone());
    h.spawn(async move {
        let _c = c;
        solo::time::sleep(Duration::from_secs(3600)).await;
    });
    let remote = h.remote();
    let report = el.shutdown(Duration::from_millis(100));
    assert!(
        finished.get(),
        "the short task finished within the grace period"
    );
    assert_eq!(drops.get(), 3, "every task's destructor ran exactly once");
    assert_eq!(report.cancelled.len(), 2);
    assert!(report
        .cancelled
        .iter()
        .any(|t| t.name.as_deref() == Some("never")));
    assert!(!report.is_clean());
    assert!(report.to_string().contains("\"never\""));
    assert!(remote.call_soon_threadsafe(|| {}).is_err());
    drop(h);
    assert_eq!(drops.get(), 3);
}

#[test]
fn shutdown_returns_within_the_grace_period_with_real_time() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    h.spawn(std::future::pending::<()>());
    let stuck = h.run_in_executor(|| std::thread::sleep(Duration::from_millis(1500)));
    drop(stuck);
    let start = Instant::now();
    let report = el.shutdown(Duration::from_millis(200));
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1200), "took {took:?}");
    assert_eq!(report.cancelled.len(), 1);
    assert_eq!(
        report.executor_unfinished, 1,
        "the sleeping job could not finish"
    );
}

#[test]
fn shutdown_refuses_remote_work_but_takes_wakeups() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let h2 = h.clone();
    h.spawn(async move {
        // Waits for a pool job: its wake-up comes from another thread during shutdown.
        g.set(h2.run_in_executor(|| 7).await.unwrap());
    });
    let report = el.shutdown(Duration::from_secs(5));
    assert!(report.is_clean(), "{report}");
    assert_eq!(got.get(), 7);
}

#[test]
fn run_is_the_one_call_entry_point() {
    let _watchdog = common::watchdog!();
    let drops = Rc::new(Cell::new(0));
    let c = Counted(drops.clone());
    let v = solo::run(async move {
        Handle::current().spawn(async move {
            let _c = c;
            std::future::pending::<()>().await;
        });
        solo::time::sleep(Duration::from_millis(1)).await;
        "out"
    })
    .unwrap();
    assert_eq!(v, "out");
    assert_eq!(drops.get(), 1, "the leftover task was cancelled");
}

#[test]
fn a_stop_before_shutdown_does_not_cut_the_grace_period_short() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = common::manual();
    let h = el.handle();
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    h.spawn(async move {
        solo::time::sleep(Duration::from_millis(20)).await;
        f.set(true);
    });
    el.stop();
    let report = el.shutdown(Duration::from_millis(100));
    assert!(finished.get());
    assert!(report.is_clean(), "{report}");
}

#[test]
fn a_grace_period_past_the_end_of_time_is_no_error() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.handle().spawn(async {});
    let report = el.shutdown(Duration::MAX);
    assert!(report.is_clean(), "{report}");
}

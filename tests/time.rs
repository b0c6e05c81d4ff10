//! `solo::time` on the manual clock: sleep, sleep_until, timeout, interval.

use std::time::{Duration, Instant};

use solo::time::{interval, sleep, sleep_until, timeout, Elapsed, Sleep};
use solo::Handle;

mod common;

use common::manual;

#[test]
fn sleep_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Sleep>();
}

#[test]
fn sleep_never_completes_before_its_deadline() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    let done = std::rc::Rc::new(std::cell::Cell::new(false));
    let d = done.clone();
    let t0 = h.time();
    h.spawn(async move {
        sleep(Duration::from_micros(2_500)).await;
        d.set(true);
    });
    let step = |us: u64| {
        clock.advance(Duration::from_micros(us));
        common::run_once(&el);
    };
    step(0);
    step(2_000);
    assert!(!done.get(), "at 2.0 ms");
    step(499);
    assert!(!done.get(), "at 2.499 ms");
    step(1);
    step(500); // rounded up to the 3 ms tick
    assert!(done.get());
    assert!(h.time() - t0 >= Duration::from_micros(2_500));
}

#[test]
fn sleep_until_and_a_past_deadline() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let t = el
        .run_until_complete(async {
            let h = Handle::current();
            let start = h.time();
            sleep_until(start + Duration::from_secs(7)).await;
            sleep_until(start).await; // already past: completes at once
            h.time() - start
        })
        .unwrap();
    assert_eq!(t, Duration::from_secs(7));
    assert_eq!(clock.elapsed(), Duration::from_secs(7));
}

#[test]
fn a_sleep_made_outside_the_loop_counts_from_its_first_poll() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let s = sleep(Duration::from_secs(2));
    clock.advance(Duration::from_secs(100)); // before the first poll: does not count
    let before = clock.elapsed();
    el.run_until_complete(s).unwrap();
    assert_eq!(clock.elapsed() - before, Duration::from_secs(2));
}

#[test]
fn reset_moves_the_deadline() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    el.run_until_complete(async {
        let h = Handle::current();
        let start = h.time();
        let mut s = Box::pin(sleep(Duration::from_secs(60)));
        // Poll once so it is registered, then move it earlier.
        let _ = futures::poll!(s.as_mut());
        s.as_mut().get_mut().reset(start + Duration::from_secs(1));
        assert_eq!(s.deadline(), start + Duration::from_secs(1));
        s.await;
        assert_eq!(h.time() - start, Duration::from_secs(1));
    })
    .unwrap();
    assert_eq!(clock.elapsed(), Duration::from_secs(1));
}

#[test]
fn timeout_elapses_or_passes_the_output_through() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = manual();
    let (a, b) = el
        .run_until_complete(async {
            let a = timeout(Duration::from_millis(10), std::future::pending::<u8>()).await;
            let b = timeout(Duration::from_millis(10), async {
                sleep(Duration::from_millis(5)).await;
                9
            })
            .await;
            (a, b)
        })
        .unwrap();
    assert_eq!(a, Err(Elapsed));
    assert_eq!(b, Ok(9));
    assert_eq!(Elapsed.to_string(), "deadline has elapsed");
    // A ready future wins even against a zero timeout.
    let c = el
        .run_until_complete(timeout(Duration::ZERO, async { 1 }))
        .unwrap();
    assert_eq!(c, Ok(1));
}

#[test]
fn a_cancelled_timeout_frees_its_timer() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = manual();
    el.run_until_complete(async {
        for _ in 0..1000 {
            let _ = timeout(Duration::from_secs(3600), async {}).await;
            let mut t = Box::pin(timeout(
                Duration::from_secs(3600),
                std::future::pending::<()>(),
            ));
            let _ = futures::poll!(t.as_mut()); // registers the timer
        } // dropped: cancelled
    })
    .unwrap();
    assert!(format!("{el:?}").contains("timers: 0"), "{el:?}");
}

#[test]
fn interval_ticks_on_schedule_and_skips_missed_ticks() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let ticks = el
        .run_until_complete(async {
            let h = Handle::current();
            let start = h.time();
            let mut iv = interval(Duration::from_millis(10));
            assert_eq!(iv.period(), Duration::from_millis(10));
            let mut at = Vec::new();
            for _ in 0..3 {
                at.push(iv.tick().await - start);
            }
            // The loop is busy for 35 ms (20 -> 55 ms): the ticks at 30, 40 and 50 ms are due.
            clock.advance(Duration::from_millis(35));
            at.push(iv.tick().await - start); // the 30 ms tick, at once; 40 and 50 are skipped
            at.push(iv.tick().await - start); // the next multiple after 55 ms: 60 ms
            at
        })
        .unwrap();
    let ms: Vec<u128> = ticks.iter().map(|d| d.as_millis()).collect();
    assert_eq!(ms, [0, 10, 20, 30, 60]);
}

#[test]
fn polling_a_sleep_outside_a_loop_is_a_clear_panic() {
    let _watchdog = common::watchdog!();
    let r = std::panic::catch_unwind(|| {
        futures::executor::block_on(sleep_until(Instant::now() + Duration::from_secs(1)))
    });
    let err = r.unwrap_err();
    let msg = err
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| err.downcast_ref::<String>().cloned())
        .unwrap();
    assert!(msg.contains("outside a running solo event loop"), "{msg}");
}

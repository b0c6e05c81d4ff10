//! `solo::time` on the manual clock: sleep, sleep_until, timeout, interval; and time's edges:
//! deadlines that mean never, deadlines before the loop was created, a clock run to its end, and
//! cancels at every point of a timer's life.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use solo::time::{
    interval, interval_at, sleep, sleep_until, timeout, timeout_at, Elapsed, Sleep, MIN_PERIOD,
};
use solo::{CallbackHandle, EventLoop, Handle};

mod common;

use common::{manual, run_once, Counted};

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

// ---- time's edges ----

/// 1000 years: past the end of loop time (584 years), yet an `Instant` holds it.
const AGES: Duration = Duration::from_secs(1000 * 365 * 86_400);

/// The loop still runs a fresh `call_soon` callback.
fn serves_a_fresh_callback(el: &EventLoop) {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    el.handle().call_soon(move || r.set(true));
    run_once(el);
    assert!(ran.get(), "a fresh callback did not run");
}

/// The loop still fires a fresh timer, 1 ms on, on time (a manual clock jumps to it).
fn fires_a_fresh_timer(el: &EventLoop) {
    let h = el.handle();
    let t0 = h.time();
    let fired = Rc::new(Cell::new(None));
    let (f, h2) = (fired.clone(), h.clone());
    h.call_later(Duration::from_millis(1), move || {
        f.set(Some(h2.time()));
        h2.stop();
    });
    el.run_forever().unwrap();
    let at = fired.get().expect("a fresh timer did not fire");
    assert!(at - t0 >= Duration::from_millis(1));
}

#[test]
fn cancelling_a_timer_twice_is_a_no_op() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = manual();
    let h = el.handle();
    let drops = Rc::new(Cell::new(0));
    let c = Counted(drops.clone());
    let t = h.call_later(Duration::from_millis(5), move || {
        let _c = c;
        panic!("cancelled, must not run")
    });
    t.cancel();
    assert_eq!(drops.get(), 1, "the closure is dropped by the first cancel");
    t.cancel();
    assert!(t.cancelled());
    assert_eq!(drops.get(), 1, "and only once");
    fires_a_fresh_timer(&el);
    assert!(format!("{el:?}").contains("timers: 0"), "{el:?}");
}

#[test]
fn cancelling_a_timer_after_it_ran_does_not_touch_the_timer_that_reuses_its_slot() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    let first = h.call_later(Duration::from_millis(1), move || r.set(r.get() + 1));
    clock.advance(Duration::from_millis(1));
    run_once(&el);
    assert_eq!(runs.get(), 1);
    // The first timer's entry is free now; the next timer takes it.
    let r = runs.clone();
    let h2 = h.clone();
    let second = h.call_later(Duration::from_millis(1), move || {
        r.set(r.get() + 10);
        h2.stop();
    });
    first.cancel(); // a stale cancel: a no-op
    first.cancel();
    el.run_forever().unwrap();
    assert_eq!(runs.get(), 11, "the second timer ran, the first once");
    assert!(!second.cancelled());
    serves_a_fresh_callback(&el);
}

#[test]
fn a_timer_cancelling_itself_from_its_own_callback_is_a_no_op() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = manual();
    let h = el.handle();
    let me: Rc<RefCell<Option<CallbackHandle>>> = Rc::new(RefCell::new(None));
    let runs = Rc::new(Cell::new(0));
    let (m, r) = (me.clone(), runs.clone());
    let t = h.call_later(Duration::from_millis(2), move || {
        r.set(r.get() + 1);
        let me = m.borrow();
        let me = me.as_ref().unwrap();
        me.cancel();
        me.cancel();
        assert!(me.cancelled());
    });
    *me.borrow_mut() = Some(t);
    fires_a_fresh_timer(&el);
    fires_a_fresh_timer(&el);
    assert_eq!(runs.get(), 1);
    assert!(format!("{el:?}").contains("timers: 0"), "{el:?}");
}

#[test]
fn call_later_and_call_at_past_the_end_of_loop_time_never_run_and_are_kept_until_cancelled() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    let drops = Rc::new(Cell::new(0));
    let never = |d: &Rc<Cell<u32>>| {
        let c = Counted(d.clone());
        move || {
            let _c = c;
            panic!("a timer that means never ran")
        }
    };
    let a = h.call_later(Duration::MAX, never(&drops));
    let b = h.call_later(Duration::from_secs(600 * 365 * 86_400), never(&drops));
    let c = h.call_at(h.time() + AGES, never(&drops));
    let d = h.call_at(Instant::now() + AGES, never(&drops));
    // The manual clock does not jump to the end of time for them: only to the real timer.
    fires_a_fresh_timer(&el);
    assert_eq!(clock.elapsed(), Duration::from_millis(1));
    fires_a_fresh_timer(&el);
    assert_eq!(clock.elapsed(), Duration::from_millis(2));
    assert!(format!("{el:?}").contains("timers: 4"), "{el:?}");
    assert_eq!(drops.get(), 0, "kept while pending");
    a.cancel();
    b.cancel();
    assert_eq!(drops.get(), 2, "a cancel drops the closure");
    assert!(format!("{el:?}").contains("timers: 2"), "{el:?}");
    drop((c, d));
    drop(el);
    assert_eq!(drops.get(), 4, "the loop's close drops the rest, once each");
}

#[test]
fn a_manual_clock_loop_whose_only_timer_is_never_waits_for_something_else() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    h.call_later(Duration::MAX, || panic!("never"));
    // Nothing but the never timer: the loop blocks as it would with no timer at all, until
    // another thread gives it work. No jump to the end of time, no busy loop.
    let remote = h.remote();
    let waker = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        remote
            .call_soon_threadsafe(|| Handle::current().stop())
            .unwrap();
    });
    el.run_forever().unwrap();
    waker.join().unwrap();
    assert_eq!(clock.elapsed(), Duration::ZERO);
    // A timeout around a never sleep: the clock jumps to the timeout, not to the end of time.
    let r = el.run_until_complete(timeout(Duration::from_secs(1), sleep(Duration::MAX)));
    assert_eq!(r.unwrap(), Err(Elapsed));
    assert_eq!(clock.elapsed(), Duration::from_secs(1));
    fires_a_fresh_timer(&el);
}

#[test]
fn a_real_clock_loop_whose_only_timer_is_never_sleeps_instead_of_spinning() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::builder().debug(true).build().unwrap();
    let h = el.handle();
    h.call_later(Duration::MAX, || panic!("never"));
    h.call_at(Instant::now() + AGES, || panic!("never"));
    let remote = h.remote();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        remote
            .call_soon_threadsafe(|| Handle::current().stop())
            .unwrap();
    });
    el.run_forever().unwrap();
    stopper.join().unwrap();
    let stats = el.stats().unwrap();
    // One iteration that sleeps, one that runs the stop; a few more at most.
    assert!(
        stats.iterations <= 5,
        "{} iterations in 200 ms",
        stats.iterations
    );
    assert_eq!(stats.timers_fired, 0);
}

#[test]
fn sleeps_and_timeouts_past_the_end_of_loop_time_never_complete_and_never_overflow() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    // Outside a loop: no overflow in `sleep` or `deadline`.
    let outside = sleep(Duration::MAX);
    assert!(outside.deadline() > Instant::now() + Duration::from_secs(584 * 365 * 86_400));
    assert!(!outside.is_elapsed());
    el.run_until_complete(async move {
        let h = Handle::current();
        let start = h.time();
        let second = Duration::from_secs(1);
        // Polled in a loop, each stays pending: only the timeout around it ends the wait.
        assert_eq!(timeout(second, outside).await, Err(Elapsed));
        assert_eq!(timeout(second, sleep(Duration::MAX)).await, Err(Elapsed));
        assert_eq!(
            timeout(second, sleep_until(start + AGES)).await,
            Err(Elapsed)
        );
        let far = sleep(Duration::MAX);
        assert!(far.deadline() > h.time() + Duration::from_secs(584 * 365 * 86_400));
        assert!(!far.is_elapsed());
        assert_eq!(timeout(second, far).await, Err(Elapsed));
        // A timeout that means never passes the output through.
        let out = timeout(Duration::MAX, async {
            sleep(Duration::from_millis(5)).await;
            7
        })
        .await;
        assert_eq!(out, Ok(7));
        assert_eq!(timeout_at(start + AGES, async { 8 }).await, Ok(8));
        let pending = std::future::pending::<()>();
        assert_eq!(timeout_at(start + AGES + second, async { 9 }).await, Ok(9));
        // A timeout at a past instant, even one from long before the loop: elapsed at once.
        let t = h.time();
        assert_eq!(timeout_at(start - AGES, pending).await, Err(Elapsed));
        assert_eq!(h.time(), t);
        assert_eq!(h.time() - start, Duration::from_millis(4005));
    })
    .unwrap();
    assert_eq!(clock.elapsed(), Duration::from_millis(4005));
    fires_a_fresh_timer(&el);
}

#[test]
fn sleep_reset_takes_any_instant() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    el.run_until_complete(async {
        let h = Handle::current();
        let start = h.time();
        let mut s = Box::pin(sleep(Duration::from_secs(60)));
        assert!(futures::poll!(s.as_mut()).is_pending());
        // Past the end of time: pending, and nothing fires (a timeout around it elapses).
        s.as_mut().get_mut().reset(start + AGES);
        assert_eq!(s.deadline(), start + AGES);
        assert_eq!(
            timeout(Duration::from_secs(1), s.as_mut()).await,
            Err(Elapsed)
        );
        // Far in the past, before the loop was created: ready at the next poll.
        s.as_mut().get_mut().reset(start - AGES);
        assert!(s.is_elapsed());
        assert_eq!(futures::poll!(s.as_mut()), Poll::Ready(()));
        // And back to an ordinary deadline.
        s.as_mut()
            .get_mut()
            .reset(h.time() + Duration::from_secs(2));
        s.as_mut().await;
        assert_eq!(h.time() - start, Duration::from_secs(3));
    })
    .unwrap();
    assert_eq!(clock.elapsed(), Duration::from_secs(3));
    fires_a_fresh_timer(&el);
}

#[test]
fn intervals_with_huge_periods_or_far_starts_tick_at_most_once() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = manual();
    el.run_until_complete(async {
        let h = Handle::current();
        let start = h.time();
        let second = Duration::from_secs(1);
        // Duration::MAX: the first tick at once, then never (no overflow computing the next).
        let mut iv = interval(Duration::MAX);
        assert_eq!(iv.tick().await, start);
        assert_eq!(timeout(second, iv.tick()).await, Err(Elapsed));
        // A start past the end of loop time: never.
        let mut iv = interval_at(start + AGES, second);
        assert_eq!(timeout(second, iv.tick()).await, Err(Elapsed));
        // A start long before the loop: one tick at once (for the start), then the next
        // multiple of the period after now, not a burst of the missed ones.
        let now = h.time();
        let long_ago = start - AGES;
        let mut iv = interval_at(long_ago, Duration::from_millis(7));
        assert_eq!(iv.tick().await, long_ago);
        let next = iv.tick().await;
        assert!(
            next > now && next - now <= Duration::from_millis(7),
            "{:?}",
            next - now
        );
        assert_eq!((next - long_ago).as_nanos() % 7_000_000, 0);
        assert_eq!(h.time(), next);
    })
    .unwrap();
    fires_a_fresh_timer(&el);
}

#[test]
fn an_interval_with_a_zero_period_ticks_every_millisecond() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let ticks = el
        .run_until_complete(async {
            let start = Handle::current().time();
            let mut iv = interval(Duration::ZERO);
            assert_eq!(iv.period(), MIN_PERIOD);
            assert_eq!(MIN_PERIOD, Duration::from_millis(1));
            let mut at = Vec::new();
            for _ in 0..4 {
                at.push((iv.tick().await - start).as_millis());
            }
            // Not a busy loop: each tick waited for its millisecond.
            at
        })
        .unwrap();
    assert_eq!(ticks, [0, 1, 2, 3]);
    assert_eq!(clock.elapsed(), Duration::from_millis(3));
    let iv = interval(Duration::from_nanos(1));
    assert_eq!(iv.period(), MIN_PERIOD);
}

#[test]
fn an_interval_far_behind_skips_to_the_next_tick_without_overflow() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    el.run_until_complete(async {
        let h = Handle::current();
        let start = h.time();
        let mut iv = interval(Duration::from_millis(1));
        assert_eq!(iv.tick().await, start);
        // 300 years behind: more missed ticks than a u32 counts.
        clock.advance(Duration::from_secs(300 * 365 * 86_400));
        let now = h.time();
        assert_eq!(iv.tick().await, start + Duration::from_millis(1));
        let next = iv.tick().await;
        assert!(next > now && next - now <= Duration::from_millis(1));
        assert_eq!(h.time(), next);
    })
    .unwrap();
    fires_a_fresh_timer(&el);
}

#[test]
fn a_manual_clock_advanced_by_duration_max_saturates() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    let runs = Rc::new(Cell::new(0));
    let r = runs.clone();
    h.call_later(Duration::from_secs(3600), move || r.set(r.get() + 1));
    h.call_later(Duration::MAX, || panic!("never, even at the end of time"));
    let t0 = h.time();
    clock.advance(Duration::MAX);
    clock.advance(Duration::MAX); // no wrap back to the start
    clock.advance(Duration::from_secs(1));
    assert_eq!(clock.elapsed(), Duration::from_nanos(u64::MAX));
    let end = h.time();
    assert_eq!(end - t0, Duration::from_nanos(u64::MAX));
    run_once(&el);
    assert_eq!(runs.get(), 1, "the timer that was due fired once");
    serves_a_fresh_callback(&el);
    // At the end of time every new timer means never: a sleep, a timeout, a call_later.
    let r = el.run_until_complete(async {
        let h = Handle::current();
        h.call_later(Duration::from_millis(1), || panic!("after the end of time"));
        let mut s = Box::pin(sleep(Duration::from_millis(1)));
        assert!(futures::poll!(s.as_mut()).is_pending());
        let pending = timeout(Duration::from_secs(1), std::future::pending::<()>());
        let mut pending = Box::pin(pending);
        assert!(futures::poll!(pending.as_mut()).is_pending());
        h.time()
    });
    assert_eq!(r.unwrap(), end);
    assert_eq!(h.time(), end);
    serves_a_fresh_callback(&el);
}

#[test]
fn a_timer_at_the_last_tick_fires_on_a_clock_that_started_late() {
    let _watchdog = common::watchdog!();
    // A clock that was already advanced when the loop was built: the loop's zero is not the
    // clock's. Jumping to a timer near the end of loop time saturates the clock, which every
    // loop then reads as the end of its time: the timer fires, the loop does not spin.
    let clock = solo::ManualClock::new();
    clock.advance(Duration::from_secs(3600));
    let el = EventLoop::builder().clock(clock.clone()).build().unwrap();
    let h = el.handle();
    let fired = Rc::new(Cell::new(false));
    let (f, h2) = (fired.clone(), h.clone());
    h.call_later(Duration::from_nanos(u64::MAX - 2_000_000), move || {
        f.set(true);
        h2.stop();
    });
    el.run_forever().unwrap();
    assert!(fired.get());
    assert_eq!(clock.elapsed(), Duration::from_nanos(u64::MAX));
    serves_a_fresh_callback(&el);
}

#[test]
fn past_deadlines_run_in_their_real_order_even_from_before_the_loop() {
    let _watchdog = common::watchdog!();
    let before = Instant::now();
    let (el, clock) = manual();
    let h = el.handle();
    clock.advance(Duration::from_secs(10));
    let origin = h.time() - Duration::from_secs(10);
    assert!(before <= origin);
    let log = Rc::new(RefCell::new(Vec::new()));
    let mut at = vec![
        ("origin - 1000 years", origin - AGES),
        ("origin - 2 s", origin - Duration::from_secs(2)),
        ("created before the loop", before),
        ("origin - 3 s", origin - Duration::from_secs(3)),
        ("origin + 5 s", origin + Duration::from_secs(5)),
        ("origin - 1 ns", origin - Duration::from_nanos(1)),
        ("origin", origin),
        ("origin + 1 s", origin + Duration::from_secs(1)),
        ("origin - 500 years", origin - AGES / 2),
    ];
    for &(name, when) in &at {
        let l = log.clone();
        h.call_at(when, move || l.borrow_mut().push(name));
    }
    run_once(&el);
    // Equal instants (`before` may equal the origin) run in scheduling order: a stable sort.
    at.sort_by_key(|&(_, when)| when);
    let want: Vec<&str> = at.iter().map(|&(name, _)| name).collect();
    assert_eq!(*log.borrow(), want);
    // A sleep until before the loop was created is ready at once.
    el.run_until_complete(sleep_until(origin - AGES)).unwrap();
    assert_eq!(clock.elapsed(), Duration::from_secs(10));
    fires_a_fresh_timer(&el);
}

#[test]
fn a_sleep_dropped_on_another_thread_leaves_its_loop_serving() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = manual();
    let moved = Arc::new(AtomicBool::new(false));
    let s = el
        .run_until_complete(async {
            let mut s = Box::pin(sleep(Duration::MAX));
            assert!(futures::poll!(s.as_mut()).is_pending());
            let mut t = Box::pin(sleep(Duration::from_secs(5)));
            assert!(futures::poll!(t.as_mut()).is_pending());
            (s, t)
        })
        .unwrap();
    let m = moved.clone();
    std::thread::spawn(move || {
        drop(s);
        m.store(true, Ordering::SeqCst);
    })
    .join()
    .unwrap();
    assert!(moved.load(Ordering::SeqCst));
    // The 5 s sleep's timer fires into a no-op; the loop runs on.
    fires_a_fresh_timer(&el);
    fires_a_fresh_timer(&el);
}

#[test]
fn reset_wakes_the_waiting_task_at_the_new_deadline_without_another_poll() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    el.run_until_complete(async {
        let h = Handle::current();
        let start = h.time();
        let mut s = Box::pin(sleep(Duration::from_secs(60)));
        assert!(futures::poll!(s.as_mut()).is_pending()); // registered with this task's waker
                                                          // Earlier: the task is woken at 1 s though nothing polls the sleep in between (the
                                                          // future below is pending until woken once, by whatever wakes the task).
        s.as_mut().get_mut().reset(start + Duration::from_secs(1));
        wait_for_a_wake().await;
        assert_eq!(h.time() - start, Duration::from_secs(1));
        assert!(s.is_elapsed());
        assert_eq!(futures::poll!(s.as_mut()), Poll::Ready(()));
        // Registered again, then moved into the past: woken at the next iteration, at once.
        s.as_mut()
            .get_mut()
            .reset(h.time() + Duration::from_secs(60));
        assert!(futures::poll!(s.as_mut()).is_pending());
        s.as_mut().get_mut().reset(start);
        wait_for_a_wake().await;
        assert_eq!(h.time() - start, Duration::from_secs(1));
        assert_eq!(futures::poll!(s.as_mut()), Poll::Ready(()));
        // Later: the task sleeps until the new deadline, not the old one.
        let mut s = Box::pin(sleep(Duration::from_secs(2)));
        assert!(futures::poll!(s.as_mut()).is_pending());
        s.as_mut()
            .get_mut()
            .reset(h.time() + Duration::from_secs(5));
        s.await;
        assert_eq!(h.time() - start, Duration::from_secs(6));
    })
    .unwrap();
    assert_eq!(clock.elapsed(), Duration::from_secs(6));
    fires_a_fresh_timer(&el);
}

/// Pending until the task is woken once.
async fn wait_for_a_wake() {
    let mut polled = false;
    std::future::poll_fn(|_| {
        if std::mem::replace(&mut polled, true) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await
}

#[test]
fn a_sleep_dropped_inside_its_own_wake_leaves_its_loop_serving() {
    use std::sync::Mutex;
    use std::task::{Context, Wake, Waker};

    /// A waker whose wake drops the sleep that holds it.
    struct DropsTheSleep(Mutex<Option<Sleep>>, AtomicBool);
    impl Wake for DropsTheSleep {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            drop(self.0.lock().unwrap().take());
            self.1.store(true, Ordering::SeqCst);
        }
    }

    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let w = Arc::new(DropsTheSleep(Mutex::new(None), AtomicBool::new(false)));
    let w2 = w.clone();
    el.run_until_complete(async move {
        let waker = Waker::from(w2.clone());
        let mut s = sleep(Duration::from_secs(1));
        let mut cx = Context::from_waker(&waker);
        assert!(std::future::Future::poll(std::pin::Pin::new(&mut s), &mut cx).is_pending());
        *w2.0.lock().unwrap() = Some(s);
        // The loop's own sleep outlasts it; the first one's timer fires into the waker, which
        // drops the sleep (and cancels a timer that is already gone).
        sleep(Duration::from_secs(2)).await;
    })
    .unwrap();
    assert!(w.1.load(Ordering::SeqCst));
    assert!(w.0.lock().unwrap().is_none());
    assert_eq!(clock.elapsed(), Duration::from_secs(2));
    fires_a_fresh_timer(&el);
}

#[test]
fn a_sleep_made_on_one_loop_sleeps_on_another_by_its_own_deadline() {
    let _watchdog = common::watchdog!();
    let clock = solo::ManualClock::new();
    let a = EventLoop::builder().clock(clock.clone()).build().unwrap();
    clock.advance(Duration::from_secs(100));
    // `b` counts from its own creation: its zero is `a`'s 100 s.
    let b = EventLoop::builder().clock(clock.clone()).build().unwrap();
    for registered_on_a in [true, false] {
        let (s, deadline) = a
            .run_until_complete(async move {
                let mut s = Box::pin(sleep(Duration::from_secs(10)));
                if registered_on_a {
                    assert!(futures::poll!(s.as_mut()).is_pending());
                }
                let d = s.deadline();
                (s, d)
            })
            .unwrap();
        // On `b` it is the same instant: `b`'s clock jumps there (to its millisecond), and
        // `a`'s timer key means nothing to `b`.
        b.run_until_complete(s).unwrap();
        assert!(b.time() >= deadline, "{registered_on_a}");
        assert!(b.time() - deadline < Duration::from_millis(1));
    }
    // Each loop reads an instant from its own origin: `a`'s 110 s is `b`'s 110 s, where the
    // shared clock reads 210 s (less the moment between the two loops' creations); then
    // `a`'s 220 s.
    assert!(clock.elapsed() > Duration::from_secs(319));
    assert!(clock.elapsed() <= Duration::from_secs(320));
    fires_a_fresh_timer(&a);
    fires_a_fresh_timer(&b);
}

/// A sleep on loop `a` polled with the waker of a task of loop `b`, which runs on another
/// thread: the timer keeps that waker as it is (a task of `a` would be kept as a local
/// reference instead, which must not happen for `b`'s), and its firing wakes `b`'s task through
/// `b`'s remote queue.
#[test]
fn a_timer_wakes_a_task_of_another_loop_on_another_thread() {
    let _watchdog = common::watchdog!();
    let (tx, rx) = std::sync::mpsc::channel::<std::task::Waker>();
    let b = std::thread::spawn(move || {
        let el = EventLoop::new().unwrap();
        let h = el.handle();
        let polls = Rc::new(Cell::new(0));
        let p = polls.clone();
        let task = h.spawn(std::future::poll_fn(move |cx| {
            p.set(p.get() + 1);
            if p.get() == 1 {
                tx.send(cx.waker().clone()).unwrap();
                return Poll::Pending;
            }
            Poll::Ready(()) // polled again: only the timer on `a` wakes it
        }));
        let out = el.run_until_complete(timeout(Duration::from_secs(30), task));
        (out.map(|r| r.map(|j| j.is_ok())), polls.get())
    });
    let waker = rx.recv().unwrap();
    let (a, clock) = manual();
    a.run_until_complete(async move {
        let mut s = Box::pin(sleep(Duration::from_millis(5)));
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(std::future::Future::poll(s.as_mut(), &mut cx).is_pending());
        sleep(Duration::from_millis(10)).await; // the 5 ms timer fires meanwhile
    })
    .unwrap();
    assert_eq!(clock.elapsed(), Duration::from_millis(10));
    let (out, polls) = b.join().unwrap();
    assert_eq!(out.unwrap(), Ok(true), "b's task was woken and finished");
    assert_eq!(polls, 2);
}

// ---- the timer queue against a model ----

/// The loop's timers, through the public API on a manual clock, against a sorted map.
mod model {
    use std::cell::{Cell, RefCell};
    use std::collections::{BTreeMap, BTreeSet};
    use std::rc::Rc;
    use std::time::Duration;

    use proptest::prelude::*;
    use solo::CallbackHandle;

    use super::common::{manual, run_once, Counted};
    use super::AGES;

    const TICK: u64 = 1_000_000;
    /// The latest loop time at which a timer fires: the start of the last millisecond a `u64` of
    /// nanoseconds reaches. Later deadlines mean never.
    const LATEST: u64 = u64::MAX / TICK * TICK;
    /// What the stopping timer of `RunTo` logs.
    const STOP: u32 = u32::MAX;

    /// One step.
    #[derive(Clone, Debug)]
    pub enum Op {
        /// `call_later(Duration::from_nanos(d))`.
        Later(u64),
        /// `call_later(Duration::MAX)`.
        LaterMax,
        /// `call_at(origin + d)`, or `origin - d` if `before`.
        At { before: bool, d: u64 },
        /// `call_at(origin ± 1000 years)`.
        AtFar { before: bool },
        /// Cancel the i-th timer ever scheduled (live, run, or cancelled already).
        Cancel(usize),
        /// Advance the clock by `d` ns (`u64::MAX`: by `Duration::MAX`), run one iteration.
        Advance(u64),
        /// Schedule a timer `d` ns on that stops the loop, and run until it does: the manual
        /// clock jumps from timer to timer.
        RunTo(u64),
    }

    pub fn op() -> impl Strategy<Value = Op> {
        let near = (0u64..4, 0u64..(1u64 << 34)).prop_map(|(scale, d)| d >> (scale * 8));
        let far = prop_oneof![8 => near.clone(), 1 => 0u64..(1u64 << 46), 1 => any::<u64>()];
        prop_oneof![
            6 => far.clone().prop_map(Op::Later),
            1 => Just(Op::LaterMax),
            3 => (any::<bool>(), far).prop_map(|(before, d)| Op::At { before, d }),
            1 => any::<bool>().prop_map(|before| Op::AtFar { before }),
            3 => (0usize..500).prop_map(Op::Cancel),
            4 => prop_oneof![12 => near, 1 => 0u64..(1u64 << 50), 1 => Just(u64::MAX)]
                .prop_map(Op::Advance),
            2 => (1u64..(1u64 << 36)).prop_map(|d| Op::RunTo(d >> (d % 30))),
        ]
    }

    fn ceil_tick(ns: u64) -> u64 {
        ns.div_ceil(TICK)
    }

    /// What the loop should do: its timers by (signed deadline in ns from the origin, order of
    /// scheduling), and the loop time.
    #[derive(Default)]
    struct Model {
        /// Timers that can fire → (id, due already when scheduled).
        live: BTreeMap<(i128, u64), (u32, bool)>,
        never: BTreeSet<u32>,
        seq: u64,
        now: u64,
    }

    impl Model {
        /// A timer at `deadline` (ns from the origin; `None`: never).
        fn schedule(&mut self, id: u32, deadline: Option<i128>) {
            match deadline {
                Some(d) => {
                    let due = d <= i128::from(self.now);
                    self.live.insert((d, self.seq), (id, due));
                }
                None => {
                    self.never.insert(id);
                }
            }
            self.seq += 1;
        }

        fn cancel(&mut self, id: u32) {
            self.live.retain(|_, &mut (i, _)| i != id);
            self.never.remove(&id);
        }

        /// The timers that the iterations up to the one at tick `last` run, in order: first
        /// those due now, then tick by tick; in each iteration by deadline (before the origin:
        /// negative), then in scheduling order.
        fn fire(&mut self, last: u64) -> Vec<u32> {
            let now_tick = self.now / TICK;
            let mut fired: Vec<(u64, i128, u64, u32)> = Vec::new();
            for (&(d, seq), &(id, due)) in &self.live {
                let tick = if d < 0 { 0 } else { ceil_tick(d as u64) };
                if due || tick <= now_tick {
                    fired.push((now_tick, d, seq, id));
                } else if tick <= last {
                    fired.push((tick, d, seq, id));
                }
            }
            fired.sort_unstable();
            for &(_, d, seq, _) in &fired {
                self.live.remove(&(d, seq));
            }
            fired.into_iter().map(|f| f.3).collect()
        }

        fn pending(&self) -> usize {
            self.live.len() + self.never.len()
        }
    }

    /// Runs `ops` on a loop and on the model. Each iteration runs exactly the timers the model
    /// says, in its order; the manual clock is where the model says (it saturates, and never
    /// jumps for a timer that means never); the loop holds as many timers; every closure is
    /// dropped exactly once when the loop goes.
    pub fn check(ops: &[Op]) -> Result<(), TestCaseError> {
        let (el, clock) = manual();
        let h = el.handle();
        let origin = h.time();
        let log = Rc::new(RefCell::new(Vec::<u32>::new()));
        let drops = Rc::new(Cell::new(0u32));
        let mut handles: Vec<CallbackHandle> = Vec::new();
        let mut m = Model::default();
        let callback = |id: usize| {
            let (l, c) = (log.clone(), Counted(drops.clone()));
            move || {
                let _c = c;
                l.borrow_mut().push(id as u32);
            }
        };
        for op in ops {
            log.borrow_mut().clear();
            let id = handles.len();
            match *op {
                Op::Later(d) => {
                    handles.push(h.call_later(Duration::from_nanos(d), callback(id)));
                    let at = m.now.saturating_add(d);
                    m.schedule(id as u32, (at <= LATEST).then_some(i128::from(at)));
                }
                Op::LaterMax => {
                    handles.push(h.call_later(Duration::MAX, callback(id)));
                    m.schedule(id as u32, None);
                }
                Op::At { before, d } => {
                    let offset = Duration::from_nanos(d);
                    let when = if before {
                        origin.checked_sub(offset)
                    } else {
                        origin.checked_add(offset)
                    };
                    let Some(when) = when else { continue };
                    handles.push(h.call_at(when, callback(id)));
                    let deadline = match before {
                        true => Some(-i128::from(d)),
                        false => (d <= LATEST).then_some(i128::from(d)),
                    };
                    m.schedule(id as u32, deadline);
                }
                Op::AtFar { before } => {
                    let when = if before {
                        origin.checked_sub(AGES)
                    } else {
                        origin.checked_add(AGES)
                    };
                    let Some(when) = when else { continue };
                    handles.push(h.call_at(when, callback(id)));
                    // Before: as far back as loop time counts (it saturates), that is u64::MAX
                    // ns; ties among such timers go by scheduling order.
                    m.schedule(id as u32, before.then_some(-i128::from(u64::MAX)));
                }
                Op::Cancel(i) => {
                    if handles.is_empty() {
                        continue;
                    }
                    let i = i % handles.len();
                    handles[i].cancel();
                    m.cancel(i as u32);
                }
                Op::Advance(d) => {
                    clock.advance(if d == u64::MAX {
                        Duration::MAX
                    } else {
                        Duration::from_nanos(d)
                    });
                    m.now = m.now.saturating_add(d);
                    run_once(&el);
                    let want = m.fire(m.now / TICK);
                    prop_assert_eq!(&*log.borrow(), &want, "after {:?}", op);
                }
                Op::RunTo(d) => {
                    let stop_at = m.now.saturating_add(d);
                    if stop_at > LATEST {
                        continue; // the stop would never come
                    }
                    let h2 = h.clone();
                    let l = log.clone();
                    let _stop = h.call_later(Duration::from_nanos(d), move || {
                        l.borrow_mut().push(STOP);
                        h2.stop();
                    });
                    m.schedule(STOP, Some(i128::from(stop_at)));
                    el.run_forever().unwrap();
                    // A stop due now runs in the first iteration, without a jump; otherwise the
                    // clock jumps tick by tick to the stop's.
                    let last = match d {
                        0 => m.now / TICK,
                        _ => ceil_tick(stop_at),
                    };
                    let want = m.fire(last);
                    m.now = m.now.max(last * TICK);
                    prop_assert_eq!(&*log.borrow(), &want, "after {:?}", op);
                }
            }
            prop_assert_eq!(
                clock.elapsed(),
                Duration::from_nanos(m.now),
                "after {:?}",
                op
            );
            let timers = format!("timers: {},", m.pending());
            prop_assert!(
                format!("{el:?}").contains(&timers),
                "{:?}, want {}",
                el,
                timers
            );
        }
        let scheduled = handles.len() as u32;
        drop(handles);
        drop(el);
        prop_assert_eq!(drops.get(), scheduled, "closures dropped");
        Ok(())
    }
}

proptest::proptest! {
    // Failures are not written to proptest-regressions/: each case found is a named test
    // (`model_regression_*` below).
    #![proptest_config(proptest::prelude::ProptestConfig {
        cases: 128,
        failure_persistence: None,
        ..proptest::prelude::ProptestConfig::default()
    })]
    #[test]
    fn the_loops_timers_match_a_model(ops in proptest::collection::vec(model::op(), 1..120)) {
        let _watchdog = common::watchdog!();
        model::check(&ops)?;
    }
}

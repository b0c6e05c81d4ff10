//! `time`'s unit tests: sizes, and the timer payloads' reference protocol under Miri.

use super::*;
use crate::{EventLoop, ManualClock};

#[test]
fn a_sleep_is_40_bytes_with_its_site() {
    // A 16-byte deadline (see `Deadline`) and a 16-byte key that names its loop's wheel:
    // with the wheel's 48-byte entry, 88 bytes a pending timer. The benches' floor row uses
    // a stand-in of this size.
    assert_eq!(std::mem::size_of::<Sleep>(), 40);
}

/// Runs under Miri in CI: the `Timeout` pin projection and sleeps on a manual clock.
#[test]
fn miri_timeout_and_sleep_on_a_manual_clock() {
    let clock = ManualClock::new();
    let el = EventLoop::builder().clock(clock.clone()).build().unwrap();
    let (a, b) = el
        .run_until_complete(async {
            let a = timeout(Duration::from_millis(5), std::future::pending::<()>()).await;
            let b = timeout(Duration::from_secs(1), async {
                sleep(Duration::from_millis(2)).await;
                7
            })
            .await;
            (a, b)
        })
        .unwrap();
    assert_eq!(a, Err(Elapsed));
    assert_eq!(b, Ok(7));
    assert_eq!(
        clock.elapsed(),
        Duration::from_millis(7),
        "5 ms timeout, then a 2 ms sleep"
    );
}

/// Pins and polls `f` once with the caller's waker; whether it was ready.
async fn poll_once<F: Future + Unpin>(f: &mut F) -> bool {
    std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut *f).poll(cx).is_ready())).await
}

/// A task's timer keeps a local reference to the task, not a waker: the task may end (and
/// its handle go) while the timer lives on. The reference must then keep the cell alive
/// until the timer fires (the wake does nothing) or is cancelled, and free it after.
#[test]
fn miri_a_timer_outlives_the_task_that_set_it() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let clock = ManualClock::new();
    let el = EventLoop::builder().clock(clock.clone()).build().unwrap();
    let h = el.handle();
    let stash: Rc<RefCell<Vec<Pin<Box<Sleep>>>>> = Rc::default();
    let (s, h2) = (stash.clone(), h.clone());
    el.run_until_complete(async move {
        for ms in [3, 100] {
            let s = s.clone();
            h2.spawn(async move {
                let mut sleep = Box::pin(sleep(Duration::from_millis(ms)));
                assert!(!poll_once(&mut sleep).await);
                s.borrow_mut().push(sleep); // outlives this task
            })
            .await
            .unwrap();
        }
        // The 3 ms timer fires into the finished task; the 100 ms one is still pending.
        super::sleep(Duration::from_millis(10)).await;
    })
    .unwrap();
    assert_eq!(clock.elapsed(), Duration::from_millis(10));
    // Dropped outside the loop, the pending sleep leaves its timer to the loop (no loop runs
    // here to cancel it on); the loop's drop then releases the last reference.
    stash.borrow_mut().clear();
    drop(el);
}

/// A sleep polled by one task and then awaited by another wakes the one that polled it
/// last; and one first polled by the main future, then by a task, wakes the task.
#[test]
fn miri_a_sleep_handed_on_wakes_whoever_polled_it_last() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let clock = ManualClock::new();
    let el = EventLoop::builder().clock(clock.clone()).build().unwrap();
    let h = el.handle();
    let out = el
        .run_until_complete(async move {
            let slot: Rc<RefCell<Option<Pin<Box<Sleep>>>>> = Rc::default();
            let s = slot.clone();
            h.spawn(async move {
                let mut first = Box::pin(sleep(Duration::from_millis(5)));
                assert!(!poll_once(&mut first).await);
                *s.borrow_mut() = Some(first);
            })
            .await
            .unwrap();
            let handed = slot.borrow_mut().take().unwrap();
            let b = h.spawn(async move {
                handed.await;
                1
            });
            // The main future polls a sleep, then a task awaits it.
            let mut mine = Box::pin(sleep(Duration::from_millis(8)));
            assert!(!poll_once(&mut mine).await);
            let c = h.spawn(async move {
                mine.await;
                2
            });
            // On the manual clock a lost wake is not a hang: the timeout fires instead.
            timeout(Duration::from_secs(60), async move {
                b.await.unwrap() + c.await.unwrap()
            })
            .await
        })
        .unwrap();
    assert_eq!(out, Ok(3));
    assert_eq!(clock.elapsed(), Duration::from_millis(8));
}

/// A sleep polled with a waker that is not the loop's (a combinator's own) keeps and wakes
/// that waker, once.
#[test]
fn miri_a_sleep_wakes_a_foreign_waker() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    struct Count(AtomicUsize);
    impl std::task::Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let clock = ManualClock::new();
    let el = EventLoop::builder().clock(clock.clone()).build().unwrap();
    let count = Arc::new(Count(AtomicUsize::new(0)));
    let waker = std::task::Waker::from(count.clone());
    let woken = el
        .run_until_complete(async move {
            let mut s = Box::pin(sleep(Duration::from_millis(4)));
            let mut cx = Context::from_waker(&waker);
            assert!(s.as_mut().poll(&mut cx).is_pending());
            assert!(s.as_mut().poll(&mut cx).is_pending()); // the same waker: kept
            super::sleep(Duration::from_millis(6)).await;
            let woken = count.0.load(Ordering::SeqCst);
            assert!(s.as_mut().poll(&mut cx).is_ready());
            woken
        })
        .unwrap();
    assert_eq!(woken, 1);
}

/// The three ways a timer gives up a finished task's *last* reference, on the loop: a
/// refresh (another task polls the sleep: the old reference is replaced under the wheel's
/// borrow), a cancel (the sleep is dropped), and a reset into the past (the wake finds the
/// task complete and drops the reference).
#[test]
fn miri_a_finished_tasks_last_reference_goes_with_refresh_cancel_or_reset() {
    use std::cell::RefCell;
    use std::rc::Rc;
    let clock = ManualClock::new();
    let el = EventLoop::builder().clock(clock.clone()).build().unwrap();
    let h = el.handle();
    el.run_until_complete(async move {
        let stash: Rc<RefCell<Vec<Pin<Box<Sleep>>>>> = Rc::default();
        for _ in 0..3 {
            let s = stash.clone();
            h.spawn(async move {
                let mut sleep = Box::pin(sleep(Duration::from_secs(5)));
                assert!(!poll_once(&mut sleep).await);
                s.borrow_mut().push(sleep);
            })
            .await
            .unwrap();
        }
        let (mut refreshed, dropped, mut reset) = {
            let mut v = stash.borrow_mut();
            let c = v.pop().unwrap();
            let b = v.pop().unwrap();
            (v.pop().unwrap(), b, c)
        };
        let refreshed_back = h
            .spawn(async move {
                assert!(!poll_once(&mut refreshed).await);
                Some(refreshed) // handed back to be dropped later (wrapped: a bare future
                                // returned from an async block reads as a forgotten `.await`)
            })
            .await
            .unwrap();
        drop(dropped);
        // The loop's now: a deadline that has come (no `Instant` arithmetic, which could
        // underflow on a clock that started recently, as Miri's does).
        reset.as_mut().reset(crate::Handle::current().time());
        reset.await; // ready at once
        drop(refreshed_back);
    })
    .unwrap();
    assert_eq!(clock.elapsed(), Duration::ZERO, "no timer had to fire");
}

/// A sleep on this loop polled with the waker of a task of another loop, on another thread:
/// the timer must keep that waker (a local reference would touch the other loop's counts
/// from this thread, which Miri reports as a data race), and its firing wakes that task.
#[test]
fn miri_a_timer_wakes_a_task_of_another_loop_through_its_waker() {
    use std::sync::mpsc;
    let (tx, rx) = mpsc::channel::<std::task::Waker>();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let b = std::thread::spawn(move || {
        let el = EventLoop::new().unwrap();
        let mut polls = 0;
        let task = el.handle().spawn(std::future::poll_fn(move |cx| {
            polls += 1;
            if polls == 1 {
                tx.send(cx.waker().clone()).unwrap();
                return Poll::Pending;
            }
            Poll::Ready(polls)
        }));
        let polls = el.run_until_complete(task).unwrap().unwrap();
        done_tx.send(()).unwrap();
        polls
    });
    let waker = rx.recv().unwrap();
    let clock = ManualClock::new();
    let a = EventLoop::builder().clock(clock.clone()).build().unwrap();
    a.run_until_complete(async move {
        let mut s = Box::pin(sleep(Duration::from_millis(5)));
        let mut cx = Context::from_waker(&waker);
        assert!(s.as_mut().poll(&mut cx).is_pending());
        super::sleep(Duration::from_millis(10)).await;
    })
    .unwrap();
    done_rx.recv().unwrap();
    assert_eq!(b.join().unwrap(), 2, "woken once, by the timer");
}

//! The loop's semantics, one test (or a few) per rule in ARCHITECTURE.md's "Semantics".

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use solo::{EventLoop, ManualClock, RunError};

mod common;

use common::{manual, run_once, Counted};

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Log, s: impl Into<String>) -> impl FnOnce() + 'static {
    let log = log.clone();
    let s = s.into();
    move || log.borrow_mut().push(s)
}

// 1. FIFO
#[test]
fn call_soon_runs_in_fifo_order() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let l = log();
    for i in 0..100 {
        h.call_soon(push(&l, i.to_string()));
    }
    run_once(&el);
    let want: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    assert_eq!(*l.borrow(), want);
}

// 2. One iteration runs only what was ready when it began.
#[test]
fn callbacks_scheduled_during_an_iteration_run_in_the_next() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let l = log();
    let (h2, l2) = (h.clone(), l.clone());
    h.call_soon(move || {
        l2.borrow_mut().push("a".into());
        h2.call_soon(push(&l2, "c"));
    });
    h.call_soon(push(&l, "b"));
    run_once(&el);
    assert_eq!(*l.borrow(), ["a", "b"]);
    run_once(&el);
    assert_eq!(*l.borrow(), ["a", "b", "c"]);
}

fn forever(h: solo::Handle, count: Rc<Cell<u64>>, clock: Option<ManualClock>) {
    count.set(count.get() + 1);
    if let Some(c) = &clock {
        c.advance(Duration::from_micros(250));
    }
    let h2 = h.clone();
    h.call_soon(move || forever(h2, count, clock));
}

#[test]
fn a_self_rescheduling_callback_does_not_starve_timers() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = manual();
    let h = el.handle();
    let count = Rc::new(Cell::new(0));
    forever(h.clone(), count.clone(), None);
    let h2 = h.clone();
    h.call_later(Duration::ZERO, move || h2.stop());
    el.run_forever().unwrap();
    assert!(
        count.get() <= 2,
        "timer waited for {} callbacks",
        count.get()
    );
}

// 3. Timers
#[test]
fn timers_never_fire_before_their_deadline() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    h.call_later(Duration::from_millis(50), move || f.set(true));
    clock.advance(Duration::from_millis(49));
    run_once(&el);
    assert!(!fired.get());
    clock.advance(Duration::from_micros(999));
    run_once(&el);
    assert!(!fired.get());
    clock.advance(Duration::from_micros(1));
    run_once(&el);
    assert!(fired.get());
}

#[test]
fn timers_with_equal_deadlines_run_in_scheduling_order_and_by_deadline() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    let l = log();
    let t0 = h.time();
    h.call_at(t0 + Duration::from_millis(20), push(&l, "late"));
    for i in 0..5 {
        h.call_at(t0 + Duration::from_millis(10), push(&l, format!("eq{i}")));
    }
    h.call_later(Duration::from_millis(5), push(&l, "early"));
    clock.advance(Duration::from_millis(30));
    run_once(&el);
    assert_eq!(
        *l.borrow(),
        ["early", "eq0", "eq1", "eq2", "eq3", "eq4", "late"]
    );
}

#[test]
fn call_at_in_the_past_runs_on_the_next_iteration() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    clock.advance(Duration::from_secs(10));
    let h = el.handle();
    let l = log();
    h.call_at(h.time() - Duration::from_secs(5), push(&l, "past"));
    run_once(&el);
    assert_eq!(*l.borrow(), ["past"]);
}

#[test]
fn manual_clock_auto_advances_to_the_next_timer_when_idle() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    let h2 = h.clone();
    let t0 = h.time();
    let when = Rc::new(Cell::new(None));
    let w = when.clone();
    h.call_later(Duration::from_secs(3600), move || {
        w.set(Some(h2.time()));
        h2.stop();
    });
    el.run_forever().unwrap();
    assert_eq!(when.get().unwrap() - t0, Duration::from_secs(3600));
    assert_eq!(clock.elapsed(), Duration::from_secs(3600));
}

// 4. Cancellation
#[test]
fn cancelled_callbacks_and_timers_never_run() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    let l = log();
    let a = h.call_soon(push(&l, "soon"));
    let b = h.call_later(Duration::from_millis(1), push(&l, "timer"));
    h.call_soon(push(&l, "kept"));
    a.cancel();
    b.cancel();
    assert!(a.cancelled() && b.cancelled());
    a.cancel();
    b.cancel();
    clock.advance(Duration::from_millis(5));
    run_once(&el);
    run_once(&el);
    assert_eq!(*l.borrow(), ["kept"]);
}

#[test]
fn cancelling_after_it_ran_is_a_no_op() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let l = log();
    let a = h.call_soon(push(&l, "a"));
    run_once(&el);
    a.cancel();
    a.cancel();
    // The next callback (a later id) must not be affected by the stale cancel.
    h.call_soon(push(&l, "b"));
    run_once(&el);
    assert_eq!(*l.borrow(), ["a", "b"]);
}

#[test]
fn a_timer_cancelled_by_an_earlier_timer_in_the_same_batch_does_not_run() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    let l = log();
    let victim = Rc::new(RefCell::new(None::<solo::CallbackHandle>));
    let v = victim.clone();
    h.call_later(Duration::from_millis(1), move || {
        v.borrow().as_ref().unwrap().cancel()
    });
    *victim.borrow_mut() = Some(h.call_later(Duration::from_millis(2), push(&l, "victim")));
    clock.advance(Duration::from_millis(10));
    run_once(&el);
    run_once(&el);
    assert!(l.borrow().is_empty());
}

#[test]
fn a_million_scheduled_and_cancelled_timers_leave_no_memory() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    for i in 0..1_000_000u64 {
        let t = h.call_later(Duration::from_millis(1 + i % 3_600_000), || {});
        t.cancel();
    }
    let dbg = format!("{el:?}");
    assert!(dbg.contains("timers: 0"), "{dbg}");
    // And the call_soon cancel set is emptied as cancelled entries leave the queue.
    for _ in 0..1000 {
        h.call_soon(|| {}).cancel();
    }
    run_once(&el);
    assert!(format!("{el:?}").contains("ready: 0"));
}

// 5. stop and re-entrancy
#[test]
fn stop_lets_the_current_iteration_finish() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let l = log();
    let h2 = h.clone();
    h.call_soon(move || h2.stop());
    h.call_soon(push(&l, "same iteration"));
    let h3 = h.clone();
    let l3 = l.clone();
    h.call_soon(move || {
        h3.call_soon(push(&l3, "next iteration"));
    });
    el.run_forever().unwrap();
    assert_eq!(*l.borrow(), ["same iteration"]);
    assert!(!el.is_running());
    run_once(&el);
    assert_eq!(*l.borrow(), ["same iteration", "next iteration"]);
}

#[test]
fn stop_before_run_forever_runs_exactly_one_iteration() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let count = Rc::new(Cell::new(0u64));
    forever(h.clone(), count.clone(), None);
    assert_eq!(count.get(), 1);
    el.stop();
    el.run_forever().unwrap();
    assert_eq!(count.get(), 2);
}

#[test]
fn stop_before_run_until_complete_runs_one_iteration_then_stops_unless_the_future_is_done() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    // A future that needs one iteration (asyncio: the loop stops after one iteration, and
    // run_until_complete raises unless the future completed in it).
    el.stop();
    assert_eq!(
        el.run_until_complete(async {
            solo::yield_now().await;
            1
        }),
        Ok(1)
    );
    // One that needs two: the loop stops first.
    el.stop();
    let r = el.run_until_complete(async {
        solo::yield_now().await;
        solo::yield_now().await;
    });
    assert_eq!(r, Err(RunError::Stopped));
    // The iteration that runs does run what was queued before, and only that.
    let l = log();
    let (l2, h2) = (l.clone(), h.clone());
    h.call_soon(move || {
        l2.borrow_mut().push("queued".into());
        h2.call_soon(push(&l2, "next"));
    });
    el.stop();
    assert_eq!(
        el.run_until_complete(std::future::pending::<()>()),
        Err(RunError::Stopped)
    );
    assert_eq!(*l.borrow(), ["queued"]);
    // And the loop is not left stopped.
    assert_eq!(el.run_until_complete(async { 2 }), Ok(2));
    run_once(&el);
    assert_eq!(*l.borrow(), ["queued", "next"]);
}

#[test]
fn stop_inside_the_main_future_lets_the_iteration_finish() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let l = log();
    h.call_soon(push(&l, "queued"));
    let r = el.run_until_complete(async {
        Handle::current().stop();
        std::future::pending::<()>().await
    });
    assert_eq!(r, Err(RunError::Stopped));
    assert_eq!(*l.borrow(), ["queued"]);
}

#[test]
fn a_stale_main_waker_does_not_keep_the_loop_awake() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = manual();
    let h = el.handle();
    // A task keeps the waker of a run_until_complete that has returned.
    let kept: Rc<RefCell<Option<std::task::Waker>>> = Rc::default();
    let k = kept.clone();
    el.run_until_complete(std::future::poll_fn(move |cx| {
        *k.borrow_mut() = Some(cx.waker().clone());
        Poll::Ready(())
    }))
    .unwrap();
    kept.borrow_mut().take().unwrap().wake();
    // With the stale wake counted as work, the loop would never sleep, and a manual clock would
    // never jump to the timer: this would hang.
    let fired = Rc::new(Cell::new(false));
    let (f, h2) = (fired.clone(), h.clone());
    h.call_later(Duration::from_secs(30), move || {
        f.set(true);
        h2.stop();
    });
    el.run_forever().unwrap();
    assert!(fired.get());
}

#[test]
fn running_the_loop_inside_itself_is_an_error() {
    let _watchdog = common::watchdog!();
    let el = Rc::new(EventLoop::new().unwrap());
    let h = el.handle();
    let result = Rc::new(RefCell::new(None));
    let (el2, r2) = (el.clone(), result.clone());
    h.call_soon(move || {
        *r2.borrow_mut() = Some((el2.run_forever(), el2.run_until_complete(async {}).err()));
        el2.stop();
    });
    el.run_forever().unwrap();
    let (a, b) = result.borrow_mut().take().unwrap();
    assert_eq!(a, Err(RunError::AlreadyRunning));
    assert_eq!(b, Some(RunError::AlreadyRunning));
    assert_eq!(
        RunError::AlreadyRunning.to_string(),
        "this event loop is already running"
    );
}

#[test]
fn another_loop_cannot_run_inside_a_running_loop() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let other = EventLoop::new().unwrap();
    let r = el
        .run_until_complete(async { other.run_until_complete(async { 1 }) })
        .unwrap();
    assert_eq!(r, Err(RunError::AnotherLoopRunning));
    assert_eq!(other.run_until_complete(async { 1 }), Ok(1));
}

#[test]
fn run_until_complete_reports_a_stop_before_completion() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    h.call_soon(move || Handle::current().stop());
    let r = el.run_until_complete(std::future::pending::<()>());
    assert_eq!(r, Err(RunError::Stopped));
}

use solo::Handle;

#[test]
fn run_until_complete_drives_a_borrowing_future() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let mut local = vec![1, 2];
    let n = el
        .run_until_complete(async {
            local.push(3);
            local.len()
        })
        .unwrap();
    assert_eq!(n, 3);
}

// 6. Readers and writers
#[test]
fn a_reader_that_does_not_drain_is_called_again_next_iteration() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.write_all(b"abc").unwrap();
    let got = Rc::new(RefCell::new(Vec::new()));
    let g = got.clone();
    let a_fd = a.try_clone().unwrap();
    h.add_reader(&a_fd, move || {
        let mut byte = [0u8; 1];
        if let Ok(1) = a.read(&mut byte) {
            g.borrow_mut().push(byte[0]);
        }
    })
    .unwrap();
    for _ in 0..5 {
        run_once(&el);
    }
    assert_eq!(*got.borrow(), b"abc");
    assert!(h.remove_reader(&a_fd));
    assert!(!h.remove_reader(&a_fd), "second remove finds nothing");
}

#[test]
fn a_drained_reader_is_not_called_again() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (mut a, mut b) = UnixStream::pair().unwrap();
    a.set_nonblocking(true).unwrap();
    b.write_all(b"abc").unwrap();
    let calls = Rc::new(Cell::new(0));
    let c = calls.clone();
    let fd = a.try_clone().unwrap();
    h.add_reader(&fd, move || {
        c.set(c.get() + 1);
        let mut buf = [0u8; 64];
        while a.read(&mut buf).is_ok() {}
    })
    .unwrap();
    for _ in 0..5 {
        run_once(&el);
    }
    assert_eq!(calls.get(), 1);
    b.write_all(b"more").unwrap();
    run_once(&el);
    assert_eq!(calls.get(), 2);
}

#[test]
fn add_reader_replaces_and_remove_inside_the_callback_is_safe() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (a, _b) = common::readable_pair();
    let l = log();
    let l1 = l.clone();
    h.add_reader(&a, move || l1.borrow_mut().push("old".into()))
        .unwrap();
    let (l2, h2) = (l.clone(), h.clone());
    let fd = std::os::fd::AsRawFd::as_raw_fd(&a);
    h.add_reader(&a, move || {
        l2.borrow_mut().push("new".into());
        assert!(h2.remove_reader(&fd), "removing itself reports true");
    })
    .unwrap();
    for _ in 0..3 {
        run_once(&el);
    }
    assert_eq!(*l.borrow(), ["new"]);
    assert!(!h.remove_reader(&a));
}

/// Runs user code when dropped: here, code that touches the loop's registrations.
struct OnDrop<F: FnMut()>(F);
impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

#[test]
fn a_replaced_or_orphaned_callback_is_dropped_outside_the_reactor() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (a, mut b) = UnixStream::pair().unwrap();
    let dropped = Rc::new(Cell::new(0));
    let (h2, d2) = (h.clone(), dropped.clone());
    let guard = OnDrop(move || {
        // Re-entering the reactor from a destructor must not panic.
        h2.remove_writer(&-1);
        d2.set(d2.get() + 1);
    });
    h.add_reader(&a, move || {
        let _ = &guard;
    })
    .unwrap();
    h.add_reader(&a, || {}).unwrap(); // replaces: the old closure (and guard) drop here
    assert_eq!(dropped.get(), 1);
    // An fd closed while registered: its callbacks are dropped after the reactor is released.
    let (h3, d3) = (h.clone(), dropped.clone());
    let guard = OnDrop(move || {
        h3.remove_writer(&-1);
        d3.set(d3.get() + 1);
    });
    let c = a.try_clone().unwrap();
    let keep = Rc::new(RefCell::new(Some(c)));
    let k = keep.clone();
    h.set_exception_handler(|_| {});
    h.add_reader(&a, move || {
        let _ = &guard;
        drop(k.borrow_mut().take());
    })
    .unwrap();
    drop(a);
    b.write_all(b"x").unwrap();
    run_once(&el);
    assert_eq!(dropped.get(), 2);
}

#[test]
fn writer_is_called_when_writable_and_reader_writer_share_an_fd() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (a, mut b) = UnixStream::pair().unwrap();
    let l = log();
    let (l1, l2) = (l.clone(), l.clone());
    let (h1, fd1) = (h.clone(), std::os::fd::AsRawFd::as_raw_fd(&a));
    h.add_writer(&a, move || {
        l1.borrow_mut().push("w".into());
        h1.remove_writer(&fd1);
    })
    .unwrap();
    h.add_reader(&a, move || l2.borrow_mut().push("r".into()))
        .unwrap();
    run_once(&el);
    assert_eq!(*l.borrow(), ["w"]);
    b.write_all(b"x").unwrap();
    run_once(&el);
    assert_eq!(*l.borrow(), ["w", "r"]);
    assert!(h.remove_reader(&a));
}

#[test]
fn invalid_and_closed_fds_are_errors() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    assert!(h.add_reader(&-1, || {}).is_err());
    let err = h.add_reader(&987_654, || {}).unwrap_err();
    assert!(err.to_string().contains("987654"), "{err}");
    // (A number just closed is not used here: another test's thread may get it back first.
    // `tests/registrations.rs` checks that case in a child process of its own.)
    assert!(h.add_writer(&987_654, || {}).is_err());
    let f = std::fs::File::open("Cargo.toml").unwrap();
    assert!(
        h.add_reader(&f, || {}).is_err(),
        "regular files cannot be polled"
    );
}

#[test]
fn a_reader_whose_fd_is_closed_while_registered_is_reported_and_removed() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let errors = log();
    let e = errors.clone();
    h.set_exception_handler(move |ctx| e.borrow_mut().push(ctx.message().to_string()));
    let (a, _b) = common::readable_pair();
    let slot = Rc::new(RefCell::new(Some(a.try_clone().unwrap())));
    let s = slot.clone();
    h.add_reader(&a, move || drop(s.borrow_mut().take()))
        .unwrap();
    drop(a);
    run_once(&el);
    assert_eq!(errors.borrow().len(), 1, "{:?}", errors.borrow());
    assert!(errors.borrow()[0].contains("closed while registered"));
    run_once(&el);
    assert_eq!(errors.borrow().len(), 1);
}

// 7. Panics and cancellation
#[test]
fn a_panicking_callback_goes_to_the_handler_and_the_loop_keeps_running() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = log();
    let s = seen.clone();
    h.set_exception_handler(move |ctx| {
        s.borrow_mut().push(format!(
            "{}|{}|{}",
            ctx.kind(),
            ctx.message(),
            ctx.site().file()
        ))
    });
    h.call_soon(|| panic!("boom"));
    let l = log();
    h.call_soon(push(&l, "after"));
    run_once(&el);
    assert_eq!(*l.borrow(), ["after"]);
    assert_eq!(
        *seen.borrow(),
        [format!("callback|panicked: boom|{}", file!())]
    );
}

/// A waker that panics when woken: someone else's executor with a bug.
struct PanickingWaker;

impl std::task::Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("bad waker");
    }
}

fn panicking_context() -> std::task::Waker {
    std::task::Waker::from(Arc::new(PanickingWaker))
}

/// Records what the exception handler sees, as `kind|message|Display`.
fn record_exceptions(h: &solo::Handle) -> Log {
    let seen = log();
    let s = seen.clone();
    h.set_exception_handler(move |ctx| {
        s.borrow_mut()
            .push(format!("{}|{}|{ctx}", ctx.kind(), ctx.message()))
    });
    seen
}

#[test]
fn a_panicking_waker_of_a_timer_is_reported_and_the_loop_runs_on() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = manual();
    let h = el.handle();
    let seen = record_exceptions(&h);
    // A solo sleep polled by a foreign executor whose waker panics.
    let mut sleep = Box::pin(solo::time::sleep(Duration::from_millis(10)));
    let l = log();
    let l2 = l.clone();
    h.call_soon(move || {
        let waker = panicking_context();
        let mut cx = std::task::Context::from_waker(&waker);
        assert!(sleep.as_mut().poll(&mut cx).is_pending());
        std::mem::forget(sleep); // keep the timer registered
        l2.borrow_mut().push("polled".into());
    });
    let (h2, l3) = (h.clone(), l.clone());
    h.call_later(Duration::from_millis(20), move || {
        l3.borrow_mut().push("later".into());
        h2.stop();
    });
    el.run_forever().unwrap();
    assert_eq!(*l.borrow(), ["polled", "later"]);
    assert_eq!(
        *seen.borrow(),
        ["event loop|a waker panicked: bad waker|solo: event loop: a waker panicked: bad waker"]
    );
}

#[test]
fn a_panicking_waker_of_an_fd_is_reported_and_the_loop_runs_on() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = record_exceptions(&h);
    let (a, mut b) = UnixStream::pair().unwrap();
    let fd = el
        .run_until_complete(async { solo::Async::new(a) })
        .unwrap()
        .unwrap();
    let waker = panicking_context();
    let mut cx = std::task::Context::from_waker(&waker);
    // Drain the initial readiness (a fresh socket pair is writable, not readable).
    assert!(fd.poll_readable(&mut cx).is_pending());
    // A second pair whose reader stops the loop: both events come back from the same poll, so
    // the panicking waker has been woken by the time the reader runs.
    let (c, mut d) = UnixStream::pair().unwrap();
    let l = log();
    let (l2, h2) = (l.clone(), h.clone());
    h.add_reader(&c, move || {
        l2.borrow_mut().push("reader".into());
        h2.stop();
    })
    .unwrap();
    b.write_all(b"x").unwrap();
    d.write_all(b"x").unwrap();
    el.run_forever().unwrap();
    assert_eq!(*l.borrow(), ["reader"]);
    assert!(h.remove_reader(&c));
    assert_eq!(
        *seen.borrow(),
        ["event loop|a waker panicked: bad waker|solo: event loop: a waker panicked: bad waker"]
    );
}

#[test]
fn a_panicking_debug_report_hook_does_not_take_the_loop_down() {
    let _watchdog = common::watchdog!();
    let clock = ManualClock::new();
    let el = EventLoop::builder()
        .clock(clock.clone())
        .debug(true)
        .slow_callback_duration(Duration::from_millis(10))
        .on_slow(|_| panic!("bad hook"))
        .build()
        .unwrap();
    let h = el.handle();
    let l = log();
    let c = clock.clone();
    h.call_soon(move || c.advance(Duration::from_millis(50))); // "slow" on the loop clock
    let l2 = l.clone();
    h.call_soon(move || l2.borrow_mut().push("after".into()));
    run_once(&el);
    assert_eq!(*l.borrow(), ["after"]);
    assert_eq!(el.stats().unwrap().callbacks, 2);
}

#[test]
fn a_panicking_task_yields_a_join_error_and_is_not_reported_when_retrieved() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = handler_log(&h);
    let t = h.spawn(async { panic!("task boom") });
    let other = h.spawn(async { 7 });
    let (a, b) = el
        .run_until_complete(async move { (t.await, other.await) })
        .unwrap();
    let err = a.unwrap_err();
    assert!(err.is_panic() && !err.is_cancelled());
    assert_eq!(b.unwrap(), 7);
    let payload = err.try_into_panic().unwrap();
    assert_eq!(*payload.downcast::<&str>().unwrap(), "task boom");
    drop(el);
    // The panic went to the handle that awaited it: nothing for the exception handler, then or
    // at close (asyncio: an exception that was retrieved is never logged).
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

/// What the exception handler sees, as its `Display`.
fn handler_log(h: &solo::Handle) -> Log {
    let seen = log();
    let s = seen.clone();
    h.set_exception_handler(move |ctx| s.borrow_mut().push(ctx.to_string()));
    seen
}

const NEVER: &str = "(task exception was never retrieved: ";

#[test]
fn a_detached_task_that_panics_is_reported_when_it_panics_with_its_spawn_site() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = handler_log(&h);
    let line = line!() + 1;
    drop(h.spawn_named("lost", async { panic!("boom") }));
    run_once(&el);
    assert_eq!(
        *seen.borrow(),
        [format!(
            "solo: task \"lost\" (spawned at {}:{line}:12) failed: panicked: boom \
             {NEVER}its JoinHandle was dropped before it failed)",
            file!()
        )]
    );
    drop(el);
    assert_eq!(seen.borrow().len(), 1, "reported once");
}

#[test]
fn a_handle_dropped_unawaited_after_the_panic_reports_it_at_the_drop() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = handler_log(&h);
    let t = h.spawn(async { panic!("boom") });
    run_once(&el);
    assert!(t.is_finished());
    assert!(seen.borrow().is_empty(), "the handle may still take it");
    // Dropped on the running loop: reported right there.
    h.call_soon(move || drop(t));
    run_once(&el);
    assert_eq!(seen.borrow().len(), 1);
    assert!(
        seen.borrow()[0].ends_with(&format!(
            "failed: panicked: boom {NEVER}its JoinHandle was dropped without being awaited)"
        )),
        "{:?}",
        seen.borrow()
    );
    drop(el);
    assert_eq!(seen.borrow().len(), 1, "reported once");
}

#[test]
fn a_handle_dropped_while_the_loop_is_not_running_is_reported_when_it_next_runs() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = handler_log(&h);
    let t = h.spawn(async { panic!("boom") });
    run_once(&el);
    drop(t); // outside the loop: the handler is out of reach until the loop runs
    assert!(seen.borrow().is_empty());
    run_once(&el);
    assert_eq!(seen.borrow().len(), 1);
    assert!(seen.borrow()[0].contains("while the loop was not running)"));
    drop(el);
    assert_eq!(seen.borrow().len(), 1, "reported once");
    // Dropped outside the loop, and the loop never runs again: reported when it closes.
    let el = EventLoop::new().unwrap();
    let seen = handler_log(&el.handle());
    let t = el.handle().spawn(async { panic!("boom") });
    run_once(&el);
    drop(t);
    drop(el);
    assert_eq!(seen.borrow().len(), 1);
    assert!(seen.borrow()[0].contains("while the loop was not running)"));
}

#[test]
fn a_loop_closing_with_a_panic_unretrieved_reports_it_and_the_handle_still_yields_it() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = handler_log(&h);
    let line = line!() + 1;
    let t = h.spawn(async { panic!("boom") });
    let fine = h.spawn(async { 1 });
    run_once(&el);
    drop(el);
    assert_eq!(
        *seen.borrow(),
        [format!(
            "solo: task (spawned at {}:{line}:15) failed: panicked: boom \
             {NEVER}the loop closed before its JoinHandle was awaited)",
            file!()
        )]
    );
    // The error is still the handle's; awaiting it (on any executor) reports nothing more.
    let err = futures::executor::block_on(t).unwrap_err();
    assert!(err.is_panic());
    assert_eq!(futures::executor::block_on(fine).unwrap(), 1);
    assert_eq!(seen.borrow().len(), 1);
}

#[test]
fn a_handle_the_exception_handler_drops_while_panics_are_reported_is_reported_too() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = log();
    let held: Rc<RefCell<Vec<solo::JoinHandle<()>>>> = Rc::default();
    let (s, k) = (seen.clone(), held.clone());
    h.set_exception_handler(move |ctx| {
        s.borrow_mut().push(ctx.message().to_string());
        k.borrow_mut().clear(); // drops the other handle in the middle of the reports
    });
    let a = h.spawn(async { panic!("a") });
    let b = h.spawn(async { panic!("b") });
    run_once(&el);
    held.borrow_mut().push(b);
    drop(a); // outside the loop: both are reported by the sweeps (a at the next run)
    run_once(&el);
    drop(el);
    let seen = seen.borrow();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(seen[0].starts_with("panicked: a ") && seen[1].starts_with("panicked: b "));
}

#[test]
fn a_panic_retrieved_off_the_loop_is_not_reported() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = handler_log(&h);
    let t = h.spawn(async { panic!("boom") });
    run_once(&el);
    // Awaited by another executor while the loop is not running.
    assert!(futures::executor::block_on(t).unwrap_err().is_panic());
    run_once(&el);
    drop(el);
    assert!(seen.borrow().is_empty(), "{:?}", seen.borrow());
}

#[test]
fn a_task_that_drops_its_own_handle_and_panics_is_reported_once() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = handler_log(&h);
    let slot: Rc<RefCell<Option<solo::JoinHandle<()>>>> = Rc::default();
    let s = slot.clone();
    let t = h.spawn(async move {
        let own = s.borrow_mut().take();
        solo::yield_now().await;
        let _own = own; // dropped while this panic unwinds
        panic!("boom");
    });
    *slot.borrow_mut() = Some(t);
    run_once(&el);
    run_once(&el);
    drop(el);
    assert_eq!(seen.borrow().len(), 1, "{:?}", seen.borrow());
    assert!(seen.borrow()[0].contains("dropped before it failed"));
}

#[test]
fn cancel_drops_the_future_at_the_next_safe_point() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let drops = Rc::new(Cell::new(0));
    let flag = Counted(drops.clone());
    let t = h.spawn(async move {
        let _f = flag;
        std::future::pending::<()>().await;
    });
    run_once(&el);
    assert_eq!(drops.get(), 0);
    t.cancel();
    t.cancel();
    assert_eq!(drops.get(), 0, "not dropped inside cancel()");
    run_once(&el);
    assert_eq!(drops.get(), 1);
    assert!(t.is_finished());
    let r = el.run_until_complete(t).unwrap();
    assert!(r.unwrap_err().is_cancelled());
    assert_eq!(drops.get(), 1);
}

#[test]
fn a_task_can_cancel_itself_while_running() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let slot: Rc<RefCell<Option<solo::JoinHandle<()>>>> = Rc::new(RefCell::new(None));
    let s = slot.clone();
    let t = h.spawn(async move {
        s.borrow().as_ref().unwrap().cancel();
        std::future::pending::<()>().await;
    });
    *slot.borrow_mut() = Some(t);
    run_once(&el);
    run_once(&el);
    let t = slot.borrow_mut().take().unwrap();
    assert!(t.is_finished());
}

#[test]
fn a_detached_task_keeps_running() {
    let _watchdog = common::watchdog!();
    // A manual clock, so the order does not depend on the machine's speed: loop time stands
    // still while the loop works and then jumps to the next timer, so the task's 1 ms sleep
    // (started in the first iteration) ends before the main future's 5 ms one (started just
    // before it). On the real clock, a loaded machine could reach the task's first poll more
    // than 4 ms after the main future's, and the main future would finish first.
    let (el, _clock) = manual();
    let h = el.handle();
    let start = el.time();
    let done = Rc::new(Cell::new(None));
    let d = done.clone();
    drop(h.spawn(async move {
        solo::time::sleep(Duration::from_millis(1)).await;
        d.set(Some(solo::Handle::current().time()));
    }));
    el.run_until_complete(solo::time::sleep(Duration::from_millis(5)))
        .unwrap();
    let finished = done.get().expect("the detached task ran to its end");
    assert!(finished - start >= Duration::from_millis(1));
    assert!(finished - start < Duration::from_millis(5));
}

// 8. Threadsafe wake-ups
#[test]
fn call_soon_threadsafe_wakes_a_loop_blocked_on_a_far_timer() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    h.call_later(Duration::from_secs(30), || {
        panic!("should not wait for this")
    });
    let remote = h.remote();
    let start = Instant::now();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        remote
            .call_soon_threadsafe(|| Handle::current().stop())
            .unwrap();
    });
    el.run_forever().unwrap();
    t.join().unwrap();
    assert!(start.elapsed() < Duration::from_secs(10));
}

#[test]
fn remote_spawn_and_waking_from_another_thread() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let task = h.spawn(async move { rx.await.unwrap() * 2 });
    let remote = h.remote();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(21).unwrap();
        remote.spawn(async { "from afar" })
    });
    assert_eq!(el.run_until_complete(task).unwrap().unwrap(), 42);
    let far = t.join().unwrap();
    assert_eq!(el.run_until_complete(far).unwrap().unwrap(), "from afar");
}

#[test]
fn remote_after_the_loop_is_dropped_is_an_error_not_a_panic() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let remote = el.handle().remote();
    drop(el);
    assert!(remote.is_closed());
    assert_eq!(remote.call_soon_threadsafe(|| {}), Err(solo::LoopClosed));
    let jh = remote.spawn(async { 1 });
    let r = futures::executor::block_on(jh);
    assert!(r.unwrap_err().is_cancelled());
}

// 9. Wakers
#[test]
fn waking_a_task_whose_loop_is_gone_is_a_no_op() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let stash: Arc<std::sync::Mutex<Option<std::task::Waker>>> = Default::default();
    let s = stash.clone();
    h.spawn(std::future::poll_fn(move |cx| {
        *s.lock().unwrap() = Some(cx.waker().clone());
        Poll::<()>::Pending
    }));
    run_once(&el);
    drop(el);
    let w = stash.lock().unwrap().take().unwrap();
    w.wake_by_ref();
    std::thread::spawn(move || w.wake()).join().unwrap();
}

#[test]
fn wakers_are_send_and_sync_and_wake_from_threads() {
    let _watchdog = common::watchdog!();
    fn assert_send_sync<T: Send + Sync>(_: &T) {}
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let polls = Rc::new(Cell::new(0));
    let p = polls.clone();
    let t = h.spawn(std::future::poll_fn(move |cx| {
        p.set(p.get() + 1);
        if p.get() == 3 {
            return Poll::Ready(());
        }
        assert_send_sync(cx.waker());
        let w = cx.waker().clone();
        std::thread::spawn(move || w.wake());
        Poll::Pending
    }));
    el.run_until_complete(t).unwrap().unwrap();
    assert_eq!(polls.get(), 3);
}

// 10. Dropping the loop
#[test]
fn dropping_the_loop_drops_everything_exactly_once() {
    let _watchdog = common::watchdog!();
    let drops = Rc::new(Cell::new(0));
    let (a, _b) = UnixStream::pair().unwrap();
    {
        let el = EventLoop::new().unwrap();
        let h = el.handle();
        let c = Counted(drops.clone());
        h.call_soon(move || drop(c));
        let c = Counted(drops.clone());
        h.call_later(Duration::from_secs(60), move || drop(c));
        let c = Counted(drops.clone());
        h.add_reader(&a, move || {
            let _ = &c;
        })
        .unwrap();
        let c = Counted(drops.clone());
        let t = h.spawn(async move {
            let _c = c;
            std::future::pending::<()>().await;
        });
        // A pending task that was polled once, holding a handle to its own loop (a cycle).
        let c = Counted(drops.clone());
        let h2 = h.clone();
        drop(h.spawn(async move {
            let _c = c;
            let _h = h2;
            std::future::pending::<()>().await;
        }));
        // A task that completes in the first iteration.
        let c = Counted(drops.clone());
        drop(h.spawn(async move {
            let _c = c;
        }));
        let h3 = h.clone();
        h.call_soon(move || h3.stop());
        el.run_forever().unwrap();
        assert_eq!(
            drops.get(),
            2,
            "the call_soon callback and the finished task"
        );
        drop(t);
        // A task that is never polled, and a callback that never runs.
        let c = Counted(drops.clone());
        drop(h.spawn(async move {
            let _c = c;
        }));
        let c = Counted(drops.clone());
        h.call_soon(move || drop(c));
        assert_eq!(drops.get(), 2);
    }
    // 2 + timer + reader + pending task + cyclic task + unpolled task + queued callback
    assert_eq!(drops.get(), 8);
    // The fd the user owns is still open.
    assert!(a.try_clone().is_ok());
    let mut a2 = a.try_clone().unwrap();
    a2.set_nonblocking(true).unwrap();
    assert!(matches!(a2.read(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock));
}

#[test]
fn remote_callbacks_queued_at_drop_are_dropped_once() {
    let _watchdog = common::watchdog!();
    let drops = Arc::new(AtomicUsize::new(0));
    struct D(Arc<AtomicUsize>);
    impl Drop for D {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let el = EventLoop::new().unwrap();
    let remote = el.handle().remote();
    for _ in 0..3 {
        let d = D(drops.clone());
        remote.call_soon_threadsafe(move || drop(d)).unwrap();
    }
    drop(el);
    assert_eq!(drops.load(Ordering::SeqCst), 3);
}

#[test]
fn a_handle_outliving_its_loop_refuses_work_cleanly() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    drop(el);
    assert!(h.is_closed());
    let c = h.call_soon(|| unreachable!());
    assert!(c.cancelled());
    let t = h.call_later(Duration::from_secs(1), || unreachable!());
    assert!(t.cancelled());
    let (a, _b) = UnixStream::pair().unwrap();
    assert!(h.add_reader(&a, || {}).is_err());
    let jh = h.spawn(async { 1 });
    assert!(jh.is_finished());
}

/// The names of this process's threads (Linux).
fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn the_loop_starts_no_thread_of_its_own() {
    let _watchdog = common::watchdog!();
    // Debug mode (watchdog) and run_in_executor (pool) are the only ways solo starts threads;
    // neither is used in this test binary. Timers, I/O, tasks and remotes need none.
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let (a, _b) = common::readable_pair();
    let h2 = h.clone();
    common::add_reader_once(&h, &a, move || h2.stop());
    h.call_later(Duration::from_millis(1), || {});
    let t = h.spawn(solo::time::sleep(Duration::from_millis(2)));
    el.run_forever().unwrap();
    el.run_until_complete(t).unwrap().unwrap();
    let names = thread_names();
    assert!(
        names.iter().all(|n| !n.starts_with("solo-")),
        "solo started threads: {names:?}"
    );
}

// Integration with the futures ecosystem.
#[test]
fn local_spawn_ext_works() {
    let _watchdog = common::watchdog!();
    use futures::task::LocalSpawnExt;
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    h.spawn_local(async move { g.set(5) }).unwrap();
    let jh = h.spawn_local_with_handle(async { 9 }).unwrap();
    assert_eq!(el.run_until_complete(jh).unwrap(), 9);
    assert_eq!(got.get(), 5);
}

#[test]
fn spawn_ext_works_on_remote() {
    let _watchdog = common::watchdog!();
    use futures::task::SpawnExt;
    let el = EventLoop::new().unwrap();
    let remote = el.handle().remote();
    let (tx, rx) = futures::channel::oneshot::channel();
    std::thread::spawn(move || {
        SpawnExt::spawn(&remote, async move { tx.send(3).unwrap() }).unwrap()
    })
    .join()
    .unwrap();
    assert_eq!(el.run_until_complete(rx).unwrap().unwrap(), 3);
}

#[test]
fn handle_current_inside_and_outside() {
    let _watchdog = common::watchdog!();
    assert!(Handle::try_current().is_none());
    let el = EventLoop::new().unwrap();
    let ok = el
        .run_until_complete(async { Handle::try_current().is_some() })
        .unwrap();
    assert!(ok);
    assert!(Handle::try_current().is_none());
    let r = std::panic::catch_unwind(|| Handle::current());
    assert!(r.is_err());
}

#[test]
fn a_panic_in_the_main_future_propagates_and_leaves_the_loop_usable() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        el.run_until_complete(async { panic!("main") })
    }));
    assert!(r.is_err());
    assert!(!el.is_running());
    assert_eq!(el.run_until_complete(async { 1 }), Ok(1));
}

#[test]
fn many_tasks_spawning_and_yielding() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let total = Rc::new(Cell::new(0u64));
    let mut handles = Vec::new();
    for i in 0..100u64 {
        let t = total.clone();
        let h2 = h.clone();
        handles.push(h.spawn(async move {
            for _ in 0..10 {
                solo::yield_now().await;
            }
            let inner = h2.spawn(async move { i });
            let v = inner.await.unwrap();
            t.set(t.get() + v);
        }));
    }
    el.run_until_complete(async move {
        for hd in handles {
            hd.await.unwrap();
        }
    })
    .unwrap();
    assert_eq!(total.get(), (0..100).sum::<u64>());
}

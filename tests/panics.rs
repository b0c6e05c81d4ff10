//! Panics from user code never escape the loop and never abort: in callbacks' and futures'
//! destructors (on cancel, after they ran, when the loop is dropped or shut down), in wakers the
//! loop calls, in the exception handler. Each is reported, and the loop serves a fresh callback
//! afterwards.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use solo::{EventLoop, Handle};

mod common;

use common::run_once;

type Log = Rc<RefCell<Vec<String>>>;

/// What the exception handler sees, as `kind|message`.
fn exceptions(h: &Handle) -> Log {
    let seen: Log = Rc::default();
    let s = seen.clone();
    h.set_exception_handler(move |ctx| {
        s.borrow_mut()
            .push(format!("{}|{}", ctx.kind(), ctx.message()))
    });
    seen
}

/// Panics when dropped, after counting the drop.
struct Bomb(Rc<Cell<u32>>);

impl Drop for Bomb {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
        panic!("bomb");
    }
}

fn bomb() -> (Bomb, Rc<Cell<u32>>) {
    let n = Rc::new(Cell::new(0));
    (Bomb(n.clone()), n)
}

/// The loop still runs a fresh callback.
fn still_serves(el: &EventLoop) {
    let ran = Rc::new(Cell::new(false));
    let r = ran.clone();
    el.handle().call_soon(move || r.set(true));
    run_once(el);
    assert!(ran.get(), "the loop serves a fresh callback");
}

const DESTRUCTOR: &str = "panicked in its destructor: bomb";

#[test]
fn a_cancelled_call_soon_whose_destructor_panics_is_reported() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = exceptions(&h);
    let (b, dropped) = bomb();
    let cb = h.call_soon(move || drop(b));
    cb.cancel();
    run_once(&el);
    assert_eq!(dropped.get(), 1);
    assert_eq!(*seen.borrow(), [format!("callback|{DESTRUCTOR}")]);
    still_serves(&el);
}

#[test]
fn a_cancelled_timer_whose_destructor_panics_is_reported_not_thrown_at_the_canceller() {
    let _watchdog = common::watchdog!();
    let (el, _clock) = common::manual();
    let h = el.handle();
    let seen = exceptions(&h);
    let (b, dropped) = bomb();
    let t = h.call_later(Duration::from_secs(1), move || drop(b));
    t.cancel(); // user code: must not unwind here
    assert_eq!(dropped.get(), 1);
    assert_eq!(*seen.borrow(), [format!("timer callback|{DESTRUCTOR}")]);
    still_serves(&el);
}

#[test]
fn a_callback_whose_captures_panic_on_drop_after_it_ran_is_reported() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = exceptions(&h);
    let (b, dropped) = bomb();
    h.call_soon(move || {
        let _b = &b; // captured, dropped when the closure is consumed
    });
    run_once(&el);
    assert_eq!(dropped.get(), 1);
    assert_eq!(*seen.borrow(), ["callback|panicked: bomb"]);
    still_serves(&el);
}

#[test]
fn a_reader_whose_destructor_panics_is_reported_when_replaced_removed_or_removing_itself() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = exceptions(&h);
    let (a, _peer) = common::readable_pair();
    let (b1, d1) = bomb();
    h.add_reader(&a, move || {
        let _ = &b1;
    })
    .unwrap();
    h.add_reader(&a, || {}).unwrap(); // replaces: the first one is dropped
    assert_eq!(d1.get(), 1);
    let (b2, d2) = bomb();
    h.add_reader(&a, move || {
        let _ = &b2;
    })
    .unwrap();
    assert!(h.remove_reader(&a));
    assert_eq!(d2.get(), 1);
    // A reader that removes itself while running is dropped when it returns.
    let (b3, d3) = bomb();
    let (h2, fd) = (h.clone(), std::os::fd::AsRawFd::as_raw_fd(&a));
    h.add_reader(&a, move || {
        let _ = &b3;
        h2.remove_reader(&fd);
    })
    .unwrap();
    run_once(&el);
    assert_eq!(d3.get(), 1);
    assert_eq!(
        *seen.borrow(),
        [
            format!("reader callback|{DESTRUCTOR}"),
            format!("reader callback|{DESTRUCTOR}"),
            format!("reader callback|{DESTRUCTOR}"),
        ]
    );
    still_serves(&el);
}

/// A future that is pending forever and holds a bomb.
async fn pending_with(b: Bomb) {
    let _b = b;
    std::future::pending::<()>().await
}

#[test]
fn a_cancelled_task_whose_future_panics_on_drop_is_reported_with_its_name() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = exceptions(&h);
    let (b, dropped) = bomb();
    let t = h.spawn_named("bomber", pending_with(b));
    run_once(&el);
    t.cancel();
    let res = el.run_until_complete(t).unwrap();
    assert!(res.unwrap_err().is_cancelled());
    assert_eq!(dropped.get(), 1);
    assert_eq!(*seen.borrow(), [format!("task|{DESTRUCTOR}")]);
    still_serves(&el);
}

#[test]
fn an_output_that_panics_on_drop_is_reported_when_nobody_takes_it() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = exceptions(&h);
    let (b, dropped) = bomb();
    drop(h.spawn(async move { b })); // detached: the output is dropped at completion
    run_once(&el);
    assert_eq!(dropped.get(), 1);
    assert_eq!(*seen.borrow(), [format!("task|{DESTRUCTOR}")]);
    // Kept by a JoinHandle that a callback drops, unpolled, after completion.
    let (b, dropped) = bomb();
    let t = h.spawn(async move { b });
    run_once(&el);
    h.call_soon(move || drop(t));
    run_once(&el);
    assert_eq!(dropped.get(), 1);
    assert_eq!(seen.borrow().len(), 2);
    // Dropped outside the running loop: contained too, and printed to stderr (no handler is
    // reachable from there).
    let (b, dropped) = bomb();
    let t = h.spawn(async move { b });
    run_once(&el);
    assert!(catch_unwind(AssertUnwindSafe(move || drop(t))).is_ok());
    assert_eq!(dropped.get(), 1);
    assert_eq!(seen.borrow().len(), 2);
    still_serves(&el);
}

#[test]
fn dropping_a_loop_full_of_panicking_destructors_drops_each_once_and_does_not_unwind() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = exceptions(&h);
    let count = Rc::new(Cell::new(0));
    let b = || Bomb(count.clone());
    let (x1, x2, x3, x4) = (b(), b(), b(), b());
    h.call_soon(move || drop(x1));
    h.call_later(Duration::from_secs(60), move || drop(x2));
    drop(h.spawn(pending_with(x3)));
    let (a, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    h.add_reader(&a, move || {
        let _ = &x4;
    })
    .unwrap();
    let res = catch_unwind(AssertUnwindSafe(move || drop(el)));
    assert!(res.is_ok(), "dropping the loop must not unwind");
    assert_eq!(count.get(), 4, "each destructor ran exactly once");
    assert_eq!(seen.borrow().len(), 4, "{:?}", seen.borrow());
    for s in seen.borrow().iter() {
        assert!(s.ends_with(DESTRUCTOR), "{s}");
    }
}

/// A `Send` value whose drop panics.
struct SendBomb(Arc<std::sync::atomic::AtomicU32>);

impl Drop for SendBomb {
    fn drop(&mut self) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        panic!("bomb");
    }
}

#[test]
fn queued_threadsafe_callbacks_that_panic_on_drop_are_contained_at_loop_drop() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let seen = exceptions(&el.handle());
    let n = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let b = SendBomb(n.clone());
    let remote = el.handle().remote();
    std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(move || {
                let _ = &b;
            })
            .unwrap()
    })
    .join()
    .unwrap();
    let res = catch_unwind(AssertUnwindSafe(move || drop(el)));
    assert!(res.is_ok());
    assert_eq!(n.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(
        *seen.borrow(),
        [format!("threadsafe callback|{DESTRUCTOR}")]
    );
}

#[test]
fn shutdown_cancels_tasks_whose_futures_panic_on_drop_without_unwinding() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = exceptions(&h);
    let (b, dropped) = bomb();
    h.spawn_named("stuck", pending_with(b));
    let report = catch_unwind(AssertUnwindSafe(move || {
        el.shutdown(Duration::from_millis(1))
    }))
    .expect("shutdown must not unwind");
    assert_eq!(report.cancelled.len(), 1);
    assert_eq!(dropped.get(), 1);
    assert_eq!(*seen.borrow(), [format!("task|{DESTRUCTOR}")]);
}

/// A future that is ready at once and holds a bomb.
struct ReadyWith(#[allow(dead_code)] Option<Bomb>);

impl Future for ReadyWith {
    type Output = u8;
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<u8> {
        Poll::Ready(7)
    }
}

#[test]
fn the_main_future_panicking_on_drop_is_reported_and_its_output_still_returned() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let seen = exceptions(&el.handle());
    let (b, dropped) = bomb();
    let v = el.run_until_complete(ReadyWith(Some(b))).unwrap();
    assert_eq!(v, 7);
    assert_eq!(dropped.get(), 1);
    assert_eq!(*seen.borrow(), [format!("main future|{DESTRUCTOR}")]);
    still_serves(&el);
}

/// A future whose poll panics, holding a bomb in its state (dropped with the future, after the
/// unwind from `poll` is caught: a destructor that panicked *during* that unwind would abort,
/// whatever the runtime).
struct PanicsWith(#[allow(dead_code)] Bomb);

impl Future for PanicsWith {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        panic!("in poll");
    }
}

#[test]
fn a_main_future_that_panics_in_poll_and_in_drop_propagates_once_without_aborting() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let seen = exceptions(&el.handle());
    let (b, dropped) = bomb();
    let res = catch_unwind(AssertUnwindSafe(|| el.run_until_complete(PanicsWith(b))));
    let payload = res.unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"in poll"));
    assert_eq!(dropped.get(), 1);
    assert_eq!(*seen.borrow(), [format!("main future|{DESTRUCTOR}")]);
    still_serves(&el);
}

struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("bad waker");
    }
}

#[test]
fn a_panicking_waker_awaiting_a_join_handle_is_reported() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let seen = exceptions(&h);
    let mut t = h.spawn(async {
        solo::yield_now().await;
        5
    });
    // A foreign executor polls the JoinHandle with a waker that panics.
    let waker = Waker::from(Arc::new(PanickingWaker));
    assert!(Pin::new(&mut t)
        .poll(&mut Context::from_waker(&waker))
        .is_pending());
    run_once(&el);
    run_once(&el);
    assert_eq!(seen.borrow().len(), 1, "{:?}", seen.borrow());
    assert!(
        seen.borrow()[0].contains("panicked: bad waker"),
        "{:?}",
        seen.borrow()
    );
    assert_eq!(el.run_until_complete(t).unwrap().unwrap(), 5);
    still_serves(&el);
}

#[test]
fn a_panicking_exception_handler_goes_to_stderr_and_the_loop_runs_on() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    h.set_exception_handler(|_| panic!("handler"));
    h.call_soon(|| panic!("callback"));
    run_once(&el);
    still_serves(&el);
}

#[test]
fn work_offered_to_a_closed_loop_is_dropped_behind_the_guard() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    drop(el);
    let count = Rc::new(Cell::new(0));
    let b = || Bomb(count.clone());
    let (x1, x2, x3, x4) = (b(), b(), b(), b());
    let res = catch_unwind(AssertUnwindSafe(|| {
        assert!(h.call_soon(move || drop(x1)).cancelled());
        assert!(h
            .call_later(Duration::from_secs(1), move || drop(x2))
            .cancelled());
        let t = h.spawn(pending_with(x3));
        assert!(t.is_finished());
        let (a, _b) = std::os::unix::net::UnixStream::pair().unwrap();
        assert!(h
            .add_reader(&a, move || {
                let _ = &x4;
            })
            .is_err());
    }));
    assert!(res.is_ok(), "no unwind into the caller");
    assert_eq!(count.get(), 4);
}

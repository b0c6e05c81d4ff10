//! solo's typed errors: the `io::Error`s solo makes itself carry a `solo::Error` that names the
//! user's call, found with `solo::Error::of` or `get_ref`/`downcast_ref`, for calls made outside
//! a running loop and on a closed loop.

mod common;

use std::future::Future;
use std::io;
use std::os::unix::net::UnixStream;
use std::pin::pin;
use std::task::{Context, Poll};

use futures::{AsyncRead, AsyncReadExt};
use solo::process::Command;
use solo::signal::{ctrl_c, signal, Signal, SignalKind};
use solo::{Async, EventLoop};

/// The solo error inside `e`, through std's own API (what a user without `Error::of` writes).
fn solo_error(e: &io::Error) -> &solo::Error {
    let inner = e
        .get_ref()
        .unwrap_or_else(|| panic!("no inner error in {e:?}"));
    let ours = inner
        .downcast_ref::<solo::Error>()
        .unwrap_or_else(|| panic!("not a solo::Error: {e:?}"));
    // `Error::of` finds the same one.
    assert!(std::ptr::eq(solo::Error::of(e).unwrap(), ours));
    ours
}

/// Asserts that `e` is solo's "outside a running loop" error for `call`, with the message the
/// user sees.
#[track_caller]
fn assert_outside(e: &io::Error, call: &str) {
    assert_eq!(e.kind(), io::ErrorKind::Other, "{e}");
    match solo_error(e) {
        solo::Error::OutsideLoop { call: c } => assert_eq!(*c, call),
        other => panic!("expected OutsideLoop for {call}, got {other:?}"),
    }
    assert_eq!(solo_error(e).call(), call);
    assert!(!solo_error(e).is_loop_closed());
    assert_eq!(
        e.to_string(),
        format!(
            "{call} called outside a running solo event loop; start one with solo::run or \
             #[solo::main]"
        )
    );
}

/// Asserts that `e` is solo's "loop closed" error for `call`.
#[track_caller]
fn assert_closed(e: &io::Error, call: &str) {
    assert_eq!(e.kind(), io::ErrorKind::Other, "{e}");
    assert_eq!(solo_error(e), &solo::Error::LoopClosed { call: leak(call) });
    assert!(solo_error(e).is_loop_closed());
    let msg = e.to_string();
    assert!(
        msg.starts_with(&format!("{call}: the event loop is closed")),
        "{msg}"
    );
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

/// Polls `f` once, with no loop and a waker that does nothing.
fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    std::pin::Pin::new(f).poll(&mut Context::from_waker(&futures::task::noop_waker()))
}

#[test]
fn calls_outside_a_running_loop_name_themselves() {
    let _watchdog = common::watchdog!();
    let (a, _b) = UnixStream::pair().unwrap();
    assert_outside(&Async::new(a).unwrap_err(), "Async::new");
    assert_outside(&Command::new("true").spawn().unwrap_err(), "Command::spawn");
    let e = futures::executor::block_on(Command::new("true").status()).unwrap_err();
    assert_outside(&e, "Command::spawn");
    let e = futures::executor::block_on(Command::new("true").output()).unwrap_err();
    assert_outside(&e, "Command::spawn");
    let e = signal(SignalKind::from_raw(libc::SIGRTMIN() + 5)).unwrap_err();
    assert_outside(&e, "solo::signal::signal");
    let e = futures::executor::block_on(solo::fs::read("/dev/null")).unwrap_err();
    assert_outside(&e, "solo::fs::read");
    let e = futures::executor::block_on(solo::fs::write("/nonexistent/x", "")).unwrap_err();
    assert_outside(&e, "solo::fs::write");
    let e = futures::executor::block_on(solo::fs::metadata("/")).unwrap_err();
    assert_outside(&e, "solo::fs::metadata");
}

#[test]
fn a_loop_that_exists_but_does_not_run_is_still_outside() {
    let _watchdog = common::watchdog!();
    // A loop built but not running on this thread does not count: the calls need a running one.
    let el = EventLoop::new().unwrap();
    let (a, _b) = UnixStream::pair().unwrap();
    assert_outside(&Async::new(a).unwrap_err(), "Async::new");
    // Its handle works where the call takes one.
    let (a, _b) = UnixStream::pair().unwrap();
    assert!(Async::with_handle(a, &el.handle()).is_ok());
}

#[test]
fn ctrl_c_outside_a_loop_then_polled_again() {
    let _watchdog = common::watchdog!();
    let mut f = ctrl_c();
    match poll_once(&mut f) {
        Poll::Ready(Err(e)) => assert_outside(&e, "solo::signal::ctrl_c"),
        other => panic!("expected an error, got {other:?}"),
    }
    // Polled after it failed: its own error, not a hang or a panic.
    match poll_once(&mut f) {
        Poll::Ready(Err(e)) => assert_eq!(
            solo_error(&e),
            &solo::Error::PolledAfterCompletion {
                call: "solo::signal::ctrl_c"
            }
        ),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn calls_on_a_dropped_loop() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    // ctrl_c made inside the loop, outliving it.
    let mut c = el
        .run_until_complete(async { Some(ctrl_c()) })
        .unwrap()
        .unwrap();
    drop(el);
    let (a, b) = UnixStream::pair().unwrap();
    assert_closed(
        &Async::with_handle(a, &h).unwrap_err(),
        "Async::with_handle",
    );
    assert_closed(&h.add_reader(&b, || {}).unwrap_err(), "Handle::add_reader");
    assert_closed(&h.add_writer(&b, || {}).unwrap_err(), "Handle::add_writer");
    let e = h.add_signal_handler(libc::SIGUSR2, || {}).unwrap_err();
    assert_closed(&e, "Handle::add_signal_handler");
    let e = Signal::with_handle(SignalKind::from_raw(libc::SIGRTMIN() + 5), &h).unwrap_err();
    assert_closed(&e, "Signal::with_handle");
    match poll_once(&mut c) {
        Poll::Ready(Err(e)) => assert_closed(&e, "solo::signal::ctrl_c"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn calls_on_a_shut_down_loop() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    el.shutdown(std::time::Duration::ZERO);
    let (a, b) = UnixStream::pair().unwrap();
    assert_closed(
        &Async::with_handle(a, &h).unwrap_err(),
        "Async::with_handle",
    );
    assert_closed(&h.add_reader(&b, || {}).unwrap_err(), "Handle::add_reader");
}

#[test]
fn files_after_the_loops_pool_was_shut_down() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let e = el
        .run_until_complete(async {
            // What EventLoop::shutdown does to the pool, done early.
            solo::Handle::current()
                .executor()
                .shutdown(std::time::Instant::now());
            solo::fs::read("/dev/null").await
        })
        .unwrap()
        .unwrap_err();
    assert_closed(&e, "solo::fs::read");
}

#[test]
fn a_child_and_its_pipes_outliving_their_loop() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let mut child = el
        .run_until_complete(async {
            Command::new("sleep")
                .arg("10")
                .stdout(std::process::Stdio::piped())
                .kill_on_drop(true)
                .spawn()
        })
        .unwrap()
        .unwrap();
    drop(el);
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 8];
    let e = futures::executor::block_on(out.read(&mut buf)).unwrap_err();
    assert_closed(&e, "ChildStdout::read");
    let mut wait = pin!(child.wait());
    match wait
        .as_mut()
        .poll(&mut Context::from_waker(&futures::task::noop_waker()))
    {
        Poll::Ready(Err(e)) => assert_closed(&e, "Child::wait"),
        other => panic!("expected an error, got {other:?}"),
    }
}

#[test]
fn solo_errors_convert_and_display() {
    // A user can make one too (to return from their own function alongside solo's).
    let e: io::Error = solo::Error::OutsideLoop { call: "my_call" }.into();
    assert_outside(&e, "my_call");
    // An io::Error solo did not make has no solo error inside.
    assert!(solo::Error::of(&io::Error::from_raw_os_error(libc::EBADF)).is_none());
    assert!(solo::Error::of(&io::Error::other("x")).is_none());
    let e = solo::Error::JobPanicked {
        call: "solo::fs::read",
        message: "boom".into(),
    };
    assert_eq!(
        e.to_string(),
        "solo::fs::read: its job on the thread pool panicked: boom"
    );
}

#[test]
fn an_async_outliving_its_loop() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let (a, mut b) = UnixStream::pair().unwrap();
    let a = Async::with_handle(a, &el.handle()).unwrap();
    drop(el);
    let noop = futures::task::noop_waker();
    let mut cx = Context::from_waker(&noop);
    match a.poll_readable(&mut cx) {
        Poll::Ready(Err(e)) => assert_closed(&e, "Async::poll_readable"),
        other => panic!("expected an error, got {other:?}"),
    }
    match a.poll_writable(&mut cx) {
        Poll::Ready(Err(e)) => assert_closed(&e, "Async::poll_writable"),
        other => panic!("expected an error, got {other:?}"),
    }
    // Data waiting makes no difference: the registration went with the loop.
    std::io::Write::write_all(&mut b, b"x").unwrap();
    let mut read = pin!(a.read_with(|s| std::io::Read::read(&mut &*s, &mut [0u8; 1])));
    match read.as_mut().poll(&mut cx) {
        Poll::Ready(Err(e)) => assert_closed(&e, "Async::poll_readable"),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A solo socket that outlives its loop names the user's call in its error, not the `Async`
/// inside it.
#[test]
fn a_socket_outliving_its_loop_names_the_stream_call() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let (mut a, b) = el
        .run_until_complete(async { solo::net::UnixStream::pair() })
        .unwrap()
        .unwrap();
    drop(el);
    let noop = futures::task::noop_waker();
    let mut cx = Context::from_waker(&noop);
    let mut buf = [0u8; 4];
    match std::pin::Pin::new(&mut a).poll_read(&mut cx, &mut buf) {
        Poll::Ready(Err(e)) => assert_closed(&e, "UnixStream::poll_read"),
        other => panic!("expected an error, got {other:?}"),
    }
    match futures::AsyncWrite::poll_write(std::pin::Pin::new(&mut &b), &mut cx, b"x") {
        Poll::Ready(Err(e)) => assert_closed(&e, "UnixStream::poll_write"),
        other => panic!("expected an error, got {other:?}"),
    }
}

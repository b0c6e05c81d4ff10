//! `#[solo::main]` and `#[solo::test]`: their options at work (debug mode, backend, manual
//! clock, timeout, a renamed crate), what they return (`Result`, `?`), panics
//! (`#[should_panic]`), the shutdown after the body, the timeout when the loop is blocked (in a
//! child process), and every misuse as a compile error (trybuild, `tests/ui/`).

mod common;

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use solo::{Backend, Handle, ManualClock};

// ---- #[solo::test] ----

#[solo::test]
async fn a_test_runs_on_a_running_loop() {
    let h = Handle::current();
    assert!(h.is_running());
    let t = solo::spawn(async { 20 });
    let u = solo::spawn_named("u", async { 22 });
    assert_eq!(t.await.unwrap() + u.await.unwrap(), 42);
    assert_eq!(solo::run_in_executor(|| 5).await.unwrap(), 5);
}

#[solo::test(debug)]
async fn debug_mode_on() {
    assert!(Handle::current().debug_enabled());
}

#[solo::test(debug = false)]
async fn debug_mode_off_whatever_the_environment_says() {
    assert!(!Handle::current().debug_enabled());
}

#[solo::test(backend = "polling")]
async fn the_polling_backend() {
    assert_eq!(Handle::current().backend(), Backend::Polling);
    // And it does I/O.
    let listener = solo::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = solo::spawn(solo::net::TcpStream::connect(addr));
    let (_server, _) = listener.accept().await.unwrap();
    client.await.unwrap().unwrap();
}

#[solo::test(backend = "mio")]
async fn the_mio_backend() {
    assert_eq!(Handle::current().backend(), Backend::Mio);
}

#[solo::test(clock = "manual")]
async fn the_manual_clock_is_handed_to_the_test(clock: ManualClock) {
    let start = Handle::current().time();
    let slept = solo::spawn(solo::time::sleep(Duration::from_secs(3600)));
    solo::yield_now().await;
    assert!(!slept.is_finished());
    clock.advance(Duration::from_secs(3600));
    slept.await.unwrap();
    assert_eq!(Handle::current().time() - start, Duration::from_secs(3600));
    assert_eq!(clock.elapsed(), Duration::from_secs(3600));
}

#[solo::test(clock = "manual")]
async fn the_manual_clock_without_the_argument() {
    // Time stands still: real time passing does not move the loop's clock.
    let start = Handle::current().time();
    std::thread::sleep(Duration::from_millis(5));
    solo::yield_now().await;
    assert_eq!(Handle::current().time(), start);
}

#[solo::test(clock = "manual")]
async fn a_clock_argument_may_be_a_pattern(_: ManualClock) {}

#[solo::test]
async fn a_test_returning_ok() -> Result<(), Box<dyn std::error::Error>> {
    let n: u32 = "41".parse()?; // `?` knows its target: the output type is named
    assert_eq!(n + 1, 42);
    Ok(())
}

#[solo::test]
#[ignore = "fails on purpose: called by a_test_returning_err_fails"]
async fn returns_err() -> Result<(), String> {
    let n: Result<u32, _> = "x".parse::<u32>();
    n.map_err(|e| e.to_string())?;
    Ok(())
}

#[test]
fn a_test_returning_err_fails() {
    // The generated test fn is a plain fn: what it returns is what libtest judges.
    assert_eq!(
        returns_err(),
        Err("invalid digit found in string".to_string())
    );
}

#[solo::test]
#[should_panic(expected = "boom in the body")]
async fn should_panic_from_the_body() {
    solo::yield_now().await;
    panic!("boom in the body");
}

#[solo::test]
#[should_panic(expected = "boom in a task")]
async fn should_panic_from_a_task_that_is_awaited() {
    let t = solo::spawn(async { panic!("boom in a task") });
    if let Err(e) = t.await {
        std::panic::resume_unwind(e.try_into_panic().unwrap());
    }
}

#[solo::test(timeout = "100ms")]
#[should_panic(expected = "timed out: still running after 100ms")]
async fn a_test_past_its_timeout_fails() {
    std::future::pending::<()>().await;
}

#[solo::test(timeout = "100ms", clock = "manual")]
#[should_panic(
    expected = "#[solo::test] macros::the_timeout_is_in_real_time_also_on_the_manual_clock timed out"
)]
async fn the_timeout_is_in_real_time_also_on_the_manual_clock() {
    // The panic names the test: its module path (the test binary's), then its name.
    std::future::pending::<()>().await;
}

#[solo::test(timeout = "none")]
async fn no_timeout() {
    solo::yield_now().await;
}

/// Run in a child process by `a_blocked_loop_past_its_timeout_exits_the_process`.
#[solo::test(timeout = "50ms")]
#[ignore = "blocks the loop on purpose; run in a child process"]
async fn blocks_its_loop() {
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_blocked_loop_past_its_timeout_exits_the_process() {
    let _watchdog = common::watchdog!();
    let out = common::rerun("blocks_its_loop")
        .arg("--include-ignored")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(
        stderr.contains("#[solo::test] macros::blocks_its_loop timed out: still running after 50ms, and its loop did not stop"),
        "{stderr}"
    );
}

mod renamed {
    use solo as my_solo;

    #[my_solo::test(crate = "my_solo")]
    async fn with_solo_renamed() {
        assert!(my_solo::Handle::current().is_running());
    }
}

#[solo::test]
async fn free_functions_inside_callbacks_and_nested_tasks() {
    let (tx, rx) = futures::channel::oneshot::channel();
    solo::call_soon(move || {
        let t = solo::spawn(async { solo::spawn(async { 3 }).await.unwrap() * 2 });
        let _ = tx.send(t);
    });
    assert_eq!(rx.await.unwrap().await.unwrap(), 6);
}

// ---- #[solo::main] on fns that tests call ----

#[solo::main]
async fn entry() -> u32 {
    solo::spawn(async { 7 }).await.unwrap()
}

#[solo::main(debug, backend = "polling")]
async fn entry_with_options() -> (bool, Backend) {
    let h = Handle::current();
    (h.debug_enabled(), h.backend())
}

#[solo::main]
async fn entry_with_question_mark() -> Result<u32, std::num::ParseIntError> {
    let n = "41".parse::<u32>()?;
    solo::yield_now().await;
    let _bad = "x".parse::<u32>()?;
    Ok(n)
}

struct Flag(Rc<Cell<bool>>);

impl Drop for Flag {
    fn drop(&mut self) {
        self.0.set(true);
    }
}

thread_local! {
    static LEFTOVER_DROPPED: Rc<Cell<bool>> = Rc::new(Cell::new(false));
}

#[solo::main]
async fn entry_leaving_a_task() {
    let flag = Flag(LEFTOVER_DROPPED.with(|f| f.clone()));
    drop(solo::spawn(async move {
        let _flag = flag;
        std::future::pending::<()>().await;
    }));
}

#[test]
fn main_runs_its_body_on_a_loop() {
    let _watchdog = common::watchdog!();
    assert_eq!(entry(), 7);
    assert_eq!(entry_with_options(), (true, Backend::Polling));
    assert_eq!(
        entry_with_question_mark().unwrap_err().to_string(),
        "invalid digit found in string"
    );
    // A second run on the same thread: each call has a loop of its own.
    assert_eq!(entry(), 7);
}

#[test]
fn main_shuts_its_loop_down_like_solo_run() {
    let _watchdog = common::watchdog!();
    entry_leaving_a_task();
    // The task still pending at the end was cancelled and dropped.
    assert!(LEFTOVER_DROPPED.with(|f| f.get()));
}

#[solo::test]
#[should_panic(
    expected = "#[solo::main] fn entry: cannot run the event loop while another loop is running on this thread"
)]
async fn main_inside_a_running_loop_panics_with_a_clear_message() {
    entry();
}

// ---- misuse: compile errors ----

#[test]
fn misuse_is_a_compile_error_at_the_right_span() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}

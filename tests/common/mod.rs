//! Helpers shared by the integration tests (each test file has `mod common;`): the watchdog that
//! every test running a loop arms, child processes for checks that need an environment variable,
//! and the fixtures several files repeat.
//!
//! Environment variables: `SOLO_DEBUG`, `SOLO_SPIN_US` and `SOLO_NAP_US` are read by every loop
//! built without an explicit `debug(..)`, `spin_before_sleep(..)` or `nap_before_sleep(..)`, and the tests of one file run on parallel
//! threads of one process. So no test here calls `std::env::set_var` or `remove_var`: a check
//! that needs a variable runs in a child process (this test binary again, only that test, the
//! variable given to the child at exec) through [`with_env!`]. That is more robust than a lock:
//! a lock protects only the tests that remember to take it (every test that builds a loop, in
//! every file that sets a variable), and not the reads it cannot see, such as libc's own
//! `getenv` in the resolver on a pool thread, which glibc does not make safe against a
//! concurrent `setenv`. With the child process, this process's environment is never written.

#![allow(dead_code)] // each file uses some of the helpers

use std::cell::Cell;
use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::rc::Rc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

use solo::net::TcpListener;
use solo::{EventLoop, Handle, ManualClock};

// ---- the watchdog ----

/// How long a test may run before its watchdog fails it, unless the test gives its own bound.
/// Generous: the tests run on slow, shared machines; a test that hangs fails after this instead
/// of holding the whole run until an outer timeout kills it without a word.
pub const WATCHDOG_BOUND: Duration = Duration::from_secs(60);

/// The name of the test function this is expanded in, as libtest names it (the path inside
/// the test crate: `a_test`, or `module::a_test`).
#[allow(unused_macros)] // in the files that do not use it
macro_rules! test_name {
    () => {{
        fn f() {}
        $crate::common::test_name_from_path(::std::any::type_name_of_val(&f))
    }};
}
#[allow(unused_imports)]
pub(crate) use test_name;

/// `crate::module::test::f` (with `{{closure}}` segments inside closures) → `module::test`.
pub fn test_name_from_path(path: &str) -> String {
    let segments: Vec<&str> = path
        .split("::")
        .skip(1) // the crate: this test file
        .filter(|s| *s != "{{closure}}")
        .collect();
    segments[..segments.len() - 1].join("::") // without the `f` of test_name!
}

/// Arms a [`Watchdog`] for the enclosing test: `let _watchdog = common::watchdog!();` with the
/// default bound ([`WATCHDOG_BOUND`]), or `common::watchdog!(Duration::from_secs(300))`.
#[allow(unused_macros)] // in the files that do not use it
macro_rules! watchdog {
    () => {
        $crate::common::Watchdog::arm($crate::common::test_name!(), $crate::common::WATCHDOG_BOUND)
    };
    ($bound:expr) => {
        $crate::common::Watchdog::arm($crate::common::test_name!(), $bound)
    };
}
#[allow(unused_imports)]
pub(crate) use watchdog;

/// Fails the process if the test that armed it is still running after its bound: a thread
/// waits for the guard's drop and, if the bound passes first, prints which test and which bound
/// to stderr and exits with status 1. Loops are `!Send`, so the test body stays on the test
/// thread and only the watch is elsewhere. Dropping the guard (at the end of the test, or while
/// a panic unwinds through it) disarms it.
#[must_use = "the watchdog disarms when dropped: bind it, `let _watchdog = ...`"]
#[derive(Debug)]
pub struct Watchdog {
    _disarm: mpsc::Sender<()>,
}

impl Watchdog {
    /// Starts watching `test` for `bound`; see [`watchdog!`].
    pub fn arm(test: String, bound: Duration) -> Watchdog {
        let (disarm, disarmed) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("test-watchdog".into())
            .spawn(move || {
                if let Err(RecvTimeoutError::Timeout) = disarmed.recv_timeout(bound) {
                    // Straight to fd 2: `eprintln!` on a thread started by a test is captured
                    // with the test's output, which is lost when the process exits.
                    let _ = writeln!(
                        std::io::stderr(),
                        "\ntest {test}: still running after {} s; a test that hangs fails \
                         (watchdog in tests/common)",
                        bound.as_secs_f64()
                    );
                    std::process::exit(1);
                }
            })
            .expect("start the watchdog thread");
        Watchdog { _disarm: disarm }
    }
}

// ---- child processes ----

/// This test binary as a command that runs only `test` (an exact name, one test thread). Add
/// `--ignored` for a helper test marked `#[ignore]`.
pub fn rerun(test: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([test, "--exact", "--test-threads=1"]);
    c
}

/// Set in a child started by [`check_in_child`]: which call of which test it is for.
const CHILD: &str = "SOLO_TESTS_CHILD";

/// Runs `check` with the variables `vars` set: `common::with_env!(&[("SOLO_DEBUG", "1")], || ...)`
/// in a test. See [`check_in_child`].
#[allow(unused_macros)] // in the files that do not use it
macro_rules! with_env {
    ($vars:expr, $check:expr) => {
        $crate::common::check_in_child(&$crate::common::test_name!(), $vars, $check)
    };
}
#[allow(unused_imports)]
pub(crate) use with_env;

/// Runs `check` in a child process with `vars` in its environment, and panics with the child's
/// output if the check fails there (see the module's comment for why). The child is this test
/// binary running only `test`: the test runs again from its start, and this call is where it
/// runs `check`; other `with_env!` calls in the same test, for other variables, do nothing in
/// that child (each has its own child).
pub fn check_in_child(test: &str, vars: &[(&str, &str)], check: impl FnOnce()) {
    let key = format!("{test} {vars:?}");
    match std::env::var(CHILD) {
        Ok(k) if k == key => check(),
        Ok(_) => {} // a child for another call of this test
        Err(_) => {
            let out = rerun(test)
                .args(["--include-ignored", "--nocapture"])
                .envs(vars.iter().copied())
                .env(CHILD, &key)
                .output()
                .expect("start the child process");
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success() && stdout.contains("test result: ok. 1 passed"),
                "{test} with {vars:?}, in a child process: {}\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

// ---- fixtures ----

/// A loop on a manual clock, and the clock: time stands still until the test advances it (or the
/// idle loop jumps it to the next timer).
pub fn manual() -> (EventLoop, ManualClock) {
    let clock = ManualClock::new();
    let el = EventLoop::builder().clock(clock.clone()).build().unwrap();
    (el, clock)
}

/// Runs exactly one iteration (asyncio's trick: stop, then run_forever).
pub fn run_once(el: &EventLoop) {
    el.stop();
    el.run_forever().unwrap();
}

/// A connected Unix socket pair whose first end is readable: one byte (`x`) waits in it.
pub fn readable_pair() -> (UnixStream, UnixStream) {
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"x").unwrap();
    (a, b)
}

/// Registers a reader on `fd` that is called once: it removes itself, then runs `f`. The
/// registration's site is the caller's, as with `add_reader`.
#[track_caller]
pub fn add_reader_once(h: &Handle, fd: &impl AsRawFd, f: impl FnOnce() + 'static) {
    let (h2, raw) = (h.clone(), fd.as_raw_fd());
    let mut f = Some(f);
    h.add_reader(fd, move || {
        h2.remove_reader(&raw);
        if let Some(f) = f.take() {
            f();
        }
    })
    .unwrap();
}

/// Counts its drops in a shared cell: for checking that something is dropped exactly once.
pub struct Counted(pub Rc<Cell<u32>>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

/// A solo TCP listener on an ephemeral loopback port, and its address (in a running loop).
pub fn local_listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

/// Starts `serve` on an ephemeral loopback port in the running loop; returns the address.
pub fn start_server<F, Fut>(serve: F) -> SocketAddr
where
    F: FnOnce(TcpListener) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + 'static,
{
    let (l, addr) = local_listener();
    drop(Handle::current().spawn(serve(l)));
    addr
}

//! Helpers shared by the integration tests (each test file has `mod common;`): the watchdog that
//! every test running a loop arms.

#![allow(dead_code, unused_macros, unused_imports)]

use std::io::Write;
use std::process::Command;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::time::Duration;

// ---- the watchdog ----

/// How long a test may run before its watchdog fails it, unless the test gives its own bound.
/// Generous: the tests run on slow, shared machines; a test that hangs fails after this instead
/// of holding the whole run until an outer timeout kills it without a word.
pub const WATCHDOG_BOUND: Duration = Duration::from_secs(60);

/// The name of the test function this is expanded in, as libtest names it (the path inside
/// the test crate: `a_test`, or `module::a_test`).
macro_rules! test_name {
    () => {{
        fn f() {}
        $crate::common::test_name_from_path(::std::any::type_name_of_val(&f))
    }};
}
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
macro_rules! watchdog {
    () => {
        $crate::common::Watchdog::arm($crate::common::test_name!(), $crate::common::WATCHDOG_BOUND)
    };
    ($bound:expr) => {
        $crate::common::Watchdog::arm($crate::common::test_name!(), $bound)
    };
}
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

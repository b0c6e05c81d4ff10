//! The helpers in tests/common do what the other tests rely on: a hung test fails with its name
//! and bound instead of hanging, a test that ends, or panics, disarms its watchdog, and a check
//! given to `with_env!` runs, with its variables, in a child process whose failure fails the
//! test.

use std::time::Duration;

use solo::EventLoop;

mod common;

#[test]
fn a_test_is_named_as_libtest_names_it() {
    let _watchdog = common::watchdog!();
    assert_eq!(common::test_name!(), "a_test_is_named_as_libtest_names_it");
    let in_closure = || common::test_name!();
    assert_eq!(in_closure(), "a_test_is_named_as_libtest_names_it");
}

#[test]
#[ignore = "helper process for a_hung_test_fails_with_its_name_and_bound"]
fn hung_helper() {
    let _watchdog = common::watchdog!(Duration::from_millis(500));
    let el = EventLoop::new().unwrap();
    // Nothing will ever wake this loop.
    el.run_until_complete(std::future::pending::<()>()).unwrap();
}

#[test]
fn a_hung_test_fails_with_its_name_and_bound() {
    let _watchdog = common::watchdog!();
    let out = common::rerun("hung_helper")
        .arg("--ignored")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(
            "test hung_helper: still running after 0.5 s; a test that hangs fails \
             (watchdog in tests/common)"
        ),
        "{stderr}"
    );
}

#[test]
fn a_test_that_ends_or_panics_disarms_its_watchdog() {
    let _watchdog = common::watchdog!();
    {
        let _short = common::watchdog!(Duration::from_secs(1));
    }
    let r = std::panic::catch_unwind(|| {
        let _short = common::watchdog!(Duration::from_secs(1));
        panic!("unwinds through the guard");
    });
    assert!(r.is_err());
    // Either watchdog, had it stayed armed, would have ended this process by now. (A bound of
    // 1 s, not less: a loaded machine can take a few hundred ms to print the panic before the
    // guard's drop disarms it.)
    std::thread::sleep(Duration::from_millis(1500));
}

#[test]
fn with_env_runs_each_check_in_a_child_with_its_variables() {
    let _watchdog = common::watchdog!();
    // Each child runs only its own check (the other call does nothing there).
    common::with_env!(&[("SOLO_TESTS_PROBE", "a")], || {
        assert_eq!(std::env::var("SOLO_TESTS_PROBE").as_deref(), Ok("a"));
    });
    common::with_env!(&[("SOLO_TESTS_PROBE", "b")], || {
        assert_eq!(std::env::var("SOLO_TESTS_PROBE").as_deref(), Ok("b"));
    });
}

#[test]
#[ignore = "helper process for a_check_that_fails_in_the_child_fails_the_test"]
fn failing_check_helper() {
    let _watchdog = common::watchdog!();
    common::with_env!(&[("SOLO_TESTS_PROBE", "c")], || panic!("the check failed"));
}

#[test]
fn a_check_that_fails_in_the_child_fails_the_test() {
    let _watchdog = common::watchdog!();
    let out = common::rerun("failing_check_helper")
        .arg("--ignored")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}");
    assert!(stdout.contains("the check failed"), "{stdout}");
    // And a check that never ran (no such test to run in the child) is a failure too.
    let r = std::panic::catch_unwind(|| common::check_in_child("no_such_test", &[], || {}));
    assert!(r.is_err());
}

//! The helpers in tests/common do what the other tests rely on: a hung test fails with its name
//! and bound instead of hanging, and a test that ends, or panics, disarms its watchdog.

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
        let _short = common::watchdog!(Duration::from_millis(200));
    }
    let r = std::panic::catch_unwind(|| {
        let _short = common::watchdog!(Duration::from_millis(200));
        panic!("unwinds through the guard");
    });
    assert!(r.is_err());
    // Either watchdog, had it stayed armed, would have ended this process by now.
    std::thread::sleep(Duration::from_millis(600));
}

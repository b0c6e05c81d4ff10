//! Unix signals as loop callbacks. Each test uses its own signal, since handlers are
//! process-wide.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Duration;

use solo::EventLoop;

mod common;

fn raise(sig: i32) {
    // SAFETY: sending a signal to our own process.
    unsafe { libc::kill(libc::getpid(), sig) };
}

#[test]
fn a_signal_runs_its_handler_on_the_loop_thread() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let loop_thread = std::thread::current().id();
    let calls = Rc::new(Cell::new(0));
    let (c, h2) = (calls.clone(), h.clone());
    h.add_signal_handler(libc::SIGUSR1, move || {
        assert_eq!(std::thread::current().id(), loop_thread);
        c.set(c.get() + 1);
        h2.stop();
    })
    .unwrap();
    // Sent from another thread, with `kill`, while the loop is blocked in poll.
    let t = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(30));
        raise(libc::SIGUSR1);
    });
    el.run_forever().unwrap();
    t.join().unwrap();
    assert_eq!(calls.get(), 1);
    assert!(h.remove_signal_handler(libc::SIGUSR1));
    assert!(!h.remove_signal_handler(libc::SIGUSR1));
}

#[test]
fn a_replaced_handler_is_the_one_called() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let which = Rc::new(Cell::new(""));
    let w = which.clone();
    h.add_signal_handler(libc::SIGWINCH, move || w.set("old"))
        .unwrap();
    let (w, h2) = (which.clone(), h.clone());
    h.add_signal_handler(libc::SIGWINCH, move || {
        w.set("new");
        h2.stop();
    })
    .unwrap();
    raise(libc::SIGWINCH);
    el.run_forever().unwrap();
    assert_eq!(which.get(), "new");
    assert!(h.remove_signal_handler(libc::SIGWINCH));
}

/// Run in a child process by the test below, since its last step kills the process.
#[test]
#[ignore = "helper process for removing_the_last_handler_restores_the_default_action"]
fn signal_default_helper() {
    let _watchdog = common::watchdog!();
    use std::io::Write;
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let calls = Rc::new(Cell::new(0));
    for round in 1..=2 {
        let (c, h2) = (calls.clone(), h.clone());
        h.add_signal_handler(libc::SIGUSR2, move || {
            c.set(c.get() + 1);
            h2.stop();
        })
        .unwrap();
        raise(libc::SIGUSR2);
        el.run_forever().unwrap();
        assert_eq!(calls.get(), round);
        assert!(h.remove_signal_handler(libc::SIGUSR2));
    }
    println!("handled twice");
    std::io::stdout().flush().unwrap();
    raise(libc::SIGUSR2); // no handler left: the default action, which terminates
    std::thread::sleep(Duration::from_secs(5));
    println!("survived");
}

#[test]
fn removing_the_last_handler_restores_the_default_action() {
    let _watchdog = common::watchdog!();
    use std::os::unix::process::ExitStatusExt;
    let out = common::rerun("signal_default_helper")
        .args(["--ignored", "--nocapture"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("handled twice"), "{stdout}");
    assert!(!stdout.contains("survived"), "{stdout}");
    assert_eq!(out.status.signal(), Some(libc::SIGUSR2), "{:?}", out.status);
}

#[test]
fn invalid_signals_are_errors() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    for sig in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, -3, 1000] {
        let e = h.add_signal_handler(sig, || {}).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{sig}: {e}");
    }
    assert!(!h.remove_signal_handler(libc::SIGKILL));
}

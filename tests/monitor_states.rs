//! The monitor and the loop's states, through real sockets: commands while the loop is blocked,
//! after it stopped and after it was dropped; the switch (non-loopback addresses refused, bad
//! addresses, `SOLO_MONITOR`, a private Unix socket); `signal`, `trace`, a panicking user
//! command, and the watchdog's trace of a blocked loop. See `tests/monitor.rs` for the rest.

use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use solo::monitor::MonitorAddr;
use solo::EventLoop;

mod common;
mod monitor_client;

use monitor_client::*;

#[test]
fn commands_while_the_loop_is_blocked() {
    let _watchdog = common::watchdog!();
    let el = monitored();
    let h = el.handle();
    h.spawn_named("sleeper", solo::time::sleep(Duration::from_secs(3600)));
    h.monitor_command("echo", "echo ARGS", |a| format!("echo: {a}"))
        .unwrap();
    let gate = Gate::default();
    let g = gate.clone();
    let remote = h.remote();
    let got = with_client(&el, move |addr| {
        let mut c = Client::connect(&addr);
        assert!(ask_loop(&mut c, "echo before").contains("echo: before"));
        let g2 = g.clone();
        remote.call_soon_threadsafe(move || g2.wait()).unwrap();
        let ps = until_blocked(&mut c);
        let answers: Vec<String> = [
            "where 1",
            "stats",
            "stacktrace",
            "profile",
            "metrics",
            "cancel 1",
            "echo during",
        ]
        .iter()
        .map(|q| c.ask(q))
        .collect();
        g.open();
        let later = [c.reply(), c.reply()];
        (ps, answers, later)
    });
    let (ps, a, later) = got;
    assert!(ps.contains("sleeper") && ps.contains("sleep, "), "{ps}");
    assert!(
        a[0].contains("task 1 (sleeper)") && a[0].contains("sleep,"),
        "{}",
        a[0]
    );
    assert!(a[1].contains("loop: in threadsafe callback"), "{}", a[1]);
    assert!(
        a[2].contains("blocked for") && a[2].contains("Gate::wait"),
        "the stack shows where: {}",
        a[2]
    );
    assert!(a[3].contains("time by scheduling site"), "{}", a[3]);
    assert!(a[4].contains("solo_current_call_seconds"), "{}", a[4]);
    assert!(
        a[5].starts_with("cancel 1: queued; the loop is blocked"),
        "{}",
        a[5]
    );
    assert!(
        a[6].starts_with("echo during: queued; the loop is blocked"),
        "{}",
        a[6]
    );
    let later = later.join("");
    assert!(later.contains("task 1 (sleeper) cancelled"), "{later}");
    assert!(
        later.contains("[later, from the loop] echo during:\necho: during"),
        "{later}"
    );
}

#[test]
fn commands_after_the_loop_stopped_and_after_it_was_dropped() {
    let _watchdog = common::watchdog!();
    let el = monitored();
    el.handle()
        .spawn_named("forever", std::future::pending::<()>());
    common::run_once(&el);
    let addr = el.monitor_addr().unwrap();
    let MonitorAddr::Tcp(a) = addr.clone() else {
        unreachable!()
    };
    let (tx, rx) = std::sync::mpsc::channel::<u8>();
    let client = std::thread::spawn(move || {
        let mut c = Client::connect(&addr);
        let ps = c.ask("ps");
        let stack = c.ask("stacktrace");
        let cancel = c.ask("cancel 1");
        tx.send(1).unwrap(); // run the loop once: the cancel runs
        let later = c.reply();
        tx.send(2).unwrap(); // drop the loop
        let bye = c.reply();
        let eof = c.try_reply();
        (ps, stack, cancel, later, bye, eof)
    });
    assert_eq!(rx.recv().unwrap(), 1);
    common::run_once(&el);
    assert_eq!(rx.recv().unwrap(), 2);
    drop(el);
    // Asked only once the drop has returned: a client's "bye" can come before the listener
    // thread has closed the listener, but `drop` joins that thread.
    let refused = TcpStream::connect(a).is_err();
    let (ps, stack, cancel, later, bye, eof) = client.join().unwrap();
    assert!(ps.starts_with("1 task(s); the loop is not running"), "{ps}");
    assert!(stack.contains("not running"), "{stack}");
    assert!(
        cancel.starts_with("cancel 1: queued; the loop is not running"),
        "{cancel}"
    );
    assert!(later.contains("task 1 (forever) cancelled"), "{later}");
    assert!(bye.contains("the loop was closed; bye"), "{bye}");
    assert!(eof.is_none());
    assert!(refused, "nobody listens once the loop is gone");
}

#[test]
fn a_queued_command_of_a_dropped_loop_says_it_never_ran() {
    let _watchdog = common::watchdog!();
    let el = monitored();
    el.handle()
        .monitor_command("noop", "", |_| "ran".into())
        .unwrap();
    let addr = el.monitor_addr().unwrap();
    let mut c = Client::connect(&addr);
    let queued = c.ask("noop");
    drop(el);
    let later = c.reply();
    assert!(
        queued.starts_with("noop: queued; the loop is not running"),
        "{queued}"
    );
    assert!(
        later.contains("it did not run: the loop closed first"),
        "{later}"
    );
}

#[test]
fn non_loopback_addresses_are_refused_unless_allowed() {
    let _watchdog = common::watchdog!();
    for addr in ["0.0.0.0:0", "10.1.2.3:0", "[::]:0"] {
        let err = EventLoop::builder().monitor(addr).build().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{addr}");
        assert!(err.to_string().contains("not a loopback address"), "{err}");
    }
    // Allowed: the check passes and the bind is tried (this address is not ours, so it fails
    // there, without listening anywhere).
    let err = EventLoop::builder()
        .monitor("10.1.2.3:0")
        .monitor_allow_non_loopback(true)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrNotAvailable, "{err}");
    for bad in ["nonsense", "unix:", "example.com:80", "127.0.0.1"] {
        let err = EventLoop::builder().monitor(bad).build().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{bad}: {err}");
    }
    let err = EventLoop::builder()
        .debug(false)
        .monitor("127.0.0.1:0")
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    common::with_env!(&[("SOLO_MONITOR", "0.0.0.0:0")], || {
        let err = EventLoop::new().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    });
    common::with_env!(&[("SOLO_MONITOR", "127.0.0.1:0")], || {
        let el = EventLoop::new().unwrap();
        assert!(el.stats().is_some(), "the monitor implies debug mode");
        assert!(el.monitor_addr().is_some());
        let off = EventLoop::builder().debug(false).build().unwrap();
        assert!(
            off.monitor_addr().is_none(),
            "debug(false) leaves the environment's monitor out"
        );
    });
}

#[test]
fn a_unix_socket_is_private_and_removed_with_the_loop() {
    use std::os::unix::fs::PermissionsExt;
    let _watchdog = common::watchdog!();
    let path = std::env::temp_dir().join(format!("solo-monitor-test-{}.sock", std::process::id()));
    let el = EventLoop::builder()
        .monitor(format!("unix:{}", path.display()))
        .build()
        .unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    el.handle()
        .spawn_named("forever", std::future::pending::<()>());
    let ps = with_client(&el, |addr| Client::connect(&addr).ask("ps"));
    assert!(ps.contains("forever"), "{ps}");
    // A second loop on the same path: someone listens there.
    let err = EventLoop::builder()
        .monitor(format!("unix:{}", path.display()))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse, "{err}");
    drop(el);
    assert!(!path.exists());
}

#[test]
fn signal_trace_and_user_command_panics() {
    let _watchdog = common::watchdog!();
    let el = monitored();
    let h = el.handle();
    let got = Arc::new(Mutex::new(false));
    let g = got.clone();
    h.add_signal_handler(libc::SIGUSR1, move || *g.lock().unwrap() = true)
        .unwrap();
    h.monitor_command("boom", "", |_| panic!("kaboom")).unwrap();
    h.spawn_named("ticker", async {
        loop {
            solo::time::sleep(Duration::from_millis(1)).await;
        }
    });
    let path = std::env::temp_dir().join(format!("solo-trace-{}.json", std::process::id()));
    let p = path.clone();
    let g = got.clone();
    let (sig, boom, trace) = with_client(&el, move |addr| {
        let mut c = Client::connect(&addr);
        let sig = c.ask("signal usr1");
        while !*g.lock().unwrap() {
            std::thread::sleep(Duration::from_millis(1));
        }
        (
            sig,
            ask_loop(&mut c, "boom"),
            c.ask(&format!("trace 0.2 {}", p.display())),
        )
    });
    assert!(sig.starts_with("sent SIGUSR1 to process"), "{sig}");
    assert!(
        boom.contains("error: command `boom` panicked: kaboom"),
        "{boom}"
    );
    assert!(
        trace.starts_with("trace: ") && trace.contains("Perfetto"),
        "{trace}"
    );
    let json = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(
        json.starts_with("{\"displayTimeUnit\":\"ms\",\"traceEvents\":["),
        "{json}"
    );
    assert!(json.contains("\"name\":\"task 1 ticker\""), "{json}");
    assert!(json.contains("\"name\":\"timer fired\""), "{json}");
    assert_eq!(json.matches('{').count(), json.matches('}').count());
}

#[test]
fn the_watchdog_writes_a_trace_of_a_blocked_loop() {
    let _watchdog = common::watchdog!();
    let dir = std::env::temp_dir().join(format!("solo-trace-on-block-{}", std::process::id()));
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    let el = EventLoop::builder()
        .trace_on_block(&dir)
        .blocked_threshold(Duration::from_millis(50))
        .on_slow(move |rep| r.lock().unwrap().push(rep.clone()))
        .build()
        .unwrap();
    let h = el.handle();
    h.call_soon(|| {});
    let r = reports.clone();
    // Blocks until the watchdog has reported (no fixed sleep).
    h.call_soon(move || {
        while !r
            .lock()
            .unwrap()
            .iter()
            .any(|x: &solo::debug::Report| x.kind == solo::debug::ReportKind::Blocked)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    h.stop();
    el.run_forever().unwrap();
    let reports = reports.lock().unwrap();
    let blocked = reports
        .iter()
        .find(|x| x.kind == solo::debug::ReportKind::Blocked)
        .unwrap();
    let path = blocked.trace.clone().unwrap().unwrap();
    assert!(path.starts_with(&dir));
    assert!(blocked.to_string().contains("trace of the seconds before:"));
    let json = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(json.contains("\"cat\":\"blocked\""), "{json}");
    let before = format!("\"name\":\"callback {}:", file!());
    assert!(
        json.contains(&before),
        "the callback before the block: {json}"
    );
}

//! Debug mode: slow-callback reports, the watchdog, stats, profile, task table, lints.
//! Time is the manual clock's everywhere except for the watchdog, which watches real time.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use solo::debug::{ReportKind, TaskState};
use solo::{CallbackKind, EventLoop, Handle, ManualClock};

mod common;

use common::run_once;

type Reports = Arc<Mutex<Vec<solo::debug::Report>>>;

fn debug_loop() -> (EventLoop, ManualClock, Reports) {
    let clock = ManualClock::new();
    let reports: Reports = Arc::default();
    let r = reports.clone();
    let el = EventLoop::builder()
        .clock(clock.clone())
        .debug(true)
        .on_slow(move |rep| r.lock().unwrap().push(rep.clone()))
        .build()
        .unwrap();
    (el, clock, reports)
}

fn taken(reports: &Reports) -> Vec<solo::debug::Report> {
    std::mem::take(&mut *reports.lock().unwrap())
}

#[test]
fn a_slow_callback_is_reported_with_its_site_and_type() {
    let _watchdog = common::watchdog!();
    let (el, clock, reports) = debug_loop();
    let h = el.handle();
    let c = clock.clone();
    let line = line!() + 1;
    h.call_soon(move || c.advance(Duration::from_millis(150)));
    h.call_soon(|| {}); // fast: not reported
    run_once(&el);
    let reps = taken(&reports);
    assert_eq!(reps.len(), 1, "{reps:?}");
    let r = &reps[0];
    assert_eq!(r.kind, ReportKind::SlowCallback);
    assert_eq!(r.callback, CallbackKind::Soon);
    assert_eq!((r.site.file(), r.site.line()), (file!(), line));
    assert_eq!(r.duration, Duration::from_millis(150));
    let text = r.to_string();
    assert!(
        text.starts_with(&format!(
            "solo: slow callback (scheduled at {}:{line}:7) took 0.150 s; move blocking work to run_in_executor [",
            file!()
        )),
        "{text}"
    );
    assert!(text.contains("{{closure}}"), "closure type named: {text}");
}

#[test]
fn a_slow_task_poll_names_the_task_and_its_spawn_site() {
    let _watchdog = common::watchdog!();
    let (el, clock, reports) = debug_loop();
    let h = el.handle();
    let c = clock.clone();
    let line = line!() + 1;
    let t = h.spawn_named("fetch", async move {
        c.advance(Duration::from_millis(102));
    });
    el.run_until_complete(t).unwrap().unwrap();
    let reps = taken(&reports);
    assert_eq!(reps.len(), 1, "{reps:?}");
    assert_eq!(
        reps[0].to_string(),
        format!(
            "solo: slow task \"fetch\" (spawned at {}:{line}:15) took 0.102 s in one poll; move blocking work to run_in_executor",
            file!()
        )
    );
}

#[test]
fn every_kind_of_callback_is_timed() {
    let _watchdog = common::watchdog!();
    let (el, clock, reports) = debug_loop();
    let h = el.handle();
    let slow = move |c: &ManualClock| c.advance(Duration::from_millis(200));
    let c = clock.clone();
    h.call_later(Duration::from_millis(1), move || slow(&c));
    let (a, b) = common::readable_pair();
    let c = clock.clone();
    common::add_reader_once(&h, &a, move || slow(&c));
    let c = clock.clone();
    h.add_writer(&b, {
        let h = h.clone();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&b);
        move || {
            slow(&c);
            h.remove_writer(&fd);
        }
    })
    .unwrap();
    let c = Arc::new(clock.clone());
    h.remote()
        .call_soon_threadsafe(move || c.advance(Duration::from_millis(200)))
        .unwrap();
    let c = clock.clone();
    el.run_until_complete(async move {
        solo::time::sleep(Duration::from_millis(5)).await;
        c.advance(Duration::from_millis(200)); // the main future
    })
    .unwrap();
    let mut kinds: Vec<String> = taken(&reports)
        .iter()
        .filter(|r| r.kind == ReportKind::SlowCallback)
        .map(|r| r.callback.to_string())
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        [
            "main future",
            "reader callback",
            "threadsafe callback",
            "timer callback",
            "writer callback"
        ]
    );
}

#[test]
fn the_threshold_can_change_while_the_loop_runs() {
    let _watchdog = common::watchdog!();
    let (el, clock, reports) = debug_loop();
    let h = el.handle();
    let (c, h2) = (clock.clone(), h.clone());
    h.call_soon(move || {
        h2.set_slow_callback_duration(Duration::from_millis(10));
        c.advance(Duration::from_millis(20));
    });
    run_once(&el);
    assert_eq!(taken(&reports).len(), 1);
    h.set_slow_callback_duration(Duration::from_secs(1));
    let c = clock.clone();
    h.call_soon(move || c.advance(Duration::from_millis(500)));
    run_once(&el);
    assert!(taken(&reports).is_empty());
}

#[test]
fn many_small_callbacks_make_a_slow_iteration_with_top_three() {
    let _watchdog = common::watchdog!();
    let (el, clock, reports) = debug_loop();
    let h = el.handle();
    for ms in [10u64, 40, 30, 20, 35] {
        let c = clock.clone();
        h.call_soon(move || c.advance(Duration::from_millis(ms)));
    }
    run_once(&el);
    let reps = taken(&reports);
    assert_eq!(reps.len(), 1, "{reps:?}");
    let r = &reps[0];
    assert_eq!(r.kind, ReportKind::SlowIteration);
    assert_eq!(r.duration, Duration::from_millis(135));
    let top: Vec<u128> = r.top.iter().map(|c| c.duration.as_millis()).collect();
    assert_eq!(top, [40, 35, 30]);
    assert!(r
        .to_string()
        .starts_with("solo: slow iteration took 0.135 s; top: callback"));
}

#[test]
fn stats_count_iterations_callbacks_polls_and_busy_time() {
    let _watchdog = common::watchdog!();
    let (el, clock, _reports) = debug_loop();
    let h = el.handle();
    assert!(EventLoop::new().unwrap().stats().is_none() || std::env::var("SOLO_DEBUG").is_ok());
    let c = clock.clone();
    h.call_soon(move || c.advance(Duration::from_millis(3)));
    h.call_soon(|| {});
    let t = h.spawn(async { 1 });
    // A timer due at 10 ms that runs late: a callback holds the loop until 60 ms.
    h.call_later(Duration::from_millis(10), || {});
    let c = clock.clone();
    h.call_soon(move || c.advance(Duration::from_millis(60)));
    el.run_until_complete(t).unwrap().unwrap();
    run_once(&el);
    let s = el.stats().unwrap();
    assert!(s.iterations >= 2, "{s:?}");
    assert_eq!(s.callbacks, 4);
    assert_eq!(s.task_polls, 3, "the task once, the main future twice");
    assert_eq!(s.busy, Duration::from_millis(63));
    assert_eq!(s.timers_fired, 1);
    assert_eq!(
        s.timer_lag_max,
        Duration::from_millis(53),
        "due at 10 ms, run at 63 ms"
    );
    let slowest = s.slowest.clone().unwrap();
    assert_eq!(slowest.duration, Duration::from_millis(60));
    assert!(
        s.busy_ratio() > 0.99,
        "manual clock: no time passes in poll"
    );
    // What was queued behind the 3 ms callback waited 3 ms for it.
    assert_eq!(s.queue_delay_max, Duration::from_millis(3), "{s:?}");
}

#[test]
fn readiness_to_dispatch_time_is_measured_for_readers() {
    let _watchdog = common::watchdog!();
    let (el, clock, _reports) = debug_loop();
    let h = el.handle();
    let (a, _b) = common::readable_pair();
    common::add_reader_once(&h, &a, || {});
    // The reader's event arrives in the same poll; a callback ahead of it delays it 7 ms.
    let c = clock.clone();
    h.call_soon(move || c.advance(Duration::from_millis(7)));
    run_once(&el);
    run_once(&el);
    let s = el.stats().unwrap();
    assert_eq!(s.io_dispatch_max, Duration::from_millis(7), "{s:?}");
}

#[test]
fn profile_aggregates_by_site_sorted_by_total_time() {
    let _watchdog = common::watchdog!();
    let (el, clock, _reports) = debug_loop();
    let h = el.handle();
    let mut lines = Vec::new();
    for i in 0..3u64 {
        let c = clock.clone();
        lines.push(line!() + 1);
        h.call_soon(move || c.advance(Duration::from_millis(i + 1)));
    }
    let c = clock.clone();
    let heavy = line!() + 1;
    h.call_soon(move || c.advance(Duration::from_millis(50)));
    run_once(&el);
    let p = el.profile();
    assert_eq!(p.len(), 2, "{p:?}");
    assert_eq!(p[0].site.line(), heavy);
    assert_eq!((p[0].count, p[0].total), (1, Duration::from_millis(50)));
    assert_eq!(p[1].site.line(), lines[0]);
    assert_eq!(
        (p[1].count, p[1].total, p[1].max),
        (3, Duration::from_millis(6), Duration::from_millis(3))
    );
    let text = solo::debug::format_profile(&p);
    assert!(text
        .lines()
        .nth(1)
        .unwrap()
        .contains(&format!("{}:{heavy}", file!())));
}

#[test]
fn task_table_shows_live_tasks_and_their_states() {
    let _watchdog = common::watchdog!();
    let (el, _clock, _reports) = debug_loop();
    let h = el.handle();
    let waiting = h.spawn_named("sleeper", solo::time::sleep(Duration::from_secs(60)));
    let seen = Rc::new(Cell::new(None));
    let s = seen.clone();
    let runner = h.spawn_named("runner", async move {
        let me = Handle::current()
            .tasks()
            .into_iter()
            .find(|t| t.name.as_deref() == Some("runner"))
            .unwrap();
        s.set(Some(me.state));
    });
    el.run_until_complete(runner).unwrap().unwrap();
    assert_eq!(seen.get(), Some(TaskState::Running));
    let table = el.tasks();
    assert_eq!(table.len(), 1);
    let t = &table[0];
    assert_eq!(t.name.as_deref(), Some("sleeper"));
    assert_eq!(t.state, TaskState::Waiting);
    assert_eq!(t.polls, 1);
    assert_eq!(t.site.file(), file!());
    let text = solo::debug::format_task_table(&table);
    assert!(
        text.contains("sleeper") && text.contains("waiting"),
        "{text}"
    );
    waiting.cancel();
    run_once(&el);
    assert!(el.tasks().is_empty());
}

/// A task waiting only on timers (a sleep, a timeout, an interval) has no waker anywhere but
/// in the wheel: it is not a lost waker.
#[test]
fn a_task_waiting_on_timers_is_not_a_lost_waker() {
    let _watchdog = common::watchdog!();
    let (el, _clock, reports) = debug_loop();
    let h = el.handle();
    let sleeper = h.spawn(async {
        solo::time::sleep(Duration::from_secs(5)).await;
        7
    });
    let timed = h.spawn(solo::time::timeout(
        Duration::from_secs(5),
        std::future::pending::<()>(),
    ));
    let ticker = h.spawn(async {
        let mut i = solo::time::interval(Duration::from_secs(1));
        for _ in 0..3 {
            i.tick().await;
        }
    });
    run_once(&el);
    run_once(&el);
    let reps = taken(&reports);
    assert!(reps.is_empty(), "{reps:?}");
    assert_eq!(el.run_until_complete(sleeper).unwrap().unwrap(), 7);
    assert!(el.run_until_complete(timed).unwrap().unwrap().is_err());
    el.run_until_complete(ticker).unwrap().unwrap();
    assert!(taken(&reports).is_empty());
}

#[test]
fn lost_waker_is_reported_once() {
    let _watchdog = common::watchdog!();
    let (el, _clock, reports) = debug_loop();
    let h = el.handle();
    let line = line!() + 1;
    let t = h.spawn_named("forgetful", std::future::poll_fn(|_cx| Poll::<()>::Pending));
    run_once(&el);
    run_once(&el);
    let reps = taken(&reports);
    assert_eq!(reps.len(), 1, "{reps:?}");
    assert_eq!(reps[0].kind, ReportKind::LostWaker);
    assert_eq!(reps[0].site.line(), line);
    assert!(reps[0].to_string().contains("\"forgetful\""));
    // A task that keeps its waker is not reported.
    let stash = Rc::new(std::cell::RefCell::new(None));
    let s = stash.clone();
    let _keeps = h.spawn(std::future::poll_fn(move |cx| {
        *s.borrow_mut() = Some(cx.waker().clone());
        Poll::<()>::Pending
    }));
    run_once(&el);
    assert!(taken(&reports).is_empty());
    drop(t);
}

#[test]
fn pending_at_drop_is_linted_and_unretrieved_panics_go_to_the_exception_handler() {
    let _watchdog = common::watchdog!();
    let (el, _clock, reports) = debug_loop();
    let h = el.handle();
    // Unretrieved panics are no longer a debug lint: they reach the exception handler, debug
    // mode or not (tests/task_group.rs and tests/event_loop.rs pin each path).
    let seen: Rc<std::cell::RefCell<Vec<(u32, String)>>> = Rc::default();
    let s = seen.clone();
    h.set_exception_handler(move |ctx| {
        s.borrow_mut()
            .push((ctx.site().line(), ctx.message().to_string()))
    });
    let pending_line = line!() + 1;
    let _p = h.spawn_named("stuck", std::future::pending::<()>());
    let panic_line = line!() + 1;
    drop(h.spawn(async { panic!("nobody looks") }));
    let retrieved = h.spawn(async { panic!("looked at") });
    let dropped_later = h.spawn(async { panic!("dropped after") });
    run_once(&el);
    assert!(el.run_until_complete(retrieved).unwrap().is_err());
    el.run_until_complete(async move { drop(dropped_later) })
        .unwrap();
    drop(el);
    let reps = taken(&reports);
    let kinds: Vec<(ReportKind, u32)> = reps.iter().map(|r| (r.kind, r.site.line())).collect();
    assert!(
        kinds.contains(&(ReportKind::PendingAtDrop, pending_line)),
        "{kinds:?}"
    );
    // `pending()` never keeps its waker, so it is also a lost waker.
    assert!(
        kinds.contains(&(ReportKind::LostWaker, pending_line)),
        "{kinds:?}"
    );
    assert_eq!(kinds.len(), 2, "no panic is a debug lint: {kinds:?}");
    let seen = seen.borrow();
    let lines: Vec<u32> = seen.iter().map(|(l, _)| *l).collect();
    assert_eq!(
        lines,
        [panic_line, panic_line + 2],
        "the retrieved panic is not reported: {seen:?}"
    );
    assert!(seen[0]
        .1
        .starts_with("panicked: nobody looks (task exception was never retrieved"));
    assert!(seen[1]
        .1
        .starts_with("panicked: dropped after (task exception was never retrieved"));
}

#[test]
fn debug_mode_from_the_environment() {
    let _watchdog = common::watchdog!();
    // In a child process with the variable set (see tests/common): this process's environment,
    // which the loops of the other tests read, is never written.
    common::with_env!(&[("SOLO_DEBUG", "1")], || {
        let el = EventLoop::new().unwrap();
        assert!(el.handle().debug_enabled());
        assert!(el.stats().is_some());
        let off = EventLoop::builder().debug(false).build().unwrap();
        assert!(off.stats().is_none());
    });
}

/// The watchdog, against real time: a task blocks the loop for 1.8 s; the report must arrive
/// while the sleep is still running, name the task and its spawn site, and carry the task table.
#[test]
fn the_watchdog_reports_a_blocked_loop_before_the_callback_returns() {
    let _watchdog = common::watchdog!();
    let reports: Arc<Mutex<Vec<(Instant, solo::debug::Report)>>> = Arc::default();
    let r = reports.clone();
    let el = EventLoop::builder()
        .debug(true)
        .on_slow(move |rep| r.lock().unwrap().push((Instant::now(), rep.clone())))
        .build()
        .unwrap();
    let h = el.handle();
    let seen = reports.clone();
    let line = line!() + 1;
    let t = h.spawn_named("blocker", async move {
        // Blocks the loop until the watchdog's report has arrived (due at 1 s; on a loaded
        // machine resolving the stack's names for the first time can take a while), so that the
        // test does not depend on how fast the watchdog's thread gets to run.
        let begin = Instant::now();
        while !seen
            .lock()
            .unwrap()
            .iter()
            .any(|(_, r)| r.kind == ReportKind::Blocked)
        {
            assert!(begin.elapsed() < Duration::from_secs(50), "no report");
            std::thread::sleep(Duration::from_millis(10));
        }
        Instant::now()
    });
    let start = Instant::now();
    let ended = el.run_until_complete(t).unwrap().unwrap();
    let reps = reports.lock().unwrap();
    let blocked: Vec<_> = reps
        .iter()
        .filter(|(_, r)| r.kind == ReportKind::Blocked)
        .collect();
    // One report at ~1 s; a second one only if the first took past 2 s to arrive, and then
    // for twice the duration (reports double).
    assert!(!blocked.is_empty());
    if let Some((_, second)) = blocked.get(1) {
        assert!(second.duration >= Duration::from_secs(2));
    }
    let (at, r) = blocked[0];
    assert!(*at < ended, "reported while blocked");
    assert!(
        *at - start >= Duration::from_millis(900),
        "not before the threshold"
    );
    assert_eq!(r.callback, CallbackKind::Task);
    assert_eq!(r.name.as_deref(), Some("blocker"));
    assert_eq!(r.site.line(), line);
    assert!(r.duration >= Duration::from_secs(1));
    let table = r.task_table.as_deref().unwrap();
    assert!(
        table.contains("blocker") && table.contains("running"),
        "{table}"
    );
    // The loop thread's stack, taken while it sleeps: the sleep is on it.
    let stack = r.backtrace.as_deref().expect("a stack on Linux");
    assert!(stack.contains("sleep"), "{stack}");
    assert!(r.to_string().contains("loop thread stack:"));
    // After it returns, the slow-callback report follows too.
    assert!(reps.iter().any(|(_, r)| r.kind == ReportKind::SlowCallback));
}

#[test]
fn the_watchdog_backs_off_and_is_quiet_when_idle() {
    let _watchdog = common::watchdog!();
    let reports: Arc<Mutex<Vec<solo::debug::Report>>> = Arc::default();
    let r = reports.clone();
    let el = EventLoop::builder()
        .debug(true)
        .blocked_threshold(Duration::from_millis(200))
        .on_slow(move |rep| r.lock().unwrap().push(rep.clone()))
        .build()
        .unwrap();
    let h = el.handle();
    let call = Arc::new(Mutex::new(Duration::ZERO));
    let c = call.clone();
    let seen = reports.clone();
    h.call_soon(move || {
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(1000));
        // On a loaded machine the watchdog's thread may not have run yet: block on until it
        // has reported (this call is then only longer, which the checks below allow for).
        while !seen
            .lock()
            .unwrap()
            .iter()
            .any(|r| r.kind == ReportKind::Blocked)
        {
            assert!(start.elapsed() < Duration::from_secs(50), "no report");
            std::thread::sleep(Duration::from_millis(10));
        }
        *c.lock().unwrap() = start.elapsed();
    });
    run_once(&el);
    // Idle in poll for 600 ms: nothing to report.
    el.run_until_complete(solo::time::sleep(Duration::from_millis(600)))
        .unwrap();
    // Dropping the loop joins the watchdog, so every report it started is delivered by now
    // (on a loaded machine, resolving the stack's names can take longer than the call).
    drop(el);
    let call = *call.lock().unwrap();
    let blocked: Vec<Duration> = reports
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.kind == ReportKind::Blocked)
        .map(|r| r.duration)
        .collect();
    // Due at 200 ms, 400 ms, 800 ms: at most three reports, the i-th no earlier than
    // 200 ms × 2^i (without the back-off: one every 200 ms, four or five). A loaded machine
    // delays reports, which only makes them fewer and later, never more or earlier.
    assert!((1..=3).contains(&blocked.len()), "{blocked:?}");
    for (i, d) in blocked.iter().enumerate() {
        assert!(*d >= Duration::from_millis(200 << i), "{blocked:?}");
        // Quiet when idle: no report about time after the call returned (the next one would
        // have been due at 1.6 s; 100 ms of slack for the call's own bookkeeping).
        assert!(
            *d <= call + Duration::from_millis(100),
            "{blocked:?} for {call:?}"
        );
    }
}

#[test]
fn the_task_table_is_readable_from_another_thread_while_the_loop_is_blocked() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::builder().debug(true).build().unwrap();
    let h = el.handle();
    let remote = h.remote();
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let d = done.clone();
    // The reader waits until the hog is running, reads the table, then lets the hog go: no
    // timing involved, however loaded the machine is.
    let reader = std::thread::spawn(move || {
        let start = Instant::now();
        let seen = loop {
            let seen = remote.tasks();
            if seen.iter().any(|t| t.state == TaskState::Running) {
                break seen;
            }
            assert!(
                start.elapsed() < Duration::from_secs(50),
                "the hog never ran"
            );
            std::thread::sleep(Duration::from_millis(5));
        };
        d.store(true, std::sync::atomic::Ordering::SeqCst);
        seen
    });
    let t = h.spawn_named("hog", async move {
        // Blocks the loop until the reader has read.
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    });
    h.set_on_slow(|_| {});
    el.run_until_complete(t).unwrap().unwrap();
    let seen = reader.join().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].name.as_deref(), Some("hog"));
    assert_eq!(seen[0].state, TaskState::Running);
}

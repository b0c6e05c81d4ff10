//! Living with blocking code: run_in_executor, files, signals, graceful shutdown.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use solo::{EventLoop, Handle};

#[test]
fn results_and_panics_come_back_from_the_pool() {
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let loop_thread = std::thread::current().id();
    let (a, b) = el
        .run_until_complete(async move {
            let a = h.run_in_executor(move || std::thread::current().id() != loop_thread);
            let b = h.run_in_executor(|| -> u32 { panic!("in the pool") });
            (a.await, b.await)
        })
        .unwrap();
    assert!(a.unwrap(), "ran on another thread");
    let e = b.unwrap_err();
    assert!(e.is_panic());
    assert_eq!(e.to_string(), "task panicked: in the pool");
    // The pool survived the panic.
    let h = el.handle();
    assert_eq!(
        el.run_until_complete(h.run_in_executor(|| 5))
            .unwrap()
            .unwrap(),
        5
    );
}

#[test]
fn the_pool_bound_holds_under_a_thousand_jobs() {
    let el = EventLoop::builder().executor_threads(4).build().unwrap();
    let h = el.handle();
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let jobs: Vec<_> = (0..1000u64)
        .map(|i| {
            let (r, p) = (running.clone(), peak.clone());
            h.run_in_executor(move || {
                let now = r.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                if i % 50 == 0 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                r.fetch_sub(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    let sum = el
        .run_until_complete(async move {
            let mut sum = 0;
            for j in jobs {
                sum += j.await.unwrap();
            }
            sum
        })
        .unwrap();
    assert_eq!(sum, (0..1000).sum::<u64>());
    assert!(
        peak.load(Ordering::SeqCst) <= 4,
        "peak {}",
        peak.load(Ordering::SeqCst)
    );
    assert!(h.executor().threads() <= 4);
    assert_eq!(h.executor().max_threads(), 4);
}

#[test]
fn the_default_pool_is_sized_like_asyncios() {
    let cores = std::thread::available_parallelism().unwrap().get();
    assert_eq!(solo::default_threads(), 32.min(cores + 4));
    let el = EventLoop::new().unwrap();
    assert_eq!(
        el.handle().executor().max_threads(),
        solo::default_threads()
    );
}

#[test]
fn threads_start_lazily_and_idle_threads_exit() {
    let el = EventLoop::builder()
        .executor_idle_timeout(Duration::from_millis(50))
        .build()
        .unwrap();
    let h = el.handle();
    assert_eq!(h.executor().threads(), 0, "no thread before the first job");
    el.run_until_complete(h.run_in_executor(|| ()))
        .unwrap()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.executor().threads() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(h.executor().threads(), 0);
}

#[test]
fn the_loop_keeps_ticking_while_blocking_work_runs_in_the_pool() {
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let ticks = Rc::new(Cell::new(0u32));
    let t2 = ticks.clone();
    el.run_until_complete(async move {
        let counter = h.spawn(async move {
            let mut iv = solo::time::interval(Duration::from_millis(20));
            loop {
                iv.tick().await;
                t2.set(t2.get() + 1);
            }
        });
        h.run_in_executor(|| std::thread::sleep(Duration::from_millis(300)))
            .await
            .unwrap();
        counter.cancel();
    })
    .unwrap();
    // ~15 ticks expected in 300 ms; a loop blocked by the sleep would see 1.
    assert!(ticks.get() >= 5, "only {} ticks", ticks.get());
}

#[test]
fn dropping_the_future_does_not_interrupt_the_job() {
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    let fut = h.run_in_executor(move || {
        std::thread::sleep(Duration::from_millis(50));
        d.store(true, Ordering::SeqCst);
    });
    drop(fut);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(done.load(Ordering::SeqCst));
}

#[test]
fn the_free_function_and_a_custom_executor() {
    struct Counting(AtomicUsize);
    impl solo::Executor for Counting {
        fn execute(&self, job: solo::Job) {
            self.0.fetch_add(1, Ordering::SeqCst);
            std::thread::spawn(job);
        }
    }
    let ex = Counting(AtomicUsize::new(0));
    let el = EventLoop::new().unwrap();
    let (a, b) = el
        .run_until_complete(async {
            let a = solo::run_in_executor(|| 1).await.unwrap();
            let b = Handle::current()
                .run_in_executor_on(&ex, || 2)
                .await
                .unwrap();
            (a, b)
        })
        .unwrap();
    assert_eq!((a, b), (1, 2));
    assert_eq!(ex.0.load(Ordering::SeqCst), 1);
}

#[test]
fn debug_stats_show_the_pool_and_pool_time_is_not_loop_time() {
    let reports = Arc::new(std::sync::Mutex::new(Vec::new()));
    let r = reports.clone();
    let el = EventLoop::builder()
        .debug(true)
        .executor_threads(1)
        .on_slow(move |rep| r.lock().unwrap().push(rep.to_string()))
        .build()
        .unwrap();
    let h = el.handle();
    let gate = Arc::new(AtomicBool::new(false));
    let jobs: Vec<_> = (0..3)
        .map(|_| {
            let g = gate.clone();
            h.run_in_executor(move || {
                while !g.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(1));
                }
                std::thread::sleep(Duration::from_millis(150));
            })
        })
        .collect();
    // Wait for the first job to be picked up.
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.executor().load() != (2, 1) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    let s = el.stats().unwrap();
    assert_eq!((s.executor_queued, s.executor_busy), (2, 1));
    gate.store(true, Ordering::SeqCst);
    el.run_until_complete(async move {
        for j in jobs {
            j.await.unwrap();
        }
    })
    .unwrap();
    let s = el.stats().unwrap();
    assert!(
        s.busy < Duration::from_millis(100),
        "pool time counted: {s:?}"
    );
    assert!(
        reports.lock().unwrap().is_empty(),
        "{:?}",
        reports.lock().unwrap()
    );
}

#[test]
fn fs_functions_run_through_the_pool() {
    let dir = std::env::temp_dir().join(format!("solo-fs-test-{}", std::process::id()));
    let d2 = dir.clone();
    let (len, text, gone) = solo::run(async move {
        let f = d2.join("a/b/file.txt");
        solo::fs::create_dir_all(f.parent().unwrap()).await.unwrap();
        solo::fs::write(&f, b"12345").await.unwrap();
        let len = solo::fs::metadata(&f).await.unwrap().len();
        let text = solo::fs::read_to_string(&f).await.unwrap();
        assert_eq!(solo::fs::read(&f).await.unwrap(), b"12345");
        solo::fs::remove_file(&f).await.unwrap();
        let gone = solo::fs::metadata(&f).await.unwrap_err().kind();
        (len, text, gone)
    })
    .unwrap();
    assert_eq!(
        (len, text.as_str(), gone),
        (5, "12345", std::io::ErrorKind::NotFound)
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- signals: each test uses its own signal, since handlers are process-wide ----

fn raise(sig: i32) {
    // SAFETY: sending a signal to our own process.
    unsafe { libc::kill(libc::getpid(), sig) };
}

#[test]
fn a_signal_runs_its_handler_on_the_loop_thread() {
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
    use std::os::unix::process::ExitStatusExt;
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "signal_default_helper",
            "--exact",
            "--ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("handled twice"), "{stdout}");
    assert!(!stdout.contains("survived"), "{stdout}");
    assert_eq!(out.status.signal(), Some(libc::SIGUSR2), "{:?}", out.status);
}

#[test]
fn invalid_signals_are_errors() {
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    for sig in [libc::SIGKILL, libc::SIGSTOP, libc::SIGSEGV, 0, -3, 1000] {
        let e = h.add_signal_handler(sig, || {}).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{sig}: {e}");
    }
    assert!(!h.remove_signal_handler(libc::SIGKILL));
}

// ---- shutdown ----

struct Counted(Rc<Cell<u32>>);
impl Drop for Counted {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn shutdown_lets_tasks_finish_then_cancels_the_rest_exactly_once() {
    let clock = solo::ManualClock::new();
    let el = EventLoop::builder().clock(clock).build().unwrap();
    let h = el.handle();
    let drops = Rc::new(Cell::new(0));
    let finished = Rc::new(Cell::new(false));
    let (c, f) = (Counted(drops.clone()), finished.clone());
    h.spawn(async move {
        let _c = c;
        solo::time::sleep(Duration::from_millis(20)).await;
        f.set(true);
    });
    let c = Counted(drops.clone());
    h.spawn_named("never", async move {
        let _c = c;
        std::future::pending::<()>().await;
    });
    let c = Counted(drops.clone());
    h.spawn(async move {
        let _c = c;
        solo::time::sleep(Duration::from_secs(3600)).await;
    });
    let remote = h.remote();
    let report = el.shutdown(Duration::from_millis(100));
    assert!(
        finished.get(),
        "the short task finished within the grace period"
    );
    assert_eq!(drops.get(), 3, "every task's destructor ran exactly once");
    assert_eq!(report.cancelled.len(), 2);
    assert!(report
        .cancelled
        .iter()
        .any(|t| t.name.as_deref() == Some("never")));
    assert!(!report.is_clean());
    assert!(report.to_string().contains("\"never\""));
    assert!(remote.call_soon_threadsafe(|| {}).is_err());
    drop(h);
    assert_eq!(drops.get(), 3);
}

#[test]
fn shutdown_returns_within_the_grace_period_with_real_time() {
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    h.spawn(std::future::pending::<()>());
    let stuck = h.run_in_executor(|| std::thread::sleep(Duration::from_millis(1500)));
    drop(stuck);
    let start = Instant::now();
    let report = el.shutdown(Duration::from_millis(200));
    let took = start.elapsed();
    assert!(took < Duration::from_millis(1200), "took {took:?}");
    assert_eq!(report.cancelled.len(), 1);
    assert_eq!(
        report.executor_unfinished, 1,
        "the sleeping job could not finish"
    );
}

#[test]
fn shutdown_refuses_remote_work_but_takes_wakeups() {
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let got = Rc::new(Cell::new(0));
    let g = got.clone();
    let h2 = h.clone();
    h.spawn(async move {
        // Waits for a pool job: its wake-up comes from another thread during shutdown.
        g.set(h2.run_in_executor(|| 7).await.unwrap());
    });
    let report = el.shutdown(Duration::from_secs(5));
    assert!(report.is_clean(), "{report}");
    assert_eq!(got.get(), 7);
}

#[test]
fn run_is_the_one_call_entry_point() {
    let drops = Rc::new(Cell::new(0));
    let c = Counted(drops.clone());
    let v = solo::run(async move {
        Handle::current().spawn(async move {
            let _c = c;
            std::future::pending::<()>().await;
        });
        solo::time::sleep(Duration::from_millis(1)).await;
        "out"
    })
    .unwrap();
    assert_eq!(v, "out");
    assert_eq!(drops.get(), 1, "the leftover task was cancelled");
}

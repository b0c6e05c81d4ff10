//! Living with blocking code: run_in_executor (the thread pool) and the fs functions that use it.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use solo::{EventLoop, Handle};

mod common;

#[test]
fn results_and_panics_come_back_from_the_pool() {
    let _watchdog = common::watchdog!();
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
    let _watchdog = common::watchdog!();
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
    let _watchdog = common::watchdog!();
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
    let _watchdog = common::watchdog!();
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
    let _watchdog = common::watchdog!();
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
    let _watchdog = common::watchdog!();
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
    let _watchdog = common::watchdog!();
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
    let _watchdog = common::watchdog!();
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
    let _watchdog = common::watchdog!();
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

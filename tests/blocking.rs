//! Living with blocking code: run_in_executor (the thread pool) and the fs functions that use it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::task::ArcWake;
use solo::{Blocking, EventLoop, Handle};

mod common;

/// Counts live heap bytes, for the tests that a burst does not grow the pool's memory. They run
/// alone in a child process ([`alone`]), so the count is theirs.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator with the caller's arguments; the
// counters are only figures.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = LIVE.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Live heap bytes now; the peak since the last call is reset to it.
fn live_and_reset_peak() -> usize {
    let live = LIVE.load(Ordering::SeqCst);
    PEAK.store(live, Ordering::SeqCst);
    live
}

fn peak() -> usize {
    PEAK.load(Ordering::SeqCst)
}

/// Runs `check` alone, in a child process (this test binary running only `test`), so that the
/// allocation counter sees only it.
fn alone(test: &str, check: impl FnOnce()) {
    common::check_in_child(test, &[("SOLO_TEST_ALONE", "1")], check);
}

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

// ---- the bound on the queue ----
//
// Most of these poll `Blocking` futures by hand, outside the loop, with a waker that raises a
// flag: a `Blocking` is an ordinary future (the pool's threads complete it), so the tests can
// see each step (waiting, woken, queued) without a loop deciding when to poll.

/// A gate that jobs wait at until the test opens it.
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn wait(&self) {
        let (m, c) = &*self.0;
        let mut open = m.lock().unwrap();
        while !*open {
            open = c.wait(open).unwrap();
        }
    }

    fn open(&self) {
        let (m, c) = &*self.0;
        *m.lock().unwrap() = true;
        c.notify_all();
    }
}

/// Waits (bounded) until `cond` holds.
fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Takes all `n` threads of `h`'s pool with jobs that wait at `gate`; returns their futures
/// once every thread is busy (the queue is then empty).
fn occupy(h: &Handle, gate: &Gate, n: usize) -> Vec<Blocking<()>> {
    let held: Vec<_> = (0..n)
        .map(|_| {
            let g = gate.clone();
            h.run_in_executor(move || g.wait())
        })
        .collect();
    eventually("every pool thread busy", || h.executor().load() == (0, n));
    held
}

/// A waker that raises a flag.
struct Flag(AtomicBool);

impl ArcWake for Flag {
    fn wake_by_ref(f: &Arc<Flag>) {
        f.0.store(true, Ordering::SeqCst);
    }
}

/// A future polled by hand, with its own flag waker.
struct Polled<F> {
    fut: F,
    flag: Arc<Flag>,
}

impl<F: Future + Unpin> Polled<F> {
    fn new(fut: F) -> Polled<F> {
        Polled {
            fut,
            flag: Arc::new(Flag(AtomicBool::new(false))),
        }
    }

    fn poll(&mut self) -> Poll<F::Output> {
        self.flag.0.store(false, Ordering::SeqCst);
        let waker = futures::task::waker(self.flag.clone());
        Pin::new(&mut self.fut).poll(&mut Context::from_waker(&waker))
    }

    fn woken(&self) -> bool {
        self.flag.0.load(Ordering::SeqCst)
    }
}

#[test]
fn a_queue_bound_of_zero_is_a_clear_error_at_build() {
    let _watchdog = common::watchdog!();
    let err = EventLoop::builder()
        .executor_queue_bound(0)
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("queue bound of 0"), "{err}");
    let err = solo::ThreadPool::bounded(4, 0, Duration::from_secs(1)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    // The default: 64 queued jobs per thread.
    let el = EventLoop::builder().executor_threads(3).build().unwrap();
    assert_eq!(el.handle().executor().queue_bound(), 3 * 64);
    let el = EventLoop::builder()
        .executor_queue_bound(1)
        .build()
        .unwrap();
    assert_eq!(el.handle().executor().queue_bound(), 1);
}

#[test]
fn past_the_bound_submitters_wait_and_get_slots_in_the_order_they_started_waiting() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::builder()
        .debug(true)
        .executor_threads(1)
        .executor_queue_bound(2)
        .build()
        .unwrap();
    let h = el.handle();
    let gate = Gate::default();
    let held = occupy(&h, &gate, 1);
    let order = Arc::new(Mutex::new(Vec::new()));
    let job = |i: u32| {
        let o = order.clone();
        move || o.lock().unwrap().push(i)
    };
    // Two fill the queue at once; three more wait, first polled in the order 2, 4, 3.
    let queued: Vec<_> = (0..2).map(|i| h.run_in_executor(job(i))).collect();
    assert_eq!(h.executor().load(), (2, 1));
    let mut w2 = Polled::new(h.run_in_executor(job(2)));
    let mut w3 = Polled::new(h.run_in_executor(job(3)));
    let mut w4 = Polled::new(h.run_in_executor(job(4)));
    assert_eq!(h.executor().waiting(), 3, "created, not queued");
    assert!(w2.poll().is_pending());
    assert!(w4.poll().is_pending());
    assert!(w3.poll().is_pending());
    assert_eq!(h.executor().load(), (2, 1), "the queue stays at its bound");
    // Nobody jumps the line: a new submission waits too, and try_ is refused.
    let late = h.run_in_executor(job(5));
    let refused = h.try_run_in_executor(job(6)).unwrap_err();
    assert!(refused.is_full(), "{refused}");
    let s = el.stats().unwrap();
    assert_eq!(
        (s.executor_queued, s.executor_waiting, s.executor_rejected),
        (2, 4, 1)
    );

    gate.open();
    // The line moves by itself: each slot the thread frees takes the next job in line into the
    // queue, without a poll of its future (nor the loop running); the futures are woken when
    // their jobs have run.
    for w in [&w2, &w3, &w4] {
        eventually("the job ran", || w.woken());
    }
    for w in [w2, w3, w4] {
        el.run_until_complete(w.fut).unwrap().unwrap();
    }
    el.run_until_complete(async move {
        for f in held.into_iter().chain(queued) {
            f.await.unwrap();
        }
        late.await.unwrap();
    })
    .unwrap();
    assert_eq!(*order.lock().unwrap(), [0, 1, 2, 4, 3, 5]);
    let s = el.stats().unwrap();
    assert_eq!(
        (s.executor_queued, s.executor_waiting, s.executor_abandoned),
        (0, 0, 0)
    );
}

#[test]
fn a_submitter_dropped_while_it_waits_takes_its_job_out_of_line_unrun_and_loses_no_slot() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::builder()
        .debug(true)
        .executor_threads(1)
        .executor_queue_bound(1)
        .build()
        .unwrap();
    let h = el.handle();
    let first = Gate::default();
    let held = occupy(&h, &first, 1);
    let second = Gate::default();
    let g = second.clone();
    let queued = h.run_in_executor(move || g.wait());
    let ran = Arc::new(AtomicUsize::new(0));
    let job = |i: usize| {
        let r = ran.clone();
        move || {
            r.fetch_or(1 << i, Ordering::SeqCst);
        }
    };
    let mut a = Polled::new(h.run_in_executor(job(0)));
    let mut b = Polled::new(h.run_in_executor(job(1)));
    let c = h.run_in_executor(job(2)); // never polled: not in line
    assert!(a.poll().is_pending());
    assert!(b.poll().is_pending());
    assert_eq!(h.executor().waiting(), 3);

    // `a` leaves the line before its turn: its job is dropped, `b` moves up.
    drop(a);
    assert_eq!(h.executor().waiting(), 2);
    // The thread takes `queued`; the slot it frees goes to `b`, first in line now.
    first.open();
    eventually("b's job queued", || {
        h.executor().load() == (1, 1) && h.executor().waiting() == 1
    });
    // Once queued, a job runs even if its future is dropped, as one queued at once.
    drop(b);
    drop(c); // never in line: dropped with its job
    assert_eq!(h.executor().waiting(), 0);
    second.open();
    el.run_until_complete(async move {
        held.into_iter().next().unwrap().await.unwrap();
        queued.await.unwrap();
    })
    .unwrap();
    eventually("b's job ran", || h.executor().load() == (0, 0));
    assert_eq!(ran.load(Ordering::SeqCst), 0b10, "only b's job ran");
    let s = el.stats().unwrap();
    assert_eq!(
        (
            s.executor_waiting,
            s.executor_abandoned,
            s.executor_rejected
        ),
        (0, 2, 0)
    );
    // No slot lost: the queue takes a job at once again.
    let again = h.try_run_in_executor(|| 3).unwrap();
    assert_eq!(el.run_until_complete(again).unwrap().unwrap(), 3);
}

#[test]
fn submitting_after_shutdown_is_refused_clearly_and_waiters_are_refused_at_shutdown() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::builder()
        .executor_threads(1)
        .executor_queue_bound(1)
        .build()
        .unwrap();
    let h = el.handle();
    let gate = Gate::default();
    let held = occupy(&h, &gate, 1);
    let ran = Arc::new(AtomicUsize::new(0));
    let count = || {
        let r = ran.clone();
        move || {
            r.fetch_add(1, Ordering::SeqCst);
        }
    };
    let queued = h.run_in_executor(count());
    let mut waiting = Polled::new(h.run_in_executor(count()));
    assert!(waiting.poll().is_pending());
    let never_polled = h.run_in_executor(count());

    let g = gate.clone();
    let opener = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        g.open();
    });
    let report = el.shutdown(Duration::from_secs(10));
    opener.join().unwrap();
    assert!(report.is_clean(), "{report}");
    // Queued jobs ran; the waiters were refused: woken, and cancelled when polled.
    assert!(waiting.woken());
    match waiting.poll() {
        Poll::Ready(Err(e)) => assert!(e.is_cancelled(), "{e}"),
        other => panic!("expected a cancelled JoinError, got {other:?}"),
    }
    let e = futures::executor::block_on(never_polled).unwrap_err();
    assert!(e.is_cancelled());
    futures::executor::block_on(held.into_iter().next().unwrap()).unwrap();
    futures::executor::block_on(queued).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 1);

    // After shutdown: refused at once, the closure comes back from try_.
    assert!(h.is_closed());
    let e = futures::executor::block_on(h.run_in_executor(count())).unwrap_err();
    assert!(e.is_cancelled(), "{e}");
    let e = h.try_run_in_executor(|| 7).unwrap_err();
    assert!(e.is_shut_down());
    assert_eq!(e.to_string(), "the executor is shut down");
    assert_eq!((e.into_inner())(), 7);
    assert_eq!(ran.load(Ordering::SeqCst), 1, "no refused job ran");
    assert_eq!(
        h.executor().threads(),
        0,
        "no thread started after shutdown"
    );
    assert_eq!(h.executor().rejected(), 4);
}

#[test]
fn run_in_executor_on_keeps_a_pools_bound_and_leaves_other_executors_their_policy() {
    let _watchdog = common::watchdog!();
    // A pool of the user's own: bounded there too.
    let pool = solo::ThreadPool::bounded(1, 1, Duration::from_secs(1)).unwrap();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let gate = Gate::default();
    let g = gate.clone();
    let held = h.run_in_executor_on(&pool, move || g.wait());
    eventually("the pool's thread busy", || pool.load() == (0, 1));
    let queued = h.run_in_executor_on(&pool, || 1);
    let mut waits = Polled::new(h.run_in_executor_on(&pool, || 2));
    assert!(waits.poll().is_pending());
    assert_eq!((pool.load().0, pool.waiting()), (1, 1));
    gate.open();
    let (a, b) = el
        .run_until_complete(async move {
            held.await.unwrap();
            (queued.await.unwrap(), waits.fut.await.unwrap())
        })
        .unwrap();
    assert_eq!((a, b), (1, 2));

    // An executor that drops what it is given: the future completes as cancelled instead of
    // waiting forever.
    struct Refusing;
    impl solo::Executor for Refusing {
        fn execute(&self, job: solo::Job) {
            drop(job);
        }
    }
    let e = el
        .run_until_complete(h.run_in_executor_on(&Refusing, || 3))
        .unwrap()
        .unwrap_err();
    assert!(e.is_cancelled());
    // An executor of the user's is handed every job at once: solo adds no bound.
    struct Collecting(Mutex<Vec<solo::Job>>);
    impl solo::Executor for Collecting {
        fn execute(&self, job: solo::Job) {
            self.0.lock().unwrap().push(job);
        }
    }
    let ex = Collecting(Mutex::new(Vec::new()));
    let futs: Vec<_> = (0..1000)
        .map(|i| h.run_in_executor_on(&ex, move || i))
        .collect();
    let jobs = std::mem::take(&mut *ex.0.lock().unwrap());
    assert_eq!(jobs.len(), 1000);
    std::thread::spawn(move || jobs.into_iter().for_each(|j| j()))
        .join()
        .unwrap();
    let sum = el
        .run_until_complete(async move {
            let mut sum = 0;
            for f in futs {
                sum += f.await.unwrap();
            }
            sum
        })
        .unwrap();
    assert_eq!(sum, (0..1000).sum::<i32>());
}

// ---- bad input: a million jobs at once ----

const MILLION: usize = 1_000_000;
const THREADS: usize = 4;
const BOUND: usize = 256;

fn bounded_loop(threads: usize) -> EventLoop {
    EventLoop::builder()
        .debug(true)
        .executor_threads(threads)
        .executor_queue_bound(BOUND)
        // Polling a million futures at once is slow, and expected here; and a blocked-loop
        // report would resolve the loop's stack, whose symbol cache stays (megabytes).
        .on_slow(|_| {})
        .blocked_threshold(Duration::from_secs(3600))
        .build()
        .unwrap()
}

/// What an unbounded queue would at least hold for a million jobs: a boxed job and a result
/// slot each, 64 bytes being far below either. The burst tests allow the pool a 32nd of it.
const UNBOUNDED_FLOOR: usize = MILLION * 64;

#[test]
fn a_million_try_submissions_at_once_fill_the_bound_and_the_rest_come_back_refused() {
    let _watchdog = common::watchdog!();
    alone(&common::test_name!(), || {
        let el = bounded_loop(THREADS);
        let h = el.handle();
        let gate = Gate::default();
        let held = occupy(&h, &gate, THREADS);
        let ran = Arc::new(AtomicUsize::new(0));
        let base = live_and_reset_peak();
        let mut accepted = Vec::with_capacity(BOUND);
        let mut refused = 0;
        for i in 0..MILLION {
            let r = ran.clone();
            match h.try_run_in_executor(move || {
                r.fetch_add(1, Ordering::SeqCst);
                i
            }) {
                Ok(f) => accepted.push(f),
                Err(e) => {
                    assert!(e.is_full(), "{e}");
                    drop(e.into_inner()); // the closure, back unrun
                    refused += 1;
                }
            }
        }
        let grew = peak() - base;
        assert_eq!((accepted.len(), refused), (BOUND, MILLION - BOUND));
        assert!(grew < UNBOUNDED_FLOOR / 32, "the burst took {grew} bytes");
        let s = el.stats().unwrap();
        assert_eq!(
            (s.executor_queued, s.executor_busy, s.executor_waiting),
            (BOUND, THREADS, 0)
        );
        assert_eq!(s.executor_rejected, (MILLION - BOUND) as u64);

        gate.open();
        let sum = el
            .run_until_complete(async move {
                for f in held {
                    f.await.unwrap();
                }
                let mut sum = 0;
                for f in accepted {
                    sum += f.await.unwrap();
                }
                sum
            })
            .unwrap();
        assert_eq!(ran.load(Ordering::SeqCst), BOUND, "only accepted jobs ran");
        assert_eq!(sum, (0..BOUND).sum::<usize>());
        // Capacity released: the whole bound is free again.
        let again: Vec<_> = (0..BOUND)
            .map(|i| h.try_run_in_executor(move || i).unwrap())
            .collect();
        el.run_until_complete(futures::future::join_all(again))
            .unwrap();
        let s = el.stats().unwrap();
        assert_eq!((s.executor_queued, s.executor_waiting), (0, 0));
        let left = LIVE.load(Ordering::SeqCst).saturating_sub(base);
        assert!(left < 64 * 1024, "{left} bytes still held after the burst");
    });
}

#[test]
fn a_million_submissions_at_once_wait_for_room_in_order_and_all_complete() {
    let _watchdog = common::watchdog!(Duration::from_secs(300));
    alone(&common::test_name!(), || {
        // One thread, so that the order in which jobs run is the order they left the queue.
        let el = bounded_loop(1);
        let h = el.handle();
        let gate = Gate::default();
        let held = occupy(&h, &gate, 1);
        let base = live_and_reset_peak();
        // Jobs check that they run in submission order: the first BOUND through the queue at
        // once, the rest through the line in the order of their first poll, which is theirs.
        let next = Arc::new(AtomicUsize::new(0));
        let out_of_order = Arc::new(AtomicUsize::new(0));
        let futs: Vec<_> = (0..MILLION)
            .map(|i| {
                let (n, o) = (next.clone(), out_of_order.clone());
                h.run_in_executor(move || {
                    if n.fetch_add(1, Ordering::SeqCst) != i {
                        o.fetch_add(1, Ordering::SeqCst);
                    }
                    i
                })
            })
            .collect();
        let s = el.stats().unwrap();
        assert_eq!(
            (s.executor_queued, s.executor_waiting),
            (BOUND, MILLION - BOUND),
            "the pool holds the bound; the rest wait in their futures"
        );
        let held_by_futures = peak() - base;
        let pool = h.executor().clone();
        let (sum, max_queued) = el
            .run_until_complete(async move {
                let mut all: futures::stream::FuturesOrdered<_> = futs.into_iter().collect();
                // The first poll puts every waiting future in line; then the threads go.
                let first = futures::future::poll_fn(|cx| {
                    let _ = futures::Stream::poll_next(Pin::new(&mut all), cx);
                    Poll::Ready(())
                });
                first.await;
                gate.open();
                let (mut sum, mut max_queued) = (0usize, 0);
                let mut n = 0;
                while let Some(r) = futures::StreamExt::next(&mut all).await {
                    sum += r.unwrap();
                    n += 1;
                    if n % 1024 == 0 {
                        max_queued = max_queued.max(pool.load().0);
                    }
                }
                for f in held {
                    f.await.unwrap();
                }
                (sum, max_queued)
            })
            .unwrap();
        assert_eq!(sum, (0..MILLION).sum::<usize>());
        assert!(max_queued <= BOUND, "queue at {max_queued}");
        assert_eq!(
            out_of_order.load(Ordering::SeqCst),
            0,
            "jobs ran out of order"
        );
        let s = el.stats().unwrap();
        assert_eq!(
            (
                s.executor_queued,
                s.executor_waiting,
                s.executor_rejected,
                s.executor_abandoned
            ),
            (0, 0, 0, 0)
        );
        // Capacity released: the line's memory is given back, the bound is free again.
        let left = LIVE.load(Ordering::SeqCst).saturating_sub(base);
        assert!(
            left < 64 * 1024,
            "{left} bytes still held after the burst (the futures held {held_by_futures})"
        );
        let again: Vec<_> = (0..BOUND)
            .map(|i| h.try_run_in_executor(move || i).unwrap())
            .collect();
        el.run_until_complete(futures::future::join_all(again))
            .unwrap();
    });
}

#[test]
fn a_million_submissions_dropped_at_once_leave_the_bound_queued_and_drop_the_rest_unrun() {
    let _watchdog = common::watchdog!();
    alone(&common::test_name!(), || {
        let el = bounded_loop(THREADS);
        let h = el.handle();
        let gate = Gate::default();
        let held = occupy(&h, &gate, THREADS);
        let ran = Arc::new(AtomicUsize::new(0));
        let base = live_and_reset_peak();
        for _ in 0..MILLION {
            let r = ran.clone();
            // Fire and forget: queued while there is room, dropped unrun past it.
            drop(h.run_in_executor(move || {
                r.fetch_add(1, Ordering::SeqCst);
            }));
        }
        let grew = peak() - base;
        assert!(grew < UNBOUNDED_FLOOR / 32, "the burst took {grew} bytes");
        let s = el.stats().unwrap();
        assert_eq!(
            (s.executor_queued, s.executor_waiting, s.executor_abandoned),
            (BOUND, 0, (MILLION - BOUND) as u64)
        );
        gate.open();
        el.run_until_complete(futures::future::join_all(held))
            .unwrap();
        eventually("the queued jobs ran", || {
            h.executor().load() == (0, 0) && ran.load(Ordering::SeqCst) == BOUND
        });
        let left = LIVE.load(Ordering::SeqCst).saturating_sub(base);
        assert!(left < 64 * 1024, "{left} bytes still held after the burst");
    });
}

#[test]
fn a_blocking_future_stays_send_sync_and_unpin() {
    fn check<T: Send + Sync + Unpin>() {}
    check::<Blocking<Vec<u8>>>();
    check::<solo::TrySubmitError<fn() -> u8>>();
}

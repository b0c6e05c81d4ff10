//! Memory comes back: after a burst of work the loop's own allocations return close to where
//! they were. Measured with a counting global allocator (not RSS, which the system allocator
//! keeps), in live bytes and live allocations.
//!
//! How to write a test here, so that it stays robust while other tests of this file run on
//! other threads:
//!
//! * Read this thread's figures ([`counting::thread_usage`], or [`counting::measure`] around a
//!   closure), not the process's: the counts are kept per thread too, so another test's
//!   allocations do not show up. Memory allocated on one thread and freed on another counts as
//!   live on the first and negative on the second; keep the measured work on the test's thread
//!   (a loop is single-threaded anyway).
//! * Take the baseline after a warm-up that runs a small version of the workload, so that what
//!   the loop allocates once and keeps (its ready queue, scratch buffers) is in it.
//! * Compare with slack: the loop may keep a small floor (a timer store of up to 1024 entries,
//!   64 KiB) after giving back the rest. [`assert_back_near`] checks the live figures against
//!   the baseline, and that the burst was big enough for the check to mean something.
//! * Let loop time pass before measuring: the timer store gives its memory back once it has
//!   been mostly empty for 2 s of loop time, so that a burst that comes back at once finds it
//!   still there ([`time_passes`]).

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::time::Duration;

use solo::time::sleep;
use solo::{CallbackHandle, EventLoop, Handle, ManualClock};

mod common;

use common::{manual, run_once};

/// The counting allocator and how to read it; nothing in it is specific to timers.
#[allow(dead_code)] // each test uses some of the helpers
mod counting {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::ops::Sub;
    use std::sync::atomic::{AtomicIsize, Ordering};

    /// The system allocator, counting live bytes and allocations for the whole process and for
    /// each thread.
    pub struct Counting;

    static BYTES: AtomicIsize = AtomicIsize::new(0);
    static ALLOCS: AtomicIsize = AtomicIsize::new(0);

    thread_local! {
        // Const-initialized and without a destructor: usable from inside the allocator, at any
        // point of a thread's life, without allocating.
        static THREAD: Cell<Usage> = const { Cell::new(Usage { bytes: 0, allocs: 0 }) };
    }

    fn count(bytes: isize, allocs: isize) {
        BYTES.fetch_add(bytes, Ordering::Relaxed);
        ALLOCS.fetch_add(allocs, Ordering::Relaxed);
        let _ = THREAD.try_with(|t| {
            let u = t.get();
            t.set(Usage {
                bytes: u.bytes + bytes,
                allocs: u.allocs + allocs,
            });
        });
    }

    // SAFETY: every call is forwarded to the system allocator unchanged; the counting touches
    // only atomics and a const thread-local, and never allocates.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, l: Layout) -> *mut u8 {
            // SAFETY: the caller upholds `alloc`'s contract, which is the system allocator's.
            let p = unsafe { System.alloc(l) };
            if !p.is_null() {
                count(l.size() as isize, 1);
            }
            p
        }

        unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
            // SAFETY: as for `alloc`.
            let p = unsafe { System.alloc_zeroed(l) };
            if !p.is_null() {
                count(l.size() as isize, 1);
            }
            p
        }

        unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
            // SAFETY: `p` came from this allocator, that is from the system allocator, with `l`.
            unsafe { System.dealloc(p, l) };
            count(-(l.size() as isize), -1);
        }

        unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
            // SAFETY: as for `dealloc`; the caller upholds `realloc`'s contract on `new`.
            let q = unsafe { System.realloc(p, l, new) };
            if !q.is_null() {
                count(new as isize - l.size() as isize, 0);
            }
            q
        }
    }

    #[global_allocator]
    static GLOBAL: Counting = Counting;

    /// Live heap memory: bytes and allocations made and not yet freed.
    #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
    pub struct Usage {
        /// Bytes.
        pub bytes: isize,
        /// Allocations.
        pub allocs: isize,
    }

    impl Sub for Usage {
        type Output = Usage;

        fn sub(self, o: Usage) -> Usage {
            Usage {
                bytes: self.bytes - o.bytes,
                allocs: self.allocs - o.allocs,
            }
        }
    }

    /// What this thread allocated and has not freed (its frees of other threads' memory
    /// subtracted): the figure to compare, immune to other tests' threads.
    pub fn thread_usage() -> Usage {
        THREAD.with(Cell::get)
    }

    /// The whole process's live memory (every thread's, the test harness's included).
    pub fn global_usage() -> Usage {
        Usage {
            bytes: BYTES.load(Ordering::Relaxed),
            allocs: ALLOCS.load(Ordering::Relaxed),
        }
    }

    /// Runs `f` and returns what it left allocated on this thread.
    pub fn measure<R>(f: impl FnOnce() -> R) -> (R, Usage) {
        let before = thread_usage();
        let r = f();
        (r, thread_usage() - before)
    }
}

use counting::{thread_usage, Usage};

/// What the loop may keep after giving back a burst: its floors (1024 timer entries of 64 bytes,
/// `expire`'s buffer of 1024 fired timers), with room to spare; and what a test keeps live on
/// purpose (a window of a hundred timers, a few bytes and one allocation each).
const SLACK_BYTES: isize = 256 * 1024;
const SLACK_ALLOCS: isize = 256;

/// Asserts that this thread's live memory is back within the slack of `baseline`, after a peak
/// at least `min_burst` bytes above it (so the test measured something).
#[track_caller]
fn assert_back_near(what: &str, baseline: Usage, peak: Usage, min_burst: isize) {
    let now = thread_usage();
    let burst = peak - baseline;
    let left = now - baseline;
    assert!(
        burst.bytes >= min_burst,
        "{what}: the burst took only {} bytes; the test measures nothing",
        burst.bytes
    );
    assert!(
        left.bytes <= SLACK_BYTES && left.allocs <= SLACK_ALLOCS,
        "{what}: {} bytes in {} allocations still live after a burst of {} bytes (slack {} \
         bytes, {} allocations)",
        left.bytes,
        left.allocs,
        burst.bytes,
        SLACK_BYTES,
        SLACK_ALLOCS
    );
}

/// The loop runs on for 3 s of its (manual) clock, and fires a fresh timer then: more than the
/// 2 s that the timer store waits, mostly empty, before it gives its memory back.
fn time_passes(el: &EventLoop, clock: &ManualClock) {
    clock.advance(Duration::from_secs(3));
    let h = el.handle();
    let fired = Rc::new(Cell::new(false));
    let (f, h2) = (fired.clone(), h.clone());
    h.call_later(Duration::from_millis(1), move || {
        f.set(true);
        h2.stop();
    });
    el.run_forever().unwrap();
    assert!(fired.get(), "a fresh timer fired");
}

const MILLION: usize = 1_000_000;
const HOUR: Duration = Duration::from_secs(3600);

/// Schedules `n` timers `delay` away and returns their handles, in order.
fn schedule(h: &Handle, n: usize, delay: Duration) -> Vec<CallbackHandle> {
    (0..n).map(|_| h.call_later(delay, || {})).collect()
}

/// The handles, cancelled in an order that is neither creation order nor its reverse.
fn cancel_scattered(handles: Vec<CallbackHandle>) {
    let n = handles.len();
    let stride = 7919; // a prime that does not divide n, so i * stride % n visits every index
    assert_ne!(n % stride, 0);
    for i in 0..n {
        handles[(i * stride) % n].cancel();
    }
}

#[test]
fn a_million_cancelled_timers_give_their_memory_back() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    cancel_scattered(schedule(&h, 10_000, HOUR));
    time_passes(&el, &clock);
    let baseline = thread_usage();
    let handles = schedule(&h, MILLION, HOUR);
    let peak = thread_usage();
    cancel_scattered(handles);
    time_passes(&el, &clock);
    assert_back_near(
        "a million call_later timers cancelled",
        baseline,
        peak,
        64 << 20,
    );
    assert!(format!("{el:?}").contains("timers: 0"), "{el:?}");
    // A second burst, one timer of it left to fire: its memory comes back as well.
    let handles = schedule(&h, MILLION, Duration::from_millis(1));
    for t in &handles[1..] {
        t.cancel();
    }
    drop(handles);
    time_passes(&el, &clock);
    assert_back_near("a second burst", baseline, peak, 64 << 20);
}

#[test]
fn a_burst_that_comes_back_at_once_finds_its_memory_still_there() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    cancel_scattered(schedule(&h, 10_000, HOUR));
    time_passes(&el, &clock);
    let baseline = thread_usage();
    let handles = schedule(&h, MILLION, HOUR);
    let peak = thread_usage();
    cancel_scattered(handles);
    // No loop time passed: the store keeps its memory (64 MiB of entries) for the next burst...
    let kept = thread_usage() - baseline;
    assert!(kept.bytes >= 60 << 20, "{kept:?}");
    let (handles, grew) = counting::measure(|| schedule(&h, MILLION, HOUR));
    // ...which allocates its callbacks and the handles' vector, and nothing for the store.
    let store_growth = grew.bytes - (peak - baseline).bytes + kept.bytes;
    assert!(store_growth.abs() < 1 << 20, "{grew:?}, {store_growth}");
    cancel_scattered(handles);
    time_passes(&el, &clock);
    assert_back_near("after two bursts", baseline, peak, 64 << 20);
}

#[test]
fn a_million_cancelled_never_timers_give_their_memory_back() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    cancel_scattered(schedule(&h, 10_000, Duration::MAX));
    time_passes(&el, &clock);
    let baseline = thread_usage();
    let handles = schedule(&h, MILLION, Duration::MAX);
    let peak = thread_usage();
    cancel_scattered(handles);
    time_passes(&el, &clock);
    assert_back_near("a million never timers cancelled", baseline, peak, 64 << 20);
}

#[test]
fn a_million_dropped_sleeps_give_their_memory_back() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    // Each sleep polled once (so it holds a timer), then all dropped: `timeout`'s pattern.
    let burst = |n: usize| {
        el.run_until_complete(async move {
            let mut sleeps: Vec<_> = (0..n)
                .map(|i| Box::pin(sleep(HOUR + Duration::from_millis(i as u64))))
                .collect();
            std::future::poll_fn(|cx| {
                for s in sleeps.iter_mut() {
                    assert!(s.as_mut().poll(cx).is_pending());
                }
                std::task::Poll::Ready(())
            })
            .await;
            let peak = thread_usage();
            drop(sleeps);
            peak
        })
        .unwrap()
    };
    burst(10_000);
    time_passes(&el, &clock);
    let baseline = thread_usage();
    let peak = burst(MILLION);
    time_passes(&el, &clock);
    assert_back_near("a million sleeps dropped", baseline, peak, 64 << 20);
}

#[test]
fn memory_comes_back_after_a_burst_whose_last_timers_outlive_it() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    cancel_scattered(schedule(&h, 10_000, HOUR));
    time_passes(&el, &clock);
    let baseline = thread_usage();
    // A burst; its last 1000 timers (the highest entries) live on for an hour, the rest are
    // cancelled in creation order, so the most recently freed entries are the high ones.
    let mut handles = schedule(&h, MILLION - 1000, 2 * HOUR);
    handles.extend(schedule(&h, 1000, HOUR));
    let peak = thread_usage();
    for t in &handles[..MILLION - 1000] {
        t.cancel();
    }
    drop(handles); // a handle's drop does not cancel: the survivors fire in an hour
                   // Steady work all along: a window of 100 timers, each cancelled 100 timers later. A store
                   // that reused the most recently freed entries would move this window into the survivors'
                   // entries as they fire, where it would keep the memory after they are gone.
    let mut window = std::collections::VecDeque::with_capacity(101);
    let mut churn = |n: usize| {
        for _ in 0..n {
            window.push_back(h.call_later(2 * HOUR, || {}));
            if window.len() > 100 {
                window.pop_front().unwrap().cancel();
            }
        }
    };
    churn(200_000);
    clock.advance(HOUR);
    run_once(&el); // the survivors fire
    churn(20_000);
    time_passes(&el, &clock);
    assert!(format!("{el:?}").contains("timers: 100,"), "{el:?}");
    assert_back_near(
        "a burst with survivors, then steady work",
        baseline,
        peak,
        64 << 20,
    );
    for t in window {
        t.cancel();
    }
}

#[test]
fn a_million_timers_firing_at_once_give_back_the_buffer_they_fired_through() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    // One task, a million sleeps with one deadline: they fire in one batch, wake one task.
    let burst = |n: usize| {
        el.run_until_complete(async move {
            let deadline = Handle::current().time() + Duration::from_millis(5);
            let mut sleeps: Vec<_> = (0..n)
                .map(|_| Box::pin(solo::time::sleep_until(deadline)))
                .collect();
            let peak = Rc::new(Cell::new(Usage::default()));
            let p = peak.clone();
            std::future::poll_fn(move |cx| {
                let mut pending = 0;
                for s in sleeps.iter_mut() {
                    pending += usize::from(s.as_mut().poll(cx).is_pending());
                }
                if pending > 0 {
                    return std::task::Poll::Pending;
                }
                p.set(thread_usage());
                std::task::Poll::Ready(())
            })
            .await;
            peak.get()
        })
        .unwrap()
    };
    burst(1_000);
    time_passes(&el, &clock);
    let baseline = thread_usage();
    let before = clock.elapsed();
    let peak = burst(MILLION);
    assert_eq!(clock.elapsed() - before, Duration::from_millis(5));
    // The next batch of timers, far smaller, shrinks the buffer; the store follows.
    burst(1_000);
    time_passes(&el, &clock);
    // The sleeps themselves are the burst's peak; what the loop fired them through must go too.
    assert_back_near("a million timers fired at once", baseline, peak, 64 << 20);
}

#[test]
fn the_counting_allocator_counts_this_thread_only() {
    let (v, delta) = counting::measure(|| vec![0u8; 1 << 20]);
    assert_eq!(delta.bytes, 1 << 20);
    assert_eq!(delta.allocs, 1);
    let (_, other) = counting::measure(|| {
        std::thread::spawn(|| drop(vec![0u8; 1 << 20]))
            .join()
            .unwrap();
    });
    assert!(
        other.bytes < 1 << 16,
        "another thread's allocations: {other:?}"
    );
    let (_, freed) = counting::measure(|| drop(v));
    assert_eq!(freed.bytes, -(1 << 20));
    assert!(counting::global_usage().bytes > 0);
}

/// The loop runs on for 3 s of its (manual) clock and polls once: more than the second that the
/// loop waits between two releases of its queues' memory (`src/reclaim.rs`).
fn loop_time_passes(el: &EventLoop, clock: &ManualClock) {
    time_passes(el, clock);
}

#[test]
fn a_million_cancelled_call_soon_callbacks_give_their_memory_back() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    for _ in 0..1_000 {
        h.call_soon(|| {}).cancel();
    }
    run_once(&el);
    loop_time_passes(&el, &clock);
    let baseline = thread_usage();
    // The ready queue holds the cancelled entries until their turn, and the cancelled-id set
    // holds their ids.
    let handles: Vec<CallbackHandle> = (0..MILLION).map(|_| h.call_soon(|| {})).collect();
    for t in &handles {
        t.cancel();
    }
    drop(handles);
    let peak = thread_usage();
    run_once(&el); // they leave the queue, unrun
    loop_time_passes(&el, &clock);
    assert_back_near(
        "a million call_soon callbacks cancelled",
        baseline,
        peak,
        32 << 20,
    );
}

#[test]
fn a_million_callbacks_run_in_one_batch_give_the_queue_back() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    run_once(&el);
    loop_time_passes(&el, &clock);
    let baseline = thread_usage();
    let ran = Rc::new(Cell::new(0u32));
    for _ in 0..MILLION {
        let r = ran.clone();
        h.call_soon(move || r.set(r.get() + 1));
    }
    let peak = thread_usage();
    run_once(&el);
    assert_eq!(ran.get() as usize, MILLION);
    loop_time_passes(&el, &clock);
    assert_back_near("a million callbacks run", baseline, peak, 32 << 20);
}

#[test]
fn a_million_cancelled_tasks_give_their_memory_back() {
    let _watchdog = common::watchdog!();
    let (el, clock) = manual();
    let h = el.handle();
    for _ in 0..1_000 {
        h.spawn(std::future::pending::<()>()).cancel();
    }
    run_once(&el);
    loop_time_passes(&el, &clock);
    let baseline = thread_usage();
    let tasks: Vec<_> = (0..MILLION)
        .map(|_| h.spawn(std::future::pending::<()>()))
        .collect();
    run_once(&el); // each polled once, now waiting
    let peak = thread_usage();
    for t in &tasks {
        t.cancel();
    }
    drop(tasks);
    run_once(&el); // the futures are dropped, the tasks retired
    loop_time_passes(&el, &clock);
    assert!(format!("{el:?}").contains("tasks: 0"), "{el:?}");
    assert_back_near("a million tasks cancelled", baseline, peak, 64 << 20);
}

/// What an idle task costs, measured as `benches/versus.rs`'s `memory_per_task` row measures it
/// (BENCHMARKS.md): 10,000 tasks spawned on a fresh loop and polled once, their handles kept in
/// a vector made beforehand. The task cell (64 bytes for a zero-sized future), its registry
/// slot, and its place in the ready queue, which it held until its poll and whose capacity the
/// loop keeps until it next gives memory back: 8 bytes a task, not the 32 of a queue entry.
#[test]
fn an_idle_task_costs_at_most_112_bytes() {
    let _watchdog = common::watchdog!();
    const N: usize = 10_000;
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let mut tasks = Vec::with_capacity(N);
    let ((), used) = counting::measure(|| {
        for _ in 0..N {
            tasks.push(h.spawn(std::future::pending::<()>()));
        }
        run_once(&el);
    });
    let per_task = used.bytes as f64 / N as f64;
    // 0.8 × tokio's 141 bytes (tokio 1.x aligns its task cells to 128 bytes on x86-64).
    assert!(per_task <= 112.0, "{per_task} bytes per idle task");
    assert!(per_task >= 64.0, "{per_task} bytes: the cell alone is 64");
    for t in &tasks {
        t.cancel();
    }
    run_once(&el);
}

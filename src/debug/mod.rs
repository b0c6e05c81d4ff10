//! Debug mode: time every callback and poll, name the slow ones, and catch a loop that is
//! blocked *while* it is blocked.
//!
//! ```
//! use std::time::Duration;
//!
//! let el = solo::EventLoop::builder()
//!     .debug(true) // or SOLO_DEBUG=1 in the environment
//!     .slow_callback_duration(Duration::from_millis(10))
//!     .on_slow(|report| eprintln!("{report}"))
//!     .build()
//!     .unwrap();
//! let h = el.handle();
//! h.call_soon(|| std::thread::sleep(Duration::from_millis(20))); // reported as slow
//! h.stop();
//! el.run_forever().unwrap();
//! assert_eq!(el.stats().unwrap().callbacks, 1);
//! ```
//!
//! # The idea
//!
//! Every piece of user code the loop runs goes through one function,
//! the loop's `run_entry`, and every piece was scheduled by a `#[track_caller]` method, so the loop
//! always knows *where* the code it is running came from (a `&'static Location`, free to keep).
//! In debug mode the loop also reads the clock around each call and:
//!
//! * reports a callback or poll that ran over `slow_callback_duration` (default 100 ms), with its
//!   kind, its site, its task name or closure type, and how long it took;
//! * reports an *iteration* whose callbacks add up past the threshold, with its top three;
//! * aggregates time per scheduling site (the [profile](crate::EventLoop::profile)) and loop
//!   health figures ([`Stats`]);
//! * keeps a table of live tasks ([`TaskSnapshot`]) behind a mutex, so other threads can read it.
//!
//! # The watchdog
//!
//! A callback that never returns cannot be reported after it returns. Debug mode therefore starts
//! one thread, the watchdog, and the loop *publishes* what it is running in a slot of atomics:
//! a sequence number, the start time, the kind, the site and the task id. The loop writes the
//! slot before each call and clears the start time after; the watchdog reads it without locks
//! (the sequence number, read before and after, tells it whether it saw one consistent call). If
//! one call has been running longer than the blocked threshold (default 1 s), the watchdog
//! reports it, with the task table, and again each time the duration doubles. A loop idle in
//! `epoll_wait` has no call published, so the watchdog stays quiet.
//!
//! No thread is started when debug mode is off.
//!
//! # Cost
//!
//! With debug mode off, the hot paths test one `Option` that is `None`. With it on, each call
//! costs two clock reads, a few relaxed atomic stores and a hash-map update (see
//! BENCHMARKS.md for the measured figure).
//!
//! # The rooms
//!
//! | file | what it holds |
//! | --- | --- |
//! | `mod.rs` | [`Debug`], the loop-thread side: timing a call, the slow-callback and slow-iteration reports |
//! | `report.rs` | [`Report`] and how it reads on screen |
//! | `stats.rs` | [`Stats`]: loop health figures |
//! | `histogram.rs` | [`Histogram`]: log-bucketed latencies the loop writes without a lock |
//! | `profile.rs` | [`SiteProfile`]: time by scheduling site |
//! | `tasks.rs` | [`TaskSnapshot`]: the task table |
//! | `shared.rs` | `DebugShared`, what other threads see: the watchdog's slot, the task table, the hook |
//! | `watchdog.rs` | the watchdog thread |
//! | `trace.rs` | traces: events recorded on demand, written as Chrome trace-event JSON |
//!
//! The loop reaches all of this through one interface, its probe (`event_loop/probe.rs`).

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::callback::CallbackKind;
use crate::executor::PoolFigures;

mod histogram;
mod profile;
mod report;
mod shared;
mod stats;
mod tasks;
pub(crate) mod trace;
mod watchdog;

pub use histogram::Histogram;
pub use profile::{format_profile, SiteProfile};
pub use report::{Contributor, Report, ReportKind};
pub(crate) use shared::DebugShared;
pub use stats::{Slowest, Stats};
pub use tasks::{format_task_table, AwaitPoint, TaskSnapshot, TaskState};

use profile::SiteCell;
use shared::lock;
use stats::Figures;

/// The default `slow_callback_duration`, as asyncio's.
pub const DEFAULT_SLOW_CALLBACK: Duration = Duration::from_millis(100);
/// The default time after which the watchdog reports a blocked loop.
pub const DEFAULT_BLOCKED_THRESHOLD: Duration = Duration::from_secs(1);

/// Whether `SOLO_DEBUG` asks for debug mode (`1`, `true`, `yes`, `on`).
pub(crate) fn env_debug() -> bool {
    std::env::var("SOLO_DEBUG").is_ok_and(|v| {
        matches!(
            v.trim().to_ascii_lowercase().as_str(),
            "1" | "true" | "yes" | "on"
        )
    })
}

/// `SOLO_TRACE_ON_BLOCK=DIR`: where the watchdog writes the trace of a blocked loop.
pub(crate) fn env_trace_on_block() -> Option<std::path::PathBuf> {
    std::env::var_os("SOLO_TRACE_ON_BLOCK")
        .filter(|v| !v.is_empty())
        .map(std::path::PathBuf::from)
}

/// Where reports go.
pub(crate) type Hook = Arc<dyn Fn(&Report) + Send + Sync>;
/// Reads the executor pool's figures (queued, busy, waiting, rejected, abandoned).
pub(crate) type ExecutorProbe = Arc<dyn Fn() -> PoolFigures + Send + Sync>;

/// The current iteration's running totals, for slow-iteration reports.
#[derive(Default)]
struct IterAcc {
    sum_ns: u64,
    max_ns: u64,
    top: Vec<(
        u64,
        CallbackKind,
        &'static Location<'static>,
        Option<String>,
    )>,
}

/// Debug settings from the builder.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) slow: Duration,
    pub(crate) blocked: Duration,
    pub(crate) hook: Option<Hook>,
    /// Where the watchdog writes a trace of the seconds before a block (`SOLO_TRACE_ON_BLOCK`).
    pub(crate) trace_on_block: Option<std::path::PathBuf>,
}

/// The loop-thread side of debug mode.
pub(crate) struct Debug {
    shared: Arc<DebugShared>,
    slow_ns: Cell<u64>,
    iter: RefCell<IterAcc>,
    /// When the current iteration began (loop ns), and how much of it was spent waiting.
    iter_start: Cell<u64>,
    iter_poll_ns: Cell<u64>,
    /// This loop's index into `DebugShared::sites`.
    sites: RefCell<HashMap<&'static Location<'static>, Arc<SiteCell>>>,
    /// Enqueue times, parallel to the ready queue: every push records one, every pop takes
    /// one, so the front is the time the entry now leaving the queue entered it.
    ready_times: RefCell<VecDeque<u64>>,
    /// The watchdog slot's sequence number, as last published.
    seq: Cell<u64>,
    watchdog: RefCell<Option<std::thread::JoinHandle<()>>>,
}

/// What is about to run, for timing and reports.
#[derive(Clone, Copy)]
pub(crate) struct What {
    pub(crate) kind: CallbackKind,
    pub(crate) site: &'static Location<'static>,
    pub(crate) type_name: Option<&'static str>,
    pub(crate) task: Option<u32>,
}

impl Debug {
    pub(crate) fn new(cfg: Config) -> Debug {
        let shared = Arc::new(DebugShared {
            seq: AtomicU64::new(0),
            started: AtomicU64::new(0),
            kind: AtomicU8::new(0),
            site: AtomicPtr::new(std::ptr::null_mut()),
            task: AtomicU64::new(u64::MAX),
            origin: Instant::now(),
            blocked_ns: AtomicU64::new(cfg.blocked.as_nanos() as u64),
            hook: RwLock::new(cfg.hook),
            tasks: Mutex::new(HashMap::new()),
            next_task_id: AtomicU64::new(1),
            figures: Figures::new(),
            sites: Mutex::new(Vec::new()),
            trace: trace::Tracer::new(cfg.trace_on_block),
            stop: Mutex::new(false),
            wake: Condvar::new(),
            executor: RwLock::new(None),
            loop_thread: Mutex::new(0),
        });
        let wd = shared.clone();
        let watchdog = std::thread::Builder::new()
            .name("solo-watchdog".into())
            .spawn(move || watchdog::watchdog(wd))
            .ok();
        Debug {
            shared,
            slow_ns: Cell::new(cfg.slow.as_nanos() as u64),
            iter: Default::default(),
            iter_start: Cell::new(0),
            iter_poll_ns: Cell::new(0),
            sites: Default::default(),
            ready_times: Default::default(),
            seq: Cell::new(0),
            watchdog: RefCell::new(watchdog),
        }
    }

    pub(crate) fn set_slow(&self, d: Duration) {
        self.slow_ns.set(d.as_nanos() as u64);
    }

    pub(crate) fn set_blocked(&self, d: Duration) {
        self.shared
            .blocked_ns
            .store(d.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Records a finished call that took `ns`; returns a report if it was slow.
    #[cold]
    #[inline(never)]
    pub(crate) fn record(&self, w: &What, ns: u64, name: impl FnOnce() -> Option<String>) {
        self.shared.figures.add_call(w.kind, w.site, ns);
        self.add_to_site(w.kind, w.site, ns);
        let slow = self.slow_ns.get();
        let mut iter = self.iter.borrow_mut();
        iter.sum_ns += ns;
        iter.max_ns = iter.max_ns.max(ns);
        let needs_name = ns > slow || iter.top.len() < 3 || iter.top.iter().any(|t| t.0 < ns);
        let name = if needs_name { name() } else { None };
        if iter.top.len() < 3 || iter.top.iter().any(|t| t.0 < ns) {
            iter.top.push((ns, w.kind, w.site, name.clone()));
            iter.top.sort_by_key(|t| std::cmp::Reverse(t.0));
            iter.top.truncate(3);
        }
        drop(iter);
        if ns > slow {
            self.shared.emit(&Report {
                kind: ReportKind::SlowCallback,
                callback: w.kind,
                site: w.site,
                name,
                type_name: w.type_name,
                duration: Duration::from_nanos(ns),
                top: Vec::new(),
                task_table: None,
                backtrace: None,
                trace: None,
            });
        }
    }

    /// Starts an iteration's accounting at loop time `now`.
    #[cold]
    #[inline(never)]
    pub(crate) fn begin_iteration(&self, now: u64) {
        let mut it = self.iter.borrow_mut();
        it.sum_ns = 0;
        it.max_ns = 0;
        it.top.clear();
        self.iter_start.set(now);
        self.iter_poll_ns.set(0);
    }

    /// Ends an iteration: reports it if its callbacks added up past the threshold while none of
    /// them alone did.
    #[cold]
    #[inline(never)]
    pub(crate) fn end_iteration(&self, now: u64) {
        let work = now
            .saturating_sub(self.iter_start.get())
            .saturating_sub(self.iter_poll_ns.get());
        self.shared.figures.iteration_time.record(work);
        let slow = self.slow_ns.get();
        let it = self.iter.borrow();
        if it.sum_ns > slow && it.max_ns <= slow {
            let first = &it.top[0];
            let report = Report {
                kind: ReportKind::SlowIteration,
                callback: first.1,
                site: first.2,
                name: first.3.clone(),
                type_name: None,
                duration: Duration::from_nanos(it.sum_ns),
                top: it
                    .top
                    .iter()
                    .map(|t| Contributor {
                        kind: t.1,
                        site: t.2,
                        name: t.3.clone(),
                        duration: Duration::from_nanos(t.0),
                    })
                    .collect(),
                task_table: None,
                backtrace: None,
                trace: None,
            };
            drop(it);
            self.shared.emit(&report);
        }
    }

    /// Stops the watchdog and prints the profile (called when the loop is dropped).
    pub(crate) fn shutdown(&self) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.watchdog.borrow_mut().take() {
            let _ = t.join();
        }
    }

    /// The half other threads see.
    pub(crate) fn shared(&self) -> Arc<DebugShared> {
        self.shared.clone()
    }

    /// Records the thread now running the loop (0: none), for the watchdog's stack capture.
    pub(crate) fn set_loop_thread(&self, id: u64) {
        self.shared.set_loop_thread(id);
    }

    /// Replaces where reports go.
    pub(crate) fn set_hook(&self, hook: Option<Hook>) {
        self.shared.set_hook(hook);
    }

    /// Tells the stats how to read the `run_in_executor` pool's load.
    pub(crate) fn set_executor_probe(&self, probe: ExecutorProbe) {
        self.shared.set_executor_probe(probe);
    }

    /// An entry joined the ready queue at loop time `now`.
    #[cold]
    #[inline(never)]
    pub(crate) fn enqueued(&self, now: u64) {
        self.ready_times.borrow_mut().push_back(now);
    }

    /// The oldest entry left the ready queue at loop time `now` (`io`: an I/O callback).
    #[cold]
    #[inline(never)]
    pub(crate) fn dequeued(&self, now: u64, io: bool) {
        let queued = self.ready_times.borrow_mut().pop_front();
        if let Some(t) = queued {
            self.record_queue_delay(now.saturating_sub(t), io);
        }
    }

    /// Gives back what a burst left in the queue-time records (see `reclaim.rs`).
    pub(crate) fn release_memory(&self) {
        crate::reclaim::deque(&mut self.ready_times.borrow_mut());
    }

    /// The ready queue was emptied without running it (the loop is closing).
    pub(crate) fn clear_queue_times(&self) {
        self.ready_times.borrow_mut().clear();
    }
}

impl fmt::Debug for Debug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Debug")
            .field("slow_ns", &self.slow_ns.get())
            .finish_non_exhaustive()
    }
}

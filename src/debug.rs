//! Debug mode: time every callback and poll, name the slow ones, and catch a loop that is
//! blocked *while* it is blocked.
//!
//! # The idea
//!
//! Every piece of user code the loop runs goes through one function,
//! `Inner::run_entry`, and every piece was scheduled by a `#[track_caller]` method, so the loop
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

use std::collections::HashMap;
use std::fmt;
use std::panic::Location;
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use crate::CallbackKind;

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

/// What a [`Report`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportKind {
    /// One callback or poll ran longer than `slow_callback_duration`.
    SlowCallback,
    /// One iteration's callbacks together ran longer than `slow_callback_duration`.
    SlowIteration,
    /// The watchdog found the loop stuck in one callback or poll (it has not returned yet).
    Blocked,
    /// A task is pending and no waker for it exists: it can never be woken again.
    LostWaker,
    /// A task was still pending when its loop was dropped.
    PendingAtDrop,
    /// A task panicked and its `JoinHandle` was dropped without looking at the error.
    UnretrievedPanic,
}

/// One contributor to a slow iteration.
#[derive(Clone, Debug)]
pub struct Contributor {
    /// What ran.
    pub kind: CallbackKind,
    /// Where it was scheduled or spawned.
    pub site: &'static Location<'static>,
    /// The task's name, if it was a named task.
    pub name: Option<String>,
    /// How long it ran.
    pub duration: Duration,
}

/// A debug-mode report, handed to the [`on_slow`](crate::Builder::on_slow) hook (or printed to
/// stderr by default). Its `Display` is the one-line message.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    /// What the report is about.
    pub kind: ReportKind,
    /// The kind of callback concerned.
    pub callback: CallbackKind,
    /// Where it was scheduled, registered or spawned.
    pub site: &'static Location<'static>,
    /// The task's name (named tasks), if any.
    pub name: Option<String>,
    /// The closure's or future's type, where known.
    pub type_name: Option<&'static str>,
    /// How long it ran (for `Blocked`: so far; for `SlowIteration`: the whole iteration).
    pub duration: Duration,
    /// For `SlowIteration`: the three callbacks that took longest.
    pub top: Vec<Contributor>,
    /// For `Blocked`: the task table at that moment, as printed by
    /// [`format_task_table`].
    pub task_table: Option<String>,
    /// For `Blocked`: the loop thread's stack at that moment, innermost frame first (Linux).
    pub backtrace: Option<String>,
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn describe(kind: CallbackKind, name: Option<&str>, site: &Location<'_>) -> String {
    let verb = match kind {
        CallbackKind::Task => "spawned",
        CallbackKind::Reader | CallbackKind::Writer | CallbackKind::Signal => "registered",
        CallbackKind::Main => "run",
        _ => "scheduled",
    };
    match name {
        Some(n) => format!("{kind} {n:?} ({verb} at {site})"),
        None => format!("{kind} ({verb} at {site})"),
    }
}

const ADVICE: &str = "move blocking work to run_in_executor";

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = describe(self.callback, self.name.as_deref(), self.site);
        match self.kind {
            ReportKind::SlowCallback => {
                let poll = if matches!(self.callback, CallbackKind::Task | CallbackKind::Main) {
                    " in one poll"
                } else {
                    ""
                };
                write!(
                    f,
                    "solo: slow {who} took {}{poll}; {ADVICE}",
                    secs(self.duration)
                )?;
                // Without a task name, the closure's or future's type is the best identity.
                if let (None, Some(t)) = (&self.name, self.type_name) {
                    write!(f, " [{t}]")?;
                }
                Ok(())
            }
            ReportKind::SlowIteration => {
                write!(f, "solo: slow iteration took {}; top:", secs(self.duration))?;
                for (i, c) in self.top.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    write!(
                        f,
                        "{sep}{} {}",
                        describe(c.kind, c.name.as_deref(), c.site),
                        secs(c.duration)
                    )?;
                }
                write!(f, "; {ADVICE}")
            }
            ReportKind::Blocked => {
                write!(
                    f,
                    "solo: loop blocked for {} in {who}, still running; {ADVICE}",
                    secs(self.duration)
                )?;
                if let Some(t) = &self.task_table {
                    write!(f, "\n{t}")?;
                }
                if let Some(b) = &self.backtrace {
                    write!(f, "  loop thread stack:\n{b}")?;
                }
                Ok(())
            }
            ReportKind::LostWaker => write!(
                f,
                "solo: {who} is pending but no waker for it is left: it can never run again"
            ),
            ReportKind::PendingAtDrop => {
                write!(f, "solo: {who} was still pending when its loop was dropped")
            }
            ReportKind::UnretrievedPanic => write!(
                f,
                "solo: {who} panicked and nobody retrieved the error (its JoinHandle was dropped)"
            ),
        }
    }
}

/// A task's state in the task table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// In the ready queue, waiting for its turn.
    Scheduled,
    /// Pending, waiting to be woken.
    Waiting,
    /// Being polled right now.
    Running,
}

/// One row of the task table (like aiomonitor's `ps`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TaskSnapshot {
    /// A unique id (spawn order).
    pub id: u64,
    /// Its name, for named tasks.
    pub name: Option<String>,
    /// Where it was spawned.
    pub site: &'static Location<'static>,
    /// Scheduled, waiting or running.
    pub state: TaskState,
    /// How many times it was polled.
    pub polls: u64,
    /// Total time spent in its polls (loop clock).
    pub busy: Duration,
    /// Time since it was spawned (real time).
    pub age: Duration,
}

/// Prints a task table.
pub fn format_task_table(tasks: &[TaskSnapshot]) -> String {
    let mut s = format!(
        "{:>6}  {:<10} {:>7} {:>10} {:>9}  {:<16} spawned at\n",
        "id", "state", "polls", "busy", "age", "name"
    );
    for t in tasks {
        s.push_str(&format!(
            "{:>6}  {:<10} {:>7} {:>10} {:>9}  {:<16} {}\n",
            t.id,
            format!("{:?}", t.state).to_lowercase(),
            t.polls,
            format!("{:.3}s", t.busy.as_secs_f64()),
            format!("{:.1}s", t.age.as_secs_f64()),
            t.name.as_deref().unwrap_or("-"),
            t.site
        ));
    }
    s
}

/// Aggregated time for one scheduling or spawn site.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SiteProfile {
    /// The site.
    pub site: &'static Location<'static>,
    /// What was scheduled there (the last kind seen).
    pub kind: CallbackKind,
    /// How many calls or polls.
    pub count: u64,
    /// Their total time.
    pub total: Duration,
    /// The longest one.
    pub max: Duration,
}

/// Prints a profile, sorted as given (by total time from [`EventLoop::profile`]).
///
/// [`EventLoop::profile`]: crate::EventLoop::profile
pub fn format_profile(rows: &[SiteProfile]) -> String {
    let mut s = format!(
        "{:>10} {:>10} {:>10}  {:<20} site\n",
        "total", "count", "max", "kind"
    );
    for r in rows {
        s.push_str(&format!(
            "{:>10} {:>10} {:>10}  {:<20} {}\n",
            format!("{:.3}s", r.total.as_secs_f64()),
            r.count,
            format!("{:.3}s", r.max.as_secs_f64()),
            r.kind.to_string(),
            r.site
        ));
    }
    s
}

/// The slowest single callback or poll so far.
#[derive(Clone, Debug)]
pub struct Slowest {
    /// What it was.
    pub kind: CallbackKind,
    /// Where it was scheduled or spawned.
    pub site: &'static Location<'static>,
    /// How long it took.
    pub duration: Duration,
}

/// Loop health figures, from [`EventLoop::stats`](crate::EventLoop::stats) in debug mode.
/// Durations are on the loop clock.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Stats {
    /// Loop iterations run.
    pub iterations: u64,
    /// Callbacks run (soon, timer, reader, writer, threadsafe, signal).
    pub callbacks: u64,
    /// Task polls (including the `run_until_complete` future).
    pub task_polls: u64,
    /// Time spent running callbacks and polls.
    pub busy: Duration,
    /// Time spent inside the backend's poll (idle, collecting events, or spinning).
    pub in_poll: Duration,
    /// The slowest callback or poll.
    pub slowest: Option<Slowest>,
    /// Timers fired.
    pub timers_fired: u64,
    /// Timer lag (deadline to run): the worst.
    pub timer_lag_max: Duration,
    /// Timer lag: the mean.
    pub timer_lag_mean: Duration,
    /// Wake-to-run delay of callbacks and tasks in the ready queue: the worst.
    pub queue_delay_max: Duration,
    /// Wake-to-run delay: the mean.
    pub queue_delay_mean: Duration,
    /// Readiness-to-dispatch time of reader/writer callbacks: the worst.
    pub io_dispatch_max: Duration,
    /// Readiness-to-dispatch: the mean.
    pub io_dispatch_mean: Duration,
    /// Jobs waiting in the `run_in_executor` pool's queue.
    pub executor_queued: usize,
    /// Pool threads running a job right now.
    pub executor_busy: usize,
    /// Waits in the backend that were allowed to block (after spinning, if the loop spins):
    /// the loop went to sleep there unless an event was already waiting.
    pub sleeps: u64,
    /// Waits that spun first ([`Builder::spin_before_sleep`](crate::Builder::spin_before_sleep)).
    pub spins: u64,
    /// Waits that found events while spinning, so did not sleep.
    pub spin_hits: u64,
}

impl Stats {
    /// Busy time over busy plus poll time: 1.0 means the loop never waited for I/O.
    pub fn busy_ratio(&self) -> f64 {
        let total = self.busy + self.in_poll;
        if total.is_zero() {
            0.0
        } else {
            self.busy.as_secs_f64() / total.as_secs_f64()
        }
    }
}

/// Where reports go.
pub(crate) type Hook = Arc<dyn Fn(&Report) + Send + Sync>;
/// Reads the executor pool's (queued, busy) figures.
pub(crate) type ExecutorProbe = Arc<dyn Fn() -> (usize, usize) + Send + Sync>;

struct TaskInfo {
    id: u64,
    name: Option<String>,
    site: &'static Location<'static>,
    state: TaskState,
    polls: u64,
    busy_ns: u64,
    born: Instant,
    lost_reported: bool,
}

/// The debug state other threads can see: the watchdog's slot, the task table, the hook.
pub(crate) struct DebugShared {
    seq: AtomicU64,
    /// Real nanoseconds since `origin` at which the current call started; 0 when none runs.
    started: AtomicU64,
    kind: AtomicU8,
    site: AtomicPtr<Location<'static>>,
    /// Task slot of the running poll, or `u64::MAX`.
    task: AtomicU64,
    origin: Instant,
    blocked_ns: AtomicU64,
    hook: RwLock<Option<Hook>>,
    tasks: Mutex<HashMap<u32, TaskInfo>>,
    stop: Mutex<bool>,
    wake: Condvar,
    executor: RwLock<Option<ExecutorProbe>>,
    /// The thread running the loop (a pthread id), 0 when it is not running. A lock rather
    /// than an atomic: the stack capture holds it while it signals the thread (see `stack.rs`).
    loop_thread: Mutex<u64>,
}

const KINDS: [CallbackKind; 8] = [
    CallbackKind::Soon,
    CallbackKind::Timer,
    CallbackKind::Reader,
    CallbackKind::Writer,
    CallbackKind::Remote,
    CallbackKind::Task,
    CallbackKind::Main,
    CallbackKind::Signal,
];

fn kind_index(k: CallbackKind) -> u8 {
    KINDS.iter().position(|x| *x == k).unwrap_or(0) as u8
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DebugShared {
    /// Records the thread now running the loop (0: none), for the watchdog's stack capture.
    pub(crate) fn set_loop_thread(&self, id: u64) {
        *lock(&self.loop_thread) = id;
    }

    fn real_now(&self) -> u64 {
        (self.origin.elapsed().as_nanos() as u64).max(1)
    }

    pub(crate) fn emit(&self, report: &Report) {
        let hook = self.hook.read().unwrap_or_else(|e| e.into_inner()).clone();
        match hook {
            Some(h) => h(report),
            None => eprintln!("{report}"),
        }
    }

    pub(crate) fn set_hook(&self, hook: Option<Hook>) {
        *self.hook.write().unwrap_or_else(|e| e.into_inner()) = hook;
    }

    pub(crate) fn set_executor_probe(&self, probe: ExecutorProbe) {
        *self.executor.write().unwrap_or_else(|e| e.into_inner()) = Some(probe);
    }

    pub(crate) fn executor_figures(&self) -> (usize, usize) {
        self.executor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or((0, 0), |p| p())
    }

    /// The task table, readable from any thread.
    pub(crate) fn snapshot(&self) -> Vec<TaskSnapshot> {
        let now = Instant::now();
        let mut v: Vec<TaskSnapshot> = lock(&self.tasks)
            .values()
            .map(|t| TaskSnapshot {
                id: t.id,
                name: t.name.clone(),
                site: t.site,
                state: t.state,
                polls: t.polls,
                busy: Duration::from_nanos(t.busy_ns),
                age: now.saturating_duration_since(t.born),
            })
            .collect();
        v.sort_by_key(|t| t.id);
        v
    }

    /// The call published in the slot, if one consistent call has been running since `started`.
    fn read_slot(&self) -> Option<(u64, u64, CallbackKind, &'static Location<'static>, u64)> {
        let s1 = self.seq.load(Ordering::Acquire);
        let started = self.started.load(Ordering::Acquire);
        let kind = KINDS[self.kind.load(Ordering::Relaxed) as usize % KINDS.len()];
        let site = self.site.load(Ordering::Relaxed);
        let task = self.task.load(Ordering::Relaxed);
        let s2 = self.seq.load(Ordering::Acquire);
        if s1 != s2 || started == 0 || site.is_null() {
            return None;
        }
        // SAFETY: the loop only stores pointers obtained from `&'static Location<'static>`
        // (`publish` takes one), so the pointer is valid for 'static and never written through.
        let site: &'static Location<'static> = unsafe { &*site };
        Some((s1, started, kind, site, task))
    }
}

/// Per-site aggregate.
struct SiteAcc {
    kind: CallbackKind,
    count: u64,
    total_ns: u64,
    max_ns: u64,
}

#[derive(Default)]
struct Acc {
    iterations: u64,
    callbacks: u64,
    task_polls: u64,
    busy_ns: u64,
    poll_ns: u64,
    slowest: Option<(CallbackKind, &'static Location<'static>, u64)>,
    timers: u64,
    lag_sum: u64,
    lag_max: u64,
    queued: u64,
    queue_sum: u64,
    queue_max: u64,
    io: u64,
    io_sum: u64,
    io_max: u64,
}

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
}

/// The loop-thread side of debug mode.
pub(crate) struct Debug {
    pub(crate) shared: Arc<DebugShared>,
    slow_ns: std::cell::Cell<u64>,
    acc: std::cell::RefCell<Acc>,
    iter: std::cell::RefCell<IterAcc>,
    sites: std::cell::RefCell<HashMap<&'static Location<'static>, SiteAcc>>,
    /// Enqueue times, parallel to the ready queue.
    pub(crate) ready_times: std::cell::RefCell<std::collections::VecDeque<u64>>,
    next_task_id: std::cell::Cell<u64>,
    seq: std::cell::Cell<u64>,
    watchdog: std::cell::RefCell<Option<std::thread::JoinHandle<()>>>,
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
            stop: Mutex::new(false),
            wake: Condvar::new(),
            executor: RwLock::new(None),
            loop_thread: Mutex::new(0),
        });
        let wd = shared.clone();
        let watchdog = std::thread::Builder::new()
            .name("solo-watchdog".into())
            .spawn(move || watchdog(wd))
            .ok();
        Debug {
            shared,
            slow_ns: std::cell::Cell::new(cfg.slow.as_nanos() as u64),
            acc: Default::default(),
            iter: Default::default(),
            sites: Default::default(),
            ready_times: Default::default(),
            next_task_id: std::cell::Cell::new(1),
            seq: std::cell::Cell::new(0),
            watchdog: std::cell::RefCell::new(watchdog),
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

    /// Publishes the call about to run, for the watchdog.
    #[cold]
    #[inline(never)]
    pub(crate) fn publish(&self, w: &What) {
        let s = self.seq.get() + 1;
        self.seq.set(s);
        let sh = &self.shared;
        sh.started.store(0, Ordering::Release);
        sh.seq.store(s, Ordering::Release);
        sh.kind.store(kind_index(w.kind), Ordering::Relaxed);
        sh.site
            .store(w.site as *const _ as *mut _, Ordering::Relaxed);
        sh.task
            .store(w.task.map_or(u64::MAX, u64::from), Ordering::Relaxed);
        sh.started.store(sh.real_now(), Ordering::Release);
    }

    /// The call returned.
    #[cold]
    #[inline(never)]
    pub(crate) fn unpublish(&self) {
        self.shared.started.store(0, Ordering::Release);
    }

    /// Records a finished call that took `ns`; returns a report if it was slow.
    #[cold]
    #[inline(never)]
    pub(crate) fn record(&self, w: &What, ns: u64, name: impl FnOnce() -> Option<String>) {
        let mut acc = self.acc.borrow_mut();
        if matches!(w.kind, CallbackKind::Task | CallbackKind::Main) {
            acc.task_polls += 1;
        } else {
            acc.callbacks += 1;
        }
        acc.busy_ns += ns;
        if acc.slowest.is_none_or(|(_, _, m)| ns > m) {
            acc.slowest = Some((w.kind, w.site, ns));
        }
        drop(acc);
        {
            let mut sites = self.sites.borrow_mut();
            let e = sites.entry(w.site).or_insert(SiteAcc {
                kind: w.kind,
                count: 0,
                total_ns: 0,
                max_ns: 0,
            });
            e.kind = w.kind;
            e.count += 1;
            e.total_ns += ns;
            e.max_ns = e.max_ns.max(ns);
        }
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
            });
        }
    }

    /// Starts an iteration's accounting.
    #[cold]
    #[inline(never)]
    pub(crate) fn begin_iteration(&self) {
        let mut it = self.iter.borrow_mut();
        it.sum_ns = 0;
        it.max_ns = 0;
        it.top.clear();
        self.acc.borrow_mut().iterations += 1;
    }

    /// Ends an iteration: reports it if its callbacks added up past the threshold while none of
    /// them alone did.
    #[cold]
    #[inline(never)]
    pub(crate) fn end_iteration(&self) {
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
            };
            drop(it);
            self.shared.emit(&report);
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn record_poll_time(&self, ns: u64) {
        self.acc.borrow_mut().poll_ns += ns;
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn record_timer_lag(&self, ns: u64) {
        let mut a = self.acc.borrow_mut();
        a.timers += 1;
        a.lag_sum += ns;
        a.lag_max = a.lag_max.max(ns);
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn record_queue_delay(&self, ns: u64, io: bool) {
        let mut a = self.acc.borrow_mut();
        if io {
            a.io += 1;
            a.io_sum += ns;
            a.io_max = a.io_max.max(ns);
        } else {
            a.queued += 1;
            a.queue_sum += ns;
            a.queue_max = a.queue_max.max(ns);
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        let a = self.acc.borrow();
        let mean = |sum: u64, n: u64| Duration::from_nanos(sum.checked_div(n).unwrap_or(0));
        let (executor_queued, executor_busy) = self.shared.executor_figures();
        Stats {
            iterations: a.iterations,
            callbacks: a.callbacks,
            task_polls: a.task_polls,
            busy: Duration::from_nanos(a.busy_ns),
            in_poll: Duration::from_nanos(a.poll_ns),
            slowest: a.slowest.map(|(kind, site, ns)| Slowest {
                kind,
                site,
                duration: Duration::from_nanos(ns),
            }),
            timers_fired: a.timers,
            timer_lag_max: Duration::from_nanos(a.lag_max),
            timer_lag_mean: mean(a.lag_sum, a.timers),
            queue_delay_max: Duration::from_nanos(a.queue_max),
            queue_delay_mean: mean(a.queue_sum, a.queued),
            io_dispatch_max: Duration::from_nanos(a.io_max),
            io_dispatch_mean: mean(a.io_sum, a.io),
            executor_queued,
            executor_busy,
            sleeps: 0,
            spins: 0,
            spin_hits: 0,
        }
    }

    pub(crate) fn profile(&self) -> Vec<SiteProfile> {
        let mut v: Vec<SiteProfile> = self
            .sites
            .borrow()
            .iter()
            .map(|(site, a)| SiteProfile {
                site,
                kind: a.kind,
                count: a.count,
                total: Duration::from_nanos(a.total_ns),
                max: Duration::from_nanos(a.max_ns),
            })
            .collect();
        v.sort_by(|a, b| b.total.cmp(&a.total).then(b.count.cmp(&a.count)));
        v
    }

    // ---- the task table ----

    #[cold]
    #[inline(never)]
    pub(crate) fn task_spawned(
        &self,
        slot: u32,
        site: &'static Location<'static>,
        name: Option<&str>,
    ) {
        let id = self.next_task_id.get();
        self.next_task_id.set(id + 1);
        lock(&self.shared.tasks).insert(
            slot,
            TaskInfo {
                id,
                name: name.map(str::to_owned),
                site,
                state: TaskState::Scheduled,
                polls: 0,
                busy_ns: 0,
                born: Instant::now(),
                lost_reported: false,
            },
        );
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn task_state(&self, slot: u32, state: TaskState) {
        if let Some(t) = lock(&self.shared.tasks).get_mut(&slot) {
            t.state = state;
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn task_polled(&self, slot: u32, ns: u64, state: TaskState) {
        if let Some(t) = lock(&self.shared.tasks).get_mut(&slot) {
            t.polls += 1;
            t.busy_ns += ns;
            t.state = state;
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn task_gone(&self, slot: u32) {
        lock(&self.shared.tasks).remove(&slot);
    }

    /// Reports a lost waker once per task.
    pub(crate) fn lost_waker(&self, slot: u32, site: &'static Location<'static>) {
        let name = {
            let mut tasks = lock(&self.shared.tasks);
            match tasks.get_mut(&slot) {
                Some(t) if !t.lost_reported => {
                    t.lost_reported = true;
                    t.name.clone()
                }
                _ => return,
            }
        };
        self.shared.emit(&lint(ReportKind::LostWaker, site, name));
    }

    pub(crate) fn task_name(&self, slot: u32) -> Option<String> {
        lock(&self.shared.tasks)
            .get(&slot)
            .and_then(|t| t.name.clone())
    }

    /// Stops the watchdog and prints the profile (called when the loop is dropped).
    pub(crate) fn shutdown(&self) {
        *lock(&self.shared.stop) = true;
        self.shared.wake.notify_all();
        if let Some(t) = self.watchdog.borrow_mut().take() {
            let _ = t.join();
        }
    }
}

pub(crate) fn lint(
    kind: ReportKind,
    site: &'static Location<'static>,
    name: Option<String>,
) -> Report {
    Report {
        kind,
        callback: CallbackKind::Task,
        site,
        name,
        type_name: None,
        duration: Duration::ZERO,
        top: Vec::new(),
        task_table: None,
        backtrace: None,
    }
}

/// The watchdog thread: polls the slot and reports a call stuck past the threshold, again each
/// time its duration doubles.
fn watchdog(sh: Arc<DebugShared>) {
    let mut reported: Option<(u64, u64)> = None; // (seq, next report at ns of running time)
    let mut stop = lock(&sh.stop);
    loop {
        let threshold = sh.blocked_ns.load(Ordering::Relaxed).max(1_000_000);
        let tick = Duration::from_nanos((threshold / 10).clamp(1_000_000, 100_000_000));
        let (guard, _) = sh
            .wake
            .wait_timeout(stop, tick)
            .unwrap_or_else(|e| e.into_inner());
        stop = guard;
        if *stop {
            return;
        }
        let Some((seq, started, kind, site, task)) = sh.read_slot() else {
            reported = None;
            continue;
        };
        let running = sh.real_now().saturating_sub(started);
        let due = match reported {
            Some((s, next)) if s == seq => next,
            _ => threshold,
        };
        if running < due {
            continue;
        }
        reported = Some((seq, due.saturating_mul(2)));
        drop(stop);
        let name = if task == u64::MAX {
            None
        } else {
            lock(&sh.tasks)
                .get(&(task as u32))
                .and_then(|t| t.name.clone())
        };
        let table = format_task_table(&sh.snapshot());
        let frames = crate::stack::capture(&sh.loop_thread, Duration::from_millis(250));
        // Only report if the same call was still running once the stack was taken (it may have
        // returned meanwhile, and then the stack would show something else). Resolving the
        // names comes after this check: it can be slow, and the stack is the call's either way.
        if sh.seq.load(Ordering::Acquire) == seq && sh.started.load(Ordering::Acquire) != 0 {
            let backtrace = frames.as_deref().map(crate::stack::format);
            sh.emit(&Report {
                kind: ReportKind::Blocked,
                callback: kind,
                site,
                name,
                type_name: None,
                duration: Duration::from_nanos(running),
                top: Vec::new(),
                task_table: Some(table),
                backtrace,
            });
        }
        stop = lock(&sh.stop);
    }
}

impl fmt::Debug for Debug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Debug")
            .field("slow_ns", &self.slow_ns.get())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs under Miri in CI: the watchdog slot, written here and read as the watchdog does.
    #[test]
    fn miri_watchdog_slot_round_trip() {
        let d = Debug::new(Config {
            slow: DEFAULT_SLOW_CALLBACK,
            blocked: Duration::from_secs(3600),
            hook: Some(Arc::new(|_| {})),
        });
        assert!(d.shared.read_slot().is_none(), "nothing published yet");
        let site = Location::caller();
        d.publish(&What {
            kind: CallbackKind::Timer,
            site,
            type_name: None,
            task: Some(7),
        });
        let (_, started, kind, got_site, task) = d.shared.read_slot().unwrap();
        assert!(started > 0);
        assert_eq!(kind, CallbackKind::Timer);
        assert_eq!(got_site, site);
        assert_eq!(task, 7);
        d.unpublish();
        assert!(d.shared.read_slot().is_none());
        d.shutdown();
    }
}

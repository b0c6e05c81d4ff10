//! Loop health figures: iterations, busy and idle time, timer lag, queue delay.
//!
//! ```
//! use std::time::Duration;
//!
//! let el = solo::EventLoop::builder().debug(true).build().unwrap();
//! let h = el.handle();
//! let stop = h.clone();
//! h.call_later(Duration::from_millis(1), move || stop.stop());
//! el.run_forever().unwrap();
//! let stats = el.stats().unwrap();
//! assert_eq!(stats.timers_fired, 1);
//! assert!(stats.iterations >= 1);
//! ```

use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use super::histogram::{AtomicHistogram, Histogram};
use super::shared::{lock, DebugShared};
use super::Debug;
use crate::callback::CallbackKind;

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
    /// Jobs waiting in the `run_in_executor` pool's queue (at most its bound,
    /// [`Builder::executor_queue_bound`](crate::Builder::executor_queue_bound)).
    pub executor_queued: usize,
    /// Pool threads running a job right now.
    pub executor_busy: usize,
    /// `run_in_executor` futures holding a job that is not queued yet: the queue was full and
    /// they wait for room.
    pub executor_waiting: usize,
    /// Submissions the pool refused so far: `try_run_in_executor` on a full queue, and every
    /// submission after the pool was shut down (their jobs never ran).
    pub executor_rejected: u64,
    /// Jobs dropped unrun so far because their future was dropped while it waited for room.
    pub executor_abandoned: u64,
    /// Waits in the backend that were allowed to block (after spinning, if the loop spins):
    /// the loop went to sleep there unless an event was already waiting.
    pub sleeps: u64,
    /// Waits that spun first ([`Builder::spin_before_sleep`](crate::Builder::spin_before_sleep)).
    pub spins: u64,
    /// Waits that found events while spinning, so did not sleep.
    pub spin_hits: u64,
    /// Waits that napped first ([`Builder::nap_before_sleep`](crate::Builder::nap_before_sleep)).
    pub naps: u64,
    /// Naps after which events were waiting, so the loop did not sleep on the poller.
    pub nap_hits: u64,
    /// The backend the loop polls with.
    pub backend: crate::Backend,
    /// Calls to the backend's wait (`epoll_wait`), spinning ones included.
    pub backend_waits: u64,
    /// Registrations the backend was asked to add (`EPOLL_CTL_ADD`).
    pub backend_adds: u64,
    /// Registrations changed (`EPOLL_CTL_MOD`): re-arms after reader callbacks on mio, arms of
    /// waiting `Async` sources on polling, interest changes on both.
    pub backend_modifies: u64,
    /// Registrations deleted (`EPOLL_CTL_DEL`).
    pub backend_deletes: u64,
    /// The time of each task poll (and of the `run_until_complete` future's).
    pub poll_time: Histogram,
    /// The time of each callback (soon, timer, reader, writer, threadsafe, signal).
    pub callback_time: Histogram,
    /// The time of each iteration that ran callbacks or polls: from its first call's start to
    /// its last call's end (the loop's own work between them included; its wait for I/O and
    /// its timers, before the first call, are not).
    pub iteration_time: Histogram,
    /// Timer lateness: from a timer's deadline to when the loop acted on it.
    pub timer_lateness: Histogram,
    /// Wake-to-run delay: from the moment a callback or task entered the ready queue to the
    /// moment it ran (I/O callbacks are in `io_dispatch`).
    pub wake_to_run: Histogram,
    /// Readiness-to-dispatch delay of reader and writer callbacks.
    pub io_dispatch: Histogram,
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

/// The running figures behind [`Stats`], in `DebugShared` so that another thread (the
/// monitor) reads them while the loop is stuck. The loop is the only writer: counters are
/// bumped with a relaxed load and store, histograms likewise (see `histogram.rs`).
pub(crate) struct Figures {
    /// Iterations run.
    iterations: AtomicU64,
    /// Time inside the backend's poll (ns).
    poll_ns: AtomicU64,
    pub(crate) poll_time: AtomicHistogram,
    pub(crate) callback_time: AtomicHistogram,
    pub(crate) iteration_time: AtomicHistogram,
    pub(crate) timer_lateness: AtomicHistogram,
    pub(crate) wake_to_run: AtomicHistogram,
    pub(crate) io_dispatch: AtomicHistogram,
    /// Taken only when a call beats the record, which soon stops happening.
    slowest: Mutex<Option<(CallbackKind, &'static Location<'static>, u64)>>,
    /// The record, readable without the lock.
    slowest_ns: AtomicU64,
}

impl Figures {
    pub(crate) fn new() -> Figures {
        Figures {
            iterations: AtomicU64::new(0),
            poll_ns: AtomicU64::new(0),
            poll_time: AtomicHistogram::new(),
            callback_time: AtomicHistogram::new(),
            iteration_time: AtomicHistogram::new(),
            timer_lateness: AtomicHistogram::new(),
            wake_to_run: AtomicHistogram::new(),
            io_dispatch: AtomicHistogram::new(),
            slowest: Mutex::new(None),
            slowest_ns: AtomicU64::new(0),
        }
    }

    /// Adds a finished call or poll of `ns`.
    #[inline]
    pub(super) fn add_call(&self, kind: CallbackKind, site: &'static Location<'static>, ns: u64) {
        if matches!(kind, CallbackKind::Task | CallbackKind::Main) {
            self.poll_time.record(ns);
        } else {
            self.callback_time.record(ns);
        }
        let first = self.callback_time.count() + self.poll_time.count() == 1;
        if ns > self.slowest_ns.load(Ordering::Relaxed) || first {
            self.slowest_ns.store(ns, Ordering::Relaxed);
            *lock(&self.slowest) = Some((kind, site, ns));
        }
    }

    /// Counts an iteration.
    #[inline]
    pub(super) fn add_iteration(&self) {
        let n = &self.iterations;
        n.store(n.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    }

    /// Iterations run so far.
    pub(crate) fn iterations(&self) -> u64 {
        self.iterations.load(Ordering::Relaxed)
    }

    /// Time spent running callbacks and polls.
    pub(crate) fn busy(&self) -> Duration {
        Duration::from_nanos(self.callback_time.sum_ns() + self.poll_time.sum_ns())
    }

    /// Time spent inside the backend's poll.
    pub(crate) fn in_poll(&self) -> Duration {
        Duration::from_nanos(self.poll_ns.load(Ordering::Relaxed))
    }
}

impl DebugShared {
    /// The loop's figures without the backend's counters (which only the loop thread reads),
    /// from any thread.
    pub(crate) fn stats(&self) -> Stats {
        let f = &self.figures;
        let pool = self.executor_figures();
        let lag = f.timer_lateness.snapshot();
        let queue = f.wake_to_run.snapshot();
        let io = f.io_dispatch.snapshot();
        let slowest = *lock(&f.slowest);
        Stats {
            iterations: f.iterations(),
            callbacks: f.callback_time.count(),
            task_polls: f.poll_time.count(),
            busy: f.busy(),
            in_poll: f.in_poll(),
            slowest: slowest.map(|(kind, site, ns)| Slowest {
                kind,
                site,
                duration: Duration::from_nanos(ns),
            }),
            timers_fired: lag.count(),
            timer_lag_max: lag.max(),
            timer_lag_mean: lag.mean(),
            queue_delay_max: queue.max(),
            queue_delay_mean: queue.mean(),
            io_dispatch_max: io.max(),
            io_dispatch_mean: io.mean(),
            executor_queued: pool.queued,
            executor_busy: pool.busy,
            executor_waiting: pool.waiting,
            executor_rejected: pool.rejected,
            executor_abandoned: pool.abandoned,
            sleeps: 0,
            spins: 0,
            spin_hits: 0,
            naps: 0,
            nap_hits: 0,
            backend: crate::Backend::default(),
            backend_waits: 0,
            backend_adds: 0,
            backend_modifies: 0,
            backend_deletes: 0,
            poll_time: f.poll_time.snapshot(),
            callback_time: f.callback_time.snapshot(),
            iteration_time: f.iteration_time.snapshot(),
            timer_lateness: lag,
            wake_to_run: queue,
            io_dispatch: io,
        }
    }
}

impl Debug {
    #[cold]
    #[inline(never)]
    pub(crate) fn record_poll_time(&self, ns: u64) {
        let f = &self.shared.figures;
        f.poll_ns
            .store(f.poll_ns.load(Ordering::Relaxed) + ns, Ordering::Relaxed);
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn record_timer_lag(&self, ns: u64) {
        self.shared.figures.timer_lateness.record(ns);
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn record_queue_delay(&self, ns: u64, io: bool) {
        let f = &self.shared.figures;
        if io {
            f.io_dispatch.record(ns);
        } else {
            f.wake_to_run.record(ns);
        }
    }

    pub(crate) fn stats(&self) -> Stats {
        self.shared.stats()
    }
}

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
use std::time::Duration;

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

/// The running totals behind [`Stats`].
#[derive(Default)]
pub(super) struct Acc {
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

impl Acc {
    /// Adds a finished call or poll of `ns`.
    pub(super) fn add_call(
        &mut self,
        kind: CallbackKind,
        site: &'static Location<'static>,
        ns: u64,
    ) {
        if matches!(kind, CallbackKind::Task | CallbackKind::Main) {
            self.task_polls += 1;
        } else {
            self.callbacks += 1;
        }
        self.busy_ns += ns;
        if self.slowest.is_none_or(|(_, _, m)| ns > m) {
            self.slowest = Some((kind, site, ns));
        }
    }

    pub(super) fn add_iteration(&mut self) {
        self.iterations += 1;
    }
}

impl Debug {
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
        let pool = self.shared.executor_figures();
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
            executor_queued: pool.queued,
            executor_busy: pool.busy,
            executor_waiting: pool.waiting,
            executor_rejected: pool.rejected,
            executor_abandoned: pool.abandoned,
            sleeps: 0,
            spins: 0,
            spin_hits: 0,
            backend: crate::Backend::default(),
            backend_waits: 0,
            backend_adds: 0,
            backend_modifies: 0,
            backend_deletes: 0,
        }
    }
}

//! What debug mode observes during an iteration, as one interface with two implementations.
//!
//! ```
//! let el = solo::EventLoop::builder().debug(true).build().unwrap();
//! el.handle().call_soon(|| {});
//! el.handle().stop();
//! el.run_forever().unwrap();
//! let stats = el.stats().unwrap(); // filled by the debug probe
//! assert_eq!(stats.callbacks, 1);
//! ```
//!
//! The iteration is written once, generic over a [`Probe`], and the loop picks the probe once
//! per iteration from its settings: [`NoProbe`], whose methods are empty and vanish when the
//! iteration is compiled for it, or [`DebugProbe`], which times every call, publishes it for
//! the watchdog and feeds the reports, stats, profile and task table. So a reader sees each
//! phase once, and a loop without debug mode pays nothing inside the iteration for having it.
//!
//! Outside the iteration (the main future's poll, `call_soon` from user code), where there is no
//! probe in hand, [`Inner::probe`] gives one chosen at run time ([`AnyProbe`]).

use super::Inner;
use crate::await_point;
use crate::callback::CallbackKind;
use crate::clock::Clock;
use crate::debug::trace::EventKind;
use crate::debug::{Debug, TaskState, What};
use crate::task::{self, RunResult, TaskRef};

/// The hooks an iteration calls. Each default does nothing; `run` and `poll_task` just call.
pub(super) trait Probe {
    /// An iteration begins.
    #[inline(always)]
    fn begin_iteration(&self) {}

    /// The wait for I/O that began at loop time `since` returned.
    #[inline(always)]
    fn polled(&self, since: u64) {
        let _ = since;
    }

    /// An entry was taken off the ready queue (`io`: it was queued by an I/O event).
    #[inline(always)]
    fn dequeued(&self, io: bool) {
        let _ = io;
    }

    /// The wait made `n` sources ready (reader/writer callbacks queued, tasks woken).
    #[inline(always)]
    fn io_dispatched(&self, n: usize) {
        let _ = n;
    }

    /// A timer due at `deadline` (loop ns) is being acted on.
    #[inline(always)]
    fn timer_fired(&self, deadline: u64) {
        let _ = deadline;
    }

    /// Runs user code `f` on `subject`; `what` describes it (called only by a probe that needs
    /// the description, before `f`).
    #[inline(always)]
    fn run<S, R>(&self, subject: S, what: impl FnOnce(&S) -> What, f: impl FnOnce(S) -> R) -> R {
        let _ = what;
        f(subject)
    }

    /// Polls a task (or drops its future, if it was cancelled).
    #[inline(always)]
    fn poll_task(&self, t: TaskRef) -> RunResult {
        t.run()
    }

    /// The iteration's batch has run.
    #[inline(always)]
    fn end_iteration(&self) {}
}

/// Debug mode is off: nothing is observed.
pub(super) struct NoProbe;

impl Probe for NoProbe {}

/// Debug mode is on: every hook feeds [`Debug`].
pub(super) struct DebugProbe<'a> {
    debug: &'a Debug,
    clock: &'a Clock,
}

impl<'a> DebugProbe<'a> {
    pub(super) fn new(debug: &'a Debug, clock: &'a Clock) -> DebugProbe<'a> {
        DebugProbe { debug, clock }
    }

    /// Runs `f`, published for the watchdog, and records it; returns its result and how long
    /// it took (one pair of clock reads per call).
    #[inline(never)]
    fn timed<S, R>(&self, subject: S, what: &What, f: impl FnOnce(S) -> R) -> (R, u64) {
        let d = self.debug;
        d.publish(what);
        let t0 = self.clock.now();
        let r = f(subject);
        let ns = self.clock.now().saturating_sub(t0);
        d.unpublish();
        d.record(what, t0, ns, || what.task.and_then(|s| d.task_name(s)));
        if d.tracing() {
            d.trace_call(what, ns);
        }
        (r, ns)
    }
}

impl Probe for DebugProbe<'_> {
    fn begin_iteration(&self) {
        self.debug.begin_iteration();
    }

    fn polled(&self, since: u64) {
        let ns = self.clock.now().saturating_sub(since);
        self.debug.record_poll_time(ns);
        if self.debug.tracing() {
            self.debug.trace_wait(ns);
        }
    }

    fn io_dispatched(&self, n: usize) {
        if n > 0 && self.debug.tracing() {
            self.debug.trace_instant(EventKind::IoReady(n));
        }
    }

    fn dequeued(&self, io: bool) {
        self.debug.dequeued(self.clock.now(), io);
    }

    fn timer_fired(&self, deadline: u64) {
        let late = self.clock.now().saturating_sub(deadline);
        self.debug.record_timer_lag(late);
        if self.debug.tracing() {
            self.debug.trace_instant(EventKind::Timer(late));
        }
    }

    fn run<S, R>(&self, subject: S, what: impl FnOnce(&S) -> What, f: impl FnOnce(S) -> R) -> R {
        let what = what(&subject);
        self.timed(subject, &what, f).0
    }

    fn poll_task(&self, t: TaskRef) -> RunResult {
        let d = self.debug;
        let header = t.header();
        let (slot, site) = (header.slot.get(), header.site);
        d.task_state(slot, TaskState::Running);
        let what = What {
            kind: CallbackKind::Task,
            site,
            type_name: Some(t.type_name()),
            task: Some(slot),
        };
        let watched = t.clone();
        let saved = await_point::begin();
        let (r, ns) = self.timed(t, &what, TaskRef::run);
        let waits = await_point::end(saved);
        let state = watched.state();
        let next = if state & task::SCHEDULED != 0 {
            TaskState::Scheduled
        } else {
            TaskState::Waiting
        };
        await_point::recycle(d.task_polled(slot, ns, next, waits));
        // Pending, not queued, not done, and nobody holds a waker: nothing can ever wake it.
        if matches!(r, RunResult::Pending)
            && state & (task::SCHEDULED | task::COMPLETE) == 0
            && watched.waker_count() == 0
        {
            d.lost_waker(slot, site);
        }
        r
    }

    fn end_iteration(&self) {
        self.debug.end_iteration();
    }
}

/// A probe chosen at run time, for the few calls outside the iteration.
pub(super) enum AnyProbe<'a> {
    Off(NoProbe),
    Debug(DebugProbe<'a>),
}

impl Probe for AnyProbe<'_> {
    fn run<S, R>(&self, subject: S, what: impl FnOnce(&S) -> What, f: impl FnOnce(S) -> R) -> R {
        match self {
            AnyProbe::Off(p) => p.run(subject, what, f),
            AnyProbe::Debug(p) => p.run(subject, what, f),
        }
    }
}

impl Inner {
    /// The probe for user code run outside the iteration.
    pub(super) fn probe(&self) -> AnyProbe<'_> {
        match self.debug() {
            None => AnyProbe::Off(NoProbe),
            Some(d) => AnyProbe::Debug(DebugProbe::new(d, &self.clock)),
        }
    }
}

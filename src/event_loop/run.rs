//! The entry points: [`EventLoop::run_forever`], [`EventLoop::run_until_complete`],
//! [`EventLoop::shutdown`], [`run`], and the loop's closing when it is dropped.
//!
//! ```
//! let v = solo::run(async {
//!     let t = solo::Handle::current().spawn(async { 20 });
//!     t.await.unwrap() + 1
//! }).unwrap();
//! assert_eq!(v, 21);
//! ```
//!
//! Every entry point marks the loop as running on this thread for as long as it runs (a
//! [`RunGuard`], undone also when a callback's panic unwinds through it), then turns the
//! iteration until its own condition holds. The future of `run_until_complete` is not a task:
//! it is polled in place between iterations, whenever its own waker has set `main_woken`.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

use super::callbacks::{Runnable, TimerPayload};
use super::probe::Probe;
use super::{EventLoop, Inner, CURRENT};
use crate::callback::CallbackKind;
use crate::debug::{self, ReportKind, What};
use crate::error::RunError;
use crate::shared::{RemoteItem, Shared};
use crate::task::{self, TaskRef};

/// Marks the loop as running on this thread; undoes it on drop, also during a panic.
pub(super) struct RunGuard<'a> {
    inner: &'a Rc<Inner>,
    prev: Option<Rc<Inner>>,
    _enter: task::EnterGuard,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if let Some(d) = self.inner.debug() {
            d.set_loop_thread(0);
        }
        self.inner.running.set(false);
        self.inner.stopping.set(false);
        CURRENT.with(|c| *c.borrow_mut() = self.prev.take());
    }
}

impl Inner {
    /// Marks the loop as running for one of the entry points, `call` (named in reports), called
    /// at `site`.
    fn start_running(
        self: &Rc<Inner>,
        call: &str,
        site: &'static Location<'static>,
    ) -> Result<RunGuard<'_>, RunError> {
        if !task::running_loop_id().is_null() && !self.running.get() {
            return Err(RunError::AnotherLoopRunning);
        }
        let guard = self.start_stepping()?;
        self.notice_foreign_runtime(call, site);
        Ok(guard)
    }

    /// With the `tokio-detect` feature: reports (exception handler, or stderr) that this thread
    /// is inside a tokio runtime, whose timers and I/O this thread may be the one to drive. The
    /// run goes on: the same check also matches a thread that only entered a runtime's context
    /// (`Handle::enter`, `spawn_blocking`), where running solo harms nothing. Stepping
    /// (`run_once`, the embedding API) is not checked: it returns at once and is how solo is
    /// meant to run inside another loop.
    #[cfg(feature = "tokio-detect")]
    fn notice_foreign_runtime(&self, call: &str, site: &'static Location<'static>) {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let stalls = match rt.runtime_flavor() {
            tokio::runtime::RuntimeFlavor::CurrentThread => {
                "a current_thread runtime: if this is its block_on, all of its timers, I/O and \
                 tasks stall until the call returns"
            }
            _ => {
                "a multi-thread runtime: if this is one of its workers, the tasks queued on \
                  this worker and the timers and I/O it drives wait until the call returns"
            }
        };
        self.report_notice(
            site,
            &format!(
                "{call} called at {site} on a thread inside a tokio runtime, {stalls}; run solo's loop on a \
                 thread of its own (or a spawn_blocking thread), or use tokio-only crates from \
                 solo through async_compat::Compat (docs/porting-from-tokio.md)"
            ),
        );
    }

    #[cfg(not(feature = "tokio-detect"))]
    fn notice_foreign_runtime(&self, _call: &str, _site: &'static Location<'static>) {}

    /// Marks the loop as running for one step or more. Unlike the run entry points, a step may
    /// happen inside another loop's callback (an embedded loop): the other loop's thread-local
    /// state is saved and restored by the guard.
    pub(super) fn start_stepping(self: &Rc<Inner>) -> Result<RunGuard<'_>, RunError> {
        if self.closed.get() {
            return Err(RunError::Closed);
        }
        if self.running.get() {
            return Err(RunError::AlreadyRunning);
        }
        self.running.set(true);
        if let Some(d) = self.debug() {
            d.set_loop_thread(crate::stack::current_thread());
        }
        let enter = task::enter(&self.shared, &**self);
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        let guard = RunGuard {
            inner: self,
            prev,
            _enter: enter,
        };
        // Panics whose handles were dropped while the loop was not running.
        self.sweep_unretrieved(false);
        Ok(guard)
    }

    /// Drops everything the loop holds, exactly once: tasks' futures, queued callbacks, timers,
    /// registrations. Called when the `EventLoop` is dropped. Every destructor is user code and
    /// runs behind the panic guard: a panicking one is reported, and the rest are still dropped.
    pub(super) fn close(self: &Rc<Inner>) {
        if self.closed.replace(true) {
            return;
        }
        // Destructors run with the loop "entered", so wakes they cause take the local path and
        // `Handle::current` works; the loop refuses new work because it is closed.
        let _guard = if task::running_loop_id().is_null() {
            Some(task::enter(&self.shared, &**self))
        } else {
            None
        };
        for item in self.shared.close() {
            match item {
                RemoteItem::Call(f) => {
                    let site = f.site();
                    self.drop_guarded(f, CallbackKind::Remote, site);
                }
                RemoteItem::Wake(w) => self.drop_guarded(w, CallbackKind::Loop, Location::caller()),
            }
        }
        if let Some(d) = self.debug() {
            for t in self.tasks.borrow().iter().map(|(_, t)| t) {
                // A cancelled task is not "still pending": its drop was asked for.
                if t.state() & (task::COMPLETE | task::CANCEL) == 0 {
                    d.lint(
                        ReportKind::PendingAtDrop,
                        t.header().site,
                        t.header().slot.get(),
                    );
                }
            }
        }
        // Destructors may schedule more (a drop that spawns or calls `call_soon` on a closed
        // loop gets nothing queued, but a callback's drop may release a timer's last handle...):
        // repeat until a pass finds nothing.
        loop {
            let tasks: Vec<TaskRef> = self.tasks.borrow_mut().drain().collect();
            let ready: Vec<Runnable> = self.ready.borrow_mut().take_all();
            if let Some(d) = self.debug() {
                d.clear_queue_times();
            }
            let mut timers = Vec::new();
            self.timers.borrow_mut().drain(|p| timers.push(p));
            let (callbacks, wakers) = self.reactor.borrow_mut().drain();
            if tasks.is_empty()
                && ready.is_empty()
                && timers.is_empty()
                && callbacks.is_empty()
                && wakers.is_empty()
            {
                break;
            }
            for t in &tasks {
                t.abort_on_loop_drop(); // drops the future; a panic there is reported
            }
            for t in tasks {
                let site = t.header().site;
                self.drop_guarded(t, CallbackKind::Task, site);
            }
            for r in ready {
                self.drop_runnable(r);
            }
            for p in timers {
                self.drop_timer_payload(p);
            }
            for cb in callbacks {
                self.drop_unregistered(cb);
            }
            self.drop_guarded(wakers, CallbackKind::Loop, Location::caller());
        }
        // Panics still unretrieved: nobody can retrieve them on this loop any more.
        self.sweep_unretrieved(true);
        self.task_names.borrow_mut().clear();
        self.soon.clear();
        // Idle pool threads exit now; a running job cannot be interrupted and finishes alone.
        self.executor.shutdown(Instant::now());
        let handler = self.exception_handler.borrow_mut().take();
        // Reported to stderr if it panics: the handler is gone by then.
        self.drop_guarded(handler, CallbackKind::Loop, Location::caller());
        if let Some(m) = &self.monitor {
            m.monitor.stop();
        }
        if let Some(d) = self.debug() {
            d.shutdown();
            let profile = d.profile();
            if !profile.is_empty() {
                eprintln!(
                    "solo: debug profile (where the loop's time went, by site):\n{}",
                    debug::format_profile(&profile[..profile.len().min(20)])
                );
            }
        }
    }

    /// Drops a ready-queue entry that will not run (the loop is closing).
    fn drop_runnable(&self, r: Runnable) {
        match r {
            Runnable::Soon(f) => {
                let site = f.site();
                self.drop_guarded(f, CallbackKind::Soon, site);
            }
            Runnable::Remote(f) => {
                let site = f.site();
                self.drop_guarded(f, CallbackKind::Remote, site);
            }
            Runnable::Task(t) => {
                let site = t.header().site;
                self.drop_guarded(t, CallbackKind::Task, site);
            }
            Runnable::Timer(..) | Runnable::Io(..) => {} // the wheel or the reactor holds them
        }
    }

    /// Drops a timer's payload that will not run (the loop is closing).
    fn drop_timer_payload(&self, p: TimerPayload) {
        match p {
            TimerPayload::Call(f) => {
                let site = f.site();
                self.drop_guarded(f, CallbackKind::Timer, site);
            }
            TimerPayload::Wake(w) => self.drop_guarded(w, CallbackKind::Loop, Location::caller()),
            // A local reference runs no user code when dropped.
            TimerPayload::Task(t) => drop(t),
            TimerPayload::Main => {}
        }
    }
}

impl EventLoop {
    /// Runs until [`stop`](EventLoop::stop) is called. `stop` lets the current iteration finish;
    /// a `stop` before `run_forever` makes it run exactly one iteration.
    ///
    /// Returns [`RunError::AlreadyRunning`] if called while this loop runs, and
    /// [`RunError::AnotherLoopRunning`] inside another loop on this thread.
    ///
    /// # Inside another runtime
    ///
    /// Another solo loop on this thread is an error (above). Another runtime's loop is not
    /// visible to solo in general: called inside tokio's (or smol's, or futures') `block_on`,
    /// this call blocks that runtime's thread for as long as solo runs, so the other runtime's
    /// timers, I/O and tasks that this thread drives stall meanwhile (for tokio's current_thread
    /// runtime: all of them). With the `tokio-detect` feature, solo checks
    /// `tokio::runtime::Handle::try_current()` and reports the case to the exception handler
    /// (stderr without one), naming this call and its caller; the run goes on. To use tokio's
    /// crates from solo, wrap their futures in `async_compat::Compat`; to run solo from tokio,
    /// give it a thread of its own. Both are in `docs/porting-from-tokio.md`.
    #[track_caller]
    pub fn run_forever(&self) -> Result<(), RunError> {
        let inner = &self.handle.inner;
        let _guard = inner.start_running("EventLoop::run_forever", Location::caller())?;
        loop {
            inner.run_turn();
            if inner.stopping.replace(false) {
                return Ok(());
            }
        }
    }

    /// Runs the loop until `future` completes and returns its output.
    ///
    /// The future is not spawned: it is polled in place, between iterations, whenever its waker
    /// was woken. If it panics, the panic propagates out of this call, as asyncio re-raises the
    /// exception (after the future is dropped). If the loop is stopped first, returns
    /// [`RunError::Stopped`]: a `stop` before this call, or during it, lets the current
    /// iteration finish, and the future gets one last poll if that iteration woke it (asyncio:
    /// one iteration runs, then "Event loop stopped before Future completed").
    ///
    /// Errors and the case of another runtime on this thread are as for
    /// [`run_forever`](EventLoop::run_forever).
    #[track_caller]
    pub fn run_until_complete<F: Future>(&self, future: F) -> Result<F::Output, RunError> {
        let site = Location::caller();
        let inner = &self.handle.inner;
        let _guard = inner.start_running("EventLoop::run_until_complete", site)?;
        // Boxed so that it can be dropped behind the panic guard before this call returns.
        let mut future = Box::pin(future);
        let waker = main_waker(&inner.shared);
        let mut cx = Context::from_waker(&waker);
        inner.main_running.set(true);
        inner.shared.main_woken.store(true, Ordering::Release);
        let mut stopped = false;
        let outcome = loop {
            if inner.shared.main_woken.swap(false, Ordering::AcqRel) {
                let what = || What {
                    kind: CallbackKind::Main,
                    site,
                    type_name: Some(std::any::type_name::<F>()),
                    task: None,
                };
                let polled = inner.probe().run(
                    (),
                    |_| what(),
                    |_| {
                        let poll = || inner.budget.with_budget(|| future.as_mut().poll(&mut cx));
                        catch_unwind(AssertUnwindSafe(poll))
                    },
                );
                match polled {
                    Ok(Poll::Ready(v)) => break Ok(Ok(v)),
                    Ok(Poll::Pending) => {}
                    Err(payload) => break Err(payload),
                }
            }
            if stopped {
                break Ok(Err(RunError::Stopped));
            }
            inner.run_turn();
            stopped = inner.stopping.replace(false);
        };
        inner.main_running.set(false);
        inner.drop_guarded(future, CallbackKind::Main, site);
        match outcome {
            Ok(result) => result,
            Err(payload) => std::panic::resume_unwind(payload),
        }
    }

    /// Shuts the loop down gracefully and reports what did not finish:
    ///
    /// 1. other threads can no longer queue callbacks or spawn (task wake-ups still arrive);
    /// 2. the loop runs until every task has finished, for at most `grace` (loop clock);
    /// 3. the tasks still alive are cancelled: their futures are dropped, so their destructors
    ///    run, exactly once;
    /// 4. the `run_in_executor` pool is told to stop, and its running jobs get what is left of
    ///    `grace` (real time) to finish — a blocking job cannot be interrupted;
    /// 5. the loop is dropped (pending callbacks, timers and registrations with it).
    ///
    /// ```
    /// use std::time::Duration;
    /// let el = solo::EventLoop::new().unwrap();
    /// let h = el.handle();
    /// h.spawn(async { solo::time::sleep(Duration::from_millis(5)).await });
    /// h.spawn_named("forever", std::future::pending::<()>());
    /// let report = el.shutdown(Duration::from_millis(50));
    /// assert_eq!(report.cancelled.len(), 1);
    /// assert_eq!(report.cancelled[0].name.as_deref(), Some("forever"));
    /// ```
    #[track_caller]
    pub fn shutdown(self, grace: Duration) -> ShutdownReport {
        let inner = &self.handle.inner;
        // A grace past `Instant`'s range means "wait as long as it takes".
        let real_deadline = Instant::now()
            .checked_add(grace)
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600));
        inner.shared.refuse_calls();
        if let Ok(_guard) = inner.start_running("EventLoop::shutdown", Location::caller()) {
            let expired = Rc::new(Cell::new(false));
            let e = expired.clone();
            let timer = self.handle.call_later(grace, move || e.set(true));
            while !inner.tasks.borrow().is_empty() && !expired.get() {
                inner.run_once(None);
                inner.stopping.set(false);
            }
            timer.cancel();
        }
        let alive: Vec<TaskRef> = inner.tasks.borrow_mut().drain().collect();
        let mut cancelled = Vec::new();
        {
            let _enter = if task::running_loop_id().is_null() {
                Some(task::enter(&inner.shared, &**inner))
            } else {
                None
            };
            for t in &alive {
                let slot = t.header().slot.get();
                cancelled.push(CancelledTask {
                    site: t.header().site,
                    name: inner.task_names.borrow().get(&slot).map(|n| n.to_string()),
                });
                if let Some(d) = inner.debug() {
                    d.task_gone(slot);
                }
                t.abort_on_loop_drop();
            }
            for t in alive {
                let site = t.header().site;
                inner.drop_guarded(t, CallbackKind::Task, site);
            }
        }
        let executor_unfinished = inner.executor.shutdown(real_deadline);
        drop(self);
        ShutdownReport {
            cancelled,
            executor_unfinished,
        }
    }
}

/// A task that [`EventLoop::shutdown`] had to cancel.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CancelledTask {
    /// Where it was spawned.
    pub site: &'static Location<'static>,
    /// Its name, for named tasks.
    pub name: Option<String>,
}

/// What [`EventLoop::shutdown`] could not finish cleanly.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// Tasks still running at the end of the grace period, cancelled (futures dropped).
    pub cancelled: Vec<CancelledTask>,
    /// `run_in_executor` jobs still queued or running when the grace period ran out.
    pub executor_unfinished: usize,
}

impl ShutdownReport {
    /// Whether everything finished within the grace period.
    pub fn is_clean(&self) -> bool {
        self.cancelled.is_empty() && self.executor_unfinished == 0
    }
}

impl fmt::Display for ShutdownReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_clean() {
            return f.write_str("solo: shutdown complete, everything finished");
        }
        write!(
            f,
            "solo: shutdown cancelled {} task(s); {} executor job(s) unfinished",
            self.cancelled.len(),
            self.executor_unfinished
        )?;
        for t in &self.cancelled {
            match &t.name {
                Some(n) => write!(f, "\n  task {n:?} spawned at {}", t.site)?,
                None => write!(f, "\n  task spawned at {}", t.site)?,
            }
        }
        Ok(())
    }
}

/// Runs `future` on a new loop and shuts the loop down cleanly afterwards, like `asyncio.run`:
/// tasks still running are cancelled (their destructors run), the thread pool is stopped.
///
/// Inside a running solo loop it fails (loops do not nest on one thread: the error wraps
/// [`RunError::AnotherLoopRunning`]); inside another runtime's `block_on` it blocks that
/// runtime's thread, as [`EventLoop::run_forever`] explains.
///
/// ```
/// let v = solo::run(async {
///     let t = solo::Handle::current().spawn(async { 20 });
///     t.await.unwrap() + 1
/// }).unwrap();
/// assert_eq!(v, 21);
/// ```
#[track_caller]
pub fn run<F: Future>(future: F) -> io::Result<F::Output> {
    let el = EventLoop::new()?;
    let out = el.run_until_complete(future).map_err(io::Error::other)?;
    el.shutdown(Duration::ZERO);
    Ok(out)
}

// ---- the waker of the future driven by run_until_complete ----

static MAIN_VTABLE: RawWakerVTable =
    RawWakerVTable::new(main_clone, main_wake, main_wake_by_ref, main_drop);

fn main_waker(shared: &Arc<Shared>) -> Waker {
    let data = Arc::into_raw(shared.clone()) as *const ();
    // SAFETY: the vtable functions treat `data` as an `Arc<Shared>` owned by the waker.
    unsafe { Waker::from_raw(RawWaker::new(data, &MAIN_VTABLE)) }
}

/// Whether `waker` is the waker of the future `shared`'s loop runs in `run_until_complete`.
#[inline]
pub(super) fn is_main_waker(shared: &Arc<Shared>, waker: &Waker) -> bool {
    std::ptr::eq(waker.vtable(), &MAIN_VTABLE)
        && std::ptr::eq(waker.data(), Arc::as_ptr(shared) as *const ())
}

/// Wakes the future `shared`'s loop runs in `run_until_complete` (what its waker's wake does).
pub(super) fn wake_main(shared: &Shared) {
    shared.main_woken.store(true, Ordering::Release);
    if !std::ptr::eq(task::running_loop_id(), shared) {
        shared.notify();
    }
}

unsafe fn main_clone(data: *const ()) -> RawWaker {
    // SAFETY: `data` came from `Arc::into_raw` and the waker holds one strong count.
    unsafe { Arc::increment_strong_count(data as *const Shared) };
    RawWaker::new(data, &MAIN_VTABLE)
}

unsafe fn main_wake(data: *const ()) {
    // SAFETY: see `main_clone`.
    unsafe { main_wake_by_ref(data) };
    // SAFETY: waking by value releases the waker's count.
    unsafe { main_drop(data) };
}

unsafe fn main_wake_by_ref(data: *const ()) {
    // SAFETY: the waker's strong count keeps the `Shared` alive.
    wake_main(unsafe { &*(data as *const Shared) });
}

unsafe fn main_drop(data: *const ()) {
    // SAFETY: releases the strong count this waker owned.
    unsafe { drop(Arc::from_raw(data as *const Shared)) };
}

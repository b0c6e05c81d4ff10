//! The event loop: its state, its handles, and the iteration that drives everything.
//!
//! # One iteration ([`Inner::run_once`])
//!
//! Like asyncio's `_run_once` and libuv's `uv_run`, every turn of the loop goes through the same
//! phases, in this order:
//!
//! 1. **Decide how long to wait.** Zero if anything is ready to run (or the loop is stopping);
//!    otherwise until the next timer; otherwise forever.
//! 2. **Poll for I/O.** One `epoll_wait` with that timeout. Each event either queues a
//!    reader/writer callback or wakes a task waiting on that fd. While work is queued the wait
//!    would be non-blocking, and it is *skipped* unless [`POLL_EVERY_ITERATIONS`] iterations or
//!    [`POLL_EVERY_NS`] of loop time have passed since the last one: a chain of a million
//!    `call_soon`s pays for a few thousand syscalls, not a million, and I/O is still never
//!    starved for longer than that bound. (The time is read at every iteration while timers
//!    are pending, and otherwise at least every [`CLOCK_CHECK_EVERY`] iterations, because a
//!    clock read costs as much as a short callback.) With
//!    [`Builder::spin_before_sleep`], a wait that may block first polls without blocking for
//!    a while (see the reactor's "Spinning before sleeping").
//! 3. **Take work from other threads**: callbacks from `call_soon_threadsafe`, tasks woken by
//!    wakers on other threads.
//! 4. **Expire timers.** Due timers are queued in deadline order (sleeping tasks are woken).
//! 5. **Run the batch.** Exactly the entries that are in the ready queue *now* run, in FIFO
//!    order. Whatever they schedule — `call_soon`, a task they wake, a task they spawn — lands
//!    behind the batch and runs in the next iteration, so a callback that reschedules itself
//!    cannot starve timers or I/O.
//!
//! No user code runs during phases 1–2 (the loop is inside the backend), and everything that
//! runs in phase 5 goes through [`Inner::run_entry`], the one place where a panic is caught and
//! where debug mode times each callback and poll.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::AsRawFd;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::pin;
use std::rc::{Rc, Weak};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

use crate::clock::{duration_to_nanos, Clock, ManualClock};
use crate::debug::{
    self, Debug, Report, ReportKind, SiteProfile, Stats, TaskSnapshot, TaskState, What,
};
use crate::error::RunError;
use crate::executor::{self, Blocking, Executor, ThreadPool};
use crate::reactor::{env_spin, Dir, IoAction, Reactor};
use crate::remote::{Remote, RemoteCall, RemoteItem, Shared};
use crate::signal::Signals;
use crate::task::{self, JoinHandle, RunResult, Scheduler, TaskRef};
use crate::timer::{Fired, TimerKey, Wheel};

/// While work is queued, poll for I/O at least every this many iterations...
pub const POLL_EVERY_ITERATIONS: u32 = 128;
/// ...and at least every this many nanoseconds of loop time (1 ms)...
pub const POLL_EVERY_NS: u64 = 1_000_000;
/// ...where a busy loop with no timers checks the time at least every this many iterations.
pub const CLOCK_CHECK_EVERY: u32 = 8;

/// What kind of callback is running, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallbackKind {
    /// A `call_soon` callback.
    Soon,
    /// A `call_later` / `call_at` callback.
    Timer,
    /// An `add_reader` callback.
    Reader,
    /// An `add_writer` callback.
    Writer,
    /// A `call_soon_threadsafe` callback.
    Remote,
    /// A poll of a spawned task.
    Task,
    /// A poll of the future given to `run_until_complete`.
    Main,
    /// A signal handler.
    Signal,
}

impl fmt::Display for CallbackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallbackKind::Soon => "callback",
            CallbackKind::Timer => "timer callback",
            CallbackKind::Reader => "reader callback",
            CallbackKind::Writer => "writer callback",
            CallbackKind::Remote => "threadsafe callback",
            CallbackKind::Task => "task",
            CallbackKind::Main => "main future",
            CallbackKind::Signal => "signal handler",
        })
    }
}

/// What the exception handler is told about a panic in a callback or task.
#[derive(Debug)]
pub struct ExceptionContext<'a> {
    kind: CallbackKind,
    site: &'static Location<'static>,
    task_name: Option<&'a str>,
    message: &'a str,
}

impl ExceptionContext<'_> {
    /// What panicked.
    pub fn kind(&self) -> CallbackKind {
        self.kind
    }
    /// Where it was scheduled, registered or spawned.
    pub fn site(&self) -> &'static Location<'static> {
        self.site
    }
    /// The task's name, for tasks spawned with [`Handle::spawn_named`].
    pub fn task_name(&self) -> Option<&str> {
        self.task_name
    }
    /// The panic message (or a description of the error).
    pub fn message(&self) -> &str {
        self.message
    }
}

impl fmt::Display for ExceptionContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "solo: {}", self.kind)?;
        if let Some(n) = self.task_name {
            write!(f, " {n:?}")?;
        }
        let verb = match self.kind {
            CallbackKind::Task => "spawned",
            CallbackKind::Reader | CallbackKind::Writer | CallbackKind::Signal => "registered",
            _ => "scheduled",
        };
        write!(f, " ({verb} at {}) failed: {}", self.site, self.message)
    }
}

type ExceptionHandler = Rc<dyn Fn(&ExceptionContext<'_>)>;

/// A one-shot callback that knows where it was scheduled and can name its type (for debug
/// reports). The site lives in the callback's own box, which is allocated anyway, so a
/// ready-queue entry stays 32 bytes; the type name is a constant in the vtable.
pub(crate) trait Callback {
    /// Runs the callback, catching a panic (one indirect call, with the panic guard inside).
    fn call(self: Box<Self>) -> Result<(), CallbackPanic>;
    fn site(&self) -> &'static Location<'static>;
    fn type_name(&self) -> &'static str;
}

/// A panic caught in a callback, and where the callback was scheduled.
pub(crate) type CallbackPanic = (Box<dyn std::any::Any + Send>, &'static Location<'static>);

/// A closure and its scheduling site.
pub(crate) struct Sited<F> {
    pub(crate) site: &'static Location<'static>,
    pub(crate) f: F,
}

impl<F: FnOnce()> Callback for Sited<F> {
    fn call(self: Box<Self>) -> Result<(), CallbackPanic> {
        let Sited { site, f } = *self;
        catch_unwind(AssertUnwindSafe(f)).map_err(|p| (p, site))
    }
    fn site(&self) -> &'static Location<'static> {
        self.site
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

/// A timer's payload: a callback to run, or a task to wake.
pub(crate) enum TimerPayload {
    Call(Box<dyn Callback>),
    Wake(Waker),
}

/// One entry of the ready queue (32 bytes; `size_tests` pins it).
pub(crate) enum Runnable {
    Soon(u64, Box<dyn Callback>),
    /// A fired timer and its deadline (for debug mode's lag figure).
    Timer(TimerKey, u64),
    Io(usize, Dir),
    Task(TaskRef),
    Remote(RemoteCall),
}

/// Scratch buffers reused by every iteration, so that a steady loop does not allocate.
#[derive(Default)]
struct Scratch {
    fired: Vec<Fired>,
    actions: Vec<IoAction>,
    wakers: Vec<Waker>,
    remote: Vec<RemoteItem>,
}

/// The loop's state. Shared by [`EventLoop`] and every [`Handle`] through an `Rc`.
pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    pub(crate) clock: Clock,
    ready: RefCell<VecDeque<Runnable>>,
    pub(crate) timers: RefCell<Wheel<TimerPayload>>,
    pub(crate) reactor: RefCell<Reactor>,
    tasks: RefCell<Slab<TaskRef>>,
    task_names: RefCell<HashMap<u32, Rc<str>>>,
    /// Some task has a name or debug mode is on: retiring a task has more to do.
    task_extras: Cell<bool>,
    /// `call_soon` ids: how many were queued and how many were taken off the queue. An id is
    /// pending iff `popped <= id < pushed`, because `call_soon` entries leave the queue in order.
    soon_pushed: Cell<u64>,
    soon_popped: Cell<u64>,
    /// Pending `call_soon` ids that were cancelled; checked only when non-empty.
    cancelled_soon: RefCell<HashSet<u64>>,
    running: Cell<bool>,
    stopping: Cell<bool>,
    closed: Cell<bool>,
    iters_since_poll: Cell<u32>,
    last_poll: Cell<u64>,
    /// The last clock reading (loop ns): a lower bound of the current time, free to read.
    pub(crate) now: Cell<u64>,
    exception_handler: RefCell<Option<ExceptionHandler>>,
    scratch: RefCell<Scratch>,
    /// Debug mode's state; `None` when it is off (the hot paths test only this).
    pub(crate) debug: Option<Box<Debug>>,
    executor: ThreadPool,
    signals: RefCell<Signals>,
}

impl Scheduler for Inner {
    #[inline]
    fn push_task(&self, task: TaskRef) {
        if self.debug.is_some() {
            self.debug_task_state(task.header().slot.get(), TaskState::Scheduled);
        }
        self.push(Runnable::Task(task));
    }

    fn unretrieved_panic(&self, site: &'static Location<'static>, slot: u32) {
        if let Some(d) = &self.debug {
            let name = d.task_name(slot);
            d.shared
                .emit(&debug::lint(ReportKind::UnretrievedPanic, site, name));
        }
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
}

/// Runs `f` with the loop running on this thread (if any), without cloning its handle.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&Rc<Inner>>) -> R) -> R {
    CURRENT.with(|c| f(c.borrow().as_ref()))
}

/// Marks the loop as running on this thread; undoes it on drop, also during a panic.
struct RunGuard<'a> {
    inner: &'a Rc<Inner>,
    prev: Option<Rc<Inner>>,
    _enter: task::EnterGuard,
}

impl Drop for RunGuard<'_> {
    fn drop(&mut self) {
        if let Some(d) = &self.inner.debug {
            d.shared.set_loop_thread(0);
        }
        self.inner.running.set(false);
        self.inner.stopping.set(false);
        CURRENT.with(|c| *c.borrow_mut() = self.prev.take());
    }
}

impl Inner {
    fn start_running(self: &Rc<Inner>) -> Result<RunGuard<'_>, RunError> {
        if self.closed.get() {
            return Err(RunError::Closed);
        }
        if self.running.get() {
            return Err(RunError::AlreadyRunning);
        }
        if !task::running_loop_id().is_null() {
            return Err(RunError::AnotherLoopRunning);
        }
        self.running.set(true);
        if let Some(d) = &self.debug {
            d.shared.set_loop_thread(crate::stack::current_thread());
        }
        let enter = task::enter(&self.shared, &**self);
        let prev = CURRENT.with(|c| c.borrow_mut().replace(self.clone()));
        Ok(RunGuard {
            inner: self,
            prev,
            _enter: enter,
        })
    }

    /// Reads the clock and remembers the reading as the loop's current time.
    #[inline]
    pub(crate) fn read_clock(&self) -> u64 {
        let now = self.clock.now();
        self.now.set(now);
        now
    }

    // Debug mode costs the hot paths one test of `self.debug` each; everything else it does is
    // in the `#[cold]` functions below, kept out of line so the hot code stays small.

    #[inline]
    fn push(&self, r: Runnable) {
        self.ready.borrow_mut().push_back(r);
        if self.debug.is_some() {
            self.debug_enqueued();
        }
    }

    #[cold]
    #[inline(never)]
    fn debug_task_state(&self, slot: u32, state: TaskState) {
        if let Some(d) = &self.debug {
            d.task_state(slot, state);
        }
    }

    #[cold]
    #[inline(never)]
    fn debug_spawned(&self, slot: u32, site: &'static Location<'static>, name: Option<&str>) {
        if let Some(d) = &self.debug {
            d.task_spawned(slot, site, name);
        }
    }

    #[cold]
    #[inline(never)]
    fn debug_enqueued(&self) {
        if let Some(d) = &self.debug {
            d.ready_times.borrow_mut().push_back(self.clock.now());
        }
    }

    /// Takes the next ready entry (and, in debug mode, records how long it waited).
    #[inline]
    fn pop<const DEBUG: bool>(&self) -> Option<Runnable> {
        let r = self.ready.borrow_mut().pop_front()?;
        if DEBUG {
            self.debug_dequeued(matches!(r, Runnable::Io(..)));
        }
        Some(r)
    }

    #[cold]
    #[inline(never)]
    fn debug_dequeued(&self, io: bool) {
        if let Some(d) = &self.debug {
            if let Some(t) = d.ready_times.borrow_mut().pop_front() {
                d.record_queue_delay(self.clock.now().saturating_sub(t), io);
            }
        }
    }

    /// Runs `f` (user code), timing it in debug mode.
    #[inline(always)]
    fn timed<R>(&self, what: impl FnOnce() -> What, f: impl FnOnce() -> R) -> R {
        if self.debug.is_none() {
            return f();
        }
        self.timed_debug(what, f)
    }

    #[cold]
    #[inline(never)]
    fn timed_debug<R>(&self, what: impl FnOnce() -> What, f: impl FnOnce() -> R) -> R {
        let Some(d) = &self.debug else {
            return f();
        };
        let what = what();
        d.publish(&what);
        let t0 = self.clock.now();
        let r = f();
        let ns = self.clock.now().saturating_sub(t0);
        d.unpublish();
        d.record(&what, ns, || what.task.and_then(|s| d.task_name(s)));
        r
    }

    /// One turn of the loop. See the module documentation for the phases.
    pub(crate) fn run_once(&self) {
        let mut scratch = self.scratch.borrow_mut();
        let scratch = &mut *scratch;

        // 1. How long may we block?
        // Work: queued entries, or the `run_until_complete` future woken (it is polled between
        // iterations rather than from the queue).
        let has_work =
            !self.ready.borrow().is_empty() || self.shared.main_woken.load(Ordering::Acquire);
        let busy = has_work || self.stopping.get() || self.shared.has_pending();
        let next_timer = self.timers.borrow().next_deadline();
        // Reading the clock costs about as much as a short callback. A busy loop with no timers
        // only needs it for the poll-interval bound, so it reads it every CLOCK_CHECK_EVERY
        // iterations; every other iteration reads it now.
        let iters = self.iters_since_poll.get();
        let mut now = if next_timer.is_some()
            || !has_work
            || iters % CLOCK_CHECK_EVERY == 0
            || self.debug.is_some()
        {
            self.read_clock()
        } else {
            self.now.get()
        };
        let timeout = if busy {
            Some(Duration::ZERO)
        } else {
            next_timer.map(|t| Duration::from_nanos(t.saturating_sub(now)))
        };
        // A manual clock never makes the loop sleep for a timer: it polls without blocking and,
        // if nothing else happened, jumps to the timer (auto-advance, below).
        let waiting_for_timer = self.clock.is_manual() && !busy && next_timer.is_some();
        let timeout = if waiting_for_timer {
            Some(Duration::ZERO)
        } else {
            timeout
        };

        // 2. Poll for I/O, unless callbacks are queued and we polled recently.
        let must_poll = !has_work
            || self.iters_since_poll.get() >= POLL_EVERY_ITERATIONS
            || now.saturating_sub(self.last_poll.get()) >= POLL_EVERY_NS;
        if let Some(d) = &self.debug {
            d.begin_iteration();
        }
        if must_poll {
            // Spins first if the builder asked for it, then blocks for what is left of `timeout`.
            let polled = self.reactor.borrow_mut().poll(timeout);
            if let Some(d) = &self.debug {
                d.record_poll_time(self.clock.now().saturating_sub(now));
            }
            if let Err(e) = polled {
                self.report_error(
                    CallbackKind::Reader,
                    Location::caller(),
                    &format!("poll failed: {e}"),
                );
            }
            self.reactor
                .borrow_mut()
                .dispatch(&mut scratch.actions, &mut scratch.wakers);
            for IoAction::Call(token, dir) in scratch.actions.drain(..) {
                self.push(Runnable::Io(token, dir));
            }
            for w in scratch.wakers.drain(..) {
                w.wake();
            }
            now = self.read_clock();
            self.iters_since_poll.set(0);
            self.last_poll.set(now);
        } else {
            self.iters_since_poll.set(self.iters_since_poll.get() + 1);
        }

        // 3. Work from other threads.
        if self.shared.has_pending() {
            self.shared.drain_into(&mut scratch.remote);
            for item in scratch.remote.drain(..) {
                match item {
                    RemoteItem::Call(call) => self.push(Runnable::Remote(call)),
                    RemoteItem::Task(t) => {
                        let ptr = t.0;
                        std::mem::forget(t);
                        task::schedule_from_remote(ptr);
                    }
                }
            }
        }

        if waiting_for_timer
            && self.ready.borrow().is_empty()
            && !self.shared.has_pending()
            && !self.shared.main_woken.load(Ordering::Acquire)
        {
            if let Some(t) = next_timer {
                self.clock.jump_to(t);
                now = self.read_clock();
            }
        }

        // 4. Timers: queue the due ones in deadline order.
        if next_timer.is_some_and(|t| t <= now) {
            self.timers.borrow_mut().expire(now, &mut scratch.fired);
            for f in scratch.fired.drain(..) {
                let wake = {
                    let mut timers = self.timers.borrow_mut();
                    match timers.get(f.key) {
                        Some(TimerPayload::Wake(_)) => match timers.remove(f.key) {
                            Some(TimerPayload::Wake(w)) => Some(w),
                            _ => unreachable!(),
                        },
                        _ => None,
                    }
                };
                match wake {
                    Some(w) => {
                        if let Some(d) = &self.debug {
                            d.record_timer_lag(now.saturating_sub(f.deadline));
                        }
                        w.wake()
                    }
                    None => self.push(Runnable::Timer(f.key, f.deadline)),
                }
            }
        }

        // 5. Run exactly what is ready now; what it schedules runs next iteration.
        let n = self.ready.borrow().len();
        if self.debug.is_none() {
            self.run_batch::<false>(n);
        } else {
            self.run_batch::<true>(n);
            if let Some(d) = &self.debug {
                d.end_iteration();
            }
        }
    }

    /// Runs `n` entries from the ready queue. Debug mode is decided once per batch (the const
    /// parameter), so with it off no entry pays for it.
    #[inline]
    fn run_batch<const DEBUG: bool>(&self, n: usize) {
        for _ in 0..n {
            let Some(r) = self.pop::<DEBUG>() else {
                break;
            };
            self.run_entry::<DEBUG>(r);
        }
    }

    /// Runs one ready-queue entry: the single place where user code is called from the queue.
    #[inline]
    fn run_entry<const DEBUG: bool>(&self, r: Runnable) {
        match r {
            Runnable::Soon(id, f) => {
                self.soon_popped.set(id + 1);
                if !self.cancelled_soon.borrow().is_empty()
                    && self.cancelled_soon.borrow_mut().remove(&id)
                {
                    return;
                }
                self.call::<DEBUG>(CallbackKind::Soon, f);
            }
            Runnable::Timer(key, deadline) => {
                let payload = self.timers.borrow_mut().remove(key);
                if DEBUG && payload.is_some() {
                    if let Some(d) = &self.debug {
                        d.record_timer_lag(self.clock.now().saturating_sub(deadline));
                    }
                }
                match payload {
                    Some(TimerPayload::Call(f)) => self.call::<DEBUG>(CallbackKind::Timer, f),
                    Some(TimerPayload::Wake(w)) => w.wake(),
                    None => {} // cancelled after it fired, before it ran
                }
            }
            Runnable::Io(token, dir) => {
                let taken = self.reactor.borrow_mut().take_callback(token, dir);
                let Some((mut f, gen, site, fd, kind)) = taken else {
                    return; // removed since the event arrived
                };
                let what = || What {
                    kind,
                    site,
                    type_name: None,
                    task: None,
                };
                let mut run = || catch_unwind(AssertUnwindSafe(&mut f));
                let result = if DEBUG {
                    self.timed_debug(what, run)
                } else {
                    run()
                };
                if let Err(p) = result {
                    self.report_panic(kind, site, None, &*p);
                }
                let (left, rearmed) = self
                    .reactor
                    .borrow_mut()
                    .restore_callback(token, dir, f, gen);
                drop(left);
                if let Err(e) = rearmed {
                    self.report_error(
                        kind,
                        site,
                        &format!(
                            "fd {fd} was closed while registered; its callbacks were removed ({e})"
                        ),
                    );
                }
            }
            Runnable::Task(t) => self.run_task::<DEBUG>(t),
            Runnable::Remote(f) => self.call::<DEBUG>(CallbackKind::Remote, f),
        }
    }

    /// Polls a task (or drops it, if cancelled) and retires it when it finishes.
    #[inline]
    fn run_task<const DEBUG: bool>(&self, t: TaskRef) {
        let slot = t.header().slot.get();
        let site = t.header().site;
        let result = if DEBUG {
            self.run_task_debug(t, slot, site)
        } else {
            t.run()
        };
        self.task_finished(result, slot, site);
    }

    #[cold]
    #[inline(never)]
    fn run_task_debug(&self, t: TaskRef, slot: u32, site: &'static Location<'static>) -> RunResult {
        let Some(d) = &self.debug else {
            return t.run();
        };
        {
            {
                d.task_state(slot, TaskState::Running);
                let type_name = t.type_name();
                let t0 = self.clock.now();
                let t2 = t.clone();
                let what = What {
                    kind: CallbackKind::Task,
                    site,
                    type_name: Some(type_name),
                    task: Some(slot),
                };
                let r = self.timed(|| what, || t.run());
                let ns = self.clock.now().saturating_sub(t0);
                let state = if t2.state() & task::SCHEDULED != 0 {
                    TaskState::Scheduled
                } else {
                    TaskState::Waiting
                };
                d.task_polled(slot, ns, state);
                if matches!(r, RunResult::Pending)
                    && t2.state() & (task::SCHEDULED | task::COMPLETE) == 0
                    && t2.waker_count() == 0
                {
                    d.lost_waker(slot, site);
                }
                if matches!(r, RunResult::Panicked(_)) && t2.state() & task::DETACHED != 0 {
                    d.shared.emit(&debug::lint(
                        ReportKind::UnretrievedPanic,
                        site,
                        d.task_name(slot),
                    ));
                }
                r
            }
        }
    }

    #[inline]
    fn task_finished(&self, result: RunResult, slot: u32, site: &'static Location<'static>) {
        match result {
            RunResult::Pending => {}
            RunResult::Done => self.retire(slot),
            RunResult::Panicked(msg) => {
                let name = self.task_names.borrow().get(&slot).cloned();
                self.retire(slot);
                self.report(&ExceptionContext {
                    kind: CallbackKind::Task,
                    site,
                    task_name: name.as_deref(),
                    message: &msg,
                });
            }
        }
    }

    /// Calls a one-shot callback, catching its panic.
    #[inline]
    fn call<const DEBUG: bool>(&self, kind: CallbackKind, f: Box<dyn Callback + '_>) {
        if DEBUG {
            return self.call_debug(kind, f);
        }
        if let Err((p, site)) = f.call() {
            self.report_panic(kind, site, None, &*p);
        }
    }

    #[cold]
    #[inline(never)]
    fn call_debug(&self, kind: CallbackKind, f: Box<dyn Callback + '_>) {
        let site = f.site();
        let type_name = Some(f.type_name());
        let what = move || What {
            kind,
            site,
            type_name,
            task: None,
        };
        if let Err((p, site)) = self.timed(what, || f.call()) {
            self.report_panic(kind, site, None, &*p);
        }
    }

    /// Removes a finished task from the registry.
    fn retire(&self, slot: u32) {
        let t = self.tasks.borrow_mut().try_remove(slot as usize);
        if self.task_extras.get() {
            self.retire_extras(slot);
        }
        drop(t);
    }

    /// The rare part of retiring a task: its name, its debug-mode row.
    #[cold]
    #[inline(never)]
    fn retire_extras(&self, slot: u32) {
        self.task_names.borrow_mut().remove(&slot);
        if let Some(d) = &self.debug {
            d.task_gone(slot);
        }
    }

    fn report_panic(
        &self,
        kind: CallbackKind,
        site: &'static Location<'static>,
        task_name: Option<&str>,
        payload: &(dyn std::any::Any + Send),
    ) {
        let msg = format!("panicked: {}", task::panic_message(payload));
        self.report(&ExceptionContext {
            kind,
            site,
            task_name,
            message: &msg,
        });
    }

    pub(crate) fn report_error(
        &self,
        kind: CallbackKind,
        site: &'static Location<'static>,
        msg: &str,
    ) {
        self.report(&ExceptionContext {
            kind,
            site,
            task_name: None,
            message: msg,
        });
    }

    fn report(&self, ctx: &ExceptionContext<'_>) {
        let handler = self.exception_handler.borrow().clone();
        match handler {
            Some(h) => {
                // A panicking handler must not take the loop down either.
                if catch_unwind(AssertUnwindSafe(|| h(ctx))).is_err() {
                    eprintln!("{ctx}");
                    eprintln!("solo: the exception handler itself panicked");
                }
            }
            None => eprintln!("{ctx}"),
        }
    }

    fn spawn_at<F>(
        &self,
        future: F,
        site: &'static Location<'static>,
        name: Option<Rc<str>>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        if self.closed.get() {
            return JoinHandle::closed();
        }
        let (task, join) = TaskRef::new(future, self.shared.clone(), site);
        let slot = {
            let mut tasks = self.tasks.borrow_mut();
            let entry = tasks.vacant_entry();
            let slot = entry.key() as u32;
            task.header().slot.set(slot);
            let queued = task.mark_scheduled();
            entry.insert(task);
            self.push(Runnable::Task(queued));
            slot
        };
        if self.debug.is_some() {
            self.debug_spawned(slot, site, name.as_deref());
        }
        if let Some(n) = name {
            self.task_names.borrow_mut().insert(slot, n);
            self.task_extras.set(true);
        }
        join
    }

    /// Drops everything the loop holds, exactly once: tasks' futures, queued callbacks, timers,
    /// registrations. Called when the `EventLoop` is dropped.
    fn close(self: &Rc<Inner>) {
        if self.closed.replace(true) {
            return;
        }
        drop(self.shared.close());
        // Destructors run with the loop "entered", so wakes they cause take the local path and
        // `Handle::current` works; the loop refuses new work because it is closed.
        let _guard = if task::running_loop_id().is_null() {
            Some(task::enter(&self.shared, &**self))
        } else {
            None
        };
        if let Some(d) = &self.debug {
            for t in self.tasks.borrow().iter().map(|(_, t)| t) {
                // A cancelled task is not "still pending": its drop was asked for.
                if t.state() & (task::COMPLETE | task::CANCEL) == 0 {
                    let slot = t.header().slot.get();
                    d.shared.emit(&debug::lint(
                        ReportKind::PendingAtDrop,
                        t.header().site,
                        d.task_name(slot),
                    ));
                }
            }
        }
        loop {
            let tasks: Vec<TaskRef> = self.tasks.borrow_mut().drain().collect();
            let ready: Vec<Runnable> = self.ready.borrow_mut().drain(..).collect();
            if let Some(d) = &self.debug {
                d.ready_times.borrow_mut().clear();
            }
            let mut timers = Vec::new();
            self.timers.borrow_mut().drain(|p| timers.push(p));
            let io = self.reactor.borrow_mut().drain();
            if tasks.is_empty() && ready.is_empty() && timers.is_empty() && io.is_empty() {
                break;
            }
            for t in &tasks {
                t.abort_on_loop_drop();
            }
            drop((tasks, ready, timers, io));
        }
        self.task_names.borrow_mut().clear();
        self.cancelled_soon.borrow_mut().clear();
        // Idle pool threads exit now; a running job cannot be interrupted and finishes alone.
        self.executor.shutdown(Instant::now());
        *self.exception_handler.borrow_mut() = None;
        if let Some(d) = &self.debug {
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
}

impl fmt::Debug for Inner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLoop")
            .field("running", &self.running.get())
            .field("closed", &self.closed.get())
            .field("ready", &self.ready.borrow().len())
            .field("timers", &self.timers.borrow().len())
            .field("tasks", &self.tasks.borrow().len())
            .field("fds", &self.reactor.borrow().len())
            .finish()
    }
}

/// Configures an [`EventLoop`]: the clock, and room for debug settings.
///
/// ```
/// let clock = solo::ManualClock::new();
/// let el = solo::EventLoop::builder().clock(clock).build().unwrap();
/// # drop(el);
/// ```
#[derive(Default)]
pub struct Builder {
    clock: Option<ManualClock>,
    debug: Option<bool>,
    slow: Option<Duration>,
    blocked: Option<Duration>,
    hook: Option<debug::Hook>,
    executor_threads: Option<usize>,
    executor_idle: Option<Duration>,
    spin: Option<Duration>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("clock", &self.clock)
            .field("debug", &self.debug)
            .field("slow", &self.slow)
            .field("blocked", &self.blocked)
            .field("spin", &self.spin)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Turns debug mode on or off. When not called, the environment decides: `SOLO_DEBUG=1`
    /// turns it on without recompiling.
    ///
    /// ```
    /// let el = solo::EventLoop::builder().debug(true).build().unwrap();
    /// assert!(el.stats().is_some());
    /// ```
    pub fn debug(mut self, on: bool) -> Builder {
        self.debug = Some(on);
        self
    }

    /// In debug mode, a callback or poll that runs longer than this is reported (default
    /// 100 ms, asyncio's `slow_callback_duration`). Can also be changed while the loop runs
    /// with [`Handle::set_slow_callback_duration`].
    pub fn slow_callback_duration(mut self, d: Duration) -> Builder {
        self.slow = Some(d);
        self
    }

    /// In debug mode, the watchdog reports a call that has been running this long, before it
    /// returns (default 1 s).
    pub fn blocked_threshold(mut self, d: Duration) -> Builder {
        self.blocked = Some(d);
        self
    }

    /// Where debug reports go (slow callbacks, slow iterations, a blocked loop, task lints).
    /// The default prints each report's one-line form to stderr. The hook may be called from
    /// the watchdog thread, hence `Send + Sync`.
    pub fn on_slow(mut self, f: impl Fn(&Report) + Send + Sync + 'static) -> Builder {
        self.hook = Some(Arc::new(f));
        self
    }

    /// Uses a manual clock instead of the real one (for deterministic tests).
    pub fn clock(mut self, clock: ManualClock) -> Builder {
        self.clock = Some(clock);
        self
    }

    /// The most threads `run_in_executor`'s pool may run (default `min(32, cores + 4)`).
    pub fn executor_threads(mut self, n: usize) -> Builder {
        self.executor_threads = Some(n);
        self
    }

    /// How long an idle pool thread waits for work before it exits (default 10 s).
    pub fn executor_idle_timeout(mut self, d: Duration) -> Builder {
        self.executor_idle = Some(d);
        self
    }

    /// Before the loop sleeps waiting for I/O or a timer, it polls without blocking for up to
    /// `d` (default zero: it sleeps at once). When not called, the environment decides:
    /// `SOLO_SPIN_US=100` spins for 100 µs, without recompiling.
    ///
    /// Why: a sleeping loop has to be woken, and the wake is paid by whoever makes its fd ready,
    /// often a peer process on another CPU (an inter-processor interrupt; on a virtual machine,
    /// an exit to the hypervisor). A server that handles a batch faster than the next one
    /// arrives sleeps between every two batches; with a spin longer than the gap between
    /// arrivals it never sleeps under steady traffic, like a saturated server, and its peers
    /// run faster. The same idea as glommio's `spin_before_park` and Linux's `busy_poll`.
    ///
    /// The price is CPU, bounded: a spin that finds nothing stops the spinning until a sleep
    /// ends with events within `d` again, so when traffic thins out or stops the loop wastes
    /// one spin, not one per wake-up. Timers are not delayed (the spin ends at the next
    /// deadline) and nothing is lost: events that arrive while spinning are handled in the same
    /// iteration. [`Stats::spins`], [`Stats::spin_hits`] and [`Stats::sleeps`] show the effect.
    /// See BENCHMARKS.md for what it does to `examples/kv.rs` under `redis-benchmark`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let el = solo::EventLoop::builder()
    ///     .spin_before_sleep(Duration::from_micros(100))
    ///     .build()
    ///     .unwrap();
    /// let n = el.run_until_complete(async {
    ///     solo::time::sleep(Duration::from_millis(1)).await;
    ///     7
    /// });
    /// assert_eq!(n.unwrap(), 7);
    /// ```
    pub fn spin_before_sleep(mut self, d: Duration) -> Builder {
        self.spin = Some(d);
        self
    }

    /// Creates the loop: a mio `Poll`, its cross-thread `Waker`, and empty queues. No thread
    /// is started, except the watchdog in debug mode.
    pub fn build(self) -> io::Result<EventLoop> {
        let spin = self.spin.unwrap_or_else(env_spin);
        let (reactor, waker) = Reactor::new(spin)?;
        let debug = self.debug.unwrap_or_else(debug::env_debug).then(|| {
            Box::new(Debug::new(debug::Config {
                slow: self.slow.unwrap_or(debug::DEFAULT_SLOW_CALLBACK),
                blocked: self.blocked.unwrap_or(debug::DEFAULT_BLOCKED_THRESHOLD),
                hook: self.hook.clone(),
            }))
        });
        let debug_shared = debug.as_ref().map(|d| d.shared.clone());
        let executor = ThreadPool::new(
            self.executor_threads
                .unwrap_or_else(executor::default_threads),
            self.executor_idle.unwrap_or(executor::DEFAULT_IDLE_TIMEOUT),
        );
        if let Some(d) = &debug {
            let pool = executor.clone();
            d.shared.set_executor_probe(Arc::new(move || pool.load()));
        }
        let inner = Rc::new(Inner {
            shared: Arc::new(Shared::new(waker, debug_shared)),
            clock: Clock::new(self.clock),
            ready: RefCell::new(VecDeque::with_capacity(256)),
            timers: RefCell::new(Wheel::new()),
            reactor: RefCell::new(reactor),
            tasks: RefCell::new(Slab::new()),
            task_names: RefCell::new(HashMap::new()),
            task_extras: Cell::new(debug.is_some()),
            soon_pushed: Cell::new(0),
            soon_popped: Cell::new(0),
            cancelled_soon: RefCell::new(HashSet::new()),
            running: Cell::new(false),
            stopping: Cell::new(false),
            closed: Cell::new(false),
            // The first iteration always polls.
            iters_since_poll: Cell::new(POLL_EVERY_ITERATIONS),
            last_poll: Cell::new(0),
            now: Cell::new(0),
            exception_handler: RefCell::new(None),
            scratch: RefCell::new(Scratch::default()),
            debug,
            executor,
            signals: RefCell::new(Signals::default()),
        });
        Ok(EventLoop {
            handle: Handle { inner },
        })
    }
}

/// A single-threaded event loop.
///
/// It owns the loop's state: dropping it drops every pending callback, task and registration.
/// Schedule work through its [`Handle`]; run it with [`run_forever`](EventLoop::run_forever) or
/// [`run_until_complete`](EventLoop::run_until_complete).
///
/// ```
/// use std::time::Duration;
/// let el = solo::EventLoop::new().unwrap();
/// let h = el.handle();
/// h.call_soon(|| println!("first"));
/// let h2 = h.clone();
/// h.call_later(Duration::from_millis(1), move || h2.stop());
/// el.run_forever().unwrap();
/// ```
///
/// `EventLoop` and `Handle` stay on the thread that made them:
///
/// ```compile_fail
/// let el = solo::EventLoop::new().unwrap();
/// std::thread::spawn(move || drop(el));
/// ```
///
/// ```compile_fail
/// let h = solo::EventLoop::new().unwrap().handle();
/// std::thread::spawn(move || drop(h));
/// ```
pub struct EventLoop {
    handle: Handle,
}

impl EventLoop {
    /// A loop with the real clock and default settings.
    pub fn new() -> io::Result<EventLoop> {
        Builder::default().build()
    }

    /// A builder for a loop with other settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A handle for scheduling work on this loop.
    pub fn handle(&self) -> Handle {
        self.handle.clone()
    }

    /// Runs until [`stop`](EventLoop::stop) is called. `stop` lets the current iteration finish;
    /// a `stop` before `run_forever` makes it run exactly one iteration.
    ///
    /// Returns [`RunError::AlreadyRunning`] if called while this loop runs, and
    /// [`RunError::AnotherLoopRunning`] inside another loop on this thread.
    pub fn run_forever(&self) -> Result<(), RunError> {
        let inner = &self.handle.inner;
        let _guard = inner.start_running()?;
        loop {
            inner.run_once();
            if inner.stopping.replace(false) {
                return Ok(());
            }
        }
    }

    /// Runs the loop until `future` completes and returns its output.
    ///
    /// The future may borrow from the caller (it is polled in place, not spawned). If it panics,
    /// the panic propagates out of this call, as asyncio re-raises the exception. If the loop is
    /// stopped first, returns [`RunError::Stopped`].
    #[track_caller]
    pub fn run_until_complete<F: Future>(&self, future: F) -> Result<F::Output, RunError> {
        let site = Location::caller();
        let inner = &self.handle.inner;
        let _guard = inner.start_running()?;
        let mut future = pin!(future);
        let waker = main_waker(&inner.shared);
        let mut cx = Context::from_waker(&waker);
        inner.shared.main_woken.store(true, Ordering::Release);
        loop {
            if inner.shared.main_woken.swap(false, Ordering::AcqRel) {
                let what = || What {
                    kind: CallbackKind::Main,
                    site,
                    type_name: Some(std::any::type_name::<F>()),
                    task: None,
                };
                if let Poll::Ready(v) = inner.timed(what, || future.as_mut().poll(&mut cx)) {
                    return Ok(v);
                }
            }
            if inner.stopping.replace(false) {
                return Err(RunError::Stopped);
            }
            inner.run_once();
        }
    }

    /// Asks the loop to stop after the current iteration.
    pub fn stop(&self) {
        self.handle.stop();
    }

    /// Whether the loop is inside `run_forever` or `run_until_complete`.
    pub fn is_running(&self) -> bool {
        self.handle.is_running()
    }

    /// The loop's current time (monotonic; the manual clock's if one is set).
    pub fn time(&self) -> Instant {
        self.handle.time()
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
    pub fn shutdown(self, grace: Duration) -> ShutdownReport {
        let inner = &self.handle.inner;
        let real_deadline = Instant::now() + grace;
        inner.shared.refuse_calls();
        if let Ok(_guard) = inner.start_running() {
            let expired = Rc::new(Cell::new(false));
            let e = expired.clone();
            let timer = self.handle.call_later(grace, move || e.set(true));
            while !inner.tasks.borrow().is_empty() && !expired.get() {
                inner.run_once();
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
                if let Some(d) = &inner.debug {
                    d.task_gone(slot);
                }
                t.abort_on_loop_drop();
            }
        }
        drop(alive);
        let executor_unfinished = inner.executor.shutdown(real_deadline);
        drop(self);
        ShutdownReport {
            cancelled,
            executor_unfinished,
        }
    }

    /// Loop health figures; `None` unless debug mode is on.
    pub fn stats(&self) -> Option<Stats> {
        let inner = &self.handle.inner;
        inner.debug.as_ref().map(|d| {
            let reactor = inner.reactor.borrow();
            Stats {
                sleeps: reactor.sleeps,
                spins: reactor.spins,
                spin_hits: reactor.spin_hits,
                ..d.stats()
            }
        })
    }

    /// Time spent per scheduling/spawn site, most first; empty unless debug mode is on. Also
    /// printed (top 20) when a debug-mode loop is dropped; format it yourself with
    /// [`debug::format_profile`](crate::debug::format_profile).
    pub fn profile(&self) -> Vec<SiteProfile> {
        self.handle
            .inner
            .debug
            .as_ref()
            .map_or_else(Vec::new, |d| d.profile())
    }

    /// The live tasks (id, name, state, spawn site, polls, busy time, age); empty unless debug
    /// mode is on. Other threads read the same table through [`Remote::tasks`].
    pub fn tasks(&self) -> Vec<TaskSnapshot> {
        self.handle.tasks()
    }
}

impl Drop for EventLoop {
    fn drop(&mut self) {
        self.handle.inner.close();
    }
}

impl fmt::Debug for EventLoop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.handle.inner.fmt(f)
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
    let shared = unsafe { &*(data as *const Shared) };
    shared.main_woken.store(true, Ordering::Release);
    if task::running_loop_id() != data as *const Shared {
        shared.notify();
    }
}

unsafe fn main_drop(data: *const ()) {
    // SAFETY: releases the strong count this waker owned.
    unsafe { drop(Arc::from_raw(data as *const Shared)) };
}

/// A cheap, cloneable handle to a loop, for scheduling work on it. `!Send`: use
/// [`Remote`] from other threads.
///
/// Inside a running loop, [`Handle::current`] finds it without passing it around.
#[derive(Clone)]
pub struct Handle {
    pub(crate) inner: Rc<Inner>,
}

impl Handle {
    /// The handle of the loop running on this thread.
    ///
    /// # Panics
    /// If no solo loop is running on this thread (use [`Handle::try_current`] to check).
    ///
    /// ```
    /// let el = solo::EventLoop::new().unwrap();
    /// el.run_until_complete(async {
    ///     solo::Handle::current().call_soon(|| println!("hi"));
    /// }).unwrap();
    /// ```
    #[track_caller]
    pub fn current() -> Handle {
        Handle::try_current()
            .expect("no solo event loop is running on this thread (Handle::current called outside run_forever/run_until_complete)")
    }

    /// The handle of the loop running on this thread, if any.
    pub fn try_current() -> Option<Handle> {
        CURRENT.with(|c| c.borrow().clone().map(|inner| Handle { inner }))
    }

    /// Schedules `f` to run on the next iteration. Callbacks run in the order they were
    /// scheduled.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// let el = solo::EventLoop::new().unwrap();
    /// let h = el.handle();
    /// let log = Rc::new(RefCell::new(Vec::new()));
    /// for i in 0..3 {
    ///     let log = log.clone();
    ///     h.call_soon(move || log.borrow_mut().push(i));
    /// }
    /// h.stop();
    /// el.run_forever().unwrap();
    /// assert_eq!(*log.borrow(), [0, 1, 2]);
    /// ```
    #[track_caller]
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> CallbackHandle {
        let inner = &self.inner;
        if inner.closed.get() {
            return CallbackHandle::closed();
        }
        let id = inner.soon_pushed.get();
        inner.soon_pushed.set(id + 1);
        let site = Location::caller();
        inner.push(Runnable::Soon(id, Box::new(Sited { site, f })));
        CallbackHandle {
            inner: Rc::downgrade(inner),
            which: Which::Soon(id),
            cancelled: Cell::new(false),
        }
    }

    /// Schedules `f` to run once `delay` has passed on the loop clock.
    #[track_caller]
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> CallbackHandle {
        let now = self.inner.clock.now();
        let f = Box::new(Sited {
            site: Location::caller(),
            f,
        });
        self.schedule_timer(now.saturating_add(duration_to_nanos(delay)), now, f)
    }

    /// Schedules `f` to run at `when` on the loop clock; a past `when` runs on the next
    /// iteration.
    #[track_caller]
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> CallbackHandle {
        let now = self.inner.clock.now();
        let f = Box::new(Sited {
            site: Location::caller(),
            f,
        });
        self.schedule_timer(self.inner.clock.instant_to_nanos(when), now, f)
    }

    #[track_caller]
    fn schedule_timer(&self, deadline: u64, now: u64, f: Box<dyn Callback>) -> CallbackHandle {
        let inner = &self.inner;
        if inner.closed.get() {
            return CallbackHandle::closed();
        }
        let key = inner
            .timers
            .borrow_mut()
            .insert(deadline, now, TimerPayload::Call(f));
        CallbackHandle {
            inner: Rc::downgrade(inner),
            which: Which::Timer(key),
            cancelled: Cell::new(false),
        }
    }

    /// Calls `f` whenever `fd` is readable (level-triggered, as in asyncio: a reader that leaves
    /// data unread is called again on the next iteration). Replaces an existing reader.
    ///
    /// Errors if `fd` is not an open file descriptor, cannot be polled (a regular file), is
    /// registered with this loop by a [`net`](crate::net) object, or the loop is closed.
    #[track_caller]
    pub fn add_reader(&self, fd: &impl AsRawFd, f: impl FnMut() + 'static) -> io::Result<()> {
        self.add_io(fd.as_raw_fd(), Dir::Read, Box::new(f))
    }

    /// Calls `f` whenever `fd` is writable (level-triggered). Replaces an existing writer.
    #[track_caller]
    pub fn add_writer(&self, fd: &impl AsRawFd, f: impl FnMut() + 'static) -> io::Result<()> {
        self.add_io(fd.as_raw_fd(), Dir::Write, Box::new(f))
    }

    #[track_caller]
    fn add_io(&self, fd: i32, dir: Dir, f: Box<dyn FnMut()>) -> io::Result<()> {
        let kind = match dir {
            Dir::Read => CallbackKind::Reader,
            Dir::Write => CallbackKind::Writer,
        };
        self.add_io_kind(fd, dir, f, kind)
    }

    #[track_caller]
    fn add_io_kind(
        &self,
        fd: i32,
        dir: Dir,
        f: Box<dyn FnMut()>,
        kind: CallbackKind,
    ) -> io::Result<()> {
        if self.inner.closed.get() {
            return Err(io::Error::other("the event loop is closed"));
        }
        let site = Location::caller();
        let replaced = self
            .inner
            .reactor
            .borrow_mut()
            .set_callback(fd, dir, f, site, kind)?;
        drop(replaced); // after the borrow: its destructor is user code
        Ok(())
    }

    /// Calls `f` on the loop thread, as an ordinary callback, when the process receives
    /// `signal` (a `libc::SIG*` number). Deliveries between two iterations are coalesced into
    /// one call. Replaces an existing handler for the same signal.
    ///
    /// Errors for SIGKILL, SIGSTOP, the fault signals (SIGSEGV, SIGILL, SIGFPE) and numbers
    /// out of range, and on a closed loop.
    ///
    /// ```
    /// use std::{cell::Cell, rc::Rc};
    /// let el = solo::EventLoop::new().unwrap();
    /// let h = el.handle();
    /// let got = Rc::new(Cell::new(false));
    /// let (g, h2) = (got.clone(), h.clone());
    /// h.add_signal_handler(libc::SIGUSR2, move || { g.set(true); h2.stop(); }).unwrap();
    /// // SAFETY: sending a signal to ourselves.
    /// unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
    /// el.run_forever().unwrap();
    /// assert!(got.get());
    /// assert!(h.remove_signal_handler(libc::SIGUSR2));
    /// assert!(h.add_signal_handler(libc::SIGKILL, || {}).is_err());
    /// ```
    #[track_caller]
    pub fn add_signal_handler(&self, signal: i32, mut f: impl FnMut() + 'static) -> io::Result<()> {
        if self.inner.closed.get() {
            return Err(io::Error::other("the event loop is closed"));
        }
        let (fd, drain_end) = {
            let mut signals = self.inner.signals.borrow_mut();
            let read = signals.watch(signal)?;
            (read.as_raw_fd(), read.try_clone()?)
        };
        let cb = Box::new(move || {
            crate::signal::drain(&drain_end);
            f();
        });
        self.add_io_kind(fd, Dir::Read, cb, CallbackKind::Signal)
    }

    /// Removes the handler for `signal`; returns whether there was one. When no loop in the
    /// process handles the signal any more, it behaves as before the first handler: its default
    /// action if that was its disposition (SIGINT terminates again), otherwise the handler or
    /// the ignoring that was in place.
    pub fn remove_signal_handler(&self, signal: i32) -> bool {
        let read = self.inner.signals.borrow_mut().unwatch(signal);
        match read {
            Some(read) => {
                let (_, f) = self
                    .inner
                    .reactor
                    .borrow_mut()
                    .remove_callback(read.as_raw_fd(), Dir::Read);
                drop(f);
                true
            }
            None => false,
        }
    }

    /// Runs the blocking `f` on the loop's thread pool and returns a future of its result,
    /// which completes on the loop. A panic in `f` becomes a [`JoinError`](crate::JoinError).
    /// Dropping the future does not interrupt `f`.
    ///
    /// ```
    /// let el = solo::EventLoop::new().unwrap();
    /// let h = el.handle();
    /// let got = el.run_until_complete(h.run_in_executor(|| {
    ///     std::thread::sleep(std::time::Duration::from_millis(10)); // fine: not on the loop
    ///     "done"
    /// })).unwrap();
    /// assert_eq!(got.unwrap(), "done");
    /// ```
    pub fn run_in_executor<T, F>(&self, f: F) -> Blocking<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        executor::submit(&self.inner.executor, f)
    }

    /// Like [`run_in_executor`](Handle::run_in_executor), on an executor of your choice.
    pub fn run_in_executor_on<T, F>(&self, executor: &dyn Executor, f: F) -> Blocking<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        executor::submit(executor, f)
    }

    /// The loop's default thread pool.
    pub fn executor(&self) -> &ThreadPool {
        &self.inner.executor
    }

    /// Stops watching `fd` for reading. Returns whether a reader was registered. Safe to call
    /// from inside the reader itself.
    pub fn remove_reader(&self, fd: &impl AsRawFd) -> bool {
        let (had, f) = self
            .inner
            .reactor
            .borrow_mut()
            .remove_callback(fd.as_raw_fd(), Dir::Read);
        drop(f);
        had
    }

    /// Stops watching `fd` for writing. Returns whether a writer was registered.
    pub fn remove_writer(&self, fd: &impl AsRawFd) -> bool {
        let (had, f) = self
            .inner
            .reactor
            .borrow_mut()
            .remove_callback(fd.as_raw_fd(), Dir::Write);
        drop(f);
        had
    }

    /// Spawns a future as a task on this loop. The returned [`JoinHandle`] is a future of its
    /// result; dropping it detaches the task.
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        self.inner.spawn_at(future, Location::caller(), None)
    }

    /// Like [`spawn`](Handle::spawn), with a name that debug reports and the exception handler
    /// show.
    #[track_caller]
    pub fn spawn_named<F>(&self, name: &str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        self.inner
            .spawn_at(future, Location::caller(), Some(Rc::from(name)))
    }

    pub(crate) fn spawn_at<F>(
        &self,
        future: F,
        site: &'static Location<'static>,
    ) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        self.inner.spawn_at(future, site, None)
    }

    /// A `Send + Sync` handle for other threads.
    pub fn remote(&self) -> Remote {
        Remote {
            shared: self.inner.shared.clone(),
        }
    }

    /// The loop's current time.
    pub fn time(&self) -> Instant {
        self.inner.clock.nanos_to_instant(self.inner.clock.now())
    }

    /// Asks the loop to stop after the current iteration (see [`EventLoop::run_forever`]).
    pub fn stop(&self) {
        self.inner.stopping.set(true);
    }

    /// Whether the loop is running.
    pub fn is_running(&self) -> bool {
        self.inner.running.get()
    }

    /// Whether the loop has been dropped (it then accepts no work).
    pub fn is_closed(&self) -> bool {
        self.inner.closed.get()
    }

    /// Changes debug mode's slow-callback threshold, also while the loop runs. No effect when
    /// debug mode is off.
    pub fn set_slow_callback_duration(&self, d: Duration) {
        if let Some(dbg) = &self.inner.debug {
            dbg.set_slow(d);
        }
    }

    /// Changes the watchdog's blocked-loop threshold. No effect when debug mode is off.
    pub fn set_blocked_threshold(&self, d: Duration) {
        if let Some(dbg) = &self.inner.debug {
            dbg.set_blocked(d);
        }
    }

    /// Replaces where debug reports go (see [`Builder::on_slow`]). No effect when debug mode
    /// is off.
    pub fn set_on_slow(&self, f: impl Fn(&Report) + Send + Sync + 'static) {
        if let Some(dbg) = &self.inner.debug {
            dbg.shared.set_hook(Some(Arc::new(f)));
        }
    }

    /// Whether debug mode is on.
    pub fn debug_enabled(&self) -> bool {
        self.inner.debug.is_some()
    }

    /// The live tasks (see [`EventLoop::tasks`]).
    pub fn tasks(&self) -> Vec<TaskSnapshot> {
        self.inner
            .debug
            .as_ref()
            .map_or_else(Vec::new, |d| d.shared.snapshot())
    }

    /// Sets where panics from callbacks and tasks go. The default prints the
    /// [`ExceptionContext`] to stderr; either way the loop keeps running.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// let el = solo::EventLoop::new().unwrap();
    /// let h = el.handle();
    /// let seen = Rc::new(RefCell::new(String::new()));
    /// let s = seen.clone();
    /// h.set_exception_handler(move |ctx| *s.borrow_mut() = ctx.message().to_string());
    /// h.call_soon(|| panic!("oops"));
    /// h.stop();
    /// el.run_forever().unwrap();
    /// assert_eq!(*seen.borrow(), "panicked: oops");
    /// ```
    pub fn set_exception_handler(&self, f: impl Fn(&ExceptionContext<'_>) + 'static) {
        *self.inner.exception_handler.borrow_mut() = Some(Rc::new(f));
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

impl futures_task::LocalSpawn for Handle {
    fn spawn_local_obj(
        &self,
        future: futures_task::LocalFutureObj<'static, ()>,
    ) -> Result<(), futures_task::SpawnError> {
        if self.inner.closed.get() {
            return Err(futures_task::SpawnError::shutdown());
        }
        drop(self.spawn(future));
        Ok(())
    }
}

enum Which {
    Soon(u64),
    Timer(TimerKey),
    Nothing,
}

/// Returned by `call_soon`, `call_later` and `call_at`: cancels the callback.
///
/// ```
/// use std::time::Duration;
/// let el = solo::EventLoop::new().unwrap();
/// let h = el.handle();
/// let t = h.call_later(Duration::from_secs(3600), || unreachable!());
/// t.cancel();
/// t.cancel(); // a second cancel is a no-op
/// assert!(t.cancelled());
/// ```
pub struct CallbackHandle {
    inner: Weak<Inner>,
    which: Which,
    cancelled: Cell<bool>,
}

impl CallbackHandle {
    fn closed() -> CallbackHandle {
        CallbackHandle {
            inner: Weak::new(),
            which: Which::Nothing,
            cancelled: Cell::new(true),
        }
    }

    /// Cancels the callback: it will not run. Cancelling twice, after it ran, or after the loop
    /// is gone does nothing. A cancelled timer's memory is freed at once.
    pub fn cancel(&self) {
        if self.cancelled.replace(true) {
            return;
        }
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        match self.which {
            Which::Soon(id) => {
                if id >= inner.soon_popped.get() {
                    inner.cancelled_soon.borrow_mut().insert(id);
                }
            }
            Which::Timer(key) => {
                let payload = inner.timers.borrow_mut().remove(key);
                drop(payload);
            }
            Which::Nothing => {}
        }
    }

    /// Whether [`cancel`](CallbackHandle::cancel) was called (or the loop was closed when the
    /// callback was scheduled, so it was never queued).
    pub fn cancelled(&self) -> bool {
        self.cancelled.get()
    }
}

impl fmt::Debug for CallbackHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackHandle")
            .field("cancelled", &self.cancelled.get())
            .finish()
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn ready_queue_entries_stay_small() {
        assert_eq!(std::mem::size_of::<super::Runnable>(), 32);
    }
}

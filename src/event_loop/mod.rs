//! The event loop: its state, its handles, and the iteration that drives everything.
//!
//! ```
//! use std::time::Duration;
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! h.call_soon(|| println!("runs in the next iteration"));
//! let stop = h.clone();
//! h.call_later(Duration::from_millis(1), move || stop.stop());
//! el.run_forever().unwrap();
//! ```
//!
//! # The rooms
//!
//! The loop's state is one struct, [`Inner`], shared by the [`EventLoop`] and every
//! [`Handle`] through an `Rc`. Each file of this folder is one part of what the loop does with
//! it:
//!
//! | file | what it holds |
//! | --- | --- |
//! | `mod.rs` | `Inner`, its invariants, and the methods other modules use it through (timers, I/O registrations, tasks, the clock) |
//! | `iteration.rs` | `run_once`: one turn of the loop, as its five phases |
//! | `probe.rs` | what debug mode observes during an iteration: no probe, or the debug probe |
//! | `callbacks.rs` | the callback record and its life: `call_soon`/`call_later`/`call_at`, cancel, run, drop |
//! | `exception.rs` | where a panic from user code goes: the exception handler |
//! | `readers.rs` | `add_reader`/`add_writer`, signal handlers |
//! | `embed.rs` | stepping the loop from a host's loop: `run_once`, `next_timeout`, the loop's fd |
//! | `builder.rs` | [`Builder`]: the loop's settings |
//! | `run.rs` | the entry points: `run_forever`, `run_until_complete`, `shutdown`, `run`, and closing |
//! | `handle.rs` | [`EventLoop`] and [`Handle`] |
//! | `remote.rs` | [`Remote`]: the loop as other threads see it |
//! | `monitor.rs` | the loop's side of the monitor: `cancel` and user commands on the loop |
//!
//! ARCHITECTURE.md draws the phases and the life of callbacks and tasks.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::os::fd::RawFd;
use std::panic::Location;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use slab::Slab;

use crate::callback::CallbackKind;
use crate::clock::{Clock, ManualClock};
use crate::coop::Budget;
use crate::debug::{Debug, TaskState};
use crate::executor::ThreadPool;
use crate::reactor::{Dir, IoFn, Reactor, Unregistered};
use crate::shared::Shared;
use crate::signal_pipe::Signals;
use crate::task::{self, Header, JoinHandle, Scheduler, TaskRef};
use crate::timer::{TimerKey, Wheel};

mod builder;
mod callbacks;
mod embed;
mod exception;
mod handle;
mod iteration;
mod monitor;
mod probe;
mod readers;
mod ready;
mod remote;
mod run;

pub use builder::Builder;
pub use callbacks::CallbackHandle;
pub use exception::ExceptionContext;
pub use handle::{
    call_at, call_later, call_soon, run_in_executor, spawn, spawn_named, EventLoop, Handle,
};
pub use remote::{Remote, RemoteJoinHandle};
pub use run::{run, CancelledTask, ShutdownReport};

use callbacks::{Runnable, SoonIds, TimerPayload};
use exception::ExceptionHandler;
use iteration::Scratch;
use ready::ReadyQueue;

/// While work is queued, poll for I/O at least every this many iterations...
const POLL_EVERY_ITERATIONS: u32 = 128;
/// ...and at least every this many nanoseconds of loop time (1 ms)...
const POLL_EVERY_NS: u64 = 1_000_000;
/// ...where a busy loop with no timers checks the time at least every this many iterations.
const CLOCK_CHECK_EVERY: u32 = 8;
/// The loop gives back memory left by a burst at most this often (1 s of loop time).
const RELEASE_EVERY_NS: u64 = 1_000_000_000;

/// The loop's state. Shared by [`EventLoop`] and every [`Handle`] through an `Rc`; only the
/// files of this folder touch its fields, every other module goes through its methods.
///
/// No `RefCell` borrow of a field is held while user code runs (a callback, a task's poll, a
/// destructor, a waker): user code may call back into the loop. Values that hold user code are
/// taken out of the borrow first and dropped or run after it ends.
pub(crate) struct Inner {
    /// The part other threads reach: the remote queue, the cross-thread waker, the main
    /// future's wake flag. Its address identifies the loop.
    shared: Arc<Shared>,
    clock: Clock,
    /// Entries to run, in FIFO order. An entry is in it at most once for a task (its
    /// `SCHEDULED` bit), and exactly once for each queued callback.
    ready: RefCell<ReadyQueue>,
    timers: RefCell<Wheel<TimerPayload>>,
    reactor: RefCell<Reactor>,
    /// Every live task, by slot; a task leaves it when it finishes, is cancelled, or the loop
    /// closes.
    tasks: RefCell<Slab<TaskRef>>,
    task_names: RefCell<HashMap<u32, Rc<str>>>,
    /// Some task has a name or debug mode is on: retiring a task has more to do.
    task_extras: Cell<bool>,
    /// Which `call_soon` entries are still queued, and which of those were cancelled.
    soon: SoonIds,
    running: Cell<bool>,
    /// Inside `run_until_complete`: only then does a wake of the main future count as work (a
    /// stale main waker firing later must not keep the loop from sleeping).
    main_running: Cell<bool>,
    /// Set by `stop`; the run entry points clear it when they see it.
    stopping: Cell<bool>,
    /// Set once, by `close`: from then on the loop accepts no work.
    closed: Cell<bool>,
    iters_since_poll: Cell<u32>,
    last_poll: Cell<u64>,
    /// When memory was last given back (loop ns).
    last_release: Cell<u64>,
    /// The last clock reading (loop ns): a lower bound of the current time, free to read.
    now: Cell<u64>,
    exception_handler: RefCell<Option<ExceptionHandler>>,
    scratch: RefCell<Scratch>,
    /// Debug mode's state; `None` when it is off (see [`Inner::debug`]).
    debug: Option<Box<Debug>>,
    executor: ThreadPool,
    signals: RefCell<Signals>,
    /// What the task being polled may still do before it must yield (`coop.rs`).
    budget: Budget,
    /// Tasks that panicked while their `JoinHandle` was alive, by header address: the handle
    /// may still take the error. Reported as never retrieved if the handle is dropped first,
    /// or when the loop closes (`task_panicked`, `sweep_unretrieved`).
    unretrieved: RefCell<HashMap<usize, Failure>>,
    /// How many tasks have panicked: orders `unretrieved`.
    failures: Cell<u64>,
    /// The monitor (`SOLO_MONITOR`, `Builder::monitor`), and the user commands it runs here.
    monitor: Option<monitor::LoopMonitor>,
}

/// A panic that a live `JoinHandle` has not taken yet.
struct Failure {
    /// Keeps the cell (and so the address that keys it) alive, and shows its state bits.
    task: TaskRef,
    name: Option<Rc<str>>,
    /// `panicked: ...`
    message: String,
    seq: u64,
}

/// The key of a task in `Inner::unretrieved`.
fn task_key(task: &Header) -> usize {
    task as *const Header as usize
}

impl Scheduler for Inner {
    #[inline]
    fn push_task(&self, task: TaskRef) {
        if self.debug().is_some() {
            self.debug_task_state(task.header().slot.get(), TaskState::Scheduled);
        }
        self.push(Runnable::Task(task));
    }

    fn unretrieved_panic(&self, task: &Header) -> bool {
        let failure = self.unretrieved.borrow_mut().remove(&task_key(task));
        let found = failure.is_some();
        if let Some(f) = failure {
            self.report_unretrieved(f, "its JoinHandle was dropped without being awaited");
        }
        found
    }

    fn panic_retrieved(&self, task: &Header) {
        let failure = self.unretrieved.borrow_mut().remove(&task_key(task));
        drop(failure);
    }

    fn destructor_panicked(&self, task: &Header, payload: Box<dyn std::any::Any + Send>) {
        // The name, if the task is still registered (a finished task's slot may hold another).
        let slot = task.slot.get();
        let registered = self
            .tasks
            .borrow()
            .get(slot as usize)
            .is_some_and(|t| std::ptr::eq(t.header(), task));
        let name = registered.then(|| self.task_name(slot)).flatten();
        self.report_destructor_panic(CallbackKind::Task, task.site, name.as_deref(), payload);
    }

    fn join_waker_panicked(
        &self,
        site: &'static Location<'static>,
        payload: Box<dyn std::any::Any + Send>,
    ) {
        let msg = format!(
            "the waker of the task awaiting a JoinHandle (of the task spawned at {site}) \
             panicked: {}",
            crate::error::panic_message(&*payload)
        );
        crate::error::drop_payload(payload);
        self.report_loop_error(&msg);
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

impl Inner {
    fn new(
        shared: Arc<Shared>,
        clock: Option<ManualClock>,
        reactor: Reactor,
        debug: Option<Box<Debug>>,
        executor: ThreadPool,
        monitor: Option<crate::monitor::Monitor>,
    ) -> Inner {
        Inner {
            shared,
            clock: Clock::new(clock),
            ready: RefCell::new(ReadyQueue::with_capacity(256)),
            timers: RefCell::new(Wheel::new()),
            reactor: RefCell::new(reactor),
            tasks: RefCell::new(Slab::new()),
            task_names: RefCell::new(HashMap::new()),
            task_extras: Cell::new(debug.is_some()),
            soon: SoonIds::default(),
            running: Cell::new(false),
            main_running: Cell::new(false),
            stopping: Cell::new(false),
            closed: Cell::new(false),
            // The first iteration always polls.
            iters_since_poll: Cell::new(POLL_EVERY_ITERATIONS),
            last_poll: Cell::new(0),
            last_release: Cell::new(0),
            now: Cell::new(0),
            exception_handler: RefCell::new(None),
            scratch: RefCell::new(Scratch::default()),
            debug,
            executor,
            signals: RefCell::new(Signals::default()),
            budget: Budget::default(),
            unretrieved: RefCell::new(HashMap::new()),
            failures: Cell::new(0),
            monitor: monitor.map(monitor::LoopMonitor::new),
        }
    }

    /// Debug mode's state, if it is on. Every debug hook of the loop goes through here, so
    /// building with `--cfg solo_debug_compiled_out` (what `tools/debug_cost` does to a copy of
    /// the crate) removes them all: the baseline that debug mode's cost is measured against.
    #[inline(always)]
    fn debug(&self) -> Option<&Debug> {
        if cfg!(solo_debug_compiled_out) {
            return None;
        }
        self.debug.as_deref()
    }

    /// An identifier of this loop, unique while it lives (the address of its shared part).
    pub(crate) fn id(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    /// The cooperative budget of the task being polled.
    #[inline]
    pub(crate) fn budget(&self) -> &Budget {
        &self.budget
    }

    pub(crate) fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Reads the clock and remembers the reading as the loop's current time.
    #[inline]
    pub(crate) fn read_clock(&self) -> u64 {
        let now = self.clock.now();
        self.now.set(now);
        now
    }

    /// How long a host may wait before the next step (see `embed.rs`).
    fn next_timeout(&self) -> Option<Duration> {
        if !self.ready.borrow().is_empty() || self.shared.has_pending() || self.stopping.get() {
            return Some(Duration::ZERO);
        }
        let next = self.timers.borrow().next_deadline()?;
        Some(Duration::from_nanos(next.saturating_sub(self.clock.now())))
    }

    /// The backend's fd.
    fn backend_fd(&self) -> RawFd {
        self.reactor.borrow().as_raw_fd()
    }

    /// The last clock reading: a lower bound of the current time, with no clock read.
    #[inline]
    pub(crate) fn cached_now(&self) -> u64 {
        self.now.get()
    }

    /// Queues an entry behind everything already queued (it runs in the next batch).
    #[inline(always)]
    fn push(&self, r: Runnable) {
        self.ready.borrow_mut().push_back(r);
        if let Some(d) = self.debug() {
            d.enqueued(self.clock.now());
        }
    }

    // Debug mode costs the paths outside the iteration one test of `self.debug()` each;
    // everything else it does is in `#[cold]` functions, kept out of line so the hot code
    // stays small. Inside the iteration, the probe decides (see `probe.rs`).

    #[cold]
    #[inline(never)]
    fn debug_task_state(&self, slot: u32, state: TaskState) {
        if let Some(d) = self.debug() {
            d.task_state(slot, state);
        }
    }

    #[cold]
    #[inline(never)]
    fn debug_spawned(&self, slot: u32, site: &'static Location<'static>, name: Option<&str>) {
        if let Some(d) = self.debug() {
            d.task_spawned(slot, site, name);
        }
    }

    // ---- timers: used by `time` (sleeps) and by the callbacks room ----

    /// Adds a timer that wakes `waker` at `deadline` (loop ns).
    pub(crate) fn add_wake_timer(&self, deadline: u64, now: u64, waker: Waker) -> TimerKey {
        self.timers
            .borrow_mut()
            .insert(deadline, now, TimerPayload::Wake(waker))
    }

    /// Refreshes the waker of a pending wake timer; returns false if the timer is gone (it
    /// fired, or was cancelled).
    pub(crate) fn refresh_wake_timer(&self, key: TimerKey, waker: &Waker) -> bool {
        let mut timers = self.timers.borrow_mut();
        match timers.get_mut(key) {
            Some(TimerPayload::Wake(w)) => {
                if !w.will_wake(waker) {
                    *w = waker.clone();
                }
                true
            }
            _ => false,
        }
    }

    /// Removes a timer (a no-op if it is gone). What it held is dropped after the borrow ends,
    /// behind the panic guard: a callback's or a waker's destructor is user code.
    pub(crate) fn cancel_timer(&self, key: TimerKey) {
        let payload = self.timers.borrow_mut().remove(key);
        match payload {
            Some(TimerPayload::Call(f)) => {
                let site = f.site();
                self.drop_guarded(f, CallbackKind::Timer, site);
            }
            Some(TimerPayload::Wake(w)) => {
                self.drop_guarded(w, CallbackKind::Loop, Location::caller());
            }
            None => {}
        }
    }

    // ---- I/O registrations ----
    //
    // The reactor never runs user code: what it unregisters (a replaced callback, the wakers of
    // a removed source, a registration found stale) comes back to these methods, which drop it
    // after the reactor's borrow ends, behind the panic guard, and report stale registrations.

    /// Sets the reader or writer callback of `fd`; returns the callback it replaced.
    pub(super) fn set_io_callback(
        &self,
        fd: RawFd,
        dir: Dir,
        f: IoFn,
        site: &'static Location<'static>,
        kind: CallbackKind,
    ) -> io::Result<Option<Unregistered>> {
        let set = self
            .reactor
            .borrow_mut()
            .set_callback(fd, dir, f, site, kind);
        self.report_evicted();
        set
    }

    /// Removes the reader or writer callback of `fd`; whether there was one.
    pub(super) fn remove_io_callback(&self, fd: RawFd, dir: Dir) -> bool {
        let removed = self.reactor.borrow_mut().remove_callback(fd, dir);
        self.report_evicted();
        match removed {
            Some(Some(cb)) => {
                self.drop_unregistered(cb);
                true
            }
            Some(None) => true, // it is running now; it is dropped when it returns
            None => false,
        }
    }

    /// Drops a callback that is no longer registered, behind the panic guard.
    pub(super) fn drop_unregistered(&self, cb: Unregistered) {
        self.drop_guarded(cb.f, cb.kind, cb.site);
    }

    /// Reports the registrations the reactor found stale (their fds were closed while
    /// registered and the numbers reused), and drops what they held.
    fn report_evicted(&self) {
        let evicted = self.reactor.borrow_mut().take_evicted();
        for e in evicted {
            let msg = format!(
                "fd {} was closed while registered and its number reused; its registration was \
                 removed (deregister before closing: remove_reader/remove_writer, or drop the \
                 Async)",
                e.fd
            );
            match e.callbacks.first() {
                Some(cb) => self.report_error(cb.kind, cb.site, &msg),
                None => self.report_loop_error(&msg),
            }
            for cb in e.callbacks {
                self.drop_unregistered(cb);
            }
            for w in e.wakers {
                // The task's next operation on the `Async` fails with a clear error.
                self.wake(w);
            }
        }
    }

    /// Registers `fd` for readiness caching in both directions; returns its token.
    pub(crate) fn register_async(&self, fd: RawFd) -> io::Result<usize> {
        let token = self.reactor.borrow_mut().register_async(fd);
        self.report_evicted();
        token
    }

    /// Deregisters an `Async` source; its wakers are dropped after the borrow ends.
    pub(crate) fn deregister_async(&self, token: usize) {
        let wakers = self.reactor.borrow_mut().deregister_async(token);
        if let Some(wakers) = wakers {
            self.drop_guarded(wakers, CallbackKind::Loop, Location::caller());
        }
    }

    /// Ready if the source was seen ready in `dir` since its last `WouldBlock`; otherwise stores
    /// the waker. An error if the registration is gone (its fd was closed behind its back).
    pub(crate) fn poll_ready(
        &self,
        token: usize,
        dir: Dir,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        self.reactor.borrow_mut().poll_ready(token, dir, cx)
    }

    /// Forgets the source's readiness in `dir` and re-arms it with the backend (an operation
    /// failed: if the fd is still ready, the next poll reports it).
    pub(crate) fn rearm_async(&self, token: usize, dir: Dir) {
        self.reactor.borrow_mut().rearm_async(token, dir);
    }

    /// Forgets the source's readiness in `dir` (an operation saw `WouldBlock`).
    pub(crate) fn clear_ready(&self, token: usize, dir: Dir) {
        self.reactor.borrow_mut().clear_ready(token, dir);
    }

    // ---- tasks ----

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
            self.drop_guarded(future, CallbackKind::Task, site);
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
        if self.debug().is_some() {
            self.debug_spawned(slot, site, name.as_deref());
        }
        if let Some(n) = name {
            self.task_names.borrow_mut().insert(slot, n);
            self.task_extras.set(true);
        }
        join
    }

    /// Removes a finished task from the registry; returns the registry's reference.
    fn retire(&self, slot: u32) -> Option<TaskRef> {
        let t = self.tasks.borrow_mut().try_remove(slot as usize);
        if self.task_extras.get() {
            self.retire_extras(slot);
        }
        t
    }

    // ---- panics nobody retrieved (asyncio's "Task exception was never retrieved") ----
    //
    // A panic belongs to the task's `JoinHandle`; the handler hears of it only once nobody can
    // retrieve it (the rules are on `JoinHandle`'s documentation, in task.rs).

    /// A task panicked (`msg`: `panicked: ...`). Reported now if its handle is gone; otherwise
    /// remembered until the handle takes the error or is dropped, or the loop closes.
    #[cold]
    #[inline(never)]
    fn task_panicked(&self, task: TaskRef, name: Option<Rc<str>>, message: String) {
        let seq = self.failures.get();
        self.failures.set(seq + 1);
        let failure = Failure {
            task,
            name,
            message,
            seq,
        };
        if failure.task.state() & task::DETACHED != 0 {
            self.report_unretrieved(failure, "its JoinHandle was dropped before it failed");
        } else {
            let key = task_key(failure.task.header());
            self.unretrieved.borrow_mut().insert(key, failure);
        }
    }

    /// Reports the panics nobody can retrieve any more: those whose `JoinHandle` was dropped
    /// while the loop was not running and, when `closing`, every one still unretrieved. Called
    /// when a run starts and when the loop closes.
    pub(super) fn sweep_unretrieved(&self, closing: bool) {
        if self.unretrieved.borrow().is_empty() {
            return;
        }
        // Taken out: the handler is user code, and may drop or await handles.
        let mut all: Vec<Failure> = self
            .unretrieved
            .borrow_mut()
            .drain()
            .map(|(_, f)| f)
            .collect();
        all.sort_by_key(|f| f.seq);
        for f in all {
            let state = f.task.state();
            if state & task::FAILED == 0 {
                // Retrieved off the loop (another executor awaited the handle).
            } else if state & task::DETACHED != 0 {
                self.report_unretrieved(
                    f,
                    "its JoinHandle was dropped without being awaited, while the loop was not \
                     running",
                );
            } else if closing {
                self.report_unretrieved(f, "the loop closed before its JoinHandle was awaited");
            } else {
                let key = task_key(f.task.header());
                self.unretrieved.borrow_mut().insert(key, f);
            }
        }
    }

    /// Reports a panic nobody retrieved, with why nobody can.
    fn report_unretrieved(&self, f: Failure, why: &str) {
        f.task.clear_failed();
        let msg = format!("{} (task exception was never retrieved: {why})", f.message);
        let site = f.task.header().site;
        self.report_task_failure(site, f.name.as_deref(), &msg);
    }

    /// The rare part of retiring a task: its name, its debug-mode row.
    #[cold]
    #[inline(never)]
    fn retire_extras(&self, slot: u32) {
        self.task_names.borrow_mut().remove(&slot);
        if let Some(d) = self.debug() {
            d.task_gone(slot);
        }
    }

    fn task_name(&self, slot: u32) -> Option<Rc<str>> {
        self.task_names.borrow().get(&slot).cloned()
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

//! Tasks: futures the loop polls, in one allocation each, with wakers that may cross threads.
//!
//! # The idea
//!
//! A spawned future lives in a heap *cell*: a [`Header`] followed by the future's *stage* (the
//! future itself and the waker of whoever awaits its `JoinHandle`, then its output, then
//! nothing). Everything about a task is reached through a
//! pointer to the header; a per-type vtable knows how to poll, read and free the rest.
//!
//! Who points at a cell:
//!
//! * **local references** ([`TaskRef`]): the loop's task registry, an entry in the ready queue,
//!   the [`JoinHandle`], and (outside debug mode) a timer of the loop that will wake the task,
//!   in place of its waker ([`TaskRef::of_local_waker`]). They live on the loop thread only, so
//!   they are counted in a plain `Cell`;
//! * **wakers**, which `std` requires to be `Send + Sync`, counted in an atomic.
//!
//! The atomic count holds one extra unit for "some local reference exists", the trick `Arc` uses
//! for its weak count: the cell is freed by whoever drops the atomic count to zero, the last
//! waker (on any thread) or the last local reference.
//!
//! # Waking
//!
//! Waking from the loop thread while the loop runs — the common case — pushes the task straight
//! onto the ready queue: no lock, no atomic read-modify-write. Waking from anywhere else (another
//! thread, or this thread while the loop is not running) pushes the waker's reference onto the
//! loop's remote queue (a mutex) and wakes the loop through mio's `Waker`; the loop thread then
//! schedules the task. So the task's *state* is only ever touched on the loop thread, and is a
//! plain `Cell` too. If the loop is gone, a remote wake just drops its reference.
//!
//! # Why one file
//!
//! The cell's layout, its two reference counts, the waker vtable and the `JoinHandle` form one
//! unsafe protocol: each `// SAFETY:` comment leans on facts established in the others (who
//! may free the cell, when the stage is empty, which thread touches the state). Split across
//! files, a reader would have to hold all of them open to check one block; here they are read
//! top to bottom, with the Miri tests at the end.
//!
//! # Invariants
//!
//! * `Header::state` and `Header::local` are read and written only on the loop thread.
//! * A task is in the ready queue at most once: the `SCHEDULED` bit says it is.
//! * The future and its output are dropped on the loop thread. When the local count reaches zero
//!   the stage holds neither (the registry drops the future at completion, cancellation or loop
//!   drop; the `JoinHandle` takes or drops the output), so the last waker may free the memory on
//!   any thread.
//! * A future is never polled after it returned `Ready`, panicked or was cancelled, and never
//!   polled re-entrantly.

use std::any::Any;
use std::cell::{Cell, UnsafeCell};
use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicU32, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::error::{drop_payload, panic_message, JoinError};
use crate::shared::Shared;

// The task state bits. `Header::state` is read and written only on the loop thread.
// ARCHITECTURE.md ("A task's states") draws the machine they make.

/// The task has exactly one `Runnable::Task` entry in the loop's ready queue.
///
/// Set by `TaskRef::mark_scheduled` at spawn, and by `schedule_local` when a wake is handled on
/// the loop thread (directly, or in phase 3 for a wake that came through the remote queue), and
/// only if neither `SCHEDULED` nor `COMPLETE` is set; each set comes with one queue entry holding
/// a local reference. Cleared by `TaskRef::run`, first thing, when that entry is popped.
/// Transitions: 0/`RUNNING`/`CANCEL` → `+SCHEDULED` (wake); `SCHEDULED` → `RUNNING` (popped),
/// or → `COMPLETE` (popped with `CANCEL`). It may still be set beside `COMPLETE` (woken during
/// the poll that returned `Ready`); `run` then drops the entry without polling.
pub(crate) const SCHEDULED: u8 = 1;

/// The future is being polled right now, inside `TaskRef::run`.
///
/// Set by `run` just before the poll; cleared by `run` right after it returns, whether it
/// returned `Pending`, `Ready` or panicked (the vtable's `poll` catches the panic). Only `run`
/// sets it, so a set bit rules out a re-entrant poll, and `JoinHandle::poll` leaves the stage
/// alone while it is set. Transitions: `RUNNING` → 0 (`Pending`), → `COMPLETE` (`Ready`),
/// → `COMPLETE | FAILED` (panic); a wake while `RUNNING` adds `SCHEDULED`, so the task runs again
/// next iteration.
pub(crate) const RUNNING: u8 = 2;

/// The future is gone for good: it returned `Ready`, panicked, or was dropped by a cancel, the
/// loop's drop or `shutdown`. The stage holds the output or a `JoinError` until the
/// `JoinHandle` takes it (or it is dropped because the handle is gone).
///
/// Set by `run` after `Ready` or a panic, by `run` when it pops a task with `CANCEL` (dropping
/// the future instead of polling it), and by `abort_on_loop_drop`. Never cleared: a terminal
/// state. Wakes of a `COMPLETE` task do nothing; `JoinHandle::poll` takes the output only once
/// it is set.
pub(crate) const COMPLETE: u8 = 4;

/// A cancel was requested: the future is dropped the next time the task is popped, never in
/// the middle of a poll.
///
/// Set by `request_cancel` (`JoinHandle::cancel`) unless `COMPLETE` or `CANCEL` is already set;
/// it then wakes the task so that it gets queued. Also set, together with `COMPLETE`, by
/// `abort_on_loop_drop`. Never cleared. Transition: `CANCEL | SCHEDULED` → popped by `run` →
/// `COMPLETE | CANCEL`, the future dropped and a cancelled `JoinError` stored.
pub(crate) const CANCEL: u8 = 8;

/// The `JoinHandle` was dropped without taking the output: nobody will read it.
///
/// Set by `JoinHandle`'s drop, in any state. Never cleared. If the task is already `COMPLETE`,
/// that drop also drops the stage; otherwise `TaskRef::finish` drops the output at completion,
/// on the loop thread. A handle whose `poll` returned `Ready` has already let go of the task and
/// never sets it.
pub(crate) const DETACHED: u8 = 16;

/// The task panicked and its `JoinHandle` has not taken the error (a cancellation does not set
/// it).
///
/// Set by the vtable's `poll` when the future panics (`run` adds `COMPLETE` right after).
/// Cleared by `JoinHandle::poll` when it takes the output, and by the loop once it has reported
/// the panic as never retrieved (`Scheduler::unretrieved_panic` for a handle dropped on its
/// running loop; the loop's sweep for one dropped elsewhere, and at close).
pub(crate) const FAILED: u8 = 32;

/// Hooks into the loop that owns a task, so this module stays free of the loop's types.
pub(crate) trait Scheduler {
    /// Puts a task on the ready queue (called on the loop thread with the scheduled bit set).
    fn push_task(&self, task: TaskRef);
    /// A `JoinHandle` of a panicked task was dropped without taking the error: nobody can
    /// retrieve it any more, so the loop reports it. False if the loop did not find it (a sweep
    /// holds it: it reports it then).
    fn unretrieved_panic(&self, task: &Header) -> bool;
    /// A `JoinHandle` took the error of a panicked task: the loop forgets it.
    fn panic_retrieved(&self, task: &Header);
    /// Dropping the task's future or output panicked (the panic was caught here).
    fn destructor_panicked(&self, task: &Header, payload: Box<dyn Any + Send>);
    /// The waker of whoever awaits the task's `JoinHandle` panicked when woken.
    fn join_waker_panicked(&self, site: &'static Location<'static>, payload: Box<dyn Any + Send>);
}

/// The scheduler of the loop running on this thread, if it is `h`'s loop.
fn with_own_scheduler<R>(h: &Header, f: impl FnOnce(Option<&dyn Scheduler>) -> R) -> R {
    let (shared, sched) = RUNNING_LOOP.with(|c| c.get());
    match sched {
        // SAFETY: the enter guard keeps the scheduler alive while it is installed, and this
        // borrow ends before `f` returns, inside the guard's lifetime.
        Some(s) if shared == Arc::as_ptr(&h.shared) => f(Some(unsafe { s.as_ref() })),
        _ => f(None),
    }
}

thread_local! {
    /// The scheduler of the loop running on this thread, and its remote queue's address, which
    /// identifies the loop. Null when no loop runs here.
    static RUNNING_LOOP: Cell<(*const Shared, Option<NonNull<dyn Scheduler>>)> =
        const { Cell::new((std::ptr::null(), None)) };
}

/// Makes `sched` (identified by `shared`) the loop running on this thread until the guard drops.
pub(crate) fn enter(shared: &Arc<Shared>, sched: &dyn Scheduler) -> EnterGuard {
    let ptr = NonNull::from(sched);
    // SAFETY: only the lifetime is erased. The guard restores the previous value when dropped,
    // and the loop keeps the scheduler alive while the guard lives (the guard is created and
    // dropped inside one call that borrows the scheduler).
    let ptr: NonNull<dyn Scheduler> = unsafe { std::mem::transmute(ptr) };
    let prev = RUNNING_LOOP.with(|c| c.replace((Arc::as_ptr(shared), Some(ptr))));
    EnterGuard { prev }
}

/// Restores the previous running loop on drop (also during a panic).
pub(crate) struct EnterGuard {
    prev: (*const Shared, Option<NonNull<dyn Scheduler>>),
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        RUNNING_LOOP.with(|c| c.set(self.prev));
    }
}

impl fmt::Debug for EnterGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnterGuard")
    }
}

/// The address of the remote queue of the loop running on this thread (null if none).
pub(crate) fn running_loop_id() -> *const Shared {
    RUNNING_LOOP.with(|c| c.get().0)
}

/// The part of a task cell that does not depend on the future's type.
pub(crate) struct Header {
    state: Cell<u8>,
    local: Cell<u32>,
    /// Index in the loop's task registry.
    pub(crate) slot: Cell<u32>,
    /// Wakers, plus one for all local references together. 32 bits keep the header small;
    /// `waker_clone` aborts long before it could overflow.
    refs: AtomicU32,
    vtable: &'static Vtable,
    shared: Arc<Shared>,
    /// Where the task was spawned, for debug reports.
    pub(crate) site: &'static Location<'static>,
}

struct Vtable {
    /// Polls the future; on `Done`/`Panicked` the output or panic is stored and the join waker
    /// (if any) is moved into the last argument.
    poll: unsafe fn(NonNull<Header>, &mut Context<'_>, &mut Option<Waker>) -> RunResult,
    /// Stores the waker of the task awaiting the `JoinHandle` (while the future runs).
    set_join_waker: unsafe fn(NonNull<Header>, &Waker),
    /// Drops the future and stores a cancellation error; returns the join waker.
    cancel: unsafe fn(NonNull<Header>) -> Option<Waker>,
    /// Moves the output into `*dst`, a `Poll<Result<T, JoinError>>`.
    take_output: unsafe fn(NonNull<Header>, *mut ()),
    /// Drops whatever the stage holds (on the loop thread).
    drop_stage: unsafe fn(NonNull<Header>),
    /// Frees the cell.
    dealloc: unsafe fn(NonNull<Header>),
    /// The future's type, for debug reports.
    type_name: fn() -> &'static str,
}

enum Stage<F: Future> {
    /// The future, and the waker of whoever awaits the `JoinHandle`. The waker lives here, not in
    /// the header, because it is only needed while the future runs: the output takes its place.
    Running(F, Option<Waker>),
    Finished(Result<F::Output, JoinError>),
    Consumed,
}

#[repr(C)]
struct TaskCell<F: Future> {
    header: Header,
    stage: UnsafeCell<Stage<F>>,
}

/// What one run of a task did.
#[derive(Debug)]
pub(crate) enum RunResult {
    /// The future is pending (or the entry was stale).
    Pending,
    /// The future finished, or was dropped because the task was cancelled.
    Done,
    /// The future panicked; the message is for the exception handler.
    Panicked(String),
}

/// A local (loop-thread) reference to a task.
pub(crate) struct TaskRef {
    ptr: NonNull<Header>,
}

impl TaskRef {
    /// Allocates a task; returns two local references (the registry's and the `JoinHandle`'s;
    /// `mark_scheduled` adds the ready queue's).
    pub(crate) fn new<F>(
        future: F,
        shared: Arc<Shared>,
        site: &'static Location<'static>,
    ) -> (TaskRef, JoinHandle<F::Output>)
    where
        F: Future + 'static,
    {
        let cell = Box::new(TaskCell {
            header: Header {
                state: Cell::new(0),
                local: Cell::new(2),
                slot: Cell::new(u32::MAX),
                refs: AtomicU32::new(1),
                vtable: vtable::<F>(),
                shared,
                site,
            },
            stage: UnsafeCell::new(Stage::Running(future, None)),
        });
        let ptr = NonNull::from(Box::leak(cell)).cast::<Header>();
        (
            TaskRef { ptr },
            JoinHandle {
                task: Some(TaskRef { ptr }),
                _output: PhantomData,
            },
        )
    }

    #[inline]
    pub(crate) fn header(&self) -> &Header {
        // SAFETY: a TaskRef holds a local reference, which keeps the cell allocated.
        unsafe { self.ptr.as_ref() }
    }

    #[inline]
    pub(crate) fn state(&self) -> u8 {
        self.header().state.get()
    }

    #[inline]
    fn set_state(&self, s: u8) {
        self.header().state.set(s);
    }

    /// The future's type name.
    pub(crate) fn type_name(&self) -> &'static str {
        (self.header().vtable.type_name)()
    }

    /// How many wakers for this task exist (on any thread). In debug mode, where timers keep
    /// wakers rather than local references, zero for a pending, unscheduled task means nothing
    /// can ever wake it; outside it, a timer may hold the task without a waker.
    pub(crate) fn waker_count(&self) -> usize {
        // Local references hold one unit between them.
        self.header().refs.load(Ordering::Acquire) as usize - 1
    }

    /// Marks a new task as queued and returns the queue's reference.
    pub(crate) fn mark_scheduled(&self) -> TaskRef {
        self.set_state(self.state() | SCHEDULED);
        self.clone()
    }

    /// Runs the task once, as the ready queue's entry: polls it (or drops it if cancelled).
    /// The caller removes a finished task from the registry.
    pub(crate) fn run(self) -> RunResult {
        let state = self.state() & !SCHEDULED;
        if state & COMPLETE != 0 {
            self.set_state(state);
            return RunResult::Pending;
        }
        let h = self.ptr;
        if state & CANCEL != 0 {
            self.set_state(state | COMPLETE);
            // SAFETY: on the loop thread, the task is not running (state had no RUNNING bit:
            // only this function sets it), and it is not complete, so the stage holds the future.
            let join = unsafe { (self.header().vtable.cancel)(h) };
            self.finish(join);
            return RunResult::Done;
        }
        self.set_state(state | RUNNING);
        // SAFETY: the waker borrows our reference without counting it; `ManuallyDrop` keeps it
        // from being released. Clones made by the future are counted as usual.
        let waker = ManuallyDrop::new(unsafe { Waker::from_raw(raw_waker(h)) });
        let mut cx = Context::from_waker(&waker);
        let mut join = None;
        // SAFETY: the stage holds the future (not complete), we are on the loop thread and the
        // RUNNING bit rules out re-entrant polls (and keeps JoinHandle::poll off the stage).
        let result = unsafe { (self.header().vtable.poll)(h, &mut cx, &mut join) };
        let state = self.state() & !RUNNING;
        if let RunResult::Pending = result {
            self.set_state(state);
        } else {
            self.set_state(state | COMPLETE);
            self.finish(join);
        }
        result
    }

    /// After completion: wake the joiner, or drop the output if nobody will take it.
    fn finish(&self, join: Option<Waker>) {
        let h = self.header();
        if h.state.get() & DETACHED != 0 {
            // SAFETY: on the loop thread; the join handle is gone, so nobody else reads the stage.
            unsafe { (h.vtable.drop_stage)(self.ptr) };
        }
        if let Some(w) = join {
            // Someone else's waker, perhaps: its panic must not unwind into the loop.
            if let Err(payload) = catch_unwind(AssertUnwindSafe(|| w.wake())) {
                with_own_scheduler(h, |s| match s {
                    Some(s) => s.join_waker_panicked(h.site, payload),
                    None => drop_payload(payload),
                });
            }
        }
    }

    /// Called when the loop is dropped: drops the future if it has not finished.
    pub(crate) fn abort_on_loop_drop(&self) {
        let state = self.state();
        if state & COMPLETE == 0 {
            self.set_state(state | COMPLETE | CANCEL);
            // SAFETY: loop thread; the task is not running (the loop is being dropped, not run).
            let join = unsafe { (self.header().vtable.cancel)(self.ptr) };
            self.finish(join);
        }
    }

    /// Marks a panic as dealt with: retrieved, or reported as never retrieved.
    pub(crate) fn clear_failed(&self) {
        self.set_state(self.state() & !FAILED);
    }

    /// A local reference to the task `waker` wakes, if it is a task of the loop running on this
    /// thread; `None` for any other waker.
    ///
    /// What a timer keeps instead of the waker: a local reference is counted in a `Cell`, so
    /// keeping it and dropping it cost no atomic read-modify-write, where a cloned waker costs
    /// two (some 11 ns of a pending timer's cost, BENCHMARKS.md "Where a pending timer's 47 ns
    /// go"). It must not leave the loop thread, which the timer wheel (owned by the loop) never
    /// does.
    #[inline]
    pub(crate) fn of_local_waker(waker: &Waker) -> Option<TaskRef> {
        if !std::ptr::eq(waker.vtable(), &WAKER_VTABLE) {
            return None;
        }
        let ptr = NonNull::new(waker.data() as *mut Header)?;
        // SAFETY: a waker with this vtable holds a unit of its task's atomic count, so the header
        // is alive; `shared` is written once, at creation, so reading it races with nothing.
        let h = unsafe { ptr.as_ref() };
        if running_loop_id() != Arc::as_ptr(&h.shared) {
            return None;
        }
        // This thread runs the task's loop: `local` is ours to touch. A task whose local
        // references are all gone (it finished, its handle dropped) has the locals' unit of the
        // atomic count back to take, as `schedule_local` does.
        let n = h.local.get() + 1;
        h.local.set(n);
        if n == 1 {
            h.refs.fetch_add(1, Ordering::Relaxed);
        }
        Some(TaskRef { ptr })
    }

    /// Whether `waker` wakes this task (the `Waker::will_wake` of a local reference).
    #[inline]
    pub(crate) fn is_woken_by(&self, waker: &Waker) -> bool {
        std::ptr::eq(waker.vtable(), &WAKER_VTABLE)
            && std::ptr::eq(waker.data(), self.ptr.as_ptr() as *const ())
    }

    /// Wakes the task as its waker would, giving this reference to the ready queue if the task
    /// gets queued (no count is touched then) and dropping it otherwise.
    #[inline]
    pub(crate) fn wake(self) {
        let this = ManuallyDrop::new(self);
        let ptr = this.ptr;
        // Some(true): queued; Some(false): already queued or finished, the wake does nothing;
        // None: not during its loop's run, so it takes the waker's way (the remote queue).
        let queued = RUNNING_LOOP.with(|c| {
            let (shared, sched) = c.get();
            let h = this.header();
            if shared != Arc::as_ptr(&h.shared) {
                return None;
            }
            let state = h.state.get();
            if state & (SCHEDULED | COMPLETE) != 0 {
                return Some(false);
            }
            h.state.set(state | SCHEDULED);
            let sched = sched.expect("scheduler set with the loop id");
            // SAFETY: the enter guard keeps the scheduler alive while it is installed.
            unsafe { sched.as_ref() }.push_task(TaskRef { ptr });
            Some(true)
        });
        match queued {
            Some(true) => {}
            Some(false) => drop(ManuallyDrop::into_inner(this)),
            None => {
                wake_by_ref(ptr);
                drop(ManuallyDrop::into_inner(this));
            }
        }
    }

    /// Requests cancellation; the loop drops the future the next time it pops the task.
    pub(crate) fn request_cancel(&self) {
        let state = self.state();
        if state & (COMPLETE | CANCEL) == 0 {
            self.set_state(state | CANCEL);
            wake_by_ref(self.ptr);
        }
    }
}

impl Clone for TaskRef {
    fn clone(&self) -> TaskRef {
        let h = self.header();
        h.local.set(h.local.get() + 1);
        TaskRef { ptr: self.ptr }
    }
}

impl Drop for TaskRef {
    fn drop(&mut self) {
        let h = self.header();
        let n = h.local.get() - 1;
        h.local.set(n);
        if n == 0 {
            // SAFETY: the locals' unit of the atomic count is released exactly once, here.
            unsafe { release(self.ptr) };
        }
    }
}

impl fmt::Debug for TaskRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskRef")
            .field("state", &self.state())
            .field("site", &self.header().site)
            .finish()
    }
}

/// Drops one unit of the atomic count; frees the cell if it was the last.
///
/// # Safety
/// The caller owns one unit of `refs`.
unsafe fn release(ptr: NonNull<Header>) {
    // SAFETY: the caller's unit keeps the cell alive until this decrement.
    let h = unsafe { ptr.as_ref() };
    if h.refs.fetch_sub(1, Ordering::Release) == 1 {
        fence(Ordering::Acquire);
        // SAFETY: that was the last unit: nobody else can reach the cell.
        unsafe { (h.vtable.dealloc)(ptr) };
    }
}

/// Schedules the task from the loop thread (the fast path), or reports that it cannot.
fn schedule_local(ptr: NonNull<Header>) -> bool {
    RUNNING_LOOP.with(|c| {
        let (shared, sched) = c.get();
        // SAFETY: the header is alive: the caller holds a reference (a waker or a TaskRef).
        let h = unsafe { ptr.as_ref() };
        if shared != Arc::as_ptr(&h.shared) {
            return false;
        }
        // We are on the thread that runs this task's loop, inside its run: state is ours.
        let state = h.state.get();
        if state & (SCHEDULED | COMPLETE) == 0 {
            h.state.set(state | SCHEDULED);
            h.local.set(h.local.get() + 1);
            if h.local.get() == 1 {
                h.refs.fetch_add(1, Ordering::Relaxed);
            }
            let sched = sched.expect("scheduler set with the loop id");
            // SAFETY: the enter guard keeps the scheduler alive while it is installed.
            unsafe { sched.as_ref() }.push_task(TaskRef { ptr });
        }
        true
    })
}

fn wake_by_ref(ptr: NonNull<Header>) {
    if schedule_local(ptr) {
        return;
    }
    // SAFETY: the caller holds a reference, so the header is alive.
    let h = unsafe { ptr.as_ref() };
    h.refs.fetch_add(1, Ordering::Relaxed);
    // SAFETY: the waker owns the unit just taken; the vtable treats its data as a live header.
    let remote = unsafe { Waker::from_raw(raw_waker(ptr)) };
    // The loop thread wakes it again, which takes the local path there and then releases the
    // unit. If the loop is gone, the waker comes back and dropping it releases the unit: waking
    // a task of a closed loop is a no-op.
    if let Err(rejected) = h.shared.push_wake(remote) {
        drop(rejected);
    }
}

static WAKER_VTABLE: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

fn raw_waker(ptr: NonNull<Header>) -> RawWaker {
    RawWaker::new(ptr.as_ptr() as *const (), &WAKER_VTABLE)
}

unsafe fn waker_clone(data: *const ()) -> RawWaker {
    // SAFETY: a waker's data is a live header pointer; the clone takes its own unit.
    let h = unsafe { &*(data as *const Header) };
    if h.refs.fetch_add(1, Ordering::Relaxed) > u32::MAX / 2 {
        // Billions of live wakers for one task: a leak. Abort as `Arc` does on overflow.
        std::process::abort();
    }
    RawWaker::new(data, &WAKER_VTABLE)
}

unsafe fn waker_wake(data: *const ()) {
    // SAFETY: the waker's data is a live header pointer.
    let ptr = unsafe { NonNull::new_unchecked(data as *mut Header) };
    wake_by_ref(ptr);
    // SAFETY: waking by value consumes the waker's unit.
    unsafe { release(ptr) };
}

unsafe fn waker_wake_by_ref(data: *const ()) {
    // SAFETY: the waker's data is a live header pointer.
    wake_by_ref(unsafe { NonNull::new_unchecked(data as *mut Header) });
}

unsafe fn waker_drop(data: *const ()) {
    // SAFETY: dropping the waker releases its unit.
    unsafe { release(NonNull::new_unchecked(data as *mut Header)) };
}

fn vtable<F: Future + 'static>() -> &'static Vtable {
    &Vtable {
        poll: poll::<F>,
        set_join_waker: set_join_waker::<F>,
        cancel: cancel::<F>,
        take_output: take_output::<F>,
        drop_stage: drop_stage::<F>,
        dealloc: dealloc::<F>,
        type_name: std::any::type_name::<F>,
    }
}

/// Replaces the stage, catching a panic from the old value's destructor (the future's or the
/// output's: user code) and reporting it to the task's loop, or to stderr outside it.
///
/// The old value is dropped *in place*, never moved first: the future is pinned in the cell,
/// and an async block may hold pointers into itself (a future borrowing one of its locals,
/// whose destructor reads through that borrow). Moving it out to drop it would leave those
/// pointers aimed at whatever is written into the cell next.
fn set_stage<F: Future>(h: &Header, stage: &mut Stage<F>, new: Stage<F>) {
    let slot: *mut Stage<F> = stage;
    // SAFETY: `slot` comes from a unique borrow, and holds a valid value, dropped once here.
    // If a destructor panics, drop glue still drops the value's other parts while unwinding,
    // and `catch_unwind` returns only after that: either way the old value is fully dropped
    // and nothing reads it again before the write below.
    let dropped = catch_unwind(AssertUnwindSafe(|| unsafe {
        std::ptr::drop_in_place(slot)
    }));
    // SAFETY: the slot's old value was dropped just above: overwriting it without a drop is
    // what must happen, and the slot is valid for writes (it came from `&mut`).
    unsafe { std::ptr::write(slot, new) };
    if let Err(payload) = dropped {
        with_own_scheduler(h, |s| match s {
            Some(s) => s.destructor_panicked(h, payload),
            None => {
                eprintln!(
                    "solo: task (spawned at {}) failed: panicked in its destructor: {}",
                    h.site,
                    panic_message(&*payload)
                );
                drop_payload(payload);
            }
        });
    }
}

unsafe fn poll<F: Future>(
    ptr: NonNull<Header>,
    cx: &mut Context<'_>,
    join_out: &mut Option<Waker>,
) -> RunResult {
    // SAFETY: (caller) loop thread, not running, stage holds the future.
    let cell = unsafe { ptr.cast::<TaskCell<F>>().as_ref() };
    // SAFETY: the stage is accessed only on the loop thread and not re-entrantly.
    let stage = unsafe { &mut *cell.stage.get() };
    let Stage::Running(fut, _) = stage else {
        unreachable!("polled a finished task")
    };
    // SAFETY: the future is never moved: it stays in the heap cell until it is dropped in place.
    let fut = unsafe { Pin::new_unchecked(fut) };
    match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
        Ok(Poll::Pending) => RunResult::Pending,
        Ok(Poll::Ready(v)) => {
            *join_out = take_join(stage);
            set_stage(&cell.header, stage, Stage::Finished(Ok(v)));
            RunResult::Done
        }
        Err(payload) => {
            let h = &cell.header;
            h.state.set(h.state.get() | FAILED);
            let msg = format!("panicked: {}", panic_message(&*payload));
            *join_out = take_join(stage);
            set_stage(h, stage, Stage::Finished(Err(JoinError::panicked(payload))));
            RunResult::Panicked(msg)
        }
    }
}

unsafe fn cancel<F: Future>(ptr: NonNull<Header>) -> Option<Waker> {
    // SAFETY: (caller) loop thread, not running.
    let cell = unsafe { ptr.cast::<TaskCell<F>>().as_ref() };
    // SAFETY: as above; no other borrow of the stage is live.
    let stage = unsafe { &mut *cell.stage.get() };
    let join = take_join(stage);
    set_stage(
        &cell.header,
        stage,
        Stage::Finished(Err(JoinError::cancelled())),
    );
    join
}

/// The join waker of a running stage (none once finished).
fn take_join<F: Future>(stage: &mut Stage<F>) -> Option<Waker> {
    match stage {
        Stage::Running(_, join) => join.take(),
        _ => None,
    }
}

unsafe fn set_join_waker<F: Future>(ptr: NonNull<Header>, waker: &Waker) {
    // SAFETY: (caller) loop thread, task neither complete nor running, so no other reference
    // into the stage exists.
    let cell = unsafe { ptr.cast::<TaskCell<F>>().as_ref() };
    // SAFETY: see above.
    if let Stage::Running(_, join) = unsafe { &mut *cell.stage.get() } {
        match join {
            Some(w) if w.will_wake(waker) => {}
            _ => *join = Some(waker.clone()),
        }
    }
}

unsafe fn take_output<F: Future>(ptr: NonNull<Header>, dst: *mut ()) {
    // SAFETY: (caller) loop thread, task complete.
    let cell = unsafe { ptr.cast::<TaskCell<F>>().as_ref() };
    // SAFETY: as above.
    let stage = unsafe { &mut *cell.stage.get() };
    match std::mem::replace(stage, Stage::Consumed) {
        Stage::Finished(out) => {
            // SAFETY: the caller passes a `Poll<Result<F::Output, JoinError>>` slot.
            unsafe { *(dst as *mut Poll<Result<F::Output, JoinError>>) = Poll::Ready(out) };
        }
        _ => panic!("JoinHandle polled after it returned Ready"),
    }
}

unsafe fn drop_stage<F: Future>(ptr: NonNull<Header>) {
    // SAFETY: (caller) loop thread, nobody else borrows the stage.
    let cell = unsafe { ptr.cast::<TaskCell<F>>().as_ref() };
    // SAFETY: as above.
    set_stage(
        &cell.header,
        unsafe { &mut *cell.stage.get() },
        Stage::Consumed,
    );
}

unsafe fn dealloc<F: Future>(ptr: NonNull<Header>) {
    // SAFETY: the last unit is gone: we own the allocation, made by `Box::new` in `TaskRef::new`.
    let cell = unsafe { Box::from_raw(ptr.cast::<TaskCell<F>>().as_ptr()) };
    // By the module invariant the stage holds no future or output here (but may hold an error,
    // which is Send). `Consumed`/`Finished(Err)` need no loop thread to drop.
    debug_assert!(!matches!(
        // SAFETY: we own the cell.
        unsafe { &*cell.stage.get() },
        Stage::Running(..) | Stage::Finished(Ok(_))
    ));
    drop(cell);
}

/// An owned permission to await a task's result.
///
/// It is a future of `Result<T, JoinError>`: the task's output, or why there is none (it
/// panicked, or was cancelled). Dropping the handle *detaches* the task: it keeps running and its
/// output is dropped when it finishes. `JoinHandle` is `!Send`: it belongs to the loop thread.
///
/// A task's panic belongs to its handle, as an exception belongs to an asyncio task: awaiting
/// the handle yields it, and nothing is reported. The loop's exception handler hears of it,
/// as "task exception was never retrieved" with the spawn site, only once nobody can retrieve
/// it: the task panics after its handle was dropped (reported then); the handle is dropped
/// unawaited after the panic (reported then, or, if dropped while the loop is not running,
/// when the loop next runs or closes); or the loop closes while the handle is still alive and
/// unawaited (reported at close; the handle still yields the error afterwards).
///
/// ```
/// let el = solo::EventLoop::new().unwrap();
/// let task = el.handle().spawn(async { 6 * 7 });
/// assert_eq!(el.run_until_complete(task).unwrap().unwrap(), 42);
/// ```
pub struct JoinHandle<T> {
    task: Option<TaskRef>,
    _output: PhantomData<T>,
}

impl<T> JoinHandle<T> {
    /// A handle for a task that could not be spawned (its loop is closed): yields `Cancelled`.
    pub(crate) fn closed() -> JoinHandle<T> {
        JoinHandle {
            task: None,
            _output: PhantomData,
        }
    }

    /// Cancels the task: its future is dropped at the loop's next safe point (never in the middle
    /// of a poll), and this handle then yields a cancelled [`JoinError`]. Cancelling a finished
    /// or already cancelled task does nothing.
    ///
    /// ```
    /// let el = solo::EventLoop::new().unwrap();
    /// let task = el.handle().spawn(std::future::pending::<()>());
    /// task.cancel();
    /// task.cancel(); // harmless
    /// assert!(el.run_until_complete(task).unwrap().unwrap_err().is_cancelled());
    /// ```
    pub fn cancel(&self) {
        if let Some(t) = &self.task {
            t.request_cancel();
        }
    }

    /// Whether the task has finished (with output, panic or cancellation).
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(|t| t.state() & COMPLETE != 0)
    }
}

// The handle holds no pinned data: the output lives in the task cell.
impl<T> Unpin for JoinHandle<T> {}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(task) = self.task.as_ref() else {
            return Poll::Ready(Err(JoinError::cancelled()));
        };
        let h = task.header();
        let state = task.state();
        if state & COMPLETE == 0 {
            // A running task polling its own JoinHandle (waiting for itself, which can never
            // end): its stage is borrowed by its own poll, so leave it alone.
            if state & RUNNING == 0 {
                // SAFETY: loop thread (JoinHandle is !Send); the task is neither complete (its
                // stage holds the future and the join slot) nor running (nothing borrows it).
                unsafe { (h.vtable.set_join_waker)(task.ptr, cx.waker()) };
            }
            crate::await_point::pending(
                || crate::await_point::Awaited::Join {
                    slot: h.slot.get(),
                    site: h.site,
                },
                None,
            );
            return Poll::Pending;
        }
        let mut out: Poll<Result<T, JoinError>> = Poll::Pending;
        // SAFETY: the task is complete and this handle is the only reader of its output; `out`
        // has the type the vtable's `take_output` writes, since the handle's T is the task's.
        unsafe { (h.vtable.take_output)(task.ptr, &mut out as *mut _ as *mut ()) };
        if state & FAILED != 0 {
            task.set_state(state & !FAILED);
            // Off its loop (another executor, or after the loop ran) the loop's next sweep
            // sees the cleared bit instead.
            with_own_scheduler(h, |s| {
                if let Some(s) = s {
                    s.panic_retrieved(h);
                }
            });
        }
        self.task = None;
        out
    }
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            let state = task.state();
            task.set_state(state | DETACHED);
            if state & FAILED != 0 {
                // Nobody can retrieve the panic now. On its running loop it is reported at once;
                // elsewhere FAILED stays set beside DETACHED, and the loop reports it when it
                // next runs, or closes.
                let h = task.header();
                let reported = with_own_scheduler(h, |s| s.is_some_and(|s| s.unretrieved_panic(h)));
                if reported {
                    task.clear_failed();
                }
            }
            if state & COMPLETE != 0 {
                // SAFETY: loop thread; the task is complete and the handle was its only reader.
                unsafe { (task.header().vtable.drop_stage)(task.ptr) };
            }
        }
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Yields to the loop once: the task is put at the back of the ready queue and runs again in
/// the next iteration, after everything that was ready before it.
///
/// ```
/// let el = solo::EventLoop::new().unwrap();
/// el.run_until_complete(async {
///     for _ in 0..3 {
///         solo::yield_now().await; // let other tasks, timers and I/O run
///     }
/// }).unwrap();
/// ```
pub async fn yield_now() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Tests that exercise every unsafe path here (and run under Miri in CI: `miri_` prefix).
#[cfg(test)]
mod tests {
    use crate::EventLoop;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::sync::{Arc, Mutex};
    use std::task::{Poll, Waker};

    use crate::yield_now as yield_once;

    #[test]
    fn miri_spawn_poll_join_and_detach() {
        let el = EventLoop::new().unwrap();
        let h = el.handle();
        let a = h.spawn(async {
            yield_once().await;
            String::from("out")
        });
        // Detached before and after completion: the output is dropped on the loop thread.
        drop(h.spawn(async { vec![1u8; 10] }));
        let b = h.spawn(async { Box::new(5) });
        let c = h.spawn(async { 1 });
        let r = el
            .run_until_complete(async move {
                let x = a.await.unwrap();
                drop(b);
                x + &c.await.unwrap().to_string()
            })
            .unwrap();
        assert_eq!(r, "out1");
    }

    #[test]
    fn miri_wakers_cloned_dropped_and_woken_across_threads() {
        let el = EventLoop::new().unwrap();
        let h = el.handle();
        let polls = Rc::new(Cell::new(0));
        let p = polls.clone();
        let t = h.spawn(std::future::poll_fn(move |cx| {
            p.set(p.get() + 1);
            match p.get() {
                1 => {
                    let w = cx.waker().clone();
                    let w2 = w.clone();
                    drop(w2);
                    std::thread::spawn(move || w.wake()).join().unwrap();
                    Poll::Pending
                }
                2 => {
                    let w = cx.waker().clone();
                    std::thread::spawn(move || {
                        w.wake_by_ref();
                        drop(w);
                    })
                    .join()
                    .unwrap();
                    Poll::Pending
                }
                _ => Poll::Ready(p.get()),
            }
        }));
        assert_eq!(el.run_until_complete(t).unwrap().unwrap(), 3);
    }

    #[test]
    fn miri_last_waker_dropped_on_another_thread_after_the_loop() {
        let stash: Arc<Mutex<Option<Waker>>> = Arc::default();
        let el = EventLoop::new().unwrap();
        let s = stash.clone();
        let data = vec![1u64; 4];
        drop(el.handle().spawn(std::future::poll_fn(move |cx| {
            let _keep = &data;
            *s.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        })));
        el.stop();
        el.run_forever().unwrap();
        drop(el); // drops the future on this thread; the cell stays alive for the waker
        let w = stash.lock().unwrap().take().unwrap();
        std::thread::spawn(move || {
            w.wake_by_ref();
            drop(w);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn miri_join_wakers_and_a_task_awaiting_itself() {
        let el = EventLoop::new().unwrap();
        let h = el.handle();
        // A joiner that waits before the task finishes (the join waker is stored and used).
        let slow = h.spawn(async {
            yield_once().await;
            yield_once().await;
            5
        });
        let joiner = h.spawn(async move { slow.await.unwrap() + 1 });
        // A task that polls its own JoinHandle: pending forever, without touching its own stage.
        let slot: Rc<std::cell::RefCell<Option<crate::JoinHandle<()>>>> = Rc::default();
        let s = slot.clone();
        let me = h.spawn(async move {
            let own = s.borrow_mut().take().unwrap();
            let mut own = std::pin::pin!(own);
            let _ = futures_poll_once(own.as_mut()).await;
        });
        *slot.borrow_mut() = Some(me);
        assert_eq!(el.run_until_complete(joiner).unwrap().unwrap(), 6);
    }

    /// Polls a future once and reports whether it was ready.
    async fn futures_poll_once<F: std::future::Future + Unpin>(mut f: F) -> bool {
        std::future::poll_fn(move |cx| Poll::Ready(std::pin::Pin::new(&mut f).poll(cx).is_ready()))
            .await
    }

    /// A future that reads through a pointer into its own (pinned) state when dropped.
    struct ReadsOwnLocalOnDrop<'a>(&'a Vec<u8>, Rc<Cell<usize>>);

    impl Drop for ReadsOwnLocalOnDrop<'_> {
        fn drop(&mut self) {
            self.1.set(self.0.len());
        }
    }

    #[test]
    fn miri_a_self_referential_future_is_dropped_in_place_when_cancelled() {
        let el = EventLoop::new().unwrap();
        let h = el.handle();
        let seen = Rc::new(Cell::new(0));
        let s = seen.clone();
        let t = h.spawn(async move {
            let local = vec![1u8, 2, 3];
            let _borrows = ReadsOwnLocalOnDrop(&local, s);
            std::future::pending::<()>().await;
        });
        let s = seen.clone();
        let u = h.spawn(async move {
            let local = vec![7u8; 5];
            let _borrows = ReadsOwnLocalOnDrop(&local, s);
            std::future::pending::<()>().await;
        });
        el.stop();
        el.run_forever().unwrap();
        t.cancel();
        assert!(el
            .run_until_complete(t)
            .unwrap()
            .unwrap_err()
            .is_cancelled());
        assert_eq!(
            seen.get(),
            3,
            "the cancelled future read its own local, unmoved"
        );
        drop(u);
        drop(el); // the loop's end drops the other one in place too
        assert_eq!(seen.get(), 5);
    }

    #[test]
    fn miri_cancel_panic_and_join_error() {
        let el = EventLoop::new().unwrap();
        let h = el.handle();
        h.set_exception_handler(|_| {});
        let p = h.spawn(async {
            yield_once().await;
            panic!("in task")
        });
        let c = h.spawn(std::future::pending::<String>());
        c.cancel();
        let (p, c) = el
            .run_until_complete(async move { (p.await, c.await) })
            .unwrap();
        assert!(p.unwrap_err().is_panic());
        assert!(c.unwrap_err().is_cancelled());
    }
}

#[cfg(test)]
mod size_tests {
    /// The memory budget per task (BENCHMARKS.md): a 40-byte header, and a stage no wider than
    /// the future and the join waker, or the `Result<Output, JoinError>`, plus a tag.
    #[test]
    fn task_cells_stay_small() {
        assert_eq!(std::mem::size_of::<super::Header>(), 40);
        assert_eq!(
            std::mem::size_of::<super::TaskCell<std::future::Pending<()>>>(),
            64
        );
        assert_eq!(std::mem::size_of::<crate::JoinError>(), 8);
    }
}

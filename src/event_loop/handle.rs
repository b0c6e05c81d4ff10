//! [`EventLoop`], which owns a loop, and [`Handle`], the cheap clone that schedules work on it.
//!
//! ```
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle(); // clone it freely; it stays on this thread
//! let t = h.spawn(async { 6 * 7 });
//! assert_eq!(el.run_until_complete(t).unwrap().unwrap(), 42);
//! ```
//!
//! Both point at the same [`Inner`]; dropping the `EventLoop` closes the loop, and a `Handle`
//! that outlives it refuses new work (`is_closed`). The methods that schedule callbacks, watch
//! fds and run the loop live in their own rooms (`callbacks.rs`, `readers.rs`, `run.rs`).

use std::fmt;
use std::future::Future;
use std::io;
use std::panic::Location;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Builder, CallbackHandle, Inner, Remote, CURRENT};
use crate::debug::{Report, SiteProfile, Stats, TaskSnapshot};
use crate::error;
use crate::executor::{self, Blocking, Executor, ThreadPool, TrySubmitError};
use crate::task::JoinHandle;

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
    pub(super) handle: Handle,
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

    pub(super) fn from_inner(inner: Rc<Inner>) -> EventLoop {
        EventLoop {
            handle: Handle { inner },
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

    /// Loop health figures; `None` unless debug mode is on.
    pub fn stats(&self) -> Option<Stats> {
        let inner = &self.handle.inner;
        inner.debug().map(|d| {
            let reactor = inner.reactor.borrow();
            let (sleeps, spins, spin_hits) = reactor.spin_stats();
            let (naps, nap_hits) = reactor.nap_stats();
            let (backend, waits, adds, modifies, deletes) = reactor.backend_stats();
            Stats {
                sleeps,
                spins,
                spin_hits,
                naps,
                nap_hits,
                backend,
                backend_waits: waits,
                backend_adds: adds,
                backend_modifies: modifies,
                backend_deletes: deletes,
                ..d.stats()
            }
        })
    }

    /// The backend the loop polls with ([`Builder::backend`], `SOLO_BACKEND`).
    pub fn backend(&self) -> crate::Backend {
        self.handle.inner.reactor.borrow().backend_stats().0
    }

    /// Time spent per scheduling/spawn site, most first; empty unless debug mode is on. Also
    /// printed (top 20) when a debug-mode loop is dropped; format it yourself with
    /// [`debug::format_profile`](crate::debug::format_profile).
    pub fn profile(&self) -> Vec<SiteProfile> {
        self.handle
            .inner
            .debug()
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
        Handle::current_for("Handle::current")
    }

    /// The running loop's handle, for the user's `call` (`"solo::spawn"`); outside a running
    /// loop, panics with a message that names `call` and says how to start a loop.
    #[track_caller]
    pub(crate) fn current_for(call: &'static str) -> Handle {
        match Handle::try_current() {
            Some(h) => h,
            None => panic!("{}", error::outside_loop_panic(call)),
        }
    }

    /// The handle of the loop running on this thread, if any.
    pub fn try_current() -> Option<Handle> {
        CURRENT.with(|c| c.borrow().clone().map(|inner| Handle { inner }))
    }

    /// Runs the blocking `f` on the loop's thread pool and returns a future of its result,
    /// which completes on the loop. A panic in `f` becomes a [`JoinError`](crate::JoinError).
    ///
    /// The pool's queue is bounded ([`Builder::executor_queue_bound`], 64 jobs per thread by
    /// default), and past the bound this **waits**:
    ///
    /// - with room in the queue (and nobody waiting for it), `f` is queued at once, before the
    ///   future is first polled; dropping the future then does not interrupt `f`, which runs to
    ///   the end (as in asyncio);
    /// - with the queue full, the future keeps `f` and stays pending until a slot is free;
    ///   waiting submitters get slots in the order they started waiting (their first poll).
    ///   Dropping the future while it waits drops `f` unrun, and its place (or a slot already
    ///   granted to it) goes to the next in line. So a burst never puts more than the bound in
    ///   the pool: what is past it stays with the futures that submitted it;
    /// - after the pool was shut down (the loop was shut down or dropped), the future completes
    ///   at once with a cancelled `JoinError` ([`is_cancelled`](crate::JoinError::is_cancelled))
    ///   and `f` never runs.
    ///
    /// To be refused instead of waiting, use
    /// [`try_run_in_executor`](Handle::try_run_in_executor). Debug mode's
    /// [`Stats`](crate::debug::Stats) show the queue (`executor_queued`), the waiting
    /// submitters (`executor_waiting`), and the refused and abandoned jobs.
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
    #[track_caller]
    pub fn run_in_executor<T, F>(&self, f: F) -> Blocking<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.inner.executor.submit(f).at(Location::caller())
    }

    /// Like [`run_in_executor`](Handle::run_in_executor), but **fails** instead of waiting:
    /// if the pool's queue is at its bound, or other submitters are already waiting for room
    /// (nobody jumps the line), or the pool was shut down, `f` is not run and comes back inside
    /// the [`TrySubmitError`]. On success `f` is queued at once, as with `run_in_executor`.
    ///
    /// ```
    /// let el = solo::EventLoop::builder().executor_queue_bound(1).build().unwrap();
    /// let h = el.handle();
    /// let job = || 6 * 7;
    /// match h.try_run_in_executor(job) {
    ///     Ok(fut) => assert_eq!(el.run_until_complete(fut).unwrap().unwrap(), 42),
    ///     Err(e) => {
    ///         eprintln!("{e}; running it here instead");
    ///         assert_eq!((e.into_inner())(), 42);
    ///     }
    /// }
    /// ```
    #[track_caller]
    pub fn try_run_in_executor<T, F>(&self, f: F) -> Result<Blocking<T>, TrySubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let site = Location::caller();
        self.inner.executor.try_submit(f).map(|b| b.at(site))
    }

    /// Like [`run_in_executor`](Handle::run_in_executor), on an executor of your choice. A
    /// [`ThreadPool`] keeps its bound here too (the future waits for room); any other
    /// [`Executor`] is handed the job at once and applies its own policy when busy. If it drops
    /// the job without running it, the future completes with a cancelled
    /// [`JoinError`](crate::JoinError) rather than waiting forever.
    #[track_caller]
    pub fn run_in_executor_on<T, F>(&self, executor: &dyn Executor, f: F) -> Blocking<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        executor::submit(executor, f).at(Location::caller())
    }

    /// The loop's default thread pool.
    pub fn executor(&self) -> &ThreadPool {
        &self.inner.executor
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

    /// A `Send + Sync` handle for other threads.
    pub fn remote(&self) -> Remote {
        Remote::new(self.inner.shared.clone())
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
        if let Some(dbg) = self.inner.debug() {
            dbg.set_slow(d);
        }
    }

    /// Changes the watchdog's blocked-loop threshold. No effect when debug mode is off.
    pub fn set_blocked_threshold(&self, d: Duration) {
        if let Some(dbg) = self.inner.debug() {
            dbg.set_blocked(d);
        }
    }

    /// Replaces where debug reports go (see [`Builder::on_slow`]). No effect when debug mode
    /// is off.
    pub fn set_on_slow(&self, f: impl Fn(&Report) + Send + Sync + 'static) {
        if let Some(dbg) = self.inner.debug() {
            dbg.set_hook(Some(Arc::new(f)));
        }
    }

    /// The backend the loop polls with ([`Builder::backend`], `SOLO_BACKEND`).
    pub fn backend(&self) -> crate::Backend {
        self.inner.reactor.borrow().backend_stats().0
    }

    /// Whether debug mode is on.
    pub fn debug_enabled(&self) -> bool {
        self.inner.debug().is_some()
    }

    /// The live tasks (see [`EventLoop::tasks`]).
    pub fn tasks(&self) -> Vec<TaskSnapshot> {
        self.inner.debug().map_or_else(Vec::new, |d| d.snapshot())
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

// ---- free functions on the running loop (asyncio's module-level `create_task`...) ----
//
// Each is its `Handle` method on `Handle::current_for(NAME)`: one lookup of the thread's loop,
// and a panic that names the user's call when there is none. `#[track_caller]` all the way, so
// that debug mode's spawn and scheduling sites are the user's lines, not these.

/// Spawns `future` as a task on the loop running on this thread (see [`Handle::spawn`]). The
/// returned [`JoinHandle`] is a future of its result; dropping it detaches the task.
///
/// # Panics
/// Outside a running solo loop, with a message that names the call and says how to start one.
///
/// ```
/// let v = solo::run(async {
///     let a = solo::spawn(async { 20 });
///     let b = solo::spawn(async { 22 });
///     a.await.unwrap() + b.await.unwrap()
/// }).unwrap();
/// assert_eq!(v, 42);
/// ```
#[track_caller]
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
{
    Handle::current_for("solo::spawn").spawn(future)
}

/// Like [`spawn`], with a name that debug reports, the task table and the exception handler
/// show (see [`Handle::spawn_named`]).
///
/// # Panics
/// Outside a running solo loop.
///
/// ```
/// solo::run(async {
///     let t = solo::spawn_named("fetch", async { "done" });
///     assert_eq!(t.await.unwrap(), "done");
/// }).unwrap();
/// ```
#[track_caller]
pub fn spawn_named<F>(name: &str, future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
{
    Handle::current_for("solo::spawn_named").spawn_named(name, future)
}

/// Schedules `f` to run on the loop running on this thread, at its next iteration, after the
/// callbacks already scheduled (see [`Handle::call_soon`]).
///
/// # Panics
/// Outside a running solo loop.
///
/// ```
/// use std::{cell::Cell, rc::Rc};
/// let ran = Rc::new(Cell::new(false));
/// let r = ran.clone();
/// solo::run(async move {
///     solo::call_soon(move || r.set(true));
///     solo::yield_now().await; // the callback runs at the next iteration
/// }).unwrap();
/// assert!(ran.get());
/// ```
#[track_caller]
pub fn call_soon(f: impl FnOnce() + 'static) -> CallbackHandle {
    Handle::current_for("solo::call_soon").call_soon(f)
}

/// Schedules `f` to run on the loop running on this thread once `delay` has passed on the
/// loop's clock (see [`Handle::call_later`]).
///
/// # Panics
/// Outside a running solo loop.
#[track_caller]
pub fn call_later(delay: Duration, f: impl FnOnce() + 'static) -> CallbackHandle {
    Handle::current_for("solo::call_later").call_later(delay, f)
}

/// Schedules `f` to run on the loop running on this thread at `when` on the loop's clock (see
/// [`Handle::call_at`]).
///
/// # Panics
/// Outside a running solo loop.
#[track_caller]
pub fn call_at(when: Instant, f: impl FnOnce() + 'static) -> CallbackHandle {
    Handle::current_for("solo::call_at").call_at(when, f)
}

/// Runs `f` on the thread pool of the loop running on this thread (see
/// [`Handle::run_in_executor`](crate::Handle::run_in_executor): past the pool's queue bound,
/// the future waits for room).
///
/// # Panics
/// Outside a running solo loop, with a message that names the call and says how to start one.
///
/// ```
/// let el = solo::EventLoop::new().unwrap();
/// let n = el.run_until_complete(async {
///     solo::run_in_executor(|| (1..=10u64).product::<u64>()).await.unwrap()
/// }).unwrap();
/// assert_eq!(n, 3_628_800);
/// ```
#[track_caller]
pub fn run_in_executor<T, F>(f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    Handle::current_for("solo::run_in_executor").run_in_executor(f)
}

//! `run_in_executor`: push blocking work off the loop, onto a thread pool.
//!
//! # The idea
//!
//! The loop must never block. Work that does — a blocking syscall, a file read, a CPU-heavy
//! computation — runs on another thread, and the loop awaits a future of its result, exactly as
//! asyncio's `loop.run_in_executor(None, f)`.
//!
//! The default [`ThreadPool`] is bounded, starts threads lazily and lets idle ones exit; its
//! documentation gives the rules.
//!
//! The pool is written here rather than taken from the `blocking` crate because the loop needs
//! a pool *per loop* with its own bound and idle timeout, figures for debug mode (queue length,
//! busy threads) and a join with a deadline at shutdown; `blocking` offers one global pool sized
//! by an environment variable.
//!
//! **Dropping the future does not interrupt the job**, as in asyncio: the thread runs it to the
//! end and the result is thrown away.
//!
//! # The bound
//!
//! The pool's queue holds at most a bound of jobs waiting for a thread (64 per thread by
//! default). Past it, [`Handle::run_in_executor`](crate::Handle::run_in_executor) *waits*: the
//! [`Blocking`] future keeps the job and stays pending until there is room, and submitters wait
//! in line in the order they started waiting (FIFO).
//! [`Handle::try_run_in_executor`](crate::Handle::try_run_in_executor) *fails* instead, with a
//! [`TrySubmitError`] that hands the closure back. So a burst of a million submissions never
//! puts a million jobs in the queue: it holds at most the bound; the rest are refused (`try_`),
//! or wait one per future, and go with their future when it is dropped. Only futures that are
//! awaited (polled) keep a job waiting, so what waits is what the program is waiting for.
//!
//! How a waiting submitter gets its turn: its first poll that finds no room puts it in line,
//! with its job. When a thread takes a job from the queue, the slot it frees goes to the first
//! job in line, which moves into the queue there and then (the loop need not come around for
//! it); the submitter is woken when the job has run, as if it had been queued at once. A
//! submitter dropped while in line takes its job out of the line, unrun; one that is never
//! polled is not in line and keeps its job to itself. No slot is ever reserved, so none can be
//! lost.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use crate::error::JoinError;

mod pool;

pub(crate) use pool::PoolFigures;
pub use pool::ThreadPool;
use pool::Wait;

/// A job for an executor.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Something that runs blocking jobs off the loop thread: the default [`ThreadPool`], or your
/// own (a CPU pool such as rayon's, say) given to
/// [`Handle::run_in_executor_on`](crate::Handle::run_in_executor_on).
///
/// solo puts no bound on an executor of yours: `run_in_executor_on` hands it the job at once,
/// and what happens when it is busy (queue, block, refuse) is its own policy. A job it drops
/// without running completes its [`Blocking`] future with a cancelled
/// [`JoinError`](crate::JoinError), so the awaiting task is never left hanging.
///
/// ```
/// struct NewThreadEach;
/// impl solo::Executor for NewThreadEach {
///     fn execute(&self, job: solo::Job) {
///         std::thread::spawn(job);
///     }
/// }
/// let el = solo::EventLoop::new().unwrap();
/// let h = el.handle();
/// let v = el.run_until_complete(h.run_in_executor_on(&NewThreadEach, || 6 * 7)).unwrap();
/// assert_eq!(v.unwrap(), 42);
/// ```
pub trait Executor: Send + Sync {
    /// Runs `job` somewhere other than the loop thread, eventually.
    fn execute(&self, job: Job);

    /// A [`ThreadPool`] says so here, so that `run_in_executor_on` keeps its bound.
    #[doc(hidden)]
    fn as_thread_pool(&self) -> Option<&ThreadPool> {
        None
    }
}

/// The default pool size: `min(32, cores + 4)`, like asyncio's.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    32.min(cores + 4)
}

/// The default idle timeout after which a pool thread exits.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The default queue bound per thread: a pool of `n` threads queues at most `64 * n` jobs.
const QUEUE_PER_THREAD: usize = 64;

/// A queue or line emptied after a burst gives its memory back when it grew past this.
const SHRINK_ABOVE: usize = 1024;

/// Why [`Handle::try_run_in_executor`](crate::Handle::try_run_in_executor) did not take a job.
/// Either way the closure comes back, unrun: run it later, elsewhere, or drop it.
///
/// ```
/// use std::time::Duration;
/// let el = solo::EventLoop::builder()
///     .executor_threads(1)
///     .executor_queue_bound(1)
///     .build()
///     .unwrap();
/// let h = el.handle();
/// let (tx, rx) = std::sync::mpsc::channel::<()>();
/// let running = h.try_run_in_executor(move || rx.recv()).unwrap(); // takes the thread...
/// while h.executor().load().1 == 0 {
///     std::thread::yield_now();
/// }
/// let queued = h.try_run_in_executor(|| 1).unwrap(); // ...and this the one queue slot
/// let err = h.try_run_in_executor(|| 2).unwrap_err();
/// assert!(err.is_full());
/// assert_eq!((err.into_inner())(), 2); // the closure, back
/// tx.send(()).unwrap();
/// el.run_until_complete(async {
///     running.await.unwrap().unwrap();
///     assert_eq!(queued.await.unwrap(), 1);
/// })
/// .unwrap();
/// ```
#[non_exhaustive]
pub enum TrySubmitError<F> {
    /// The queue is at its bound, or other submitters are waiting for room ahead of this one.
    Full(F),
    /// The pool was shut down (the loop was shut down or dropped).
    ShutDown(F),
}

impl<F> TrySubmitError<F> {
    /// The closure that was not run.
    pub fn into_inner(self) -> F {
        match self {
            TrySubmitError::Full(f) | TrySubmitError::ShutDown(f) => f,
        }
    }

    /// Whether the queue was full.
    pub fn is_full(&self) -> bool {
        matches!(self, TrySubmitError::Full(_))
    }

    /// Whether the pool was shut down.
    pub fn is_shut_down(&self) -> bool {
        matches!(self, TrySubmitError::ShutDown(_))
    }
}

impl<F> fmt::Display for TrySubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySubmitError::Full(_) => {
                "the executor's queue is full (at its bound, or others wait for room first)"
            }
            TrySubmitError::ShutDown(_) => "the executor is shut down",
        })
    }
}

impl<F> fmt::Debug for TrySubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TrySubmitError::Full(_) => "Full(..)",
            TrySubmitError::ShutDown(_) => "ShutDown(..)",
        })
    }
}

impl<F> std::error::Error for TrySubmitError<F> {}

struct Slot<T> {
    value: Option<Result<T, JoinError>>,
    waker: Option<Waker>,
}

fn lock_slot<T>(slot: &Mutex<Slot<T>>) -> MutexGuard<'_, Slot<T>> {
    slot.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fills a job's slot: with the job's result, or, if the job is dropped unrun (refused by a
/// shut-down pool, abandoned, dropped by an executor), with a cancelled `JoinError`, so that
/// the future never waits for a job that will not run.
struct Completer<T> {
    slot: Option<Arc<Mutex<Slot<T>>>>,
}

impl<T> Completer<T> {
    fn complete(&mut self, r: Result<T, JoinError>) {
        if let Some(slot) = self.slot.take() {
            let waker = {
                let mut s = lock_slot(&slot);
                s.value = Some(r);
                s.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<T> Drop for Completer<T> {
    fn drop(&mut self) {
        self.complete(Err(JoinError::cancelled()));
    }
}

/// The future of a job's result, from `run_in_executor`. It completes on the loop when the job
/// has finished; a panic in the job is a [`JoinError`].
///
/// - **Queued at once** when the pool's queue has room: then dropping the future does not
///   interrupt or cancel the job; it runs to the end and its result is thrown away.
/// - **Waiting** when the queue was full: the future keeps the job, and its first poll puts it
///   in line; it stays pending until a slot is free for it (the jobs that started waiting
///   before it go first), then until the job has run. Dropping it while it waits drops the job
///   unrun ([`Stats::executor_abandoned`](crate::debug::Stats::executor_abandoned)) and gives
///   up its place in line.
/// - **Refused** after the pool was shut down: it completes at once with a cancelled
///   [`JoinError`] ([`JoinError::is_cancelled`]); the job never runs.
pub struct Blocking<T> {
    slot: Arc<Mutex<Slot<T>>>,
    /// Set while the job waits for room in the pool.
    wait: Option<Wait>,
    /// Where `run_in_executor` was called, for debug mode's task table (see `await_point.rs`).
    site: Option<&'static Location<'static>>,
}

impl<T> Blocking<T> {
    /// Records where the job was submitted (the caller of `run_in_executor`).
    pub(crate) fn at(mut self, site: &'static Location<'static>) -> Blocking<T> {
        self.site = Some(site);
        self
    }
}

impl<T> Future for Blocking<T> {
    type Output = Result<T, JoinError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // While in line, the waker goes into the slot as for a queued job: the job's end (or
        // its drop at shutdown) wakes the future, and moving into the queue needs no wake.
        if self.wait.as_mut().is_some_and(|w| !w.still_waiting()) {
            self.wait = None;
        }
        let mut s = lock_slot(&self.slot);
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                match &s.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.waker = Some(cx.waker().clone()),
                }
                crate::await_point::pending(|| crate::await_point::Awaited::Blocking, self.site);
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for Blocking<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.wait.is_some() {
            "Blocking(waiting for room)"
        } else {
            "Blocking"
        })
    }
}

/// The future of `f`'s result, and the job that runs `f` and fills it.
fn job_for<T, F>(f: F) -> (Blocking<T>, Job)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let mut completer = Completer {
        slot: Some(slot.clone()),
    };
    let job: Job = Box::new(move || {
        let r = catch_unwind(AssertUnwindSafe(f)).map_err(JoinError::panicked);
        completer.complete(r);
    });
    (
        Blocking {
            slot,
            wait: None,
            site: None,
        },
        job,
    )
}

/// Submits `f` to `executor` and returns the future of its result: through the bound if the
/// executor is a [`ThreadPool`], else handed to it at once.
pub(crate) fn submit<T, F>(executor: &dyn Executor, f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    if let Some(pool) = executor.as_thread_pool() {
        return pool.submit(f);
    }
    let (blocking, job) = job_for(f);
    executor.execute(job);
    blocking
}

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

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crate::error::JoinError;

/// A job for an executor.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Something that runs blocking jobs off the loop thread: the default [`ThreadPool`], or your
/// own (a CPU pool such as rayon's, say) given to
/// [`Handle::run_in_executor_on`](crate::Handle::run_in_executor_on).
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
}

/// The default pool size: `min(32, cores + 4)`, like asyncio's.
pub fn default_threads() -> usize {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    32.min(cores + 4)
}

/// The default idle timeout after which a pool thread exits.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    busy: usize,
    shutdown: bool,
}

struct PoolInner {
    state: Mutex<PoolState>,
    work: Condvar,
    /// Signalled when a thread exits (for `join`).
    exited: Condvar,
    max: usize,
    idle_timeout: Duration,
}

/// A bounded, lazily started thread pool: the default executor of
/// [`Handle::run_in_executor`](crate::Handle::run_in_executor).
///
/// At most `min(32, cores + 4)` threads by default (asyncio's `ThreadPoolExecutor`; set with
/// [`Builder::executor_threads`](crate::Builder::executor_threads)). A thread starts only when
/// a job arrives and no thread is idle, and exits after it has been idle for the idle timeout
/// (10 s by default, [`Builder::executor_idle_timeout`](crate::Builder::executor_idle_timeout)).
/// Jobs queue in FIFO order when every thread is busy. A panic in a job is caught: it becomes the
/// job's [`JoinError`](crate::JoinError) and the thread lives on. Dropping a job's future does
/// not interrupt the job: the thread runs it to the end and the result is thrown away.
#[derive(Clone)]
pub struct ThreadPool {
    inner: Arc<PoolInner>,
}

fn lock(m: &Mutex<PoolState>) -> MutexGuard<'_, PoolState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ThreadPool {
    /// A pool of at most `max_threads` threads (at least 1) that exit after `idle_timeout`.
    pub fn new(max_threads: usize, idle_timeout: Duration) -> ThreadPool {
        ThreadPool {
            inner: Arc::new(PoolInner {
                state: Mutex::new(PoolState {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    busy: 0,
                    shutdown: false,
                }),
                work: Condvar::new(),
                exited: Condvar::new(),
                max: max_threads.max(1),
                idle_timeout,
            }),
        }
    }

    /// How many threads are alive now.
    pub fn threads(&self) -> usize {
        lock(&self.inner.state).threads
    }

    /// (jobs waiting in the queue, threads running a job).
    pub fn load(&self) -> (usize, usize) {
        let s = lock(&self.inner.state);
        (s.queue.len(), s.busy)
    }

    /// The bound on threads.
    pub fn max_threads(&self) -> usize {
        self.inner.max
    }

    /// Stops taking jobs, lets the threads finish the queue, and waits until `deadline` for them
    /// to exit. Returns how many jobs were still queued or running when it gave up.
    pub fn shutdown(&self, deadline: Instant) -> usize {
        let mut s = lock(&self.inner.state);
        s.shutdown = true;
        self.inner.work.notify_all();
        while s.threads > 0 {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            s = self
                .inner
                .exited
                .wait_timeout(s, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        s.queue.len() + s.busy
    }
}

impl Executor for ThreadPool {
    fn execute(&self, job: Job) {
        let mut s = lock(&self.inner.state);
        if s.shutdown {
            // A pool being shut down still runs what it is given (on a thread of its own), so no
            // job is ever lost; this only happens for jobs submitted during shutdown.
            drop(s);
            std::thread::spawn(job);
            return;
        }
        s.queue.push_back(job);
        if s.idle > 0 {
            self.inner.work.notify_one();
        } else if s.threads < self.inner.max {
            s.threads += 1;
            drop(s);
            let inner = self.inner.clone();
            let spawned = std::thread::Builder::new()
                .name("solo-executor".into())
                .spawn(move || worker(inner));
            if spawned.is_err() {
                // Could not start a thread: the queued job waits for an existing one, or runs
                // here as a last resort so that it is not lost.
                let mut s = lock(&self.inner.state);
                s.threads -= 1;
                if s.threads == 0 {
                    if let Some(job) = s.queue.pop_back() {
                        drop(s);
                        job();
                    }
                }
            }
        }
    }
}

fn worker(inner: Arc<PoolInner>) {
    let mut s = lock(&inner.state);
    loop {
        if let Some(job) = s.queue.pop_front() {
            s.busy += 1;
            drop(s);
            // Jobs catch their own panics (see `run_in_executor`); this is a last line of
            // defence for custom jobs, so the thread survives.
            let _ = catch_unwind(AssertUnwindSafe(job));
            s = lock(&inner.state);
            s.busy -= 1;
            continue;
        }
        if s.shutdown {
            break;
        }
        s.idle += 1;
        let (guard, timeout) = inner
            .work
            .wait_timeout(s, inner.idle_timeout)
            .unwrap_or_else(|e| e.into_inner());
        s = guard;
        s.idle -= 1;
        if timeout.timed_out() && s.queue.is_empty() {
            break;
        }
    }
    s.threads -= 1;
    inner.exited.notify_all();
}

impl fmt::Debug for ThreadPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = lock(&self.inner.state);
        f.debug_struct("ThreadPool")
            .field("max", &self.inner.max)
            .field("threads", &s.threads)
            .field("busy", &s.busy)
            .field("queued", &s.queue.len())
            .finish()
    }
}

struct Slot<T> {
    value: Option<Result<T, JoinError>>,
    waker: Option<Waker>,
}

/// The future of a job's result, from `run_in_executor`. It completes on the loop when the job
/// has finished; a panic in the job is a [`JoinError`]. Dropping it does not interrupt the job.
pub struct Blocking<T> {
    slot: Arc<Mutex<Slot<T>>>,
}

impl<T> Future for Blocking<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match s.value.take() {
            Some(v) => Poll::Ready(v),
            None => {
                match &s.waker {
                    Some(w) if w.will_wake(cx.waker()) => {}
                    _ => s.waker = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
        }
    }
}

impl<T> fmt::Debug for Blocking<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Blocking")
    }
}

/// Submits `f` to `executor` and returns the future of its result.
pub(crate) fn submit<T, F>(executor: &dyn Executor, f: F) -> Blocking<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    let s = slot.clone();
    executor.execute(Box::new(move || {
        let r = catch_unwind(AssertUnwindSafe(f)).map_err(JoinError::panicked);
        let waker = {
            let mut s = s.lock().unwrap_or_else(|e| e.into_inner());
            s.value = Some(r);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }));
    Blocking { slot }
}

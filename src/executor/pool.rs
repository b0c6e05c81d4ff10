//! [`ThreadPool`], the default executor: bounded, lazily started, with a FIFO line of
//! submitters waiting for room.
//!
//! ```
//! let pool = solo::ThreadPool::new(2, std::time::Duration::from_secs(1));
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let v = el.run_until_complete(h.run_in_executor_on(&pool, || 2 + 2)).unwrap();
//! assert_eq!(v.unwrap(), 4);
//! ```
//!
//! The rules (the bound, the line, shutdown) are in the parent module's docs; this file is the
//! mechanism: the state under one mutex, the workers, and how a freed slot goes to the first
//! submitter in line.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{job_for, Blocking, Executor, Job, TrySubmitError, QUEUE_PER_THREAD, SHRINK_ABOVE};

/// A place in line: the waiting submitter's job, until it moves into the queue (or is taken
/// back by its dropped future, or dropped at shutdown). The job is taken only under the pool's
/// lock; its future reads whether it is still there without that lock, hence a mutex of its
/// own (short, rarely contended).
struct Waiter {
    job: Mutex<Option<Job>>,
}

impl Waiter {
    fn take(&self) -> Option<Job> {
        self.job.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    fn in_line(&self) -> bool {
        self.job.lock().unwrap_or_else(|e| e.into_inner()).is_some()
    }
}

struct PoolState {
    queue: VecDeque<Job>,
    threads: usize,
    idle: usize,
    busy: usize,
    shutdown: bool,
    /// Submitters waiting for room with their jobs, in the order they started waiting.
    /// Entries whose future was dropped are skipped when met at the front.
    line: VecDeque<Arc<Waiter>>,
    /// Entries of `line` still holding a job.
    in_line: usize,
    /// Jobs not queued yet for lack of room: in line, or held by futures never polled.
    holding: usize,
    /// Submissions refused: `try_` on a full queue, anything after shutdown.
    rejected: u64,
    /// Jobs dropped unrun because their future was dropped while it waited for room.
    abandoned: u64,
}

impl PoolState {
    fn has_room(&self, bound: usize) -> bool {
        self.queue.len() < bound
    }

    /// After a slot was freed: moves jobs from the front of the line into the queue while
    /// there is room. The line is non-empty only while the queue is full (a submitter joins it
    /// only then, and every freed slot goes to it), so this moves at most one job per slot
    /// freed. Returns whether it moved any.
    fn admit(&mut self, bound: usize) -> bool {
        let mut moved = false;
        while self.in_line > 0 && self.has_room(bound) {
            let Some(w) = self.line.pop_front() else {
                break;
            };
            if let Some(job) = w.take() {
                self.in_line -= 1;
                self.holding -= 1;
                self.queue.push_back(job);
                moved = true;
            }
        }
        self.trim_line();
        moved
    }

    /// Drops the entries that left the line from both ends, and the line's memory once it is
    /// empty after a burst.
    fn trim_line(&mut self) {
        while self.line.front().is_some_and(|w| !w.in_line()) {
            self.line.pop_front();
        }
        while self.line.back().is_some_and(|w| !w.in_line()) {
            self.line.pop_back();
        }
        if self.line.is_empty() && self.line.capacity() > SHRINK_ABOVE {
            self.line = VecDeque::new();
        }
    }
}

struct PoolInner {
    state: Mutex<PoolState>,
    work: Condvar,
    /// Signalled when a thread exits (for `join`).
    exited: Condvar,
    max: usize,
    /// The most jobs the queue holds (not counting running ones).
    bound: usize,
    idle_timeout: Duration,
}

/// The figures debug mode's stats read from a pool.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PoolFigures {
    pub(crate) queued: usize,
    pub(crate) busy: usize,
    pub(crate) waiting: usize,
    pub(crate) rejected: u64,
    pub(crate) abandoned: u64,
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
///
/// The queue is bounded: it holds at most [`queue_bound`](ThreadPool::queue_bound) jobs
/// waiting for a thread (64 per thread by default,
/// [`Builder::executor_queue_bound`](crate::Builder::executor_queue_bound)); running jobs are
/// not counted. A submission past the bound waits (`run_in_executor`) or is refused
/// (`try_run_in_executor`); see [`Handle::run_in_executor`](crate::Handle::run_in_executor).
/// [`Executor::execute`] called on the pool directly is the exception: it cannot wait or fail,
/// so it queues the job even past the bound.
///
/// After [`shutdown`](ThreadPool::shutdown) (the loop's shutdown or drop) the pool refuses new
/// jobs: their futures complete at once with a cancelled [`JoinError`](crate::JoinError), and
/// submitters still waiting for room are refused the same way. Jobs already queued still run.
#[derive(Clone)]
pub struct ThreadPool {
    inner: Arc<PoolInner>,
}

fn lock(m: &Mutex<PoolState>) -> MutexGuard<'_, PoolState> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl ThreadPool {
    /// A pool of at most `max_threads` threads (at least 1) that exit after `idle_timeout`,
    /// with the default queue bound (64 jobs per thread).
    pub fn new(max_threads: usize, idle_timeout: Duration) -> ThreadPool {
        let max = max_threads.max(1);
        ThreadPool::with_bound(max, max * QUEUE_PER_THREAD, idle_timeout)
    }

    /// A pool of at most `max_threads` threads (at least 1) whose queue holds at most
    /// `queue_bound` jobs waiting for a thread. A bound of zero is an
    /// [`InvalidInput`](io::ErrorKind::InvalidInput) error: a pool that can queue nothing could
    /// only run a job on an idle thread, and a submitter waiting for room would wait forever.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = solo::ThreadPool::bounded(2, 8, Duration::from_secs(1)).unwrap();
    /// assert_eq!(pool.queue_bound(), 8);
    /// assert!(solo::ThreadPool::bounded(2, 0, Duration::from_secs(1)).is_err());
    /// ```
    pub fn bounded(
        max_threads: usize,
        queue_bound: usize,
        idle_timeout: Duration,
    ) -> io::Result<ThreadPool> {
        if queue_bound == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "solo: an executor queue bound of 0 cannot hold a job; use at least 1 (and \
                 try_run_in_executor to refuse work when the queue is full)",
            ));
        }
        Ok(ThreadPool::with_bound(
            max_threads.max(1),
            queue_bound,
            idle_timeout,
        ))
    }

    fn with_bound(max: usize, bound: usize, idle_timeout: Duration) -> ThreadPool {
        ThreadPool {
            inner: Arc::new(PoolInner {
                state: Mutex::new(PoolState {
                    queue: VecDeque::new(),
                    threads: 0,
                    idle: 0,
                    busy: 0,
                    shutdown: false,
                    line: VecDeque::new(),
                    in_line: 0,
                    holding: 0,
                    rejected: 0,
                    abandoned: 0,
                }),
                work: Condvar::new(),
                exited: Condvar::new(),
                max,
                bound,
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

    /// The most jobs the queue holds waiting for a thread (running jobs not counted).
    pub fn queue_bound(&self) -> usize {
        self.inner.bound
    }

    /// Submitters holding a job that is not queued yet because the queue was full: their
    /// [`Blocking`] futures wait for room.
    pub fn waiting(&self) -> usize {
        lock(&self.inner.state).holding
    }

    /// Submissions refused so far: `try_run_in_executor` on a full queue, and every
    /// submission after shutdown.
    pub fn rejected(&self) -> u64 {
        lock(&self.inner.state).rejected
    }

    pub(crate) fn figures(&self) -> PoolFigures {
        let s = lock(&self.inner.state);
        PoolFigures {
            queued: s.queue.len(),
            busy: s.busy,
            waiting: s.holding,
            rejected: s.rejected,
            abandoned: s.abandoned,
        }
    }

    /// Stops taking jobs, lets the threads finish the queue, and waits until `deadline` for them
    /// to exit. Returns how many jobs were still queued or running when it gave up. Jobs still
    /// waiting for room are dropped unrun (their futures complete with a cancelled
    /// `JoinError`).
    pub fn shutdown(&self, deadline: Instant) -> usize {
        let mut s = lock(&self.inner.state);
        s.shutdown = true;
        let line = std::mem::take(&mut s.line);
        let refused: Vec<Job> = line.iter().filter_map(|w| w.take()).collect();
        s.in_line = 0;
        s.holding -= refused.len();
        s.rejected += refused.len() as u64;
        self.inner.work.notify_all();
        drop(s);
        drop(line);
        drop(refused); // completes their futures as cancelled, outside the lock
        let mut s = lock(&self.inner.state);
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

    /// Queues `job` (the caller checked for room, or is over-committing) and makes sure a
    /// thread will take it. Called with the lock held; releases it.
    fn push(&self, mut s: MutexGuard<'_, PoolState>, job: Job) {
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
                        s.admit(self.inner.bound);
                        drop(s);
                        job();
                    }
                }
            }
        }
    }

    /// `run_in_executor`: queues the job if there is room and nobody is waiting for it, else
    /// returns a future that waits for room.
    pub(crate) fn submit<T, F>(&self, f: F) -> Blocking<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (mut blocking, job) = job_for(f);
        let mut s = lock(&self.inner.state);
        if s.shutdown {
            s.rejected += 1;
            drop(s);
            drop(job); // completes `blocking` as cancelled
        } else if s.in_line == 0 && s.has_room(self.inner.bound) {
            self.push(s, job);
        } else {
            s.holding += 1;
            drop(s);
            blocking.wait = Some(Wait {
                pool: self.clone(),
                job: Some(Mutex::new(job)),
                waiter: None,
            });
        }
        blocking
    }

    /// `try_run_in_executor`: queues the job if there is room and nobody is waiting for it,
    /// else hands `f` back.
    pub(crate) fn try_submit<T, F>(&self, f: F) -> Result<Blocking<T>, TrySubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let mut s = lock(&self.inner.state);
        if s.shutdown {
            s.rejected += 1;
            return Err(TrySubmitError::ShutDown(f));
        }
        if s.in_line > 0 || !s.has_room(self.inner.bound) {
            s.rejected += 1;
            return Err(TrySubmitError::Full(f));
        }
        let (blocking, job) = job_for(f);
        self.push(s, job);
        Ok(blocking)
    }
}

impl Executor for ThreadPool {
    /// Queues `job`, past the bound if need be (this call can neither wait nor fail); after
    /// shutdown, drops it unrun and counts it as rejected.
    fn execute(&self, job: Job) {
        let mut s = lock(&self.inner.state);
        if s.shutdown {
            s.rejected += 1;
            drop(s);
            drop(job);
            return;
        }
        self.push(s, job);
    }

    fn as_thread_pool(&self) -> Option<&ThreadPool> {
        Some(self)
    }
}

fn worker(inner: Arc<PoolInner>) {
    let mut s = lock(&inner.state);
    loop {
        if let Some(job) = s.queue.pop_front() {
            s.busy += 1;
            // The slot this job held is free: it goes to the first job in line.
            if s.admit(inner.bound) && s.idle > 0 {
                inner.work.notify_one();
            }
            if s.queue.is_empty() && s.queue.capacity() > SHRINK_ABOVE {
                s.queue = VecDeque::new();
            }
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
            .field("queue_bound", &self.inner.bound)
            .field("waiting", &s.holding)
            .field("rejected", &s.rejected)
            .finish()
    }
}

/// A job whose future waits for room in the pool.
pub(super) struct Wait {
    pool: ThreadPool,
    /// The job until the future's first poll (queued then, or put in line). Behind a lock only
    /// so that `Blocking` stays `Sync`; only `&mut Blocking` touches it.
    job: Option<Mutex<Job>>,
    /// Its place in line, with the job, from its first poll that found no room.
    waiter: Option<Arc<Waiter>>,
}

impl Wait {
    /// Queues the job if there is room and nobody is ahead of it, else puts it in line (first
    /// poll); returns whether it is still waiting. A job that left the line was queued (or
    /// dropped at shutdown, which completed the future): either way the future now waits for
    /// its result.
    pub(super) fn still_waiting(&mut self) -> bool {
        if let Some(w) = &self.waiter {
            return w.in_line();
        }
        let Some(job) = self.job.take() else {
            return false;
        };
        let job = job.into_inner().unwrap_or_else(|e| e.into_inner());
        let pool = &self.pool;
        let mut s = lock(&pool.inner.state);
        s.holding -= 1;
        if s.shutdown {
            s.rejected += 1;
            drop(s);
            drop(job); // completes the future as cancelled
            return false;
        }
        if s.in_line == 0 && s.has_room(pool.inner.bound) {
            pool.push(s, job);
            return false;
        }
        let w = Arc::new(Waiter {
            job: Mutex::new(Some(job)),
        });
        s.line.push_back(w.clone());
        s.in_line += 1;
        s.holding += 1;
        self.waiter = Some(w);
        true
    }
}

impl Drop for Wait {
    /// A future dropped while it waits for room: its job leaves the line (or was never in it)
    /// and is dropped unrun.
    fn drop(&mut self) {
        match &self.waiter {
            // Out of line: queued (or dropped at shutdown); never back in line.
            Some(w) if !w.in_line() => return,
            None if self.job.is_none() => return,
            _ => {}
        }
        let mut s = lock(&self.pool.inner.state);
        let job = match (&self.waiter, self.job.take()) {
            (Some(w), _) => {
                let job = w.take();
                if job.is_some() {
                    s.in_line -= 1;
                    s.trim_line();
                }
                job
            }
            (None, Some(job)) => Some(job.into_inner().unwrap_or_else(|e| e.into_inner())),
            (None, None) => None,
        };
        if job.is_some() {
            s.holding -= 1;
            s.abandoned += 1;
        }
        drop(s);
        drop(job);
    }
}

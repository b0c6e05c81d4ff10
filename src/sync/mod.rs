//! Synchronization between the tasks of one thread: [`Semaphore`], [`Mutex`], [`Event`],
//! [`Queue`], [`oneshot`] and an unbounded [`channel`].
//!
//! ```
//! use std::rc::Rc;
//! use solo::sync::{channel, Queue};
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let jobs = Rc::new(Queue::new(8));
//! let (results, mut done) = channel::unbounded();
//! for _ in 0..2 {
//!     let (jobs, results) = (jobs.clone(), results.clone());
//!     h.spawn(async move {
//!         loop {
//!             let n: u64 = jobs.get().await;
//!             results.send(n * n).unwrap();
//!             jobs.task_done().unwrap();
//!         }
//!     });
//! }
//! drop(results);
//! let total = el.run_until_complete(async move {
//!     for n in 1..=4 {
//!         jobs.put(n).await;
//!     }
//!     jobs.join().await; // all four taken and marked done
//!     let mut total = 0;
//!     while let Ok(v) = done.try_recv() {
//!         total += v;
//!     }
//!     total
//! }).unwrap();
//! assert_eq!(total, 1 + 4 + 9 + 16);
//! ```
//!
//! Made for the tasks of one thread, they use `Rc`, `Cell` and `RefCell` where thread-safe
//! crates need atomics and locks, and cost less (BENCHMARKS.md compares the channel with
//! async-channel and tokio's mpsc). None is `Sync`, and what shares one between tasks (an
//! `Rc`, a channel's halves, an owned permit) is not `Send`: the compiler keeps them on their
//! thread. They do not depend on the loop: any executor on the
//! thread may poll them, a waiter may be polled by another loop than the one it started
//! waiting on, and one whose loop is gone is dropped (its task's future is), leaving the line.
//!
//! Every waiting operation is **FIFO** (whoever started waiting first is served first, and
//! nobody barges past the line) and **cancellation-safe**: dropping a waiting future (a
//! cancelled task, a `timeout`) leaves the line, and if a permit or an item had already been
//! handed to it, gives it back to the next waiter. No permit and no item is ever lost.
//!
//! | type | asyncio | what for |
//! | --- | --- | --- |
//! | [`Semaphore`] | `Semaphore` | at most N at a time; borrowed or owned permits |
//! | [`Mutex`] | `Lock` | a value locked across awaits |
//! | [`Event`] | `Event` | wait for a flag |
//! | [`Queue`] | `Queue` | bounded producer/consumer with `join`/`task_done` |
//! | [`oneshot`] | a `Future` | one value, once |
//! | [`channel`] | — | unbounded, cloneable senders and receivers, closes from either side |

use std::fmt;

mod buffer;
pub mod channel;
mod event;
mod mutex;
pub mod oneshot;
mod queue;
mod semaphore;
mod wait_list;

pub use event::{Event, Wait};
pub use mutex::{Lock, Mutex, MutexGuard};
pub use queue::{Get, Join, Put, Queue};
pub use semaphore::{Acquire, AcquireOwned, OwnedSemaphorePermit, Semaphore, SemaphorePermit};

/// [`Semaphore::try_acquire`] found too few free permits, or others waiting first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryAcquireError(());

impl fmt::Display for TryAcquireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no permit is free without waiting")
    }
}

impl std::error::Error for TryAcquireError {}

/// [`Mutex::try_lock`] found the mutex locked, or others waiting for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryLockError(());

impl fmt::Display for TryLockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the mutex is locked")
    }
}

impl std::error::Error for TryLockError {}

/// [`Queue::try_put`] found the queue full (or earlier puts waiting); the item is inside.
#[derive(Clone, PartialEq, Eq)]
pub struct TryPutError<T>(pub T);

impl<T> TryPutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TryPutError(..)")
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is full")
    }
}

impl<T> std::error::Error for TryPutError<T> {}

/// [`Queue::try_get`] found the queue empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryGetError(());

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the queue is empty")
    }
}

impl std::error::Error for TryGetError {}

/// [`Queue::task_done`] was called more times than items were put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDoneError(());

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called more times than items were put")
    }
}

impl std::error::Error for TaskDoneError {}

/// A send on a channel whose receivers are all gone; the value is inside.
#[derive(Clone, PartialEq, Eq)]
pub struct SendError<T>(pub T);

impl<T> SendError<T> {
    /// The value that was not sent.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<T> fmt::Display for SendError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("every receiver of the channel is gone")
    }
}

impl<T> std::error::Error for SendError<T> {}

/// Why a `try_recv` returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryRecvError {
    /// Nothing now; a value may still come.
    Empty,
    /// Nothing, and nothing will come: every sender is gone.
    Closed,
}

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TryRecvError::Empty => "no value is waiting",
            TryRecvError::Closed => "every sender is gone and no value is left",
        })
    }
}

impl std::error::Error for TryRecvError {}

/// A [`oneshot::Receiver`] whose sender was dropped without sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvError(());

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the sender was dropped without sending")
    }
}

impl std::error::Error for RecvError {}

/// Shared between tasks, the primitives stay on their thread.
///
/// ```compile_fail,E0277
/// let sem = std::rc::Rc::new(solo::sync::Semaphore::new(1));
/// std::thread::spawn(move || drop(sem));
/// ```
///
/// ```compile_fail,E0277
/// let (tx, _rx) = solo::sync::channel::unbounded::<u8>();
/// std::thread::spawn(move || tx.send(1));
/// ```
///
/// ```compile_fail,E0277
/// fn sync<T: Sync>(_: &T) {}
/// sync(&solo::sync::Queue::<u8>::new(1));
/// ```
#[cfg(doctest)]
pub struct StaysOnItsThread;

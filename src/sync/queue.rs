//! [`Queue`]: a bounded FIFO queue shared by producer and consumer tasks, with asyncio's
//! `put`/`get` that wait and its `join`/`task_done` accounting.
//!
//! ```
//! use std::rc::Rc;
//! use solo::sync::Queue;
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let q = Rc::new(Queue::new(2)); // put waits while two items are queued
//! let worker = {
//!     let q = q.clone();
//!     h.spawn(async move {
//!         let mut sum = 0;
//!         loop {
//!             let n: u32 = q.get().await;
//!             sum += n;
//!             q.task_done().unwrap();
//!             if n == 0 {
//!                 return sum;
//!             }
//!         }
//!     })
//! };
//! el.run_until_complete(async move {
//!     for n in [3, 2, 1, 0] {
//!         q.put(n).await;
//!     }
//!     q.join().await; // every item taken and marked done
//!     assert_eq!(worker.await.unwrap(), 6);
//! }).unwrap();
//! ```
//!
//! The type's documentation says what capacity 0 means, how waiters are served and what a
//! cancelled one does.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::buffer::{self, Buffer, GetWaiter, PutWaiter};
use super::wait_list::WaitList;
use super::{TaskDoneError, TryGetError, TryPutError};

/// A FIFO queue for the tasks of one thread (not `Sync`), asyncio's `Queue`.
///
/// [`Queue::new(n)`](Queue::new) holds at most `n` items and a `put` on a full queue waits;
/// capacity 0 is a rendezvous (a `put` waits until a `get` takes its item), and
/// [`Queue::unbounded`] never makes a `put` wait. Getters are served in the order they started
/// waiting, and so are putters; an item put while a getter waits goes straight to the first
/// getter. A `get` cancelled after an item was handed to it gives the item back to the next
/// getter, or to the front of the queue (which may then hold one item over its capacity until
/// the next `get`): no item is lost. A `put` cancelled while it waits drops its item and leaves
/// no trace.
pub struct Queue<T> {
    buf: RefCell<Buffer<T>>,
    /// Tasks in [`Queue::join`], served when the count of unfinished items reaches zero.
    joiners: RefCell<WaitList<()>>,
}

impl<T> Queue<T> {
    /// A queue that holds at most `capacity` items. With `0`, a rendezvous: nothing is
    /// buffered, a `put` waits until a `get` takes its item, and a `try_put` succeeds only if a
    /// `get` is waiting.
    pub fn new(capacity: usize) -> Queue<T> {
        Queue {
            buf: RefCell::new(Buffer::new(capacity)),
            joiners: RefCell::new(WaitList::new()),
        }
    }

    /// A queue without bound: `put` never waits.
    pub fn unbounded() -> Queue<T> {
        Queue::new(usize::MAX)
    }

    /// Puts `item` at the back, waiting while the queue is full.
    pub fn put(&self, item: T) -> Put<'_, T> {
        Put {
            queue: self,
            waiter: PutWaiter::new(item),
        }
    }

    /// Puts `item` if there is room now (and no earlier put waits); else gives it back.
    pub fn try_put(&self, item: T) -> Result<(), TryPutError<T>> {
        buffer::try_put(&self.buf, item).map_err(TryPutError)
    }

    /// Takes the item at the front, waiting while the queue is empty.
    pub fn get(&self) -> Get<'_, T> {
        Get {
            queue: self,
            waiter: GetWaiter::default(),
        }
    }

    /// Takes the item at the front if there is one now.
    pub fn try_get(&self) -> Result<T, TryGetError> {
        buffer::try_get(&self.buf).ok_or(TryGetError(()))
    }

    /// Marks one item taken by a get as processed (asyncio's `task_done`). When every item put
    /// so far is marked, the tasks in [`join`](Queue::join) go on.
    ///
    /// An error, changing nothing, if every item is already marked: it was called more times
    /// than items were put.
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let mut b = self.buf.borrow_mut();
        if b.unfinished == 0 {
            return Err(TaskDoneError(()));
        }
        b.unfinished -= 1;
        let finished = b.unfinished == 0;
        drop(b);
        if finished {
            loop {
                let mut j = self.joiners.borrow_mut();
                let Some(k) = j.front() else { break };
                let waker = j.unlink(k);
                drop(j);
                if let Some(w) = waker {
                    w.wake();
                }
            }
        }
        Ok(())
    }

    /// Waits until every item put so far has been taken and marked with
    /// [`task_done`](Queue::task_done). Returns at once if none is unfinished.
    pub fn join(&self) -> Join<'_, T> {
        Join {
            queue: self,
            key: None,
        }
    }

    /// Items put and not yet marked done.
    pub fn unfinished(&self) -> usize {
        self.buf.borrow().unfinished
    }

    /// How many items are queued now.
    pub fn len(&self) -> usize {
        self.buf.borrow().len()
    }

    /// Whether no item is queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a `put` would wait now.
    pub fn is_full(&self) -> bool {
        let b = self.buf.borrow();
        b.len() >= b.capacity()
    }

    /// The most items it holds (`usize::MAX` for [`Queue::unbounded`]).
    pub fn capacity(&self) -> usize {
        self.buf.borrow().capacity()
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("unfinished", &self.unfinished())
            .finish()
    }
}

/// The future of [`Queue::put`].
#[must_use = "futures do nothing unless awaited"]
pub struct Put<'a, T> {
    queue: &'a Queue<T>,
    waiter: PutWaiter<T>,
}

// The item is never pinned: it is moved into the queue.
impl<T> Unpin for Put<'_, T> {}

impl<T> Future for Put<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        this.waiter.poll(&this.queue.buf, cx)
    }
}

impl<T> Drop for Put<'_, T> {
    fn drop(&mut self) {
        self.waiter.cancel(&self.queue.buf);
    }
}

impl<T> fmt::Debug for Put<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Put").finish_non_exhaustive()
    }
}

/// The future of [`Queue::get`].
#[must_use = "futures do nothing unless awaited"]
pub struct Get<'a, T> {
    queue: &'a Queue<T>,
    waiter: GetWaiter,
}

impl<T> Future for Get<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let this = self.get_mut();
        match this.waiter.poll(&this.queue.buf, cx) {
            Poll::Ready(Some(v)) => Poll::Ready(v),
            // A queue is never closed: `None` cannot come. Wait, rather than fail, if it did.
            Poll::Ready(None) | Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> Drop for Get<'_, T> {
    fn drop(&mut self) {
        self.waiter.cancel(&self.queue.buf);
    }
}

impl<T> fmt::Debug for Get<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Get").finish_non_exhaustive()
    }
}

/// The future of [`Queue::join`].
#[must_use = "futures do nothing unless awaited"]
pub struct Join<'a, T> {
    queue: &'a Queue<T>,
    key: Option<usize>,
}

impl<T> Future for Join<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let unfinished = this.queue.unfinished();
        let mut j = this.queue.joiners.borrow_mut();
        match this.key {
            None if unfinished == 0 => Poll::Ready(()),
            None => {
                this.key = Some(j.push(cx.waker(), ()));
                Poll::Pending
            }
            // Served when the count reached zero, even if items came since (asyncio's rule).
            Some(k) if unfinished == 0 || !j.is_linked(k) => {
                j.remove(k);
                this.key = None;
                Poll::Ready(())
            }
            Some(k) => {
                j.set_waker(k, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl<T> Drop for Join<'_, T> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.queue.joiners.borrow_mut().remove(k);
        }
    }
}

impl<T> fmt::Debug for Join<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Join")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}

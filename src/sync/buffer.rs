//! The buffer behind [`Queue`](super::Queue) and the [`channel`](super::channel): items in FIFO
//! order, a line of waiting getters and a line of waiting putters, with items *handed over*
//! between them.
//!
//! ```
//! // Internal: what a queue of capacity 1 does with a second put.
//! use std::rc::Rc;
//! let el = solo::EventLoop::new().unwrap();
//! let q = Rc::new(solo::sync::Queue::new(1));
//! let q2 = q.clone();
//! let putter = el.handle().spawn(async move {
//!     q2.put(1).await;
//!     q2.put(2).await; // waits, holding 2, until a get makes room
//! });
//! let got = el.run_until_complete(async move { (q.get().await, q.get().await) }).unwrap();
//! assert_eq!(got, (1, 2));
//! el.run_until_complete(putter).unwrap().unwrap();
//! ```
//!
//! Invariants (between calls):
//!
//! * getters wait in line only while the buffer is empty and no putter waits;
//! * putters wait in line only while the buffer holds at least `cap` items;
//! * an item leaves a putter or enters a getter only by being moved: a put that waits keeps its
//!   item in its node until a get takes it (into the buffer, or straight out with capacity 0);
//!   a getter served while it waits finds the item in its node. A getter dropped after it was
//!   served gives the item back: to the next getter in line, else to the buffer's *front* (it
//!   was the oldest), even if that makes the buffer one over its capacity for a while.
//!
//! So a cancelled get loses no item, a cancelled put leaves nothing behind, and neither side
//! can barge past the other's line. Wakers are taken out under the borrow and woken after it.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::task::{Context, Poll, Waker};

use super::wait_list::WaitList;

pub(super) struct Buffer<T> {
    items: VecDeque<T>,
    cap: usize,
    getters: WaitList<Option<T>>,
    putters: WaitList<Option<T>>,
    /// Items that entered and were not yet marked done (`Queue::task_done`).
    pub(super) unfinished: usize,
    /// No more items will come (the channel's senders are all gone): waiting getters are
    /// served `None`, later ones get `None` once the items run out.
    pub(super) closed: bool,
}

impl<T> Buffer<T> {
    pub(super) fn new(cap: usize) -> Buffer<T> {
        Buffer {
            items: VecDeque::new(),
            cap,
            getters: WaitList::new(),
            putters: WaitList::new(),
            unfinished: 0,
            closed: false,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn capacity(&self) -> usize {
        self.cap
    }

    /// Puts `v` if it can go somewhere now (to a waiting getter, or into the buffer when no
    /// putter is in line and there is room); else gives it back. The waker to wake is returned.
    fn offer(&mut self, v: T) -> Result<Option<Waker>, T> {
        if let Some(k) = self.getters.front() {
            *self.getters.state_mut(k) = Some(v);
            self.unfinished += 1;
            return Ok(self.getters.unlink(k));
        }
        if self.putters.is_empty() && self.items.len() < self.cap {
            self.items.push_back(v);
            self.unfinished += 1;
            return Ok(None);
        }
        Err(v)
    }

    /// Takes the next item, if there is one: from the buffer (moving the first waiting
    /// putter's item in behind it), or straight from the first putter (capacity 0).
    fn take(&mut self) -> Option<(T, Option<Waker>)> {
        if let Some(v) = self.items.pop_front() {
            let mut waker = None;
            if self.items.len() < self.cap {
                if let Some(k) = self.putters.front() {
                    let item = self.putters.state_mut(k).take();
                    self.items.extend(item);
                    self.unfinished += 1;
                    waker = self.putters.unlink(k);
                }
            }
            return Some((v, waker));
        }
        let k = self.putters.front()?;
        let v = self.putters.state_mut(k).take()?;
        self.unfinished += 1;
        Some((v, self.putters.unlink(k)))
    }

    /// Closes the buffer for getters: every waiting getter is served `None`. Returns the
    /// wakers one at a time (call until `None`).
    pub(super) fn close_one(&mut self) -> Option<Waker> {
        self.closed = true;
        let k = self.getters.front()?;
        Some(
            self.getters
                .unlink(k)
                .unwrap_or_else(futures_task::noop_waker),
        )
    }

    /// Takes every item out (the last receiver is gone): for the caller to drop after the
    /// borrow ends.
    pub(super) fn drain(&mut self) -> VecDeque<T> {
        std::mem::take(&mut self.items)
    }
}

fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
}

/// Puts `v` without waiting, or gives it back.
pub(super) fn try_put<T>(buf: &RefCell<Buffer<T>>, v: T) -> Result<(), T> {
    let offered = buf.borrow_mut().offer(v);
    offered.map(wake)
}

/// Takes an item without waiting.
pub(super) fn try_get<T>(buf: &RefCell<Buffer<T>>) -> Option<T> {
    let taken = buf.borrow_mut().take();
    taken.map(|(v, w)| {
        wake(w);
        v
    })
}

/// A get's place in the getters' line.
#[derive(Debug, Default)]
pub(super) struct GetWaiter {
    key: Option<usize>,
}

impl GetWaiter {
    /// `Some(item)`, or `None` when the buffer is empty and closed.
    pub(super) fn poll<T>(
        &mut self,
        buf: &RefCell<Buffer<T>>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<T>> {
        let mut b = buf.borrow_mut();
        if let Some(k) = self.key {
            if b.getters.is_linked(k) {
                b.getters.set_waker(k, cx.waker());
                return Poll::Pending;
            }
            // Served: an item, or `None` because the buffer closed.
            self.key = None;
            return Poll::Ready(b.getters.remove(k));
        }
        if b.getters.is_empty() {
            if let Some((v, w)) = b.take() {
                drop(b);
                wake(w);
                return Poll::Ready(Some(v));
            }
            if b.closed {
                return Poll::Ready(None);
            }
        }
        self.key = Some(b.getters.push(cx.waker(), None));
        Poll::Pending
    }

    /// Leaves the line. An item handed over but not taken goes to the next getter, or back to
    /// the front of the buffer.
    pub(super) fn cancel<T>(&mut self, buf: &RefCell<Buffer<T>>) {
        let Some(k) = self.key.take() else { return };
        let mut b = buf.borrow_mut();
        let Some(v) = b.getters.remove(k) else { return };
        let waker = match b.getters.front() {
            Some(next) => {
                *b.getters.state_mut(next) = Some(v);
                b.getters.unlink(next)
            }
            None => {
                b.items.push_front(v);
                None
            }
        };
        drop(b);
        wake(waker);
    }
}

/// A put's place in the putters' line; it holds the item until the item is placed.
#[derive(Debug)]
pub(super) struct PutWaiter<T> {
    item: Option<T>,
    key: Option<usize>,
}

impl<T> PutWaiter<T> {
    pub(super) fn new(v: T) -> PutWaiter<T> {
        PutWaiter {
            item: Some(v),
            key: None,
        }
    }

    /// Ready once the item is in the buffer or with a getter.
    pub(super) fn poll(&mut self, buf: &RefCell<Buffer<T>>, cx: &mut Context<'_>) -> Poll<()> {
        let mut b = buf.borrow_mut();
        if let Some(k) = self.key {
            if b.putters.is_linked(k) {
                b.putters.set_waker(k, cx.waker());
                return Poll::Pending;
            }
            b.putters.remove(k);
            self.key = None;
            return Poll::Ready(());
        }
        let Some(v) = self.item.take() else {
            return Poll::Ready(()); // polled again after it was done
        };
        match b.offer(v) {
            Ok(w) => {
                drop(b);
                wake(w);
                Poll::Ready(())
            }
            Err(v) => {
                self.key = Some(b.putters.push(cx.waker(), Some(v)));
                Poll::Pending
            }
        }
    }

    /// Leaves the line; the item, if not placed yet, is dropped (after the borrow: its
    /// destructor is user code).
    pub(super) fn cancel(&mut self, buf: &RefCell<Buffer<T>>) {
        if let Some(k) = self.key.take() {
            let left = buf.borrow_mut().putters.remove(k);
            drop(left);
        }
    }
}

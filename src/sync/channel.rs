//! An unbounded channel between the tasks of one thread: cloneable [`Sender`]s and
//! [`Receiver`]s (multi-producer, multi-consumer), closed from either side.
//!
//! ```
//! use solo::sync::channel;
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let (tx, rx) = channel::unbounded();
//! for i in 0..3 {
//!     let tx = tx.clone();
//!     h.spawn(async move { tx.send(i).unwrap() });
//! }
//! drop(tx); // the receiver sees the end once the three clones are gone
//! let got = el.run_until_complete(async move {
//!     let mut got = Vec::new();
//!     while let Some(v) = rx.recv().await {
//!         got.push(v);
//!     }
//!     got
//! }).unwrap();
//! assert_eq!(got, [0, 1, 2]);
//! ```
//!
//! `send` never waits. When every receiver is gone, `send` fails and hands the value back in
//! the [`SendError`], and the values still queued are dropped. When every sender is gone, the
//! receivers get the values still queued, then `None`. Receivers are served in the order they
//! started waiting, each value goes to exactly one, and a `recv` cancelled after a value was
//! handed to it gives it back (to the next receiver, or the front of the queue).
//! [`Receiver`] is also a [`Stream`](futures_core::Stream).

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::buffer::{self, Buffer, GetWaiter};
use super::{SendError, TryRecvError};

struct Chan<T> {
    buf: RefCell<Buffer<T>>,
    senders: Cell<usize>,
    receivers: Cell<usize>,
}

/// A channel without bound: values wait in it until a [`Receiver`] takes them.
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Rc::new(Chan {
        buf: RefCell::new(Buffer::new(usize::MAX)),
        senders: Cell::new(1),
        receivers: Cell::new(1),
    });
    (
        Sender { chan: chan.clone() },
        Receiver {
            chan,
            stream: GetWaiter::default(),
        },
    )
}

/// The sending side of a channel; clone it for more producers.
pub struct Sender<T> {
    chan: Rc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Queues `value` for a receiver (handing it to the first one waiting). Fails, with the
    /// value, if every receiver is gone.
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        if self.chan.receivers.get() == 0 {
            return Err(SendError(value));
        }
        // Unbounded and open: never refused.
        buffer::try_put(&self.chan.buf, value).map_err(SendError)
    }

    /// Whether every receiver is gone (a `send` would fail).
    pub fn is_closed(&self) -> bool {
        self.chan.receivers.get() == 0
    }

    /// How many values wait in the channel.
    pub fn len(&self) -> usize {
        self.chan.buf.borrow().len()
    }

    /// Whether no value waits in the channel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.senders.set(self.chan.senders.get() + 1);
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let n = self.chan.senders.get() - 1;
        self.chan.senders.set(n);
        if n == 0 {
            // Waiting receivers are served `None`; later ones get what is queued, then `None`.
            loop {
                let w = self.chan.buf.borrow_mut().close_one();
                match w {
                    Some(w) => w.wake(),
                    None => break,
                }
            }
        }
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The receiving side of a channel; clone it for more consumers (each value goes to one).
pub struct Receiver<T> {
    chan: Rc<Chan<T>>,
    /// The place in line of [`Stream::poll_next`](futures_core::Stream::poll_next).
    stream: GetWaiter,
}

impl<T> Receiver<T> {
    /// The next value, waiting for one; `None` once every sender is gone and nothing is left.
    pub fn recv(&self) -> Recv<'_, T> {
        Recv {
            chan: &self.chan,
            waiter: GetWaiter::default(),
        }
    }

    /// The next value if one is queued now.
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        match buffer::try_get(&self.chan.buf) {
            Some(v) => Ok(v),
            None if self.chan.senders.get() == 0 => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Whether every sender is gone (values may still be queued).
    pub fn is_closed(&self) -> bool {
        self.chan.senders.get() == 0
    }

    /// How many values wait in the channel.
    pub fn len(&self) -> usize {
        self.chan.buf.borrow().len()
    }

    /// Whether no value waits in the channel.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.chan.receivers.set(self.chan.receivers.get() + 1);
        Receiver {
            chan: self.chan.clone(),
            stream: GetWaiter::default(),
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.stream.cancel(&self.chan.buf);
        let n = self.chan.receivers.get() - 1;
        self.chan.receivers.set(n);
        if n == 0 {
            // Nobody can take them: dropped now, after the borrow (their destructors may send).
            let left = self.chan.buf.borrow_mut().drain();
            drop(left);
        }
    }
}

impl<T> futures_core::Stream for Receiver<T> {
    type Item = T;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        this.stream.poll(&this.chan.buf, cx)
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("len", &self.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The future of [`Receiver::recv`].
#[must_use = "futures do nothing unless awaited"]
pub struct Recv<'a, T> {
    chan: &'a Rc<Chan<T>>,
    waiter: GetWaiter,
}

impl<T> Future for Recv<'_, T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = self.get_mut();
        this.waiter.poll(&this.chan.buf, cx)
    }
}

impl<T> Drop for Recv<'_, T> {
    fn drop(&mut self) {
        self.waiter.cancel(&self.chan.buf);
    }
}

impl<T> fmt::Debug for Recv<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recv").finish_non_exhaustive()
    }
}

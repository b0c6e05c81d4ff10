//! A channel for one value: [`channel`] makes a [`Sender`] and a [`Receiver`], which is a
//! future of the value.
//!
//! ```
//! use solo::sync::oneshot;
//!
//! let el = solo::EventLoop::new().unwrap();
//! let (tx, rx) = oneshot::channel();
//! el.handle().call_soon(move || tx.send("done").unwrap());
//! assert_eq!(el.run_until_complete(rx).unwrap(), Ok("done"));
//!
//! // A sender dropped without sending: the receiver learns it, it does not hang.
//! let (tx, rx) = oneshot::channel::<u8>();
//! drop(tx);
//! assert!(el.run_until_complete(rx).unwrap().is_err());
//! ```
//!
//! [`Sender::send`] hands the value back if the receiver is gone or closed. The receiver
//! yields the value, or [`RecvError`] once the sender is gone without sending (polled again
//! after it yielded, it yields `RecvError`). Two `Cell`s and two wakers: no lock, no atomic.

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use super::{RecvError, TryRecvError};

struct Shared<T> {
    value: Cell<Option<T>>,
    /// The receiver's waker (it waits for the value).
    rx_waker: Cell<Option<Waker>>,
    /// The sender's waker (it waits in [`Sender::closed`]).
    tx_waker: Cell<Option<Waker>>,
    /// The sender is gone: it sent, or was dropped.
    tx_done: Cell<bool>,
    /// The receiver is gone, or closed: a send would fail.
    rx_done: Cell<bool>,
}

/// A sender and a receiver of one value.
pub fn channel<T>() -> (Sender<T>, Receiver<T>) {
    let shared = Rc::new(Shared {
        value: Cell::new(None),
        rx_waker: Cell::new(None),
        tx_waker: Cell::new(None),
        tx_done: Cell::new(false),
        rx_done: Cell::new(false),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// Stores `cx`'s waker in `slot`, unless the one there already wakes the same task.
fn store_waker(slot: &Cell<Option<Waker>>, cx: &Context<'_>) {
    let w = match slot.take() {
        Some(w) if w.will_wake(cx.waker()) => w,
        _ => cx.waker().clone(),
    };
    slot.set(Some(w));
}

fn wake(slot: &Cell<Option<Waker>>) {
    if let Some(w) = slot.take() {
        w.wake();
    }
}

/// Sends the one value of a [`oneshot`](self) channel.
pub struct Sender<T> {
    shared: Rc<Shared<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`; gives it back if the receiver is gone or closed.
    pub fn send(self, value: T) -> Result<(), T> {
        if self.shared.rx_done.get() {
            return Err(value);
        }
        self.shared.value.set(Some(value));
        Ok(()) // the drop marks the sender done and wakes the receiver
    }

    /// Whether the receiver is gone or closed (a send would fail).
    pub fn is_closed(&self) -> bool {
        self.shared.rx_done.get()
    }

    /// Waits until the receiver is gone or closed (to stop work nobody wants any more).
    pub fn closed(&mut self) -> Closed<'_, T> {
        Closed { sender: self }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.shared.tx_done.set(true);
        drop(self.shared.tx_waker.take());
        wake(&self.shared.rx_waker);
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// The future of [`Sender::closed`].
#[must_use = "futures do nothing unless awaited"]
pub struct Closed<'a, T> {
    sender: &'a mut Sender<T>,
}

impl<T> Future for Closed<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let shared = &self.sender.shared;
        if shared.rx_done.get() {
            return Poll::Ready(());
        }
        store_waker(&shared.tx_waker, cx);
        Poll::Pending
    }
}

impl<T> fmt::Debug for Closed<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Closed").finish_non_exhaustive()
    }
}

/// Receives the one value of a [`oneshot`](self) channel: a future of it.
pub struct Receiver<T> {
    shared: Rc<Shared<T>>,
}

impl<T> Receiver<T> {
    /// The value if it was sent; [`TryRecvError::Empty`] if it may still come,
    /// [`TryRecvError::Closed`] if it never will (or was already taken).
    pub fn try_recv(&mut self) -> Result<T, TryRecvError> {
        match self.shared.value.take() {
            Some(v) => Ok(v),
            None if self.shared.tx_done.get() => Err(TryRecvError::Closed),
            None => Err(TryRecvError::Empty),
        }
    }

    /// Refuses the value from now on: a later send fails and gives it back. A value sent
    /// before can still be taken with [`try_recv`](Self::try_recv) or by awaiting.
    pub fn close(&mut self) {
        self.shared.rx_done.set(true);
        wake(&self.shared.tx_waker);
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T, RecvError>> {
        let shared = &self.shared;
        if let Some(v) = shared.value.take() {
            return Poll::Ready(Ok(v));
        }
        if shared.tx_done.get() {
            return Poll::Ready(Err(RecvError(())));
        }
        store_waker(&shared.rx_waker, cx);
        Poll::Pending
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.shared.rx_done.set(true);
        drop(self.shared.rx_waker.take());
        // A value sent and never taken is dropped with the receiver, not with the last handle.
        drop(self.shared.value.take());
        wake(&self.shared.tx_waker);
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("sender_done", &self.shared.tx_done.get())
            .finish()
    }
}

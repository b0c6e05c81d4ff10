//! The two cross-thread channels the shards need: a [`oneshot`] for a reply, and a [`Mailbox`]
//! (many senders, one receiver) for the supervisor's events and an acceptor's hand-offs.
//!
//! Both are a `Mutex` and a stored `Waker`. The receiver is a solo task (or a loop's main
//! future) on another thread, so waking it is what carries the message's arrival across: a
//! solo waker woken off its loop's thread goes on that loop's remote queue and wakes the loop
//! out of its poll. Nothing here is on a per-request hot path that a lock-free queue would
//! win back: a cross-shard message already pays for that remote queue, whose lock this mirrors.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while the lock is held leaves plain data behind; go on with it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

struct OneshotState<T> {
    value: Option<T>,
    waker: Option<Waker>,
    /// The sender is gone: no value will come after the one (if any) in `value`.
    closed: bool,
}

/// A channel for one value; the receiver learns when the sender is dropped unsent.
pub(crate) fn oneshot<T>() -> (OneshotSender<T>, OneshotReceiver<T>) {
    let state = Arc::new(Mutex::new(OneshotState {
        value: None,
        waker: None,
        closed: false,
    }));
    (
        OneshotSender {
            state: Some(state.clone()),
        },
        OneshotReceiver { state },
    )
}

/// Sends the one value; dropping it unsent closes the channel.
pub(crate) struct OneshotSender<T> {
    state: Option<Arc<Mutex<OneshotState<T>>>>,
}

impl<T> OneshotSender<T> {
    pub(crate) fn send(mut self, value: T) {
        self.finish(Some(value));
    }

    fn finish(&mut self, value: Option<T>) {
        if let Some(state) = self.state.take() {
            let waker = {
                let mut s = lock(&state);
                s.value = value;
                s.closed = true;
                s.waker.take()
            };
            // Woken after the lock is released: the waker may run code of its own.
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<T> Drop for OneshotSender<T> {
    fn drop(&mut self) {
        self.finish(None);
    }
}

/// Yields `Some(value)`, or `None` once the sender was dropped without sending.
pub(crate) struct OneshotReceiver<T> {
    state: Arc<Mutex<OneshotState<T>>>,
}

impl<T> Future for OneshotReceiver<T> {
    type Output = Option<T>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = lock(&self.state);
        if let Some(v) = s.value.take() {
            return Poll::Ready(Some(v));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }
}

struct MailboxState<T> {
    queue: VecDeque<T>,
    waker: Option<Waker>,
    closed: bool,
}

/// A queue with many senders (any thread) and one receiver that awaits it. Closing it (from the
/// receiver's side) makes later pushes fail and hands them back.
pub(crate) struct Mailbox<T> {
    state: Mutex<MailboxState<T>>,
}

impl<T> Mailbox<T> {
    pub(crate) fn new() -> Arc<Mailbox<T>> {
        Arc::new(Mailbox {
            state: Mutex::new(MailboxState {
                queue: VecDeque::new(),
                waker: None,
                closed: false,
            }),
        })
    }

    /// Queues `item` and wakes the receiver; `Err(item)` if the mailbox is closed.
    pub(crate) fn push(&self, item: T) -> Result<(), T> {
        let waker = {
            let mut s = lock(&self.state);
            if s.closed {
                return Err(item);
            }
            s.queue.push_back(item);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
        Ok(())
    }

    /// The next item, or `Pending` with the waker stored; `Ready(None)` once closed and empty.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = lock(&self.state);
        if let Some(item) = s.queue.pop_front() {
            return Poll::Ready(Some(item));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        if !s.waker.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            s.waker = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Refuses later pushes and takes what is queued (to be dropped by the caller, outside the
    /// lock). A receiver waiting is woken, to see the end.
    pub(crate) fn close(&self) -> Vec<T> {
        let (items, waker) = {
            let mut s = lock(&self.state);
            s.closed = true;
            (s.queue.drain(..).collect(), s.waker.take())
        };
        if let Some(w) = waker {
            w.wake();
        }
        items
    }

    /// Refuses later pushes, but leaves what is queued to the receiver, which gets it before
    /// the end. A receiver waiting is woken, to see the end.
    pub(crate) fn seal(&self) {
        let waker = {
            let mut s = lock(&self.state);
            s.closed = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.state).closed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs under Miri in CI: a value and a drop crossing threads, the mailbox's close.
    #[test]
    fn miri_oneshot_and_mailbox_cross_threads() {
        let (tx, rx) = oneshot::<String>();
        std::thread::spawn(move || tx.send("hi".into()))
            .join()
            .unwrap();
        assert_eq!(futures_executor_block_on(rx), Some("hi".to_string()));
        let (tx, rx) = oneshot::<u8>();
        std::thread::spawn(move || drop(tx)).join().unwrap();
        assert_eq!(futures_executor_block_on(rx), None);

        let mb = Mailbox::new();
        let m2 = mb.clone();
        std::thread::spawn(move || m2.push(1).unwrap())
            .join()
            .unwrap();
        assert_eq!(mb.close(), vec![1]);
        assert_eq!(mb.push(2), Err(2));
        assert!(mb.is_closed());

        // Sealed: no more pushes, but what was queued still comes out, then the end.
        let mb = Mailbox::new();
        let m2 = mb.clone();
        std::thread::spawn(move || m2.push(3).unwrap())
            .join()
            .unwrap();
        mb.seal();
        assert_eq!(mb.push(4), Err(4));
        let next = std::future::poll_fn(|cx| mb.poll_recv(cx));
        assert_eq!(futures_executor_block_on(next), Some(3));
        let next = std::future::poll_fn(|cx| mb.poll_recv(cx));
        assert_eq!(futures_executor_block_on(next), None);
    }

    /// A minimal block_on, so the unit test needs no executor crate.
    fn futures_executor_block_on<F: Future>(f: F) -> F::Output {
        let mut f = std::pin::pin!(f);
        let waker = futures_task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
            std::thread::yield_now();
        }
    }
}

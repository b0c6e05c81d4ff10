//! [`Peer`]: one shard as the others see it, for sending it work, and [`Reply`], the answer.
//!
//! A message is a `Send` closure on the shard's remote queue (its loop's [`Remote`]): it runs on
//! the shard's own thread, where it may touch that shard's `!Send` state or start a `!Send`
//! future there. An answer comes back through a oneshot; the sender's task is woken through its
//! own loop's remote queue. If the shard has stopped, the push is refused and the sender gets a
//! [`PeerError`] at once; if it stops with the message queued, the message is dropped unrun,
//! which drops its answer's sender, so the [`Reply`] ends with an error: no wait is left
//! hanging.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::channel::{oneshot, OneshotReceiver};
use super::error::PeerError;
use crate::{Handle, Remote};

/// One shard, as every shard (and any thread) can reach it: `Send + Sync + Clone`.
///
/// ```
/// let out = solo::shards::Builder::new().count(2).run(|shard| async move {
///     if shard.index() == 0 {
///         // Shard 0 asks shard 1 for its index, computed on shard 1's thread...
///         let there = shard.peer(1)?.ask(|| solo::shards::current_index()).await?;
///         // ...and builds a `!Send` future there (an Rc), whose `Send` output comes back.
///         let len = shard
///             .peer(1)?
///             .spawn(|| {
///                 let local = std::rc::Rc::new(vec![1, 2, 3]);
///                 async move { local.len() }
///             })
///             .await?;
///         shard.stop_all();
///         return Ok::<_, solo::shards::PeerError>((there, len));
///     }
///     // Shard 1 serves messages until told to stop; a shard that has ended takes none.
///     shard.stopped().await;
///     Ok((None, 0))
/// })?;
/// assert_eq!(out[0], (Some(1), 3));
/// # Ok::<(), solo::shards::ShardsError>(())
/// ```
#[derive(Clone)]
pub struct Peer {
    index: usize,
    /// `None`: the shard never got a loop (its startup failed).
    remote: Option<Remote>,
}

impl Peer {
    pub(crate) fn new(index: usize, remote: Option<Remote>) -> Peer {
        Peer { index, remote }
    }

    /// The shard's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Whether the shard has stopped taking messages.
    pub fn is_stopped(&self) -> bool {
        self.remote.as_ref().is_none_or(Remote::is_closed)
    }

    /// Runs `f` on the shard's thread, at its loop's next iteration; nothing comes back.
    /// [`PeerError`] if the shard has stopped (then `f` is dropped here, unrun).
    #[track_caller]
    pub fn call(&self, f: impl FnOnce() + Send + 'static) -> Result<(), PeerError> {
        match &self.remote {
            // `call_soon_threadsafe` tracks its caller too, so debug mode names this caller.
            Some(r) => r
                .call_soon_threadsafe(f)
                .map_err(|_| PeerError::not_delivered(self.index)),
            None => Err(PeerError::not_delivered(self.index)),
        }
    }

    /// Runs `f` on the shard's thread and brings back what it returns.
    #[track_caller]
    pub fn ask<R, F>(&self, f: F) -> Reply<R>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let (tx, rx) = oneshot();
        let sent = self.call(move || tx.send(f()));
        Reply::new(self.index, sent, rx)
    }

    /// Builds a future on the shard's thread with `make` (the future may be `!Send`: it never
    /// leaves that thread), runs it there as a task, and brings back its output. If the task is
    /// cancelled or panics (the panic is reported on that shard), or the shard stops first, the
    /// reply is a [`PeerError`].
    #[track_caller]
    pub fn spawn<M, Fut>(&self, make: M) -> Reply<Fut::Output>
    where
        M: FnOnce() -> Fut + Send + 'static,
        Fut: Future + 'static,
        Fut::Output: Send + 'static,
    {
        let (tx, rx) = oneshot();
        let sent = self.call(move || {
            let fut = make();
            drop(Handle::current().spawn(async move { tx.send(fut.await) }));
        });
        Reply::new(self.index, sent, rx)
    }
}

impl fmt::Debug for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Peer")
            .field("index", &self.index)
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

/// The answer to [`Peer::ask`] or [`Peer::spawn`]: a `Send` future, which may be awaited on any
/// loop or thread.
#[must_use = "a reply does nothing unless awaited; the message is sent either way"]
pub struct Reply<R> {
    shard: usize,
    state: ReplyState<R>,
}

enum ReplyState<R> {
    Waiting(OneshotReceiver<R>),
    Refused,
}

impl<R> Reply<R> {
    fn new(shard: usize, sent: Result<(), PeerError>, rx: OneshotReceiver<R>) -> Reply<R> {
        let state = match sent {
            Ok(()) => ReplyState::Waiting(rx),
            Err(_) => ReplyState::Refused,
        };
        Reply { shard, state }
    }
}

impl<R> Future for Reply<R> {
    type Output = Result<R, PeerError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match &mut this.state {
            ReplyState::Refused => Poll::Ready(Err(PeerError::not_delivered(this.shard))),
            ReplyState::Waiting(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Some(v)) => Poll::Ready(Ok(v)),
                Poll::Ready(None) => Poll::Ready(Err(PeerError::not_answered(this.shard))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reply").field("shard", &self.shard).finish()
    }
}

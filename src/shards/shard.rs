//! [`Shard`]: what a shard's entry point is given (its index, the count, its peers, its stop),
//! and the thread-local record of the shard running on this thread.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use super::channel::Mailbox;
use super::error::PeerError;
use super::peer::Peer;
use super::supervisor::Event;
use crate::signal::SignalKind;
use crate::sync::Event as Flag;

/// Why the shards were asked to stop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// The process received this signal (SIGTERM or SIGINT, unless turned off with
    /// [`Builder::signals`](super::Builder::signals)).
    Signal(SignalKind),
    /// This shard failed (panicked, returned an error, or could not start), so all stop.
    ShardFailed(usize),
    /// This shard called [`Shard::stop_all`].
    Requested(usize),
    /// A [`Stopper`](super::Stopper) was used, from outside the shards.
    Stopper,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Signal(s) => write!(f, "{s} received"),
            StopReason::ShardFailed(i) => write!(f, "shard {i} failed"),
            StopReason::Requested(i) => write!(f, "shard {i} asked all to stop"),
            StopReason::Stopper => f.write_str("stopped from outside the shards"),
        }
    }
}

/// What the shard running on this thread keeps on it: the stop, told by the supervisor through
/// the shard's remote queue (so only this thread touches it).
pub(crate) struct Local {
    index: usize,
    stop: Flag,
    reason: Cell<Option<StopReason>>,
    stopped_at: Cell<Option<Instant>>,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}

impl Local {
    /// Records the shard of this thread; it stays for the thread's life (a shard's thread
    /// runs one shard).
    pub(crate) fn install(index: usize) -> Rc<Local> {
        let local = Rc::new(Local {
            index,
            stop: Flag::new(),
            reason: Cell::new(None),
            stopped_at: Cell::new(None),
        });
        CURRENT.with(|c| *c.borrow_mut() = Some(local.clone()));
        local
    }

    /// Tells the shard on this thread to stop (run by the supervisor's message). The first
    /// reason wins.
    pub(crate) fn stop_current(reason: StopReason) {
        if let Some(local) = CURRENT.with(|c| c.borrow().clone()) {
            local.stop(reason);
        }
    }

    pub(crate) fn stop(&self, reason: StopReason) {
        if self.reason.get().is_none() {
            self.reason.set(Some(reason));
            self.stopped_at.set(Some(Instant::now()));
            self.stop.set();
        }
    }

    /// When the stop came (real time: the grace period is also real time for the executor).
    pub(crate) fn stopped_at(&self) -> Option<Instant> {
        self.stopped_at.get()
    }

    pub(crate) fn reason(&self) -> Option<StopReason> {
        self.reason.get()
    }

    /// Waits for the stop; returns at once if it came already.
    pub(crate) async fn stopped(&self) -> StopReason {
        self.stop.wait().await;
        // The reason is set before the flag, and never cleared.
        self.reason
            .get()
            .unwrap_or(StopReason::Requested(self.index))
    }
}

/// The index of the shard running on this thread, if it is a shard's thread.
///
/// ```
/// assert_eq!(solo::shards::current_index(), None); // a test thread is no shard
/// ```
pub fn current_index() -> Option<usize> {
    CURRENT.with(|c| c.borrow().as_ref().map(|l| l.index))
}

/// The context a shard's entry point runs with: which shard it is, how many there are, the
/// other shards, and its stop. It lives on the shard's thread (`!Send`); [`Peer`]s are what
/// cross threads.
///
/// ```compile_fail
/// fn send<T: Send>(_: T) {}
/// solo::shards::Builder::new().run(|shard| {
///     send(shard); // a Shard stays on its thread
///     async { Ok::<_, std::io::Error>(()) }
/// });
/// ```
pub struct Shard {
    pub(crate) local: Rc<Local>,
    pub(crate) peers: Arc<[Peer]>,
    pub(crate) core: Option<usize>,
    pub(crate) supervisor: Arc<Mailbox<Event>>,
}

impl Shard {
    /// This shard's index, `0..count()`.
    pub fn index(&self) -> usize {
        self.local.index
    }

    /// How many shards there are.
    pub fn count(&self) -> usize {
        self.peers.len()
    }

    /// Shard `index`, to send work to (this shard too: the message then goes through its own
    /// queue, and runs at the loop's next iteration); [`PeerError`] if there is no such shard.
    pub fn peer(&self, index: usize) -> Result<&Peer, PeerError> {
        self.peers
            .get(index)
            .ok_or_else(|| PeerError::no_such_shard(index, self.peers.len()))
    }

    /// Every shard, by index.
    pub fn peers(&self) -> &[Peer] {
        &self.peers
    }

    /// The CPU this shard's thread is pinned to, if pinning was asked for and worked.
    pub fn core(&self) -> Option<usize> {
        self.core
    }

    /// Waits until the shards are asked to stop (a signal, a failed shard, [`stop_all`]), and
    /// says why. A server selects on it, or uses a [`ShardListener`](super::ShardListener),
    /// whose `accept` ends by itself, then finishes what it has within the grace period.
    ///
    /// [`stop_all`]: Shard::stop_all
    pub fn stopped(&self) -> impl Future<Output = StopReason> + 'static {
        let local = self.local.clone();
        async move { local.stopped().await }
    }

    /// Why the shards are stopping, once they are.
    pub fn stop_reason(&self) -> Option<StopReason> {
        self.local.reason()
    }

    /// Asks every shard (this one too) to stop, as a signal would. `Handle::current().stop()`
    /// on a shard's loop does the same ([`StopReason::Requested`]), and is a normal end of that
    /// shard, not a failure: its entry runs on, with the grace period to return.
    pub fn stop_all(&self) {
        // The supervisor's mailbox closes only when every shard has ended, this one included.
        let _ = self.supervisor.push(Event::StopAll(self.index()));
    }

    pub(crate) fn local(&self) -> &Rc<Local> {
        &self.local
    }
}

impl fmt::Debug for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shard")
            .field("index", &self.index())
            .field("count", &self.count())
            .field("core", &self.core)
            .field("stop", &self.stop_reason())
            .finish()
    }
}

//! The calling thread's side of [`Builder::run`](super::Builder::run): it starts one thread per
//! shard, then runs a small solo loop of its own that watches them and the stop signals, until
//! every shard has ended.
//!
//! ```text
//!  run() ── signals (SIGTERM, SIGINT) listened for first, so none is missed during startup
//!        ── spawn shard threads ──► each: pin, build its loop, Started(remote) ──┐
//!        ── supervise: ◄── mailbox (Started, Ended, StopAll) ◄──────────────────┘
//!             all Started (or Ended) ──► every shard gets the peers list, runs its entry
//!             a signal, a failed shard, a StopAll ──► "stop" on each shard's remote queue
//!             all Ended ──► join the threads, gather each shard's result
//! ```
//!
//! Nothing is shared between shards but the messages: the supervisor holds each shard's
//! `Remote` and talks to it through that shard's remote queue; the shards talk back through the
//! mailbox, whose waker wakes the supervisor's loop.

use std::future::{poll_fn, Future};
use std::sync::mpsc;
use std::sync::Arc;
use std::task::Poll;

use super::channel::Mailbox;
use super::error::{FailureKind, ShardFailure, ShardsError};
use super::peer::Peer;
use super::shard::{Local, Shard, StopReason};
use super::thread::{shard_thread, ShardSetup};
use super::Builder;
use crate::signal::{Signal, SignalKind};
use crate::{EventLoop, Handle, Remote};

/// What shards tell the supervisor.
pub(crate) enum Event {
    /// The shard built its loop and waits for its peers.
    Started(usize, Remote),
    /// The shard's thread is done (its loop shut down); whether it failed.
    Ended(usize, bool),
    /// A shard called `stop_all`.
    StopAll(usize),
    /// A `Stopper` was used.
    Stop,
}

/// Runs the shards as `builder` says and gathers their results.
pub(crate) fn run<F, Fut, T, E>(builder: &Builder, entry: &F) -> Result<Vec<T>, ShardsError>
where
    F: Fn(Shard) -> Fut + Sync,
    Fut: Future<Output = Result<T, E>>,
    T: Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let count = builder.shard_count()?;
    if Handle::try_current().is_some() {
        return Err(ShardsError::Config(
            "run called inside a running solo loop; call it from a plain thread (main)".into(),
        ));
    }
    let el = EventLoop::new().map_err(ShardsError::Setup)?;
    let signals = if builder.signals {
        [SignalKind::terminate(), SignalKind::interrupt()]
            .into_iter()
            .map(|k| Signal::with_handle(k, &el.handle()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(ShardsError::Setup)?
    } else {
        Vec::new()
    };
    let mailbox = builder.mailbox.clone();
    let cpus = if builder.pin {
        super::pin::allowed_cpus()
    } else {
        Vec::new()
    };

    std::thread::scope(|scope| {
        let mut threads = Vec::with_capacity(count);
        let mut peer_senders = Vec::with_capacity(count);
        let mut spawn_failures = Vec::new();
        for index in 0..count {
            let (tx, rx) = mpsc::channel::<Arc<[Peer]>>();
            let setup = ShardSetup {
                index,
                cpu: super::pin::cpu_for(&cpus, index),
                builder,
                supervisor: mailbox.clone(),
                peers: rx,
            };
            let spawned = std::thread::Builder::new()
                .name(format!("solo-shard-{index}"))
                .spawn_scoped(scope, move || shard_thread(setup, entry));
            match spawned {
                Ok(t) => threads.push(Some(t)),
                Err(e) => {
                    threads.push(None);
                    spawn_failures.push(ShardFailure {
                        index,
                        kind: FailureKind::Startup(e),
                    });
                    let _ = mailbox.push(Event::Ended(index, true));
                }
            }
            peer_senders.push(tx);
        }

        let signal = supervise(&el, signals, &mailbox, peer_senders, count);

        let mut results = Vec::with_capacity(count);
        let mut failures = spawn_failures;
        for (index, t) in threads.into_iter().enumerate() {
            let Some(t) = t else { continue };
            let kind = match t.join() {
                Ok(Ok(v)) => {
                    results.push(v);
                    continue;
                }
                Ok(Err(kind)) => kind,
                // The thread's body catches the entry's panics; this is one of its own.
                Err(p) => FailureKind::Panicked(crate::error::panic_message(&*p).to_string()),
            };
            failures.push(ShardFailure { index, kind });
        }
        failures.sort_by_key(|f| f.index);
        if failures.is_empty() {
            Ok(results)
        } else {
            Err(ShardsError::Failed { failures, signal })
        }
    })
}

/// Watches the shards until all have ended: hands out the peers once every shard has a loop,
/// and tells every shard to stop on a signal, a failure or a `stop_all`. Returns the signal
/// that stopped them, if one did.
fn supervise(
    el: &EventLoop,
    mut signals: Vec<Signal>,
    mailbox: &Mailbox<Event>,
    peer_senders: Vec<mpsc::Sender<Arc<[Peer]>>>,
    count: usize,
) -> Option<SignalKind> {
    let mut remotes: Vec<Option<Remote>> = vec![None; count];
    let mut reported = vec![false; count];
    let mut ended = vec![false; count];
    let mut peer_senders = Some(peer_senders);
    let mut stop: Option<StopReason> = None;
    let mut signal = None;

    let tell = |remote: &Remote, reason: StopReason| {
        // Refused only by a loop that is shutting down: that shard is ending anyway.
        let _ = remote.call_soon_threadsafe(move || Local::stop_current(reason));
    };
    let watch = poll_fn(|cx| {
        let mut asked = None;
        for s in &mut signals {
            while let Poll::Ready(Some(())) = s.poll_recv(cx) {
                signal.get_or_insert(s.kind());
                asked.get_or_insert(StopReason::Signal(s.kind()));
            }
        }
        while let Poll::Ready(Some(event)) = mailbox.poll_recv(cx) {
            match event {
                Event::Started(i, remote) => {
                    reported[i] = true;
                    if let Some(reason) = stop {
                        tell(&remote, reason);
                    }
                    remotes[i] = Some(remote);
                }
                Event::Ended(i, failed) => {
                    reported[i] = true;
                    ended[i] = true;
                    if failed {
                        asked.get_or_insert(StopReason::ShardFailed(i));
                    }
                }
                Event::StopAll(i) => {
                    asked.get_or_insert(StopReason::Requested(i));
                }
                Event::Stop => {
                    asked.get_or_insert(StopReason::Stopper);
                }
            }
        }
        if let (None, Some(reason)) = (stop, asked) {
            stop = Some(reason);
            for r in remotes.iter().flatten() {
                tell(r, reason);
            }
        }
        if reported.iter().all(|&r| r) {
            if let Some(senders) = peer_senders.take() {
                let peers: Arc<[Peer]> = remotes
                    .iter()
                    .enumerate()
                    .map(|(i, r)| Peer::new(i, r.clone()))
                    .collect();
                for tx in senders {
                    // A shard that ended already has dropped its receiver.
                    let _ = tx.send(peers.clone());
                }
            }
        }
        if ended.iter().all(|&e| e) {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    });
    // Only the main future runs on this loop, and nothing stops it: it returns when every
    // shard has ended. Should it fail anyway, the peers' senders are dropped with it, so every
    // shard still waiting for them ends; and every shard already running is told to stop, so
    // that the scope's join returns instead of waiting for shards nobody supervises.
    if el.run_until_complete(watch).is_err() {
        for r in remotes.iter().flatten() {
            tell(r, StopReason::Stopper);
        }
    }
    signal
}

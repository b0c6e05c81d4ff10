//! What can go wrong with a set of shards: [`ShardsError`] for the whole run (bad options, or
//! shards that failed), [`ShardFailure`] for one shard, [`PeerError`] for one message.

use std::error::Error;
use std::fmt;
use std::io;
use std::time::Duration;

use crate::signal::SignalKind;

/// Why [`Builder::run`](super::Builder::run) returned no results.
#[derive(Debug)]
#[non_exhaustive]
pub enum ShardsError {
    /// The options make no sense (`count(0)`); no shard was started.
    Config(String),
    /// The calling thread could not set up what watches the shards (its loop, the signal
    /// listeners, a thread); no shard is left running.
    Setup(io::Error),
    /// One or more shards failed; every other shard was asked to stop, and all have ended.
    Failed {
        /// The shards that failed, in index order.
        failures: Vec<ShardFailure>,
        /// The signal that asked the shards to stop, if one did.
        signal: Option<SignalKind>,
    },
}

impl ShardsError {
    /// The failed shards (empty for `Config` and `Setup`).
    pub fn failures(&self) -> &[ShardFailure] {
        match self {
            ShardsError::Failed { failures, .. } => failures,
            _ => &[],
        }
    }
}

impl fmt::Display for ShardsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ShardsError::Config(why) => write!(f, "solo::shards: {why}"),
            ShardsError::Setup(e) => write!(f, "solo::shards: could not start: {e}"),
            ShardsError::Failed { failures, signal } => {
                write!(f, "solo::shards: {} shard(s) failed", failures.len())?;
                if let Some(s) = signal {
                    write!(f, " (stopping after {s})")?;
                }
                for fail in failures {
                    write!(f, "; {fail}")?;
                }
                Ok(())
            }
        }
    }
}

impl Error for ShardsError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ShardsError::Setup(e) => Some(e),
            ShardsError::Failed { failures, .. } => failures.first().map(|f| f as _),
            ShardsError::Config(_) => None,
        }
    }
}

/// One shard that did not end well.
#[derive(Debug)]
pub struct ShardFailure {
    /// The shard's index.
    pub index: usize,
    /// What happened.
    pub kind: FailureKind,
}

/// What happened to a [`ShardFailure`]'s shard.
#[derive(Debug)]
#[non_exhaustive]
pub enum FailureKind {
    /// Its loop could not be built (the loop builder's error).
    Startup(io::Error),
    /// Its entry point (or its loop builder) panicked; the panic's message.
    Panicked(String),
    /// Its entry point returned this error.
    Error(Box<dyn Error + Send + Sync>),
    /// It was asked to stop and its entry point had not returned when the grace period
    /// ended; the entry's future was dropped.
    Cancelled(Duration),
}

impl fmt::Display for ShardFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = self.index;
        match &self.kind {
            FailureKind::Startup(e) => write!(f, "shard {i} could not start its loop: {e}"),
            FailureKind::Panicked(msg) => write!(f, "shard {i} panicked: {msg}"),
            FailureKind::Error(e) => write!(f, "shard {i} failed: {e}"),
            FailureKind::Cancelled(grace) => write!(
                f,
                "shard {i} did not finish within the {:.3} s grace period after the stop, and \
                 was cancelled",
                grace.as_secs_f64()
            ),
        }
    }
}

impl Error for ShardFailure {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match &self.kind {
            FailureKind::Startup(e) => Some(e),
            FailureKind::Error(e) => Some(&**e),
            _ => None,
        }
    }
}

/// A message to another shard that was not delivered, or not answered, or a shard that does
/// not exist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerError {
    shard: usize,
    kind: PeerErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeerErrorKind {
    NotDelivered,
    NotAnswered,
    NoSuchShard { count: usize },
}

impl PeerError {
    pub(crate) fn not_delivered(shard: usize) -> PeerError {
        PeerError {
            shard,
            kind: PeerErrorKind::NotDelivered,
        }
    }

    pub(crate) fn not_answered(shard: usize) -> PeerError {
        PeerError {
            shard,
            kind: PeerErrorKind::NotAnswered,
        }
    }

    pub(crate) fn no_such_shard(shard: usize, count: usize) -> PeerError {
        PeerError {
            shard,
            kind: PeerErrorKind::NoSuchShard { count },
        }
    }

    /// The shard the message was for.
    pub fn shard(&self) -> usize {
        self.shard
    }

    /// Whether the message reached the shard's queue before it stopped. `false`: it was never
    /// run (the shard had stopped, or does not exist). `true`: it was queued, but the shard
    /// stopped before it ran, or dropped the task it started, or the call panicked there (the
    /// panic is reported on that shard).
    pub fn was_delivered(&self) -> bool {
        self.kind == PeerErrorKind::NotAnswered
    }

    /// Whether the index named no shard at all (a bug in the caller, not a stopped shard).
    pub fn is_no_such_shard(&self) -> bool {
        matches!(self.kind, PeerErrorKind::NoSuchShard { .. })
    }
}

/// So that `shard.peer(i)?` and `peer.ask(f).await?` work in an entry returning `io::Result`:
/// the `io::Error` carries the `PeerError` (`get_ref()`/`downcast`). A missing shard is
/// `InvalidInput`; a stopped one `BrokenPipe`, as for a channel whose other end is gone.
impl From<PeerError> for std::io::Error {
    fn from(e: PeerError) -> std::io::Error {
        let kind = if e.is_no_such_shard() {
            std::io::ErrorKind::InvalidInput
        } else {
            std::io::ErrorKind::BrokenPipe
        };
        std::io::Error::new(kind, e)
    }
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shard = self.shard;
        match self.kind {
            PeerErrorKind::NotAnswered => write!(
                f,
                "shard {shard} dropped the message without an answer (it stopped, or the call \
                 panicked)"
            ),
            PeerErrorKind::NotDelivered => {
                write!(
                    f,
                    "shard {shard} has stopped; the message was not delivered"
                )
            }
            PeerErrorKind::NoSuchShard { count } => {
                write!(f, "there is no shard {shard}: the shards are 0..{count}")
            }
        }
    }
}

impl Error for PeerError {}

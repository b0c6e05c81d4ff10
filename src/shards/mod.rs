//! Thread-per-core: N solo loops, one per thread, sharing nothing, each running the same entry
//! point with its [`Shard`] context.
//!
//! ```
//! use solo::shards::{Builder, Share, Port};
//!
//! // Two shards share one listening port; the acceptor shard hands connections out.
//! let port = Port::bind("127.0.0.1:0", Share::Acceptor)?;
//! let addr = port.local_addr();
//! let served = Builder::new().count(2).run(|shard| {
//!     let port = port.clone();
//!     async move {
//!         let listener = port.listener(&shard)?;
//!         if shard.index() == 1 {
//!             // A client, so that the example ends: one connection, then stop everything.
//!             let c = solo::net::TcpStream::connect(addr).await?;
//!             solo::time::sleep(std::time::Duration::from_millis(20)).await;
//!             drop(c);
//!             shard.stop_all();
//!         }
//!         let mut accepted = 0;
//!         // `accept` ends (None) once the shards are asked to stop.
//!         while let Some(conn) = listener.accept().await? {
//!             accepted += 1;
//!             drop(conn);
//!         }
//!         Ok::<_, std::io::Error>(accepted)
//!     }
//! })?;
//! assert_eq!(served.iter().sum::<u32>(), 1);
//! assert_eq!(port.stats().iter().map(|s| s.accepted).sum::<u64>(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Each shard is a thread with its own [`EventLoop`](crate::EventLoop), optionally pinned to a
//! CPU ([`Builder::pin`]). Shards share no mutable state: they reach each other by message,
//! through a [`Peer`] (a `Send` closure on the shard's remote queue; what it builds there may
//! be `!Send`). [`Builder::run`] returns when every shard has ended, with each one's result.
//!
//! **Stopping.** SIGTERM or SIGINT (unless [`Builder::signals`] turns that off), a shard that
//! fails (its entry panics or returns an error, or its loop cannot be built), or
//! [`Shard::stop_all`] (or `Handle::current().stop()` inside a shard, which counts as that
//! shard's `stop_all`, a normal end) asks every shard to stop: [`Shard::stopped`] completes and a
//! [`ShardListener`]'s accept returns `None`. Each shard's entry point then has the grace
//! period ([`Builder::grace`], 5 s by default) to return; one that has not is dropped and
//! counted as failed ([`FailureKind::Cancelled`]). The tasks it leaves get what is left of the
//! grace period, then are cancelled, as [`EventLoop::shutdown`](crate::EventLoop::shutdown)
//! does. A failure makes `run` return [`ShardsError::Failed`], naming each failed shard.
//!
//! **Ports.** [`Port`] shares one listening address between the shards, in either of two ways
//! ([`Share`]): one `SO_REUSEPORT` socket per shard, balanced by the kernel's hash of each
//! connection, or one acceptor shard that hands every connection to the shard with the fewest
//! open connections. [`Port::stats`] counts accepted and open connections per shard.
//!
//! ARCHITECTURE.md ("Scaling out") explains the design: why shared-nothing, how a message
//! travels, why there is no work stealing, and what to do beyond one machine.

mod channel;
mod error;
mod flags;
mod peer;
mod pin;
mod port;
mod shard;
mod supervisor;
mod thread;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use channel::Mailbox;

pub use error::{FailureKind, PeerError, ShardFailure, ShardsError};
pub use flags::Flags;
pub use peer::{Peer, Reply};
pub use port::{Accepted, Connection, Port, PortStats, ShardListener, Share};
pub use shard::{current_index, Shard, StopReason};

/// How long a stopped shard's entry point may take to return, by default.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(5);

type LoopBuilder = Box<dyn Fn(usize) -> crate::Builder + Send + Sync>;

/// Options for a set of shards; [`run`](Builder::run) starts them.
///
/// ```
/// use std::time::Duration;
/// let out = solo::shards::Builder::new()
///     .count(3)
///     .pin(true)
///     .grace(Duration::from_secs(1))
///     .loop_builder(|_index| solo::EventLoop::builder().debug(false))
///     .run(|shard| async move { Ok::<_, std::io::Error>(shard.index() * 10) })?;
/// assert_eq!(out, vec![0, 10, 20]);
/// # Ok::<(), solo::shards::ShardsError>(())
/// ```
pub struct Builder {
    /// The supervisor's mailbox: made here, so that a [`Stopper`] can exist before `run`.
    mailbox: Arc<Mailbox<supervisor::Event>>,
    count: Option<usize>,
    pin: bool,
    grace: Duration,
    signals: bool,
    loop_builder: LoopBuilder,
}

impl Default for Builder {
    fn default() -> Builder {
        Builder::new()
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("count", &self.count)
            .field("pin", &self.pin)
            .field("grace", &self.grace)
            .field("signals", &self.signals)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// One shard per available CPU, unpinned, a 5 s grace, stopped by SIGTERM and SIGINT, each
    /// loop from `EventLoop::builder()` (so `SOLO_DEBUG`, `SOLO_BACKEND`... apply).
    pub fn new() -> Builder {
        Builder {
            mailbox: Mailbox::new(),
            count: None,
            pin: false,
            grace: DEFAULT_GRACE,
            signals: true,
            loop_builder: Box::new(|_| crate::EventLoop::builder()),
        }
    }

    /// How many shards (default: [`std::thread::available_parallelism`]). Zero is an error
    /// when `run` is called. More shards than CPUs works; with [`pin`](Builder::pin) the CPUs
    /// are then shared, in turn.
    pub fn count(mut self, n: usize) -> Builder {
        self.count = Some(n);
        self
    }

    /// Pins shard `i` to the `i`-th CPU this process may run on (wrapping when there are more
    /// shards than CPUs). A pin that the system refuses leaves that shard unpinned
    /// ([`Shard::core`] is `None`); it is not an error.
    pub fn pin(mut self, on: bool) -> Builder {
        self.pin = on;
        self
    }

    /// How long a stopped shard's entry point may take to return ([`DEFAULT_GRACE`]).
    pub fn grace(mut self, grace: Duration) -> Builder {
        self.grace = grace;
        self
    }

    /// Whether SIGTERM and SIGINT stop the shards (default: yes). Listening turns their
    /// default action off while `run` runs.
    pub fn signals(mut self, on: bool) -> Builder {
        self.signals = on;
        self
    }

    /// The loop settings of each shard, by index (debug mode, backend, spinning...). Called
    /// on the shard's thread; a panic there fails that shard.
    pub fn loop_builder(
        mut self,
        f: impl Fn(usize) -> crate::Builder + Send + Sync + 'static,
    ) -> Builder {
        self.loop_builder = Box::new(f);
        self
    }

    /// A handle that stops these shards from any thread, as a signal would (its stop before
    /// `run` stops them as soon as they start; after `run` returned it does nothing).
    pub fn stopper(&self) -> Stopper {
        Stopper {
            mailbox: self.mailbox.clone(),
        }
    }

    fn shard_count(&self) -> Result<usize, ShardsError> {
        match self.count {
            Some(0) => Err(ShardsError::Config(
                "the shard count must be at least 1 (got 0)".into(),
            )),
            Some(n) => Ok(n),
            None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get())),
        }
    }

    /// Runs `entry` on every shard, each on its own thread and loop, and returns their
    /// results in shard order once all have ended. The entry's future may be `!Send` (it is
    /// made and run on the shard's thread); `entry` itself is shared by the threads, and may
    /// borrow from the caller.
    ///
    /// Must be called outside any running solo loop (from `main`, typically): the calling
    /// thread runs a loop of its own that watches the shards and the signals.
    pub fn run<F, Fut, T, E>(self, entry: F) -> Result<Vec<T>, ShardsError>
    where
        F: Fn(Shard) -> Fut + Sync,
        Fut: Future<Output = Result<T, E>>,
        T: Send,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        supervisor::run(&self, &entry)
    }
}

/// Stops a set of shards from outside them (tests, an embedding program): see
/// [`Builder::stopper`]. `Send + Sync + Clone`.
#[derive(Clone)]
pub struct Stopper {
    mailbox: Arc<Mailbox<supervisor::Event>>,
}

impl Stopper {
    /// Asks every shard to stop ([`StopReason::Stopper`]).
    pub fn stop(&self) {
        // The mailbox is never closed; after the run, nobody reads it, which is harmless.
        let _ = self.mailbox.push(supervisor::Event::Stop);
    }
}

impl fmt::Debug for Stopper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Stopper")
    }
}

/// [`Builder::new`]`().run(entry)`: one shard per CPU, with the defaults.
pub fn run<F, Fut, T, E>(entry: F) -> Result<Vec<T>, ShardsError>
where
    F: Fn(Shard) -> Fut + Sync,
    Fut: Future<Output = Result<T, E>>,
    T: Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    Builder::new().run(entry)
}

//! [`Builder`]: the loop's settings, read once when the loop is built.
//!
//! ```
//! use std::time::Duration;
//!
//! let el = solo::EventLoop::builder()
//!     .clock(solo::ManualClock::new()) // time moves only when told (or to the next timer)
//!     .debug(true)
//!     .slow_callback_duration(Duration::from_millis(20))
//!     .build()
//!     .unwrap();
//! assert!(el.stats().is_some());
//! ```
//!
//! Settings that the environment can give (`SOLO_DEBUG`, `SOLO_SPIN_US`) are read here, when the
//! builder did not set them: a program can be debugged or tuned without recompiling.

use std::fmt;
use std::io;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::{EventLoop, Inner};
use crate::clock::ManualClock;
use crate::debug::{self, Debug, Report};
use crate::executor::{self, ThreadPool};
use crate::reactor::{env_spin, Backend, Reactor};
use crate::shared::Shared;

/// Configures an [`EventLoop`]: the clock, and room for debug settings.
///
/// ```
/// let clock = solo::ManualClock::new();
/// let el = solo::EventLoop::builder().clock(clock).build().unwrap();
/// # drop(el);
/// ```
#[derive(Default)]
pub struct Builder {
    clock: Option<ManualClock>,
    debug: Option<bool>,
    slow: Option<Duration>,
    blocked: Option<Duration>,
    hook: Option<debug::Hook>,
    executor_threads: Option<usize>,
    executor_idle: Option<Duration>,
    executor_queue: Option<usize>,
    spin: Option<Duration>,
    backend: Option<Backend>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("clock", &self.clock)
            .field("debug", &self.debug)
            .field("slow", &self.slow)
            .field("blocked", &self.blocked)
            .field("spin", &self.spin)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl Builder {
    /// Turns debug mode on or off. When not called, the environment decides: `SOLO_DEBUG=1`
    /// turns it on without recompiling.
    ///
    /// ```
    /// let el = solo::EventLoop::builder().debug(true).build().unwrap();
    /// assert!(el.stats().is_some());
    /// ```
    pub fn debug(mut self, on: bool) -> Builder {
        self.debug = Some(on);
        self
    }

    /// In debug mode, a callback or poll that runs longer than this is reported (default
    /// 100 ms, asyncio's `slow_callback_duration`). Can also be changed while the loop runs
    /// with [`Handle::set_slow_callback_duration`](super::Handle::set_slow_callback_duration).
    pub fn slow_callback_duration(mut self, d: Duration) -> Builder {
        self.slow = Some(d);
        self
    }

    /// In debug mode, the watchdog reports a call that has been running this long, before it
    /// returns (default 1 s).
    pub fn blocked_threshold(mut self, d: Duration) -> Builder {
        self.blocked = Some(d);
        self
    }

    /// Where debug reports go (slow callbacks, slow iterations, a blocked loop, task lints).
    /// The default prints each report's one-line form to stderr. The hook may be called from
    /// the watchdog thread, hence `Send + Sync`.
    pub fn on_slow(mut self, f: impl Fn(&Report) + Send + Sync + 'static) -> Builder {
        self.hook = Some(Arc::new(f));
        self
    }

    /// Uses a manual clock instead of the real one (for deterministic tests).
    pub fn clock(mut self, clock: ManualClock) -> Builder {
        self.clock = Some(clock);
        self
    }

    /// The most threads `run_in_executor`'s pool may run (default `min(32, cores + 4)`).
    pub fn executor_threads(mut self, n: usize) -> Builder {
        self.executor_threads = Some(n);
        self
    }

    /// How long an idle pool thread waits for work before it exits (default 10 s).
    pub fn executor_idle_timeout(mut self, d: Duration) -> Builder {
        self.executor_idle = Some(d);
        self
    }

    /// The most jobs `run_in_executor`'s pool queues waiting for a thread (default 64 per
    /// thread, `64 * executor_threads`; running jobs are not counted). Past it,
    /// [`Handle::run_in_executor`](super::Handle::run_in_executor) waits for room and
    /// [`Handle::try_run_in_executor`](super::Handle::try_run_in_executor) fails. Zero makes
    /// [`build`](Builder::build) fail with [`InvalidInput`](io::ErrorKind::InvalidInput).
    ///
    /// ```
    /// let el = solo::EventLoop::builder()
    ///     .executor_threads(2)
    ///     .executor_queue_bound(16)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(el.handle().executor().queue_bound(), 16);
    ///
    /// let err = solo::EventLoop::builder().executor_queue_bound(0).build().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn executor_queue_bound(mut self, n: usize) -> Builder {
        self.executor_queue = Some(n);
        self
    }

    /// Before the loop sleeps waiting for I/O or a timer, it polls without blocking for up to
    /// `d` (default zero: it sleeps at once). When not called, the environment decides:
    /// `SOLO_SPIN_US=100` spins for 100 µs, without recompiling.
    ///
    /// Why: a sleeping loop has to be woken, and the wake is paid by whoever makes its fd ready,
    /// often a peer process on another CPU (an inter-processor interrupt; on a virtual machine,
    /// an exit to the hypervisor). A server that handles a batch faster than the next one
    /// arrives sleeps between every two batches; with a spin longer than the gap between
    /// arrivals it never sleeps under steady traffic, like a saturated server, and its peers
    /// run faster. The same idea as glommio's `spin_before_park` and Linux's `busy_poll`.
    ///
    /// The price is CPU, bounded: a spin that finds nothing stops the spinning until a sleep
    /// ends with events within `d` again, so when traffic thins out or stops the loop wastes
    /// one spin, not one per wake-up. Timers are not delayed (the spin ends at the next
    /// deadline) and nothing is lost: events that arrive while spinning are handled in the same
    /// iteration. [`Stats::spins`](crate::debug::Stats::spins), [`Stats::spin_hits`](crate::debug::Stats::spin_hits) and
    /// [`Stats::sleeps`](crate::debug::Stats::sleeps) show the effect.
    /// See BENCHMARKS.md for what it does to `examples/kv.rs` under `redis-benchmark`.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let el = solo::EventLoop::builder()
    ///     .spin_before_sleep(Duration::from_micros(100))
    ///     .build()
    ///     .unwrap();
    /// let n = el.run_until_complete(async {
    ///     solo::time::sleep(Duration::from_millis(1)).await;
    ///     7
    /// });
    /// assert_eq!(n.unwrap(), 7);
    /// ```
    pub fn spin_before_sleep(mut self, d: Duration) -> Builder {
        self.spin = Some(d);
        self
    }

    /// Which poller the loop uses (default [`Backend::Mio`]). When not called, the environment
    /// decides: `SOLO_BACKEND=polling` (or `mio`) picks one without recompiling, and an unknown
    /// name makes [`build`](Builder::build) fail with `InvalidInput`.
    ///
    /// Both run the same loop with the same semantics (the whole test suite runs on each); they
    /// differ in how they ask the kernel about readiness, and so in the syscalls they make: see
    /// `Backend`'s module docs and BENCHMARKS.md.
    ///
    /// ```
    /// let el = solo::EventLoop::builder()
    ///     .backend(solo::Backend::Polling)
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(el.backend(), solo::Backend::Polling);
    /// ```
    pub fn backend(mut self, backend: Backend) -> Builder {
        self.backend = Some(backend);
        self
    }

    /// Creates the loop: the backend's poller, its cross-thread waker, and empty queues. No thread
    /// is started, except the watchdog in debug mode.
    pub fn build(self) -> io::Result<EventLoop> {
        let threads = self
            .executor_threads
            .unwrap_or_else(executor::default_threads)
            .max(1);
        let idle = self.executor_idle.unwrap_or(executor::DEFAULT_IDLE_TIMEOUT);
        let executor = match self.executor_queue {
            Some(bound) => ThreadPool::bounded(threads, bound, idle)?,
            None => ThreadPool::new(threads, idle),
        };
        let spin = self.spin.unwrap_or_else(env_spin);
        let backend = match self.backend {
            Some(b) => b,
            None => Backend::from_env()?.unwrap_or_default(),
        };
        let (reactor, waker) = Reactor::new(spin, backend)?;
        let debug = self.debug.unwrap_or_else(debug::env_debug).then(|| {
            Box::new(Debug::new(debug::Config {
                slow: self.slow.unwrap_or(debug::DEFAULT_SLOW_CALLBACK),
                blocked: self.blocked.unwrap_or(debug::DEFAULT_BLOCKED_THRESHOLD),
                hook: self.hook.clone(),
            }))
        });
        if let Some(d) = &debug {
            let pool = executor.clone();
            d.set_executor_probe(Arc::new(move || pool.figures()));
        }
        let shared = Arc::new(Shared::new(waker, debug.as_ref().map(|d| d.shared())));
        let inner = Inner::new(shared, self.clock, reactor, debug, executor);
        Ok(EventLoop::from_inner(Rc::new(inner)))
    }
}

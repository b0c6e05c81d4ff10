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
//! Settings that the environment can give (`SOLO_DEBUG`, `SOLO_BACKEND`, `SOLO_SPIN_US`,
//! `SOLO_NAP_US`, `SOLO_MONITOR`, `SOLO_TRACE_ON_BLOCK`) are read here, when the builder did not
//! set them: a program can be debugged or tuned without recompiling.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use super::monitor::on_loop;
use super::{EventLoop, Inner};
use crate::clock::ManualClock;
use crate::debug::{self, Debug, Report};
use crate::executor::{self, ThreadPool};
use crate::monitor::{self, Monitor};
use crate::reactor::{env_nap, env_spin, Backend, Reactor, MAX_NAP};
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
    nap: Option<Duration>,
    backend: Option<Backend>,
    trace_on_block: Option<PathBuf>,
    monitor: Option<String>,
    monitor_non_loopback: Option<bool>,
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("clock", &self.clock)
            .field("debug", &self.debug)
            .field("slow", &self.slow)
            .field("blocked", &self.blocked)
            .field("spin", &self.spin)
            .field("nap", &self.nap)
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

    /// When the watchdog finds the loop blocked, it also writes what the loop did in the 10 s
    /// before, and the block itself, as a Chrome trace-event JSON file in `dir` (created if
    /// needed): `solo-blocked-<pid>-<n>.json`, one per blocked episode; the report names it.
    /// Open it in Perfetto (<https://ui.perfetto.dev>) or `chrome://tracing`. When not called,
    /// `SOLO_TRACE_ON_BLOCK=DIR` in the environment decides. Implies debug mode (the watchdog is
    /// debug mode's); recording costs a lock and an event per callback while it is on. With
    /// [`debug(false)`](Builder::debug) it is an error at [`build`](Builder::build).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join("solo-doc-traces");
    /// let el = solo::EventLoop::builder().trace_on_block(&dir).build().unwrap();
    /// assert!(el.stats().is_some()); // debug mode is on
    /// ```
    pub fn trace_on_block(mut self, dir: impl Into<PathBuf>) -> Builder {
        self.trace_on_block = Some(dir.into());
        self
    }

    /// Starts the monitor on `addr`: a thread that answers `ps`, `where`, `cancel`, `stats`,
    /// `metrics`, `trace`... on a socket, even while the loop is blocked (see [`crate::monitor`]).
    /// `addr` is `127.0.0.1:PORT` (port 0: any free port, see
    /// [`EventLoop::monitor_addr`](super::EventLoop::monitor_addr)), `[::1]:PORT`,
    /// `localhost:PORT` or `unix:PATH` (created with mode 0600). When not called,
    /// `SOLO_MONITOR=ADDR` in the environment decides, for every loop built without
    /// [`debug(false)`](Builder::debug).
    ///
    /// It implies debug mode. [`build`](Builder::build) fails on an address that does not parse,
    /// a non-loopback TCP address (unless
    /// [`monitor_allow_non_loopback`](Builder::monitor_allow_non_loopback)), an address that
    /// cannot be bound, or with `debug(false)`. (From `SOLO_MONITOR`, a failure to bind is
    /// reported on stderr and the loop runs without a monitor: in a process with several loops,
    /// only the first gets the port.)
    ///
    /// ```
    /// let el = solo::EventLoop::builder().monitor("127.0.0.1:0").build().unwrap();
    /// assert!(el.monitor_addr().is_some());
    ///
    /// let err = solo::EventLoop::builder().monitor("0.0.0.0:0").build().unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
    /// ```
    pub fn monitor(mut self, addr: impl Into<String>) -> Builder {
        self.monitor = Some(addr.into());
        self
    }

    /// Lets the monitor listen on an address other than loopback (default: refused). The
    /// monitor has no authentication and can cancel tasks and send signals: put it behind
    /// something that has. When not called, `SOLO_MONITOR_NON_LOOPBACK=1` decides.
    pub fn monitor_allow_non_loopback(mut self, allow: bool) -> Builder {
        self.monitor_non_loopback = Some(allow);
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
    /// `SOLO_SPIN_US=100` spins for 100 µs, without recompiling (a value that is not a number
    /// of microseconds fails [`build`](Builder::build) with `InvalidInput`). A spin of more
    /// than zero chosen here switches `SOLO_NAP_US` off: see
    /// [`nap_before_sleep`](Builder::nap_before_sleep).
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

    /// Under dense traffic, the loop naps for `d` instead of waiting on the poller, then takes
    /// everything that arrived meanwhile at once (default zero: it never naps). When not
    /// called, the environment decides: `SOLO_NAP_US=20` naps for 20 µs, without recompiling.
    ///
    /// Why: like [`spin_before_sleep`](Builder::spin_before_sleep), it spares the loop's peers
    /// the cost of waking it (while it naps nobody waits on its poller, so a peer's `write`
    /// wakes nobody), but without spending the loop's CPU: the loop's own wake-up is a timer,
    /// and each wake-up handles the events of a whole nap. A server that finishes each batch
    /// before the next arrives keeps its peers as fast as a saturated one's, and uses less CPU
    /// than a loop that sleeps at once. BENCHMARKS.md has what it does to `examples/kv.rs`
    /// under `redis-benchmark`.
    ///
    /// The price is latency, and it is why the default is off: an event that arrives during a
    /// nap, a wake from another thread and a signal all wait for the nap's end, which the OS
    /// may stretch by its timer slack (50 µs for an ordinary Linux thread). Naps happen only
    /// while they pay, as spins do: a nap that finds nothing disarms napping, and a sleep that
    /// ends with events within `d` arms it again. A nap never outlasts the wait it replaces, so
    /// timers are not delayed; nothing is lost. [`Stats::naps`](crate::debug::Stats::naps) and
    /// [`Stats::nap_hits`](crate::debug::Stats::nap_hits) show the effect.
    ///
    /// [`build`](Builder::build) fails with `InvalidInput` for a nap over 1 ms (every event
    /// would wait that long), and for a loop asked to both spin and nap by this builder (or
    /// both by the environment); a nap chosen here switches `SOLO_SPIN_US` off, as a spin
    /// chosen with [`spin_before_sleep`](Builder::spin_before_sleep) switches `SOLO_NAP_US`
    /// off. A variable that is set but not a number of microseconds fails the build too.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let el = solo::EventLoop::builder()
    ///     .nap_before_sleep(Duration::from_micros(20))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(el.run_until_complete(async { 7 }).unwrap(), 7);
    ///
    /// let err = solo::EventLoop::builder()
    ///     .nap_before_sleep(Duration::from_millis(5))
    ///     .build()
    ///     .unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn nap_before_sleep(mut self, d: Duration) -> Builder {
        self.nap = Some(d);
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
        // A mode the builder chose explicitly silences the environment's other one: a program
        // that spins is not made to fail by a SOLO_NAP_US meant for another.
        let (spin, nap) = match (self.spin, self.nap) {
            (Some(s), Some(n)) => (s, n),
            (Some(s), None) if !s.is_zero() => (s, Duration::ZERO),
            (Some(s), None) => (s, env_nap()?),
            (None, Some(n)) if !n.is_zero() => (Duration::ZERO, n),
            (None, Some(n)) => (env_spin()?, n),
            (None, None) => (env_spin()?, env_nap()?),
        };
        if nap > MAX_NAP {
            let from = match self.nap {
                Some(_) => "nap_before_sleep",
                None => "SOLO_NAP_US",
            };
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "solo: {from} asks for a nap of {nap:?}; at most {MAX_NAP:?} (every event \
                     that arrives during a nap waits for its end)"
                ),
            ));
        }
        if !nap.is_zero() && !spin.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "solo: the loop was asked to both spin ({spin:?}) and nap ({nap:?}) before \
                     it sleeps, by both spin_before_sleep and nap_before_sleep or by both \
                     SOLO_SPIN_US and SOLO_NAP_US; choose one"
                ),
            ));
        }
        let backend = match self.backend {
            Some(b) => b,
            None => Backend::from_env()?.unwrap_or_default(),
        };
        if self.debug == Some(false) && self.trace_on_block.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "solo: trace_on_block needs debug mode (the watchdog), but debug(false) was set",
            ));
        }
        // What the environment asks for applies unless debug mode was turned off explicitly.
        let trace_on_block = match self.debug {
            Some(false) => None,
            _ => self.trace_on_block.or_else(debug::env_trace_on_block),
        };
        let monitor = match (self.debug, self.monitor) {
            (Some(false), Some(_)) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "solo: the monitor needs debug mode, but debug(false) was set",
                ))
            }
            (Some(false), None) => None,
            (_, Some(a)) => Some((a, true)),
            (_, None) => monitor::env_addr().map(|a| (a, false)),
        };
        let non_loopback = self
            .monitor_non_loopback
            .unwrap_or_else(monitor::env_non_loopback);
        let monitor = match monitor {
            Some((a, explicit)) => Some((monitor::check_addr(&a, non_loopback)?, explicit)),
            None => None,
        };
        let (reactor, waker) = Reactor::new(spin, nap, backend)?;
        let on = self
            .debug
            .unwrap_or_else(|| debug::env_debug() || trace_on_block.is_some() || monitor.is_some());
        let debug = on.then(|| {
            Box::new(Debug::new(debug::Config {
                slow: self.slow.unwrap_or(debug::DEFAULT_SLOW_CALLBACK),
                blocked: self.blocked.unwrap_or(debug::DEFAULT_BLOCKED_THRESHOLD),
                hook: self.hook.clone(),
                trace_on_block,
            }))
        });
        if let Some(d) = &debug {
            let pool = executor.clone();
            d.set_executor_probe(Arc::new(move || pool.figures()));
        }
        let shared = Arc::new(Shared::new(waker, debug.as_ref().map(|d| d.shared())));
        let monitor = match (monitor, &debug) {
            (Some((addr, explicit)), Some(d)) => {
                match Monitor::start(addr, d.shared(), shared.clone(), on_loop) {
                    Ok(m) => Some(m),
                    Err(e) if !explicit => {
                        eprintln!("solo: SOLO_MONITOR: {e}; this loop runs without a monitor");
                        None
                    }
                    Err(e) => {
                        d.shutdown();
                        return Err(e);
                    }
                }
            }
            _ => None,
        };
        let inner = Inner::new(shared, self.clock, reactor, debug, executor, monitor);
        Ok(EventLoop::from_inner(Rc::new(inner)))
    }
}

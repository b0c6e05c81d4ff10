//! The loop's clock.
//!
//! Every loop measures time as nanoseconds since its own creation (its *origin*), read from one
//! of two sources:
//!
//! * the real monotonic clock ([`std::time::Instant`]), the default;
//! * a [`ManualClock`], which stands still until a test moves it with [`ManualClock::advance`].
//!
//! Everything that depends on time — timer deadlines, `sleep`, debug-mode durations — reads the
//! loop clock, so a test that uses a manual clock is deterministic on a loaded machine.
//!
//! A manual clock also *auto-advances* when the loop is idle: if nothing is ready, no I/O event
//! is pending and the loop would otherwise block until the next timer, it jumps the clock to that
//! timer's deadline instead (as tokio's paused clock does). A test can therefore `sleep` for an
//! hour in microseconds, and still see every timer fire in deadline order and never early.
//!
//! # The ends of time
//!
//! Loop time is a `u64`, so it ends about 584 years after the origin. Nothing that takes a time
//! overflows: a deadline past the end (`Duration::MAX`, or an `Instant` that far ahead) means
//! *never* (see [`Deadline`]); a manual clock advanced past the end stops there, and every loop on
//! it then reads the end of its time; an `Instant` before the origin is a deadline in the past
//! that keeps its order ([`Clock::deadline`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use crate::timer::Deadline;

/// A clock that tests move by hand.
///
/// Clones share one time. Give it to a loop with [`Builder::clock`](crate::Builder::clock).
///
/// ```
/// use std::time::Duration;
/// let clock = solo::ManualClock::new();
/// let el = solo::EventLoop::builder().clock(clock.clone()).build().unwrap();
/// let t0 = el.time();
/// clock.advance(Duration::from_secs(5));
/// assert_eq!(el.time() - t0, Duration::from_secs(5));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock at time zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward by `d`. Timers that become due fire on the loop's next iteration.
    ///
    /// The clock saturates: advanced past about 584 years (`Duration::MAX` included) it stops
    /// at the end of time, where every loop on it reads the end of its own time. Timers due by
    /// then fire; timers that mean *never* do not.
    pub fn advance(&self, d: Duration) {
        let d = duration_to_nanos(d);
        // `fetch_update` retries only if another thread moved the clock in between.
        let _ = self
            .nanos
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                Some(n.saturating_add(d))
            });
    }

    /// How far the clock has been advanced since it was created.
    pub fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::SeqCst))
    }

    pub(crate) fn set_at_least(&self, nanos: u64) {
        self.nanos.fetch_max(nanos, Ordering::SeqCst);
    }
}

/// Where a loop reads its time from.
#[derive(Debug)]
pub(crate) struct Clock {
    origin: Instant,
    /// The raw `CLOCK_MONOTONIC` reading taken with `origin`.
    origin_ns: u64,
    /// A manual clock's reading when the loop was created: the loop's zero.
    manual_base: u64,
    manual: Option<ManualClock>,
}

impl Clock {
    pub(crate) fn new(manual: Option<ManualClock>) -> Clock {
        let manual_base = manual
            .as_ref()
            .map_or(0, |m| m.nanos.load(Ordering::SeqCst));
        Clock {
            origin: Instant::now(),
            origin_ns: monotonic_ns(),
            manual_base,
            manual,
        }
    }

    /// Nanoseconds since the loop's origin.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        match &self.manual {
            None => monotonic_ns().saturating_sub(self.origin_ns),
            Some(m) => match m.nanos.load(Ordering::SeqCst) {
                // A saturated manual clock is at the end of every loop's time, whatever the
                // loop's base: a jump to a timer near the end always reaches it.
                u64::MAX => u64::MAX,
                n => n - self.manual_base,
            },
        }
    }

    pub(crate) fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Jumps a manual clock forward to `nanos` (loop time); no effect on the real clock. Past the
    /// manual clock's range it saturates, which reads as the end of loop time: at least `nanos`.
    pub(crate) fn jump_to(&self, nanos: u64) {
        if let Some(m) = &self.manual {
            m.set_at_least(nanos.saturating_add(self.manual_base));
        }
    }

    /// The `Instant` of a loop time (the end of loop time, 584 years on, is an `Instant` on
    /// every platform solo runs on; [`far_future`] if not).
    pub(crate) fn nanos_to_instant(&self, nanos: u64) -> Instant {
        self.origin
            .checked_add(Duration::from_nanos(nanos))
            .unwrap_or_else(far_future)
    }

    /// The deadline of an `Instant`: before the origin, at a loop time, or (past the end of loop
    /// time) never.
    #[inline]
    pub(crate) fn deadline(&self, t: Instant) -> Deadline {
        match t.checked_duration_since(self.origin) {
            Some(d) => Deadline::at(duration_to_nanos(d)),
            None => Deadline::BeforeOrigin(duration_to_nanos(self.origin.duration_since(t))),
        }
    }
}

/// An `Instant` that every loop reads as *never*: 1000 years after the first call, so more than
/// the 584 years of loop time after any loop's origin, with room left for arithmetic. What
/// `Sleep::deadline` says for a sleep whose deadline an `Instant` cannot hold (`Duration::MAX`).
pub(crate) fn far_future() -> Instant {
    static FAR: OnceLock<Instant> = OnceLock::new();
    *FAR.get_or_init(|| {
        let now = Instant::now();
        // On a platform whose `Instant` cannot reach that far, as far as it can.
        let mut ahead = Duration::from_secs(1000 * 365 * 86_400);
        loop {
            if let Some(t) = now.checked_add(ahead) {
                return t;
            }
            ahead /= 2;
        }
    })
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock `Instant` reads on Linux, read directly because
/// `Instant::elapsed` spends ~150 instructions normalizing a `Duration` we only turn back into
/// nanoseconds. Loop time is this minus the reading taken with the loop's origin `Instant`; the
/// two origins are taken together, so they agree to within nanoseconds, and every conversion
/// goes through the same origin, so deadlines round-trip exactly.
#[inline]
fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists on Linux and the
    // BSDs, so the call cannot fail (and if it did, `ts` would stay zero: time stands still).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Saturating conversion: durations beyond ~584 years are "forever".
#[inline]
pub(crate) fn duration_to_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

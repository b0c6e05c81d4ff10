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

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    pub fn advance(&self, d: Duration) {
        self.nanos.fetch_add(duration_to_nanos(d), Ordering::SeqCst);
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
            Some(m) => m.nanos.load(Ordering::SeqCst) - self.manual_base,
        }
    }

    pub(crate) fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Jumps a manual clock forward to `nanos` (loop time); no effect on the real clock.
    pub(crate) fn jump_to(&self, nanos: u64) {
        if let Some(m) = &self.manual {
            m.set_at_least(nanos + self.manual_base);
        }
    }

    pub(crate) fn nanos_to_instant(&self, nanos: u64) -> Instant {
        self.origin + Duration::from_nanos(nanos)
    }

    /// Loop time of an `Instant`; instants before the origin map to zero (already past).
    pub(crate) fn instant_to_nanos(&self, t: Instant) -> u64 {
        duration_to_nanos(t.saturating_duration_since(self.origin))
    }
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

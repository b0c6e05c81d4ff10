//! Time as futures: [`sleep`], [`sleep_until`], [`timeout`], [`timeout_at`], [`interval`],
//! [`interval_at`].
//!
//! All of them run on the loop's timer wheel and read the loop's clock, so a loop with a
//! [`ManualClock`](crate::ManualClock) drives them deterministically.
//!
//! # Precision
//!
//! A sleep never completes before its deadline on the loop clock. Timers are kept with a 1 ms
//! resolution: a deadline is rounded *up* to the next whole millisecond of loop time, and the
//! poll timeout is computed to that rounded tick (mio rounds it up to whole milliseconds again),
//! so a sleep usually completes within about 1 ms after its deadline on an idle loop; on a busy
//! loop, at the first iteration after that. A loop built with
//! [`spin_before_sleep`](crate::Builder::spin_before_sleep) ends its spin at the rounded tick
//! itself rather than at mio's whole millisecond, so a deadline that falls within the spin is
//! met more closely.
//!
//! # Never, and the past
//!
//! No duration or instant makes these overflow or panic. A deadline that reaches past the end of
//! loop time (`Duration::MAX`, or anything over about 584 years after the loop was created)
//! means *never*: the sleep stays pending, registers no timer, and neither wakes the loop nor
//! makes a manual clock jump; [`Sleep::deadline`] then reads as an instant more than 1000 years
//! ahead. A deadline in the past, even from before the loop was created, is ready at once.
//!
//! # Threads
//!
//! [`Sleep`] is `Send + Sync` (hyper's `Timer` trait demands it): it holds a deadline and a timer
//! key, and finds its loop through the thread's running loop when polled. Polling it where no solo
//! loop is running panics with a message that says so. Dropping it on its loop's thread cancels
//! its timer; dropped elsewhere, the timer fires once into a no-op.

use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::await_point::{self, Awaited};
use crate::clock::{duration_to_nanos, far_future};
use crate::event_loop::{with_current, Inner, Refresh};
use crate::timer::{Deadline as TimerDeadline, TimerKey, LATEST, TICK_NS};
use crate::Handle;

/// Completes after `duration` on the loop clock.
///
/// ```
/// use std::time::Duration;
/// let clock = solo::ManualClock::new();
/// let el = solo::EventLoop::builder().clock(clock.clone()).build().unwrap();
/// // A manual clock auto-advances when the loop is idle: an hour passes instantly.
/// el.run_until_complete(solo::time::sleep(Duration::from_secs(3600))).unwrap();
/// assert_eq!(clock.elapsed(), Duration::from_secs(3600));
/// ```
///
/// Created inside a running loop, the sleep counts from that moment on the loop clock. Created
/// outside any loop (say, before `run_until_complete`), it counts from its first poll, because
/// only then does it know which loop's clock to read.
///
/// `Duration::MAX` (or any duration past the end of loop time) sleeps forever: see the module
/// docs.
///
/// The caller's line is kept (`#[track_caller]`): debug mode's task table and the monitor's
/// `ps` and `where` show a task waiting here as `sleep` at that line.
#[track_caller]
pub fn sleep(duration: Duration) -> Sleep {
    let deadline = with_current(|inner| match inner {
        Some(i) => later(i, i.read_clock(), duration_to_nanos(duration)),
        None => Deadline::AfterFirstPoll(duration_to_nanos(duration)),
    });
    Sleep {
        deadline,
        registered: None,
        site: Location::caller(),
    }
}

/// Completes at `deadline` on the loop clock: at once if it is past, never if it is past the end
/// of loop time (see the module docs).
#[track_caller]
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(deadline)
}

/// A future that completes at a deadline. See [`sleep`].
#[derive(Debug)]
pub struct Sleep {
    deadline: Deadline,
    /// The timer this sleep registered, if any; the key names its loop's wheel too.
    registered: Option<TimerKey>,
    /// Where it was created, for the task table (see `await_point.rs`).
    site: &'static Location<'static>,
}

/// 16 bytes: the nanoseconds fit beside the `Instant`'s niche.
#[derive(Debug, Clone, Copy)]
enum Deadline {
    /// An instant (from `sleep_until`, `reset`, or a `sleep` whose deadline the others cannot
    /// hold).
    At(Instant),
    /// Nanoseconds after [`epoch`] (negative: before): what `sleep` computes on a loop, and its
    /// first poll reads back, with integer arithmetic only (`Instant` arithmetic costs some 50
    /// instructions a step).
    Epoch(i64),
    /// Nanoseconds from the first poll (saturating: `u64::MAX` is past the end of loop time).
    AfterFirstPoll(u64),
}

/// The one instant every loop's sleeps count from (see `Deadline::Epoch`): the first time it is
/// asked for.
fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

/// The deadline `d` ns (saturating) after loop time `now` on `inner`'s loop: on the epoch's
/// scale, with integer additions; past the end of loop time (never), or past what an `i64`
/// holds, as an `Instant` that says how far.
#[inline(always)]
fn later(inner: &Inner, now: u64, d: u64) -> Deadline {
    let at = now.saturating_add(d);
    let on_epoch = |o: i64| i64::try_from(at).ok()?.checked_add(o);
    match inner.epoch_offset(epoch).and_then(on_epoch) {
        Some(e) if at <= LATEST => Deadline::Epoch(e),
        _ => Deadline::At(after(inner.clock().nanos_to_instant(now), d)),
    }
}

/// The instant `e` ns after the epoch (before it, if negative).
fn from_epoch(e: i64) -> Instant {
    let d = Duration::from_nanos(e.unsigned_abs());
    if e >= 0 {
        add(epoch(), d)
    } else {
        // Came from a loop time, so an `Instant` holds it.
        epoch().checked_sub(d).unwrap_or_else(epoch)
    }
}

/// `e` ns after the epoch as a deadline on a loop whose origin is `origin` ns after it.
#[inline]
fn on_loop(e: i64, origin: i64) -> TimerDeadline {
    // No overflow in i128; each side fits an i64.
    let ns = i128::from(e) - i128::from(origin);
    if ns < 0 {
        TimerDeadline::BeforeOrigin(u64::try_from(-ns).unwrap_or(u64::MAX))
    } else {
        TimerDeadline::at(u64::try_from(ns).unwrap_or(u64::MAX))
    }
}

/// The instant `ns` nanoseconds after `t`; never (an instant no loop reaches) at `u64::MAX`.
fn after(t: Instant, ns: u64) -> Instant {
    match ns {
        u64::MAX => far_future(),
        ns => add(t, Duration::from_nanos(ns)),
    }
}

fn now() -> Instant {
    Handle::try_current().map_or_else(Instant::now, |h| h.time())
}

/// `t + d`, or (past what an `Instant` holds) an instant every loop reads as never.
fn add(t: Instant, d: Duration) -> Instant {
    t.checked_add(d).unwrap_or_else(far_future)
}

impl Sleep {
    #[track_caller]
    fn new(deadline: Instant) -> Sleep {
        Sleep {
            deadline: Deadline::At(deadline),
            registered: None,
            site: Location::caller(),
        }
    }

    /// The deadline (for a sleep not yet polled that was created outside a loop: its duration
    /// from now). For a sleep that never completes, an instant more than 1000 years ahead.
    pub fn deadline(&self) -> Instant {
        match self.deadline {
            Deadline::At(t) => t,
            Deadline::Epoch(e) => from_epoch(e),
            Deadline::AfterFirstPoll(d) => after(now(), d),
        }
    }

    /// Moves the deadline (earlier or later) without allocating a new future. Any instant will
    /// do: a past one completes at once, one past the end of loop time never does.
    ///
    /// On the loop thread, a sleep that a task is waiting on moves its timer and keeps the
    /// task's waker: the new deadline wakes the task without another poll (an earlier one wakes
    /// it earlier, a past one at the next iteration). Elsewhere, or before the first poll, the
    /// new deadline takes effect when the sleep is next polled.
    pub fn reset(&mut self, deadline: Instant) {
        self.deadline = Deadline::At(deadline);
        if let Some(key) = self.registered.take() {
            self.registered = with_current(|inner| {
                let inner = inner?;
                let to = inner.clock().deadline(deadline);
                inner.reschedule_wake_timer(key, to, inner.read_clock())
            });
        }
    }

    /// Whether the deadline has passed on the current loop's clock.
    pub fn is_elapsed(&self) -> bool {
        now() >= self.deadline()
    }

    fn cancel_timer(&mut self) {
        if let Some(key) = self.registered.take() {
            with_current(|inner| {
                // Another loop's key is not this loop's to cancel: its wheel ignores it.
                if let Some(inner) = inner {
                    inner.cancel_timer(key);
                }
            });
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        with_current(|inner| {
            let inner = inner.expect("solo::time::Sleep polled outside a running solo event loop");
            if let Some(key) = self.registered {
                match inner.refresh_wake_timer(key, cx.waker()) {
                    Refresh::Pending => {
                        self.note_pending();
                        return Poll::Pending;
                    }
                    // The wheel fires only once the clock is past the deadline.
                    Refresh::Fired => {
                        self.registered = None;
                        return Poll::Ready(());
                    }
                    // Registered on another loop: register afresh on this one.
                    Refresh::Foreign => {}
                }
            }
            if let Deadline::AfterFirstPoll(d) = self.deadline {
                self.deadline = later(inner, inner.read_clock(), d);
            }
            // The last clock reading is a lower bound of the time: if the deadline is behind it,
            // it has passed. Otherwise the wheel decides, with no clock read here.
            let now = inner.cached_now();
            let deadline = match self.deadline {
                Deadline::Epoch(e) => match inner.epoch_offset(epoch) {
                    Some(origin) => on_loop(e, origin),
                    None => inner.clock().deadline(from_epoch(e)),
                },
                _ => inner.clock().deadline(self.deadline()),
            };
            match deadline {
                TimerDeadline::At(deadline) if deadline > now => {
                    let key = inner.add_wake_timer(deadline, now, cx.waker());
                    self.registered = Some(key);
                    self.note_pending();
                    Poll::Pending
                }
                // Nothing to register: no timer would ever wake it.
                TimerDeadline::Never => {
                    self.note_pending();
                    Poll::Pending
                }
                TimerDeadline::At(_) | TimerDeadline::BeforeOrigin(_) => Poll::Ready(()),
            }
        })
    }
}

impl Sleep {
    /// Tells debug mode's task table what the task is waiting for (nothing when it is off).
    #[inline]
    fn note_pending(&self) {
        let deadline = self.deadline;
        await_point::pending(
            || match deadline {
                Deadline::At(t) => Awaited::Sleep(t),
                Deadline::Epoch(e) => Awaited::Sleep(from_epoch(e)),
                Deadline::AfterFirstPoll(d) => Awaited::Sleep(after(Instant::now(), d)),
            },
            Some(self.site),
        );
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel_timer();
    }
}

/// The error of [`timeout`]: the deadline passed first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

impl std::fmt::Display for Elapsed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// Runs `future`, giving up after `duration` with [`Elapsed`]. The future is polled first, so a
/// future that is ready at once wins even with a zero duration; on timeout it is dropped.
/// `Duration::MAX` never gives up (see the module docs).
///
/// ```
/// use std::time::Duration;
/// let el = solo::EventLoop::builder().clock(solo::ManualClock::new()).build().unwrap();
/// let r = el.run_until_complete(solo::time::timeout(
///     Duration::from_secs(1),
///     std::future::pending::<()>(),
/// )).unwrap();
/// assert_eq!(r, Err(solo::time::Elapsed));
/// ```
#[track_caller]
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

/// Runs `future`, giving up at `deadline` with [`Elapsed`]; as [`timeout`], with an instant.
///
/// ```
/// use std::time::Duration;
/// let el = solo::EventLoop::builder().clock(solo::ManualClock::new()).build().unwrap();
/// let at = el.time() + Duration::from_secs(1);
/// let r = el.run_until_complete(solo::time::timeout_at(at, std::future::pending::<()>()));
/// assert_eq!(r.unwrap(), Err(solo::time::Elapsed));
/// assert_eq!(el.time(), at);
/// ```
pub fn timeout_at<F: Future>(deadline: Instant, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep_until(deadline),
    }
}

/// The future returned by [`timeout`] and [`timeout_at`].
#[derive(Debug)]
pub struct Timeout<F> {
    future: F,
    sleep: Sleep,
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: `future` is structurally pinned (never moved out, no Unpin impl lets it move);
        // `sleep` is Unpin and treated as unpinned.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        if let Poll::Ready(v) = unsafe { Pin::new_unchecked(&mut this.future) }.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Ticks every `period`, starting at once. See [`Interval`] for what happens to missed ticks.
///
/// A `period` shorter than [`MIN_PERIOD`] (zero included) is taken as `MIN_PERIOD`, 1 ms, the
/// resolution of the loop's timers: ticks cannot come more often than timers fire. A period past
/// the end of loop time (`Duration::MAX`) ticks once, at once, and then never again.
#[track_caller]
pub fn interval(period: Duration) -> Interval {
    interval_at(now(), period)
}

/// Ticks every `period`, the first tick at `start` (at once if `start` is past, never if it is
/// past the end of loop time). As [`interval`] otherwise.
///
/// ```
/// use std::time::Duration;
/// let el = solo::EventLoop::builder().clock(solo::ManualClock::new()).build().unwrap();
/// let start = el.time() + Duration::from_secs(5);
/// el.run_until_complete(async move {
///     let mut iv = solo::time::interval_at(start, Duration::from_secs(1));
///     assert_eq!(iv.tick().await, start);
///     assert_eq!(iv.tick().await, start + Duration::from_secs(1));
/// }).unwrap();
/// ```
#[track_caller]
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    Interval {
        next: start,
        period: period.max(MIN_PERIOD),
        sleep: Sleep::new(start),
    }
}

/// The shortest period of an [`Interval`]: the timer resolution, 1 ms.
pub const MIN_PERIOD: Duration = Duration::from_nanos(TICK_NS);

/// A periodic timer from [`interval`].
///
/// **Missed ticks are skipped**: if the loop was busy past one or more ticks, the next
/// [`tick`](Interval::tick) completes at once and the following one is scheduled at the next
/// multiple of `period` after now (from the original start), so ticks never come in a burst and
/// never drift.
///
/// ```
/// use std::time::Duration;
/// let el = solo::EventLoop::builder().clock(solo::ManualClock::new()).build().unwrap();
/// el.run_until_complete(async {
///     let mut iv = solo::time::interval(Duration::from_millis(10));
///     let t0 = iv.tick().await;
///     let t1 = iv.tick().await;
///     assert_eq!(t1 - t0, Duration::from_millis(10));
/// }).unwrap();
/// ```
#[derive(Debug)]
pub struct Interval {
    next: Instant,
    period: Duration,
    sleep: Sleep,
}

impl Interval {
    /// Completes at the next tick and returns its scheduled time.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let fired = self.next;
        let next = next_tick(fired, self.period, Handle::current().time());
        self.next = next;
        self.sleep.reset(next);
        Poll::Ready(fired)
    }

    /// The period (at least [`MIN_PERIOD`]).
    pub fn period(&self) -> Duration {
        self.period
    }
}

/// The ticks as a `futures` `Stream` (`StreamExt::next`, `take`, `zip`, ...): each item is the
/// scheduled time of a tick, as [`tick`](Interval::tick) returns; it never ends.
impl futures_core::Stream for Interval {
    type Item = Instant;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        self.get_mut().poll_tick(cx).map(Some)
    }
}

/// The tick after `fired`: one period on, or if that is not after `now`, the first multiple of
/// the period after `now` (missed ticks are skipped). Never (an instant no loop reaches) if an
/// `Instant` cannot hold it.
fn next_tick(fired: Instant, period: Duration, now: Instant) -> Instant {
    let period = period.as_nanos(); // > 0: at least MIN_PERIOD
    let behind = now.saturating_duration_since(fired).as_nanos() / period;
    // No u128 overflow: behind * period <= now - fired, which is a Duration.
    let ahead = (behind + 1) * period;
    let secs = u64::try_from(ahead / 1_000_000_000);
    match secs {
        Ok(secs) => add(fired, Duration::new(secs, (ahead % 1_000_000_000) as u32)),
        Err(_) => far_future(),
    }
}

#[cfg(test)]
mod tests;

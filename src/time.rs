//! Time as futures: [`sleep`], [`sleep_until`], [`timeout`], [`interval`].
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
//! # Threads
//!
//! [`Sleep`] is `Send + Sync` (hyper's `Timer` trait demands it): it holds a deadline and a timer
//! key, and finds its loop through the thread's running loop when polled. Polling it where no solo
//! loop is running panics with a message that says so. Dropping it on its loop's thread cancels
//! its timer; dropped elsewhere, the timer fires once into a no-op.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::event_loop::{with_current, Inner};
use crate::timer::TimerKey;
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
pub fn sleep(duration: Duration) -> Sleep {
    let now = with_current(|inner| inner.map(|i| i.clock().nanos_to_instant(i.read_clock())));
    match now {
        Some(now) => Sleep::new(now + duration),
        None => Sleep {
            deadline: Deadline::AfterFirstPoll(duration),
            registered: None,
        },
    }
}

/// Completes at `deadline` on the loop clock.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep::new(deadline)
}

/// A future that completes at a deadline. See [`sleep`].
#[derive(Debug)]
pub struct Sleep {
    deadline: Deadline,
    /// The loop (its remote-queue address) and timer this sleep registered, if any.
    registered: Option<(usize, TimerKey)>,
}

#[derive(Debug, Clone, Copy)]
enum Deadline {
    At(Instant),
    AfterFirstPoll(Duration),
}

fn now() -> Instant {
    Handle::try_current().map_or_else(Instant::now, |h| h.time())
}

fn loop_id(inner: &Inner) -> usize {
    inner.id()
}

impl Sleep {
    fn new(deadline: Instant) -> Sleep {
        Sleep {
            deadline: Deadline::At(deadline),
            registered: None,
        }
    }

    /// The deadline (for a sleep not yet polled that was created outside a loop: its duration
    /// from now).
    pub fn deadline(&self) -> Instant {
        match self.deadline {
            Deadline::At(t) => t,
            Deadline::AfterFirstPoll(d) => now() + d,
        }
    }

    /// Moves the deadline (earlier or later) without allocating a new future.
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel_timer();
        self.deadline = Deadline::At(deadline);
    }

    /// Whether the deadline has passed on the current loop's clock.
    pub fn is_elapsed(&self) -> bool {
        now() >= self.deadline()
    }

    fn cancel_timer(&mut self) {
        if let Some((id, key)) = self.registered.take() {
            with_current(|inner| {
                if let Some(inner) = inner.filter(|i| loop_id(i) == id) {
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
            let id = loop_id(inner);
            if let Some((rid, key)) = self.registered {
                if rid == id {
                    if inner.refresh_wake_timer(key, cx.waker()) {
                        return Poll::Pending;
                    }
                    // The timer fired: the wheel fires only once the clock is past the deadline.
                    self.registered = None;
                    return Poll::Ready(());
                }
                // Registered on another loop: register afresh on this one.
            }
            if let Deadline::AfterFirstPoll(d) = self.deadline {
                let now = inner.read_clock();
                self.deadline = Deadline::At(inner.clock().nanos_to_instant(now) + d);
            }
            let deadline = inner.clock().instant_to_nanos(self.deadline());
            // The last clock reading is a lower bound of the time: if the deadline is behind it,
            // it has passed. Otherwise the wheel decides, with no clock read here.
            let now = inner.cached_now();
            if deadline <= now {
                return Poll::Ready(());
            }
            let key = inner.add_wake_timer(deadline, now, cx.waker().clone());
            self.registered = Some((id, key));
            Poll::Pending
        })
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
pub fn timeout<F: Future>(duration: Duration, future: F) -> Timeout<F> {
    Timeout {
        future,
        sleep: sleep(duration),
    }
}

/// The future returned by [`timeout`].
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
/// # Panics
/// If `period` is zero.
pub fn interval(period: Duration) -> Interval {
    assert!(
        period > Duration::ZERO,
        "solo::time::interval: period must be non-zero"
    );
    let start = Handle::try_current().map_or_else(Instant::now, |h| h.time());
    Interval {
        next: start,
        period,
        sleep: Sleep::new(start),
    }
}

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
        let now = Handle::current().time();
        let mut next = fired + self.period;
        if next <= now {
            // Skip what was missed: the next multiple of the period after now.
            let behind = (now - fired).as_nanos() / self.period.as_nanos();
            next = fired + self.period * u32::try_from(behind + 1).unwrap_or(u32::MAX);
        }
        self.next = next;
        self.sleep.reset(next);
        Poll::Ready(fired)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EventLoop, ManualClock};

    /// Runs under Miri in CI: the `Timeout` pin projection and sleeps on a manual clock.
    #[test]
    fn miri_timeout_and_sleep_on_a_manual_clock() {
        let clock = ManualClock::new();
        let el = EventLoop::builder().clock(clock.clone()).build().unwrap();
        let (a, b) = el
            .run_until_complete(async {
                let a = timeout(Duration::from_millis(5), std::future::pending::<()>()).await;
                let b = timeout(Duration::from_secs(1), async {
                    sleep(Duration::from_millis(2)).await;
                    7
                })
                .await;
                (a, b)
            })
            .unwrap();
        assert_eq!(a, Err(Elapsed));
        assert_eq!(b, Ok(7));
        assert_eq!(
            clock.elapsed(),
            Duration::from_millis(7),
            "5 ms timeout, then a 2 ms sleep"
        );
    }
}

//! The loop's timers as the rest of the crate reaches them: sleeps (`time.rs`) add, refresh,
//! move and cancel wake timers here; `callbacks.rs` schedules callback timers on the wheel
//! directly; the iteration expires them (`iteration.rs`).
//!
//! ```
//! use std::time::Duration;
//! let el = solo::EventLoop::builder().clock(solo::ManualClock::new()).build().unwrap();
//! el.run_until_complete(solo::time::sleep(Duration::from_secs(1))).unwrap();
//! ```

use std::panic::Location;
use std::task::Waker;

use super::callbacks::TimerPayload;
use super::Inner;
use crate::callback::CallbackKind;
use crate::timer::{Deadline, TimerKey};

/// What [`Inner::refresh_wake_timer`] found.
pub(crate) enum Refresh {
    /// The timer is pending; its waker is the one given.
    Pending,
    /// The timer is gone: it fired (or was cancelled).
    Fired,
    /// The key is another loop's.
    Foreign,
}

impl Inner {
    /// The loop's origin in nanoseconds after `epoch` (always the same instant: see
    /// `time::epoch`), computed once; `None` if it is too far for an `i64`. Sleeps keep their
    /// deadline on that scale, so that neither `sleep` nor its first poll does `Instant`
    /// arithmetic.
    #[inline(always)]
    pub(crate) fn epoch_offset(&self, epoch: fn() -> std::time::Instant) -> Option<i64> {
        let offset = match self.epoch_offset.get() {
            Some(o) => o,
            None => self.compute_epoch_offset(epoch()),
        };
        (offset != i64::MIN).then_some(offset)
    }

    #[cold]
    #[inline(never)]
    fn compute_epoch_offset(&self, epoch: std::time::Instant) -> i64 {
        let origin = self.clock.nanos_to_instant(0);
        let o = match origin.checked_duration_since(epoch) {
            Some(after) => i64::try_from(after.as_nanos()).ok(),
            None => i64::try_from(epoch.duration_since(origin).as_nanos())
                .ok()
                .map(|before| -before),
        };
        let o = o.unwrap_or(i64::MIN);
        self.epoch_offset.set(Some(o));
        o
    }

    /// Adds a timer that wakes `waker` at `deadline` (loop ns).
    #[inline]
    pub(crate) fn add_wake_timer(&self, deadline: u64, now: u64, waker: &Waker) -> TimerKey {
        let payload = TimerPayload::waking(self, waker);
        self.timers.borrow_mut().insert(deadline, now, payload)
    }

    /// Refreshes the waker of a pending wake timer: `Pending` if it is there, `Fired` if it is
    /// gone (it fired, or was cancelled), `Foreign` if the key is another loop's.
    #[inline]
    pub(crate) fn refresh_wake_timer(&self, key: TimerKey, waker: &Waker) -> Refresh {
        let mut timers = self.timers.borrow_mut();
        if !timers.owns(key) {
            return Refresh::Foreign;
        }
        match timers.get_mut(key) {
            Some(p) if p.is_wake() => {
                if !p.will_wake(self, waker) {
                    *p = TimerPayload::waking(self, waker);
                }
                Refresh::Pending
            }
            _ => Refresh::Fired,
        }
    }

    /// Moves a pending wake timer to `deadline` (loop time `now`), keeping its waker; returns
    /// its new key. `None` if it is gone or another loop's, or if `deadline` has passed: then
    /// the timer is removed and its waker woken now, and the sleep is ready at its next poll.
    pub(crate) fn reschedule_wake_timer(
        &self,
        key: TimerKey,
        deadline: Deadline,
        now: u64,
    ) -> Option<TimerKey> {
        let payload = self
            .timers
            .borrow_mut()
            .remove_if(key, TimerPayload::is_wake)?;
        let past = match deadline {
            Deadline::BeforeOrigin(_) => true,
            Deadline::At(ns) => ns <= now,
            Deadline::Never => false,
        };
        if past {
            self.wake_payload(payload);
            return None;
        }
        Some(self.timers.borrow_mut().insert(deadline, now, payload))
    }

    /// Removes a timer (a no-op if it is gone or another loop's). What it held is dropped after
    /// the borrow ends, behind the panic guard: a callback's or a waker's destructor is user code.
    pub(crate) fn cancel_timer(&self, key: TimerKey) {
        let payload = self.timers.borrow_mut().remove(key);
        match payload {
            Some(TimerPayload::Call(f)) => {
                let site = f.site();
                self.drop_guarded(f, CallbackKind::Timer, site);
            }
            Some(TimerPayload::Wake(w)) => {
                self.drop_guarded(w, CallbackKind::Loop, Location::caller());
            }
            // A local reference runs no user code when dropped.
            Some(TimerPayload::Task(t)) => drop(t),
            Some(TimerPayload::Main) | None => {}
        }
    }
}

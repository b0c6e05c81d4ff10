//! The life of a callback: scheduled (`call_soon`, `call_later`, `call_at`), cancelled, run, or
//! dropped with the loop.
//!
//! ```
//! use std::time::Duration;
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let soon = h.call_soon(|| unreachable!("cancelled before it ran"));
//! soon.cancel();
//! let later = h.call_later(Duration::from_secs(3600), || unreachable!());
//! later.cancel(); // the timer's memory is freed now, not in an hour
//! h.stop();
//! el.run_forever().unwrap();
//! ```
//!
//! * A `call_soon` callback goes straight into the ready queue as a [`Runnable::Soon`] with a
//!   sequence number. Cancelling it cannot reach into the queue, so the number is written down
//!   in [`SoonIds`] and the entry is skipped when its turn comes.
//! * A `call_later`/`call_at` callback waits in the timer wheel, which owns it. When it expires,
//!   the wheel keeps it and the ready queue gets a [`Runnable::Timer`] with its key; it is taken
//!   out of the wheel only when it runs, so a cancel between expiry and run still works (the
//!   entry then finds nothing).
//! * Either way a callback runs at most once, inside the batch phase, through the loop's panic
//!   guard; and when the loop closes, every callback it still holds is dropped, exactly once.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::fmt;
use std::panic::Location;
use std::rc::{Rc, Weak};
use std::task::Waker;
use std::time::{Duration, Instant};

use super::{Handle, Inner};
use crate::callback::{Callback, CallbackKind, Sited, SoonCallback};
use crate::clock::duration_to_nanos;
use crate::reactor::Dir;
use crate::reclaim;
use crate::shared::RemoteCall;
use crate::task::TaskRef;
use crate::timer::{Deadline, TimerKey};

/// A timer's payload: a callback to run, or a task to wake.
pub(crate) enum TimerPayload {
    Call(Box<dyn Callback>),
    /// Any other waker.
    Wake(Waker),
    /// The waker of a task of this loop, kept as a local reference: no atomic count is touched
    /// to keep it, drop it or wake it (see `TaskRef::of_local_waker`).
    Task(TaskRef),
    /// The waker of the future this loop's `run_until_complete` drives (the same for every
    /// run, so nothing needs keeping: waking it sets the loop's flag).
    Main,
}

impl TimerPayload {
    /// What a wake timer of `inner`'s loop keeps of `waker`.
    ///
    /// In debug mode a task's waker is cloned, not kept as a local reference: debug mode's
    /// lost-waker lint reads a pending task with no waker left as one that can never run again,
    /// and a timer's local reference is not a waker it can count.
    #[inline]
    pub(crate) fn waking(inner: &Inner, waker: &Waker) -> TimerPayload {
        let local = match inner.debug() {
            None => TaskRef::of_local_waker(waker),
            Some(_) => None,
        };
        if let Some(t) = local {
            TimerPayload::Task(t)
        } else if super::run::is_main_waker(&inner.shared, waker) {
            TimerPayload::Main
        } else {
            TimerPayload::Wake(waker.clone())
        }
    }

    /// Whether it wakes someone (a sleep's timer) rather than calling back.
    #[inline]
    pub(crate) fn is_wake(&self) -> bool {
        !matches!(self, TimerPayload::Call(_))
    }

    /// Whether, on `inner`'s loop, it would wake the same task as `waker`.
    #[inline]
    pub(crate) fn will_wake(&self, inner: &Inner, waker: &Waker) -> bool {
        match self {
            TimerPayload::Wake(w) => w.will_wake(waker),
            TimerPayload::Task(t) => t.is_woken_by(waker),
            TimerPayload::Main => super::run::is_main_waker(&inner.shared, waker),
            TimerPayload::Call(_) => false,
        }
    }
}

/// One entry of the ready queue (40 bytes; `size_tests` pins it).
///
/// The tag is a whole word (`repr(u64)`): with a one-byte tag, moving an entry into and out of
/// the queue copied the seven bytes of padding after it piecewise, a dozen instructions per
/// `call_soon`. The size is the same (the widest kind takes four words after the tag either
/// way), and the tag's unused values still give [`ReadyQueue`](super::ready::ReadyQueue) room
/// for its runs of tasks.
#[repr(u64)]
pub(crate) enum Runnable {
    /// A `call_soon` callback, its closure inline if it is small. Its sequence number is not
    /// stored: `call_soon` entries leave the queue in the order they entered it, so the loop
    /// counts them (`SoonIds::take_cancelled`).
    Soon(SoonCallback),
    /// A fired timer and its deadline (for debug mode's lag figure); the wheel holds the
    /// callback until it runs.
    Timer(TimerKey, u64),
    /// An `add_reader`/`add_writer` callback of this reactor token; the reactor holds it.
    Io(usize, Dir),
    /// A task to poll.
    Task(TaskRef),
    /// A `call_soon_threadsafe` callback.
    Remote(RemoteCall),
}

/// Which `call_soon` entries are still in the ready queue, and which of those were cancelled.
///
/// Invariant: `call_soon` entries leave the queue in the order they entered it, so an id is
/// queued iff `popped <= id < pushed`.
#[derive(Default)]
pub(crate) struct SoonIds {
    pushed: Cell<u64>,
    popped: Cell<u64>,
    /// Queued ids that were cancelled; only looked at when non-empty.
    cancelled: RefCell<HashSet<u64>>,
}

impl SoonIds {
    fn next(&self) -> u64 {
        let id = self.pushed.get();
        self.pushed.set(id + 1);
        id
    }

    /// Called when the next `call_soon` entry leaves the queue (the one numbered `popped`):
    /// whether it was cancelled (and must not run).
    #[inline]
    pub(super) fn take_cancelled(&self) -> bool {
        let id = self.popped.get();
        self.popped.set(id + 1);
        !self.cancelled.borrow().is_empty() && self.cancelled.borrow_mut().remove(&id)
    }

    fn cancel(&self, id: u64) {
        if id >= self.popped.get() {
            self.cancelled.borrow_mut().insert(id);
        }
    }

    pub(super) fn clear(&self) {
        self.cancelled.borrow_mut().clear();
    }

    pub(super) fn release_memory(&self) {
        reclaim::set(&mut self.cancelled.borrow_mut());
    }
}

impl Handle {
    /// Schedules `f` to run on the next iteration. Callbacks run in the order they were
    /// scheduled.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// let el = solo::EventLoop::new().unwrap();
    /// let h = el.handle();
    /// let log = Rc::new(RefCell::new(Vec::new()));
    /// for i in 0..3 {
    ///     let log = log.clone();
    ///     h.call_soon(move || log.borrow_mut().push(i));
    /// }
    /// h.stop();
    /// el.run_forever().unwrap();
    /// assert_eq!(*log.borrow(), [0, 1, 2]);
    /// ```
    #[track_caller]
    pub fn call_soon(&self, f: impl FnOnce() + 'static) -> CallbackHandle {
        let inner = &self.inner;
        let site = Location::caller();
        if inner.closed.get() {
            inner.drop_guarded(f, CallbackKind::Soon, site);
            return CallbackHandle::closed();
        }
        let id = inner.soon.next();
        inner.push(Runnable::Soon(SoonCallback::new(site, f)));
        CallbackHandle {
            inner: Rc::downgrade(inner),
            which: Which::Soon(id),
            cancelled: Cell::new(false),
        }
    }

    /// Schedules `f` to run once `delay` has passed on the loop clock.
    ///
    /// A delay that reaches past the end of loop time (`Duration::MAX`, or anything over about
    /// 584 years) means *never*, as asyncio's `inf`: `f` is kept until the handle cancels it or
    /// the loop closes, but never runs, and the loop neither wakes nor (on a manual clock) jumps
    /// for it.
    #[track_caller]
    pub fn call_later(&self, delay: Duration, f: impl FnOnce() + 'static) -> CallbackHandle {
        let now = self.inner.clock.now();
        let f = Box::new(Sited {
            site: Location::caller(),
            f,
        });
        let deadline = Deadline::at(now.saturating_add(duration_to_nanos(delay)));
        self.schedule_timer(deadline, now, f)
    }

    /// Schedules `f` to run at `when` on the loop clock; a past `when` runs on the next
    /// iteration. Past callbacks due together run in the order of their `when`, even those from
    /// before the loop was created. A `when` past the end of loop time (about 584 years after
    /// the loop was created) means *never*, as for [`call_later`](Handle::call_later).
    #[track_caller]
    pub fn call_at(&self, when: Instant, f: impl FnOnce() + 'static) -> CallbackHandle {
        let now = self.inner.clock.now();
        let f = Box::new(Sited {
            site: Location::caller(),
            f,
        });
        self.schedule_timer(self.inner.clock.deadline(when), now, f)
    }

    fn schedule_timer(&self, deadline: Deadline, now: u64, f: Box<dyn Callback>) -> CallbackHandle {
        let inner = &self.inner;
        if inner.closed.get() {
            let site = f.site();
            inner.drop_guarded(f, CallbackKind::Timer, site);
            return CallbackHandle::closed();
        }
        let key = inner
            .timers
            .borrow_mut()
            .insert(deadline, now, TimerPayload::Call(f));
        CallbackHandle {
            inner: Rc::downgrade(inner),
            which: Which::Timer(key),
            cancelled: Cell::new(false),
        }
    }
}

enum Which {
    Soon(u64),
    Timer(TimerKey),
    Nothing,
}

/// Returned by `call_soon`, `call_later` and `call_at`: cancels the callback.
///
/// ```
/// use std::time::Duration;
/// let el = solo::EventLoop::new().unwrap();
/// let h = el.handle();
/// let t = h.call_later(Duration::from_secs(3600), || unreachable!());
/// t.cancel();
/// t.cancel(); // a second cancel is a no-op
/// assert!(t.cancelled());
/// ```
pub struct CallbackHandle {
    inner: Weak<Inner>,
    which: Which,
    cancelled: Cell<bool>,
}

impl CallbackHandle {
    fn closed() -> CallbackHandle {
        CallbackHandle {
            inner: Weak::new(),
            which: Which::Nothing,
            cancelled: Cell::new(true),
        }
    }

    /// Cancels the callback: it will not run. Cancelling twice, after it ran, or after the loop
    /// is gone does nothing. A cancelled timer's memory is freed at once.
    pub fn cancel(&self) {
        if self.cancelled.replace(true) {
            return;
        }
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        match self.which {
            Which::Soon(id) => inner.soon.cancel(id),
            Which::Timer(key) => inner.cancel_timer(key),
            Which::Nothing => {}
        }
    }

    /// Whether [`cancel`](CallbackHandle::cancel) was called (or the loop was closed when the
    /// callback was scheduled, so it was never queued).
    pub fn cancelled(&self) -> bool {
        self.cancelled.get()
    }
}

impl fmt::Debug for CallbackHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallbackHandle")
            .field("cancelled", &self.cancelled.get())
            .finish()
    }
}

#[cfg(test)]
mod size_tests {
    #[test]
    fn ready_queue_entries_stay_small() {
        assert_eq!(std::mem::size_of::<super::Runnable>(), 40);
    }
}

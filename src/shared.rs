//! The thread-safe part of a loop: the one door into it from other threads.
//!
//! ```
//! let el = solo::EventLoop::new().unwrap();
//! let remote = el.handle().remote(); // a `Remote` holds the loop's `Shared`
//! let stop = el.handle().remote();
//! std::thread::spawn(move || {
//!     remote.call_soon_threadsafe(|| println!("from another thread")).unwrap();
//!     // The loop may be blocked waiting for I/O: the push wakes it.
//!     stop.call_soon_threadsafe(|| solo::Handle::current().stop()).unwrap();
//! });
//! el.run_forever().unwrap();
//! ```
//!
//! A loop is single-threaded: its queues are `RefCell`s and its handles are `!Send`. Other
//! threads reach it through [`Shared`], the only loop state that is `Sync`: a mutex-protected
//! queue of callbacks and task wake-ups, and the backend's remote waker (mio's `Waker`; for the
//! `polling` backend an eventfd of its own on Linux, `Poller::notify` elsewhere), which makes a
//! loop blocked in `epoll_wait` return.
//!
//! Wake-ups are coalesced: the `notified` flag is set by the first push after the loop last
//! drained the queue, and only that push pays for the `Waker` syscall. The loop clears the flag
//! *before* taking the queue, so a push that races with the drain either lands in this drain or
//! sets the flag again for the next one.
//!
//! This module knows nothing of tasks or of the loop: a task woken elsewhere arrives as a plain
//! [`Waker`], and a callback as a boxed [`Callback`].

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;

use crate::callback::Callback;
use crate::debug::DebugShared;
use crate::reactor::RemoteWaker;

/// A callback sent from another thread (it carries the site that sent it).
pub(crate) type RemoteCall = Box<dyn Callback + Send>;

/// What other threads queue for the loop.
pub(crate) enum RemoteItem {
    /// A `call_soon_threadsafe` callback.
    Call(RemoteCall),
    /// A task woken on another thread: a waker that owns a reference to the task. Waking it on
    /// the loop thread schedules the task; dropping it (the loop closed) releases the reference.
    Wake(Waker),
}

#[derive(Default)]
struct Queue {
    closed: bool,
    /// Shutting down: callbacks and spawns from other threads are refused, task wake-ups are
    /// still taken (in-flight work may be waiting for one).
    refuse_calls: bool,
    items: Vec<RemoteItem>,
}

/// The thread-safe part of a loop.
pub(crate) struct Shared {
    queue: Mutex<Queue>,
    notified: AtomicBool,
    waker: RemoteWaker,
    /// Set by the waker of the future that `run_until_complete` drives.
    pub(crate) main_woken: AtomicBool,
    /// Debug mode's thread-safe half (the task table), when debug mode is on.
    pub(crate) debug: Option<Arc<DebugShared>>,
}

impl Shared {
    pub(crate) fn new(waker: RemoteWaker, debug: Option<Arc<DebugShared>>) -> Shared {
        Shared {
            queue: Mutex::new(Queue::default()),
            notified: AtomicBool::new(false),
            waker,
            main_woken: AtomicBool::new(false),
            debug,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue half-updated (push and swap are
        // single operations), so a poisoned lock is still usable.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn push(&self, item: RemoteItem) -> Result<(), RemoteItem> {
        {
            let mut q = self.lock();
            if q.closed || (q.refuse_calls && matches!(item, RemoteItem::Call(_))) {
                return Err(item);
            }
            q.items.push(item);
        }
        self.notify();
        Ok(())
    }

    /// Queues a callback from another thread; gives it back if the loop refuses calls.
    pub(crate) fn push_call(&self, call: RemoteCall) -> Result<(), RemoteCall> {
        self.push(RemoteItem::Call(call)).map_err(|e| match e {
            RemoteItem::Call(c) => c,
            RemoteItem::Wake(_) => unreachable!("push returns the item it was given"),
        })
    }

    /// Queues a task wake-up from another thread; gives the waker back if the loop is closed.
    pub(crate) fn push_wake(&self, waker: Waker) -> Result<(), Waker> {
        self.push(RemoteItem::Wake(waker)).map_err(|e| match e {
            RemoteItem::Wake(w) => w,
            RemoteItem::Call(_) => unreachable!("push returns the item it was given"),
        })
    }

    /// Makes the loop's next (or current) poll return.
    pub(crate) fn notify(&self) {
        if !self.notified.swap(true, Ordering::AcqRel) {
            // An error here means the poller is gone (the loop is being dropped): nothing to wake.
            let _ = self.waker.wake();
        }
    }

    /// Whether something was pushed since the last drain (a cheap check for the loop).
    #[inline]
    pub(crate) fn has_pending(&self) -> bool {
        self.notified.load(Ordering::Acquire)
    }

    /// Moves everything queued into `out` (which the caller keeps to reuse its buffer).
    pub(crate) fn drain_into(&self, out: &mut Vec<RemoteItem>) {
        self.notified.store(false, Ordering::Release);
        std::mem::swap(&mut self.lock().items, out);
    }

    /// Refuses further callbacks and spawns (shutdown has begun).
    pub(crate) fn refuse_calls(&self) {
        self.lock().refuse_calls = true;
    }

    /// Refuses all further pushes and returns what was queued.
    pub(crate) fn close(&self) -> Vec<RemoteItem> {
        let mut q = self.lock();
        q.closed = true;
        std::mem::take(&mut q.items)
    }

    pub(crate) fn is_closed(&self) -> bool {
        let q = self.lock();
        q.closed || q.refuse_calls
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("notified", &self.notified)
            .finish_non_exhaustive()
    }
}

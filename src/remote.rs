//! The one door into a loop from other threads.
//!
//! A loop is single-threaded: its queues are `RefCell`s and its handles are `!Send`. Other
//! threads reach it through [`Shared`], the only loop state that is `Sync`: a mutex-protected
//! queue of callbacks and task wake-ups, and mio's [`Waker`](mio::Waker), which makes a loop
//! blocked in `epoll_wait` return.
//!
//! Wake-ups are coalesced: the `notified` flag is set by the first push after the loop last
//! drained the queue, and only that push pays for the `Waker` syscall. The loop clears the flag
//! *before* taking the queue, so a push that races with the drain either lands in this drain or
//! sets the flag again for the next one.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use crate::debug::{DebugShared, TaskSnapshot};
use crate::error::{JoinError, LoopClosed};
use crate::event_loop::{Callback, Sited};
use crate::task::RemoteTask;
use crate::Handle;

/// A callback sent from another thread (it carries the site that sent it).
pub(crate) type RemoteCall = Box<dyn Callback + Send>;

pub(crate) enum RemoteItem {
    Call(RemoteCall),
    Task(RemoteTask),
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
    waker: mio::Waker,
    /// Set by the waker of the future that `run_until_complete` drives.
    pub(crate) main_woken: AtomicBool,
    /// Debug mode's thread-safe half (the task table), when debug mode is on.
    pub(crate) debug: Option<Arc<DebugShared>>,
}

impl Shared {
    pub(crate) fn new(waker: mio::Waker, debug: Option<Arc<DebugShared>>) -> Shared {
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

    pub(crate) fn push_task(&self, t: RemoteTask) -> Result<(), RemoteTask> {
        self.push(RemoteItem::Task(t)).map_err(|e| match e {
            RemoteItem::Task(t) => t,
            RemoteItem::Call(_) => unreachable!(),
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

/// A `Send + Sync` handle to a loop, for other threads.
///
/// It can queue callbacks and spawn `Send` futures; both wake a loop that is blocked waiting for
/// I/O or a far-away timer. Get one with [`Handle::remote`].
///
/// ```
/// let el = solo::EventLoop::new().unwrap();
/// let remote = el.handle().remote();
/// let worker = std::thread::spawn(move || remote.spawn(async { 2 + 2 }));
/// let answer = worker.join().unwrap();
/// assert_eq!(el.run_until_complete(answer).unwrap().unwrap(), 4);
/// ```
#[derive(Clone)]
pub struct Remote {
    pub(crate) shared: Arc<Shared>,
}

impl Remote {
    /// Schedules `f` to run on the loop thread, like asyncio's `call_soon_threadsafe`.
    ///
    /// Returns [`LoopClosed`] (and drops `f`) if the loop has been dropped or shut down.
    #[track_caller]
    pub fn call_soon_threadsafe(
        &self,
        f: impl FnOnce() + Send + 'static,
    ) -> Result<(), LoopClosed> {
        let site = Location::caller();
        self.shared
            .push(RemoteItem::Call(Box::new(Sited { site, f })))
            .map_err(|_| LoopClosed)
    }

    /// Spawns a `Send` future on the loop; its result comes back through the returned handle,
    /// which may be awaited on any thread or runtime. If the loop is closed, the handle yields a
    /// cancelled [`JoinError`].
    #[track_caller]
    pub fn spawn<F>(&self, future: F) -> RemoteJoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let slot = Arc::new(Mutex::new(Oneshot {
            value: None,
            waker: None,
            done: false,
        }));
        let forward = Forward {
            future,
            slot: Some(slot.clone()),
        };
        let site = Location::caller();
        let spawn = move || {
            if let Some(h) = Handle::try_current() {
                drop(h.spawn_at(forward, site));
            }
        };
        if self.call_soon_threadsafe(spawn).is_err() {
            let mut s = lock(&slot);
            s.done = true;
        }
        RemoteJoinHandle { slot }
    }

    /// Whether the loop has been dropped or shut down.
    pub fn is_closed(&self) -> bool {
        self.shared.is_closed()
    }

    /// The loop's task table, read from this thread even while the loop is blocked; empty
    /// unless debug mode is on.
    pub fn tasks(&self) -> Vec<TaskSnapshot> {
        self.shared
            .debug
            .as_ref()
            .map_or_else(Vec::new, |d| d.snapshot())
    }
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl futures_task::Spawn for Remote {
    fn spawn_obj(
        &self,
        future: futures_task::FutureObj<'static, ()>,
    ) -> Result<(), futures_task::SpawnError> {
        if self.is_closed() {
            return Err(futures_task::SpawnError::shutdown());
        }
        drop(self.spawn(future));
        Ok(())
    }
}

struct Oneshot<T> {
    value: Option<Result<T, JoinError>>,
    waker: Option<Waker>,
    /// No value will ever come (the loop dropped the task); yields "cancelled".
    done: bool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Runs the remote future on the loop and sends its result (or its panic, or "cancelled" when
/// dropped unfinished) back to the [`RemoteJoinHandle`].
struct Forward<F: Future> {
    future: F,
    slot: Option<Arc<Mutex<Oneshot<F::Output>>>>,
}

impl<F: Future> Forward<F> {
    fn send(&mut self, value: Option<Result<F::Output, JoinError>>) {
        if let Some(slot) = self.slot.take() {
            let waker = {
                let mut s = lock(&slot);
                s.value = value;
                s.done = true;
                s.waker.take()
            };
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl<F: Future> Future for Forward<F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // SAFETY: `future` is structurally pinned: it is never moved out of `Forward`, and
        // `Forward` has no `Unpin` impl that would allow moving it; `slot` is not pinned.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: see above.
        let fut = unsafe { Pin::new_unchecked(&mut this.future) };
        let result = match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
            Ok(Poll::Pending) => return Poll::Pending,
            Ok(Poll::Ready(v)) => Ok(v),
            Err(payload) => Err(JoinError::panicked(payload)),
        };
        this.send(Some(result));
        Poll::Ready(())
    }
}

impl<F: Future> Drop for Forward<F> {
    fn drop(&mut self) {
        self.send(None);
    }
}

/// The result of [`Remote::spawn`]: a `Send` future of `Result<T, JoinError>`.
pub struct RemoteJoinHandle<T> {
    slot: Arc<Mutex<Oneshot<T>>>,
}

impl<T> Future for RemoteJoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = lock(&self.slot);
        if let Some(v) = s.value.take() {
            return Poll::Ready(v);
        }
        if s.done {
            return Poll::Ready(Err(JoinError::cancelled()));
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl<T> fmt::Debug for RemoteJoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RemoteJoinHandle")
    }
}

#[cfg(test)]
mod tests {
    use crate::EventLoop;

    /// Runs under Miri in CI: the `Forward` pin projection, the oneshot, a wake from a thread.
    #[test]
    fn miri_remote_spawn_forwards_output_and_panics() {
        let el = EventLoop::new().unwrap();
        el.handle().set_exception_handler(|_| {});
        let remote = el.handle().remote();
        let (ok, bad) = std::thread::spawn(move || {
            (
                remote.spawn(async { String::from("done") }),
                remote.spawn(async { panic!("remote boom") }),
            )
        })
        .join()
        .unwrap();
        let (ok, bad) = el
            .run_until_complete(async move { (ok.await, bad.await) })
            .unwrap();
        assert_eq!(ok.unwrap(), "done");
        assert!(bad.unwrap_err().is_panic());
    }
}

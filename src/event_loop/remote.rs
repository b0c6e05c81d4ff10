//! [`Remote`]: a `Send + Sync` handle to a loop, for other threads.
//!
//! ```
//! let el = solo::EventLoop::new().unwrap();
//! let remote = el.handle().remote();
//! let worker = std::thread::spawn(move || remote.spawn(async { 2 + 2 }));
//! let answer = worker.join().unwrap();
//! assert_eq!(el.run_until_complete(answer).unwrap().unwrap(), 4);
//! ```
//!
//! Everything a `Remote` does goes through the loop's [`Shared`] queue: a callback is queued as
//! is, and a spawn is a callback that spawns on the loop thread and forwards the result back
//! through a oneshot slot.

use std::fmt;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use super::with_current;
use crate::callback::Sited;
use crate::debug::TaskSnapshot;
use crate::error::{JoinError, LoopClosed};
use crate::shared::Shared;

/// A `Send + Sync` handle to a loop, for other threads.
///
/// It can queue callbacks and spawn `Send` futures; both wake a loop that is blocked waiting for
/// I/O or a far-away timer. Get one with [`Handle::remote`](crate::Handle::remote).
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
    shared: Arc<Shared>,
}

impl Remote {
    pub(super) fn new(shared: Arc<Shared>) -> Remote {
        Remote { shared }
    }

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
            .push_call(Box::new(Sited { site, f }))
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
            with_current(|inner| {
                if let Some(inner) = inner {
                    drop(inner.spawn_at(forward, site, None));
                }
            });
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

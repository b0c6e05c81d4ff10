//! [`TaskGroup`]: tasks spawned, joined and cancelled together (asyncio's `TaskGroup`, tokio's
//! `JoinSet`).
//!
//! ```
//! use solo::TaskGroup;
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let out = el.run_until_complete(async move {
//!     let mut group = TaskGroup::new(&h);
//!     for i in 1..=3u32 {
//!         group.spawn(async move { i * 10 });
//!     }
//!     let mut sum = 0;
//!     while let Some(r) = group.join_next().await {
//!         sum += r.unwrap();
//!     }
//!     sum
//! }).unwrap();
//! assert_eq!(out, 60);
//! ```
//!
//! [`TaskGroup`]'s documentation says what happens when a child fails, and when the group is
//! shut down or dropped.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::fmt;
use std::future::{poll_fn, Future};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::error::JoinError;
use crate::event_loop::Handle;
use crate::task::JoinHandle;

/// Tasks spawned, joined and cancelled together. `T` is what a child returns; `E` the error a
/// child spawned with [`try_spawn`](TaskGroup::try_spawn) may return instead, which fails the
/// group ([`TaskGroup::new`] makes a group whose children fail only by panicking,
/// [`TaskGroup::fallible`] one that takes `try_spawn`).
///
/// # When a child fails
///
/// A child *fails* when it panics, or, if spawned with [`try_spawn`](TaskGroup::try_spawn),
/// when it returns `Err`. As in asyncio, the group then cancels every other child: in the
/// loop's next iteration, as asyncio's done-callback does, so children already due in the same
/// iteration still run, and if they fail too their failures are kept beside the first.
/// [`join_all`](TaskGroup::join_all) reports the first failure with the others attached
/// ([`GroupError`]); [`join_next`](TaskGroup::join_next) yields each child's result in the
/// order they finished. A child spawned into a group that has failed is cancelled before its
/// first poll.
///
/// # Cancellation and panics nobody retrieved
///
/// [`shutdown`](TaskGroup::shutdown) cancels every child and waits until all are gone; the
/// group is then empty, and can be used again. Dropping the group cancels its children without
/// waiting. Either way the results nobody joined are dropped, and a child's panic that nobody
/// joined is reported to the loop's exception handler as never retrieved, like the panic of a
/// task whose `JoinHandle` was dropped.
pub struct TaskGroup<T, E = Infallible> {
    state: Rc<State<T, E>>,
}

struct State<T, E> {
    handle: Handle,
    /// Every child not joined yet, by key.
    children: RefCell<Slab<JoinHandle<Result<T, E>>>>,
    /// Children that finished (returned, panicked or were cancelled), in that order, and
    /// whether the group itself had cancelled them.
    done: RefCell<VecDeque<(usize, bool)>>,
    /// The task waiting in `join_next` or `shutdown`.
    waiter: Cell<Option<Waker>>,
    /// A child failed: the others are cancelled.
    failed: Cell<bool>,
    /// `shutdown` cancelled the children.
    shutting_down: Cell<bool>,
}

impl<T: 'static, E: 'static> State<T, E> {
    fn cancel_all(&self) {
        for (_, child) in self.children.borrow().iter() {
            child.cancel();
        }
    }
}

/// A child's result, and whether the group itself cancelled it (after a failure, or in
/// `shutdown`).
type Next<T, E> = (Result<T, ChildError<E>>, bool);

/// Marks a child's end in its group, from inside the child's future: `finish` when it returns
/// (or is about to rethrow its panic), the drop alone when it is cancelled.
struct ChildGuard<T: 'static, E: 'static> {
    state: Weak<State<T, E>>,
    key: usize,
    finished: bool,
}

impl<T: 'static, E: 'static> ChildGuard<T, E> {
    fn finish(&mut self, failed: bool) {
        self.finished = true;
        let Some(state) = self.state.upgrade() else {
            return;
        };
        let by_group = !failed && (state.failed.get() || state.shutting_down.get());
        state.done.borrow_mut().push_back((self.key, by_group));
        if failed && !state.failed.replace(true) {
            // asyncio's done-callback: the siblings are cancelled in the next iteration.
            let weak = self.state.clone();
            state.handle.call_soon(move || {
                if let Some(s) = weak.upgrade() {
                    s.cancel_all();
                }
            });
        }
        if let Some(w) = state.waiter.take() {
            w.wake();
        }
    }
}

impl<T: 'static, E: 'static> Drop for ChildGuard<T, E> {
    fn drop(&mut self) {
        if !self.finished {
            self.finish(false); // cancelled: its future is being dropped
        }
    }
}

impl<T: 'static> TaskGroup<T> {
    /// An empty group whose children run on `handle`'s loop and fail only by panicking.
    pub fn new(handle: &Handle) -> TaskGroup<T> {
        TaskGroup::fallible(handle)
    }
}

impl<T: 'static, E: 'static> TaskGroup<T, E> {
    /// An empty group whose children run on `handle`'s loop and may also fail by returning
    /// `Err(E)` ([`try_spawn`](Self::try_spawn)).
    ///
    /// ```
    /// let el = solo::EventLoop::new().unwrap();
    /// let h = el.handle();
    /// let err = el.run_until_complete(async move {
    ///     let group = solo::TaskGroup::fallible(&h);
    ///     group.try_spawn(async { Ok(1) });
    ///     group.try_spawn(async { Err("no disk") });
    ///     group.try_spawn(std::future::pending()); // cancelled when the other fails
    ///     group.join_all().await.unwrap_err()
    /// }).unwrap();
    /// assert_eq!(err.first().to_string(), "task failed: no disk");
    /// assert_eq!((err.completed(), err.cancelled()), (&[1][..], 1));
    /// ```
    pub fn fallible(handle: &Handle) -> TaskGroup<T, E> {
        TaskGroup {
            state: Rc::new(State {
                handle: handle.clone(),
                children: RefCell::new(Slab::new()),
                done: RefCell::new(VecDeque::new()),
                waiter: Cell::new(None),
                failed: Cell::new(false),
                shutting_down: Cell::new(false),
            }),
        }
    }

    /// Spawns `future` as a child. Its panic fails the group.
    #[track_caller]
    pub fn spawn<F>(&self, future: F)
    where
        F: Future<Output = T> + 'static,
    {
        self.add(None, async move { Ok(future.await) });
    }

    /// Like [`spawn`](Self::spawn), with a name that debug reports and the exception handler
    /// show.
    #[track_caller]
    pub fn spawn_named<F>(&self, name: &str, future: F)
    where
        F: Future<Output = T> + 'static,
    {
        self.add(Some(name), async move { Ok(future.await) });
    }

    /// Spawns `future` as a child whose `Err` fails the group, as a panic does.
    #[track_caller]
    pub fn try_spawn<F>(&self, future: F)
    where
        F: Future<Output = Result<T, E>> + 'static,
    {
        self.add(None, future);
    }

    /// Like [`try_spawn`](Self::try_spawn), named.
    #[track_caller]
    pub fn try_spawn_named<F>(&self, name: &str, future: F)
    where
        F: Future<Output = Result<T, E>> + 'static,
    {
        self.add(Some(name), future);
    }

    #[track_caller]
    fn add<F>(&self, name: Option<&str>, future: F)
    where
        F: Future<Output = Result<T, E>> + 'static,
    {
        // The slot is taken before the spawn (which may drop the future at once, on a closed
        // loop, and so end the child before its handle is stored).
        let key = self
            .state
            .children
            .borrow_mut()
            .insert(JoinHandle::closed());
        let mut guard = ChildGuard {
            state: Rc::downgrade(&self.state),
            key,
            finished: false,
        };
        let child = async move {
            let mut future = pin!(future);
            let out =
                poll_fn(
                    |cx| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                        Ok(Poll::Pending) => Poll::Pending,
                        Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
                        Err(payload) => Poll::Ready(Err(payload)),
                    },
                )
                .await;
            match out {
                Ok(v) => {
                    guard.finish(v.is_err());
                    v
                }
                Err(payload) => {
                    guard.finish(true);
                    // The task ends with this very panic, for the JoinHandle to yield.
                    resume_unwind(payload)
                }
            }
        };
        let h = &self.state.handle;
        let join = match name {
            Some(n) => h.spawn_named(n, child),
            None => h.spawn(child),
        };
        if self.state.failed.get() {
            join.cancel();
        }
        self.state.children.borrow_mut()[key] = join;
    }

    /// How many children were spawned and not joined yet (running or finished).
    pub fn len(&self) -> usize {
        self.state.children.borrow().len()
    }

    /// Whether every child was joined.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a child failed (the others were, or are about to be, cancelled).
    pub fn has_failed(&self) -> bool {
        self.state.failed.get()
    }

    /// The next child to finish: its output, or why there is none; `None` when the group is
    /// empty.
    pub fn join_next(&mut self) -> JoinNext<'_, T, E> {
        JoinNext { group: self }
    }

    /// Waits for every child. All of their outputs, in the order they finished, or the first
    /// failure with the others attached (see [`GroupError`]).
    pub async fn join_all(mut self) -> Result<Vec<T>, GroupError<T, E>> {
        let mut completed = Vec::new();
        let mut failures = Vec::new();
        let mut cancelled = 0;
        while let Some((r, by_group)) = poll_fn(|cx| self.poll_next(cx)).await {
            match r {
                Ok(v) => completed.push(v),
                Err(ChildError::Join(e)) if e.is_cancelled() && by_group => cancelled += 1,
                Err(e) => failures.push(e),
            }
        }
        let mut failures = failures.into_iter();
        match failures.next() {
            None => Ok(completed),
            Some(first) => Err(GroupError {
                first,
                others: failures.collect(),
                completed,
                cancelled,
            }),
        }
    }

    /// Cancels every child and waits until all are gone (the loop drops each future at its
    /// next safe point). The group is then empty, as new: outputs nobody joined are dropped,
    /// and a panic nobody joined is reported as never retrieved.
    pub async fn shutdown(&mut self) {
        self.state.shutting_down.set(true);
        self.state.cancel_all();
        poll_fn(|cx| {
            if self.state.done.borrow().len() < self.state.children.borrow().len() {
                self.state.waiter.set(Some(cx.waker().clone()));
                return Poll::Pending;
            }
            Poll::Ready(())
        })
        .await;
        let children = std::mem::take(&mut *self.state.children.borrow_mut());
        self.state.done.borrow_mut().clear();
        self.state.failed.set(false);
        self.state.shutting_down.set(false);
        drop(children); // after the borrows: a dropped handle may report, or drop an output
    }

    /// The next child's result, and whether the group itself cancelled it.
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Next<T, E>>> {
        let state = &self.state;
        let Some(&(key, by_group)) = state.done.borrow().front() else {
            if state.children.borrow().is_empty() {
                return Poll::Ready(None);
            }
            state.waiter.set(Some(cx.waker().clone()));
            return Poll::Pending;
        };
        // Finished; its handle is ready (else it wakes us when it is).
        let polled = Pin::new(&mut state.children.borrow_mut()[key]).poll(cx);
        let Poll::Ready(r) = polled else {
            return Poll::Pending;
        };
        state.done.borrow_mut().pop_front();
        let handle = state.children.borrow_mut().remove(key);
        drop(handle);
        let r = match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ChildError::Failed(e)),
            Err(e) => Err(ChildError::Join(e)),
        };
        Poll::Ready(Some((r, by_group)))
    }
}

impl<T, E> Drop for TaskGroup<T, E> {
    fn drop(&mut self) {
        let children = std::mem::take(&mut *self.state.children.borrow_mut());
        for (_, child) in children.iter() {
            child.cancel();
        }
        drop(children); // unjoined panics are reported as never retrieved
    }
}

impl<T, E> fmt::Debug for TaskGroup<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup")
            .field("len", &self.state.children.borrow().len())
            .field("failed", &self.state.failed.get())
            .finish()
    }
}

/// The future of [`TaskGroup::join_next`].
#[must_use = "futures do nothing unless awaited"]
pub struct JoinNext<'a, T, E> {
    group: &'a mut TaskGroup<T, E>,
}

impl<T: 'static, E: 'static> Future for JoinNext<'_, T, E> {
    type Output = Option<Result<T, ChildError<E>>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.group.poll_next(cx).map(|next| next.map(|(r, _)| r))
    }
}

impl<T, E> fmt::Debug for JoinNext<'_, T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinNext").finish_non_exhaustive()
    }
}

/// Why a child of a [`TaskGroup`] produced no output.
pub enum ChildError<E> {
    /// It panicked, or was cancelled (by the group after another child failed, by
    /// [`TaskGroup::shutdown`], or by its loop's end).
    Join(JoinError),
    /// It was spawned with [`TaskGroup::try_spawn`] and returned this error.
    Failed(E),
}

impl<E> ChildError<E> {
    /// It panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, ChildError::Join(e) if e.is_panic())
    }

    /// It was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, ChildError::Join(e) if e.is_cancelled())
    }

    /// The error it returned, if it returned one.
    pub fn into_failed(self) -> Option<E> {
        match self {
            ChildError::Failed(e) => Some(e),
            ChildError::Join(_) => None,
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for ChildError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::Join(e) => f.debug_tuple("Join").field(e).finish(),
            ChildError::Failed(e) => f.debug_tuple("Failed").field(e).finish(),
        }
    }
}

impl<E: fmt::Display> fmt::Display for ChildError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChildError::Join(e) => e.fmt(f),
            ChildError::Failed(e) => write!(f, "task failed: {e}"),
        }
    }
}

impl<E: fmt::Debug + fmt::Display> std::error::Error for ChildError<E> {}

/// The failure of a [`TaskGroup`]: the first child that failed, the failures of the others
/// (those that failed before the group's cancel reached them, in the order they finished),
/// the outputs of the children that completed, and how many the group cancelled.
pub struct GroupError<T, E> {
    first: ChildError<E>,
    others: Vec<ChildError<E>>,
    completed: Vec<T>,
    cancelled: usize,
}

impl<T, E> GroupError<T, E> {
    /// The first failure.
    pub fn first(&self) -> &ChildError<E> {
        &self.first
    }

    /// The other failures, in the order they happened.
    pub fn others(&self) -> &[ChildError<E>] {
        &self.others
    }

    /// The outputs of the children that completed, in the order they finished.
    pub fn completed(&self) -> &[T] {
        &self.completed
    }

    /// How many children the group cancelled because of the failure.
    pub fn cancelled(&self) -> usize {
        self.cancelled
    }

    /// The first failure, the others, and the completed outputs, by value.
    pub fn into_parts(self) -> (ChildError<E>, Vec<ChildError<E>>, Vec<T>) {
        (self.first, self.others, self.completed)
    }
}

impl<T, E: fmt::Debug> fmt::Debug for GroupError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupError")
            .field("first", &self.first)
            .field("others", &self.others)
            .field("completed", &self.completed.len())
            .field("cancelled", &self.cancelled)
            .finish()
    }
}

impl<T, E: fmt::Display> fmt::Display for GroupError<T, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a task of the group failed: {}", self.first)?;
        if !self.others.is_empty() {
            write!(f, " (and {} more failed", self.others.len())?;
            for o in &self.others {
                write!(f, "; {o}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl<T, E: fmt::Debug + fmt::Display> std::error::Error for GroupError<T, E> {}

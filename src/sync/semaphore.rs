//! [`Semaphore`]: a count of permits, handed out in FIFO order; borrowed permits
//! ([`SemaphorePermit`]) and owned ones ([`OwnedSemaphorePermit`], for tasks that outlive a
//! borrow).
//!
//! ```
//! use std::rc::Rc;
//! use solo::sync::Semaphore;
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let sem = Rc::new(Semaphore::new(2)); // at most two fetches at a time
//! let tasks: Vec<_> = (0..5)
//!     .map(|i| {
//!         let sem = sem.clone();
//!         h.spawn(async move {
//!             let _permit = sem.acquire_owned().await;
//!             solo::yield_now().await; // the work, holding the permit
//!             i
//!         })
//!     })
//!     .collect();
//! el.run_until_complete(async move {
//!     for (i, t) in tasks.into_iter().enumerate() {
//!         assert_eq!(t.await.unwrap(), i);
//!     }
//! }).unwrap();
//! assert_eq!(sem.available_permits(), 2);
//! ```
//!
//! The type's documentation says how waiters are served and what a cancelled one does.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};

use super::wait_list::WaitList;
use super::TryAcquireError;

/// A semaphore for the tasks of one thread (not `Sync`, no atomics).
///
/// Waiters are served in the order they started waiting, and a newcomer never takes permits
/// while someone waits (no barging: a waiter that needs many permits is not starved by a stream
/// of small ones). Released permits are handed to the front waiters at once. A waiter dropped
/// while waiting leaves the line; one dropped after permits were handed to it, before it ran,
/// gives them back to the next waiter. No permit is ever lost.
pub struct Semaphore {
    state: RefCell<State>,
}

struct State {
    permits: usize,
    waiters: WaitList<Want>,
}

/// What a waiter needs, and whether it was given it.
struct Want {
    need: usize,
    granted: bool,
}

impl Semaphore {
    /// A semaphore with `permits` permits.
    pub const fn new(permits: usize) -> Semaphore {
        Semaphore {
            state: RefCell::new(State {
                permits,
                waiters: WaitList::new(),
            }),
        }
    }

    /// How many permits are free now.
    pub fn available_permits(&self) -> usize {
        self.state.borrow().permits
    }

    /// Adds `n` permits, serving waiters in order. The count saturates at `usize::MAX`.
    pub fn add_permits(&self, n: usize) {
        let mut st = self.state.borrow_mut();
        st.permits = st.permits.saturating_add(n);
        drop(st);
        self.serve();
    }

    /// Waits for one permit; it is released when the [`SemaphorePermit`] drops.
    pub fn acquire(&self) -> Acquire<'_> {
        self.acquire_many(1)
    }

    /// Waits for `n` permits at once (`n = 0` is granted in its turn, with nothing to give).
    pub fn acquire_many(&self, n: usize) -> Acquire<'_> {
        Acquire {
            sem: self,
            waiter: Waiter::new(n),
        }
    }

    /// One permit if one is free and nobody waits; never waits.
    pub fn try_acquire(&self) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_acquire_many(1)
    }

    /// `n` permits if they are free and nobody waits; never waits.
    pub fn try_acquire_many(&self, n: usize) -> Result<SemaphorePermit<'_>, TryAcquireError> {
        self.try_take(n)?;
        Ok(SemaphorePermit { sem: self, n })
    }

    /// Like [`acquire`](Self::acquire), for a permit that owns a reference to the semaphore
    /// (for a task that must be `'static`).
    pub fn acquire_owned(self: &Rc<Self>) -> AcquireOwned {
        self.acquire_many_owned(1)
    }

    /// Like [`acquire_many`](Self::acquire_many), owned.
    pub fn acquire_many_owned(self: &Rc<Self>, n: usize) -> AcquireOwned {
        AcquireOwned {
            sem: self.clone(),
            waiter: Waiter::new(n),
        }
    }

    /// Like [`try_acquire`](Self::try_acquire), owned.
    pub fn try_acquire_owned(self: &Rc<Self>) -> Result<OwnedSemaphorePermit, TryAcquireError> {
        self.try_take(1)?;
        Ok(OwnedSemaphorePermit {
            sem: self.clone(),
            n: 1,
        })
    }

    fn try_take(&self, n: usize) -> Result<(), TryAcquireError> {
        let mut st = self.state.borrow_mut();
        if !st.waiters.is_empty() || st.permits < n {
            return Err(TryAcquireError(()));
        }
        st.permits -= n;
        Ok(())
    }

    /// Gives `n` permits back and serves the line.
    fn release(&self, n: usize) {
        if n > 0 {
            self.add_permits(n);
        }
    }

    /// Hands free permits to the front waiters, in order, while the front one can be served.
    fn serve(&self) {
        loop {
            let mut st = self.state.borrow_mut();
            let Some(k) = st.waiters.front() else { return };
            let need = st.waiters.state(k).need;
            if st.permits < need {
                return;
            }
            st.permits -= need;
            st.waiters.state_mut(k).granted = true;
            let waker = st.waiters.unlink(k);
            drop(st);
            if let Some(w) = waker {
                w.wake();
            }
        }
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let st = self.state.borrow();
        f.debug_struct("Semaphore")
            .field("permits", &st.permits)
            .field("waiting", &!st.waiters.is_empty())
            .finish()
    }
}

/// A place in the semaphore's line, shared by [`Acquire`] and [`AcquireOwned`]. Polled again
/// after it returned a permit, it acquires anew (in line, like a fresh one).
struct Waiter {
    need: usize,
    key: Option<usize>,
}

impl Waiter {
    fn new(need: usize) -> Waiter {
        Waiter { need, key: None }
    }

    fn poll(&mut self, sem: &Semaphore, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = sem.state.borrow_mut();
        match self.key {
            None if st.waiters.is_empty() && st.permits >= self.need => {
                st.permits -= self.need;
                Poll::Ready(())
            }
            None => {
                let want = Want {
                    need: self.need,
                    granted: false,
                };
                self.key = Some(st.waiters.push(cx.waker(), want));
                Poll::Pending
            }
            Some(k) if st.waiters.state(k).granted => {
                st.waiters.remove(k);
                self.key = None;
                Poll::Ready(())
            }
            Some(k) => {
                st.waiters.set_waker(k, cx.waker());
                Poll::Pending
            }
        }
    }

    /// Leaves the line: permits handed over but not taken go back, and the next waiters are
    /// served (also when this one, needing many, was blocking the front).
    fn cancel(&mut self, sem: &Semaphore) {
        if let Some(k) = self.key.take() {
            let want = sem.state.borrow_mut().waiters.remove(k);
            if want.granted {
                sem.release(want.need);
            } else {
                sem.serve();
            }
        }
    }
}

/// The future of [`Semaphore::acquire`]: a [`SemaphorePermit`].
#[must_use = "futures do nothing unless awaited"]
pub struct Acquire<'a> {
    sem: &'a Semaphore,
    waiter: Waiter,
}

impl<'a> Future for Acquire<'a> {
    type Output = SemaphorePermit<'a>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<SemaphorePermit<'a>> {
        let this = self.get_mut();
        let sem = this.sem;
        this.waiter.poll(sem, cx).map(|()| SemaphorePermit {
            sem,
            n: this.waiter.need,
        })
    }
}

impl Drop for Acquire<'_> {
    fn drop(&mut self) {
        self.waiter.cancel(self.sem);
    }
}

impl fmt::Debug for Acquire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire")
            .field("need", &self.waiter.need)
            .field("waiting", &self.waiter.key.is_some())
            .finish()
    }
}

/// The future of [`Semaphore::acquire_owned`]: an [`OwnedSemaphorePermit`].
#[must_use = "futures do nothing unless awaited"]
pub struct AcquireOwned {
    sem: Rc<Semaphore>,
    waiter: Waiter,
}

impl Future for AcquireOwned {
    type Output = OwnedSemaphorePermit;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<OwnedSemaphorePermit> {
        let this = self.get_mut();
        this.waiter
            .poll(&this.sem, cx)
            .map(|()| OwnedSemaphorePermit {
                sem: this.sem.clone(),
                n: this.waiter.need,
            })
    }
}

impl Drop for AcquireOwned {
    fn drop(&mut self) {
        self.waiter.cancel(&self.sem);
    }
}

impl fmt::Debug for AcquireOwned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned")
            .field("need", &self.waiter.need)
            .field("waiting", &self.waiter.key.is_some())
            .finish()
    }
}

/// Permits borrowed from a [`Semaphore`], given back when dropped.
#[must_use = "the permits are given back as soon as this is dropped"]
pub struct SemaphorePermit<'a> {
    sem: &'a Semaphore,
    n: usize,
}

impl SemaphorePermit<'_> {
    /// How many permits this holds.
    pub fn permits(&self) -> usize {
        self.n
    }

    /// Keeps the permits out of the semaphore for good (they are not given back).
    pub fn forget(mut self) {
        self.n = 0;
    }
}

impl Drop for SemaphorePermit<'_> {
    fn drop(&mut self) {
        self.sem.release(self.n);
    }
}

impl fmt::Debug for SemaphorePermit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}

/// Permits that own a reference to their [`Semaphore`], given back when dropped.
#[must_use = "the permits are given back as soon as this is dropped"]
pub struct OwnedSemaphorePermit {
    sem: Rc<Semaphore>,
    n: usize,
}

impl OwnedSemaphorePermit {
    /// How many permits this holds.
    pub fn permits(&self) -> usize {
        self.n
    }

    /// The semaphore they came from.
    pub fn semaphore(&self) -> &Rc<Semaphore> {
        &self.sem
    }

    /// Keeps the permits out of the semaphore for good (they are not given back).
    pub fn forget(mut self) {
        self.n = 0;
    }
}

impl Drop for OwnedSemaphorePermit {
    fn drop(&mut self) {
        self.sem.release(self.n);
    }
}

impl fmt::Debug for OwnedSemaphorePermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedSemaphorePermit")
            .field("permits", &self.n)
            .finish()
    }
}

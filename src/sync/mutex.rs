//! [`Mutex`]: exclusive access to a value across awaits, granted in FIFO order.
//!
//! ```
//! use std::rc::Rc;
//! use solo::sync::Mutex;
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let log = Rc::new(Mutex::new(Vec::new()));
//! let tasks: Vec<_> = (0..3)
//!     .map(|i| {
//!         let log = log.clone();
//!         h.spawn(async move {
//!             let mut guard = log.lock().await;
//!             guard.push(i);
//!             solo::yield_now().await; // held across an await: nobody else gets in
//!             guard.push(i);
//!         })
//!     })
//!     .collect();
//! el.run_until_complete(async move {
//!     for t in tasks {
//!         t.await.unwrap();
//!     }
//! }).unwrap();
//! assert_eq!(*log.try_lock().unwrap(), [0, 0, 1, 1, 2, 2]);
//! ```
//!
//! It is a [`Semaphore`] of one permit with the value in a `RefCell` (no `unsafe`), so it
//! shares the semaphore's fairness and cancellation (the type's documentation says more).

use std::cell::{RefCell, RefMut};
use std::fmt;
use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::pin::Pin;
use std::task::{Context, Poll};

use super::semaphore::{Acquire, Semaphore, SemaphorePermit};
use super::TryLockError;

/// An async mutex for the tasks of one thread (not `Sync`): the lock is granted in FIFO order.
///
/// Only needed when the value must stay locked *across* an await: between awaits a task runs
/// alone on its loop, and a `RefCell` is enough. A task cancelled while it holds the guard (its
/// future dropped at an await) unlocks it, and the next waiter gets it; one cancelled while
/// waiting leaves the line.
pub struct Mutex<T: ?Sized> {
    lock: Semaphore,
    value: RefCell<T>,
}

impl<T> Mutex<T> {
    /// An unlocked mutex holding `value`.
    pub const fn new(value: T) -> Mutex<T> {
        Mutex {
            lock: Semaphore::new(1),
            value: RefCell::new(value),
        }
    }

    /// The value (no guard can exist: the mutex is owned).
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Waits for the lock, in line behind earlier callers.
    pub fn lock(&self) -> Lock<'_, T> {
        Lock {
            mutex: self,
            acquire: self.lock.acquire(),
        }
    }

    /// The lock, if it is free and nobody waits for it; never waits.
    pub fn try_lock(&self) -> Result<MutexGuard<'_, T>, TryLockError> {
        match self.lock.try_acquire() {
            Ok(permit) => Ok(self.guard(permit)),
            Err(_) => Err(TryLockError(())),
        }
    }

    /// Whether a guard exists now.
    pub fn is_locked(&self) -> bool {
        self.lock.available_permits() == 0
    }

    /// The value, through a unique borrow of the mutex (no guard can exist).
    pub fn get_mut(&mut self) -> &mut T {
        self.value.get_mut()
    }

    fn guard<'a>(&'a self, permit: SemaphorePermit<'a>) -> MutexGuard<'a, T> {
        MutexGuard {
            // The one permit is ours, and every guard drops its borrow before its permit: the
            // value is not borrowed.
            value: self.value.borrow_mut(),
            _permit: permit,
        }
    }
}

impl<T: Default> Default for Mutex<T> {
    fn default() -> Mutex<T> {
        Mutex::new(T::default())
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Mutex");
        match self.try_lock() {
            Ok(g) => d.field("value", &&*g),
            Err(_) => d.field("value", &format_args!("<locked>")),
        };
        d.finish()
    }
}

/// The future of [`Mutex::lock`].
#[must_use = "futures do nothing unless awaited"]
pub struct Lock<'a, T: ?Sized> {
    mutex: &'a Mutex<T>,
    acquire: Acquire<'a>,
}

impl<'a, T: ?Sized> Future for Lock<'a, T> {
    type Output = MutexGuard<'a, T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<MutexGuard<'a, T>> {
        let mutex = self.mutex;
        Pin::new(&mut self.acquire)
            .poll(cx)
            .map(|permit| mutex.guard(permit))
    }
}

impl<T: ?Sized> fmt::Debug for Lock<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock").finish_non_exhaustive()
    }
}

/// Exclusive access to a [`Mutex`]'s value; unlocks when dropped.
#[must_use = "the mutex unlocks as soon as the guard is dropped"]
pub struct MutexGuard<'a, T: ?Sized> {
    // Declared first: dropped before the permit, so the next owner finds the value unborrowed.
    value: RefMut<'a, T>,
    _permit: SemaphorePermit<'a>,
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: ?Sized + fmt::Debug> fmt::Debug for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.value, f)
    }
}

impl<T: ?Sized + fmt::Display> fmt::Display for MutexGuard<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&*self.value, f)
    }
}

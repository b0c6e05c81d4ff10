//! The cooperative budget: no task can keep the loop to itself because its I/O is always ready.
//!
//! ```
//! use std::{cell::Cell, rc::Rc, time::Duration};
//!
//! let el = solo::EventLoop::new().unwrap();
//! let (a, b) = std::os::unix::net::UnixStream::pair().unwrap();
//! drop(b); // `a` is now at end-of-file: always readable, every read returns at once
//! let timer_ran = Rc::new(Cell::new(false));
//! let t = timer_ran.clone();
//! el.handle().call_later(Duration::ZERO, move || t.set(true));
//! let reads = el.run_until_complete(async move {
//!     use futures_io::AsyncRead;
//!     let mut a = solo::Async::new(a).unwrap();
//!     let mut n = 0;
//!     // Without a budget this loop would never return to the loop, and the timer would wait.
//!     while !timer_ran.get() {
//!         let mut buf = [0u8; 1];
//!         let read = std::future::poll_fn(|cx| std::pin::Pin::new(&mut a).poll_read(cx, &mut buf));
//!         assert_eq!(read.await.unwrap(), 0);
//!         n += 1;
//!     }
//!     n
//! }).unwrap();
//! assert!(reads >= 1);
//! ```
//!
//! A future that loops over an operation which never returns `Pending` (a socket at end of
//! file, a listener whose `accept` keeps failing, a flood of data that arrives faster than it is
//! read) never gives the loop back: timers, signals and other tasks starve. tokio's answer,
//! followed here, is a budget: each poll of a task (or of the main future) may complete
//! [`BUDGET`] operations on solo's I/O types; once they are spent, the next operation returns
//! `Pending` after waking the task, which therefore runs again in the next iteration, behind
//! everything else that is ready. An operation that returns `Pending` on its own (`WouldBlock`)
//! costs nothing. Outside a task poll (a callback, a foreign executor) there is no budget.

use std::cell::Cell;
use std::task::{Context, Poll};

/// Operations one poll of a task may complete before it must yield (tokio's figure).
pub(crate) const BUDGET: u32 = 128;

/// No budget in force: the code is not inside a task poll.
const UNCONSTRAINED: u32 = u32::MAX;

/// A loop's budget: what is left to the task being polled. It lives in the loop's state, which
/// every I/O type reaches through its handle, rather than in a thread-local: two plain stores
/// per task poll.
#[derive(Debug)]
pub(crate) struct Budget {
    left: Cell<u32>,
}

impl Default for Budget {
    fn default() -> Budget {
        Budget {
            left: Cell::new(UNCONSTRAINED),
        }
    }
}

/// Lifts the budget when a poll ends, also when it unwinds.
struct Lift<'a>(&'a Cell<u32>);

impl Drop for Lift<'_> {
    fn drop(&mut self) {
        self.0.set(UNCONSTRAINED);
    }
}

impl Budget {
    /// Runs one poll of a task (or of the main future) with a fresh budget.
    #[inline]
    pub(crate) fn with_budget<R>(&self, f: impl FnOnce() -> R) -> R {
        self.left.set(BUDGET);
        let _lift = Lift(&self.left);
        f()
    }

    /// Called before an operation: spends one unit, or, if none is left, wakes the task and
    /// returns `Pending` so that it yields to the loop.
    #[inline]
    pub(crate) fn poll_proceed(&self, cx: &mut Context<'_>) -> Poll<()> {
        match self.left.get() {
            UNCONSTRAINED => Poll::Ready(()),
            0 => {
                cx.waker().wake_by_ref();
                Poll::Pending
            }
            n => {
                self.left.set(n - 1);
                Poll::Ready(())
            }
        }
    }

    /// Gives back the unit of an operation that made no progress (it saw `WouldBlock`).
    #[inline]
    pub(crate) fn refund(&self) {
        let n = self.left.get();
        if n < BUDGET {
            self.left.set(n + 1);
        }
    }
}

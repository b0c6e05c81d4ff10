//! [`Event`]: a flag that tasks wait for (asyncio's `Event`).
//!
//! ```
//! use std::rc::Rc;
//! use solo::sync::Event;
//!
//! let el = solo::EventLoop::new().unwrap();
//! let ready = Rc::new(Event::new());
//! let r = ready.clone();
//! let waiter = el.handle().spawn(async move {
//!     r.wait().await;
//!     "went"
//! });
//! let r = ready.clone();
//! el.handle().call_soon(move || r.set());
//! assert_eq!(el.run_until_complete(waiter).unwrap().unwrap(), "went");
//! assert!(ready.is_set());
//! ```
//!
//! The type's documentation says when a waiter returns.

use std::cell::RefCell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use super::wait_list::WaitList;

/// An event flag for the tasks of one thread (not `Sync`).
///
/// [`set`](Event::set) wakes every waiter; waiting on a set event returns at once (also when it
/// was set before anyone waited). A waiter woken by a `set` returns even if the event was
/// cleared again before it ran, as in asyncio: the `set` happened while it waited.
pub struct Event {
    state: RefCell<State>,
}

struct State {
    set: bool,
    waiters: WaitList<()>,
}

impl Event {
    /// An event that is not set.
    pub const fn new() -> Event {
        Event {
            state: RefCell::new(State {
                set: false,
                waiters: WaitList::new(),
            }),
        }
    }

    /// Whether the event is set.
    pub fn is_set(&self) -> bool {
        self.state.borrow().set
    }

    /// Sets the event and wakes every task waiting for it. Setting a set event does nothing.
    pub fn set(&self) {
        let mut st = self.state.borrow_mut();
        if st.set {
            return;
        }
        st.set = true;
        loop {
            // Served: out of the line, woken once the borrow ends.
            let Some(k) = st.waiters.front() else { return };
            let waker = st.waiters.unlink(k);
            drop(st);
            if let Some(w) = waker {
                w.wake();
            }
            st = self.state.borrow_mut();
        }
    }

    /// Clears the event: later waiters wait for the next [`set`](Event::set).
    pub fn clear(&self) {
        self.state.borrow_mut().set = false;
    }

    /// Waits until the event is set (returns at once if it is).
    pub fn wait(&self) -> Wait<'_> {
        Wait {
            event: self,
            key: None,
        }
    }
}

impl Default for Event {
    fn default() -> Event {
        Event::new()
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("set", &self.is_set())
            .finish()
    }
}

/// The future of [`Event::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct Wait<'a> {
    event: &'a Event,
    key: Option<usize>,
}

impl Future for Wait<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        let mut st = this.event.state.borrow_mut();
        match this.key {
            None if st.set => Poll::Ready(()),
            None => {
                this.key = Some(st.waiters.push(cx.waker(), ()));
                Poll::Pending
            }
            // Unlinked: a `set` served it, even if the event was cleared since.
            Some(k) if st.set || !st.waiters.is_linked(k) => {
                st.waiters.remove(k);
                this.key = None;
                Poll::Ready(())
            }
            Some(k) => {
                st.waiters.set_waker(k, cx.waker());
                Poll::Pending
            }
        }
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if let Some(k) = self.key.take() {
            self.event.state.borrow_mut().waiters.remove(k);
        }
    }
}

impl fmt::Debug for Wait<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wait")
            .field("waiting", &self.key.is_some())
            .finish()
    }
}

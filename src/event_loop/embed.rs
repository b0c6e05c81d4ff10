//! Driving solo from someone else's loop: a step, the fd to wait on, and how long to wait.
//!
//! ```
//! use std::os::fd::AsRawFd;
//! use std::time::Duration;
//!
//! let el = solo::EventLoop::new().unwrap();
//! el.handle().call_later(Duration::from_millis(5), || println!("tick"));
//! // A host loop: wait on solo's fd for as long as solo says, then step it without blocking.
//! for _ in 0..100 {
//!     let timeout = el.next_timeout();
//!     let ms = timeout.map_or(-1, |d| d.as_millis().min(1000) as i32);
//!     let mut pfd = libc::pollfd { fd: el.as_raw_fd(), events: libc::POLLIN, revents: 0 };
//!     // SAFETY: one valid pollfd.
//!     unsafe { libc::poll(&mut pfd, 1, ms) };
//!     el.run_once(Some(Duration::ZERO)).unwrap();
//!     if el.next_timeout().is_none() {
//!         break; // nothing left scheduled
//!     }
//! }
//! ```
//!
//! # The contract
//!
//! * [`EventLoop::run_once`] runs one full iteration, exactly as `run_forever` runs each of its
//!   own, waiting for I/O at most `max_wait`.
//! * The loop's fd ([`AsRawFd`], [`AsFd`]: the backend's epoll fd, on both backends) is
//!   *readable* when a step would find I/O, or work sent from another thread
//!   (`call_soon_threadsafe`, `Remote::spawn`, a task woken there), ready. Poll it for
//!   readability, level-triggered: its readiness may be spurious (a step then finds nothing),
//!   and it says nothing about work queued on the loop's own thread.
//! * So after every step, ask [`EventLoop::next_timeout`]: `Some(ZERO)` when callbacks or tasks
//!   are ready (step again without waiting), the time to the next timer, or `None` when nothing
//!   is scheduled (wait for the fd alone). A host that sleeps longer than that runs the timers
//!   late, in order; debug mode's `Stats::timer_lag_max` shows by how much.
//! * Polling the fd for writability, or edge-triggered, is not part of the contract: epoll's
//!   fd reports readability only, and an edge-triggered host may miss work that was already
//!   pending when it registered.
//!
//! # No hidden threads
//!
//! A loop starts no thread of its own: creating, running and stepping one happens on the
//! calling thread only. Threads exist only where the user asks for them: the `run_in_executor`
//! pool (its first job starts a thread), debug mode's watchdog (`debug(true)`, `SOLO_DEBUG`),
//! and whatever the user spawns. `tests/embedding.rs` and `tests/event_loop.rs` count the
//! process's threads to hold solo to it.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

use super::EventLoop;
use crate::error::RunError;

impl EventLoop {
    /// Runs one iteration of the loop, as `run_forever` runs each of its own, waiting for I/O
    /// at most `max_wait` (`Some(Duration::ZERO)` never blocks; `None` waits as long as the loop
    /// would: until the next timer, or an event). For hosts that have a loop of their own: see
    /// the module docs for the contract.
    ///
    /// Errors like the run entry points: [`RunError::AlreadyRunning`] inside a callback of this
    /// loop. A step *may* run inside another loop's callback (one solo loop embedded in
    /// another): that loop is suspended for the step, so give it a short `max_wait`. A `stop`
    /// during the step only ends that step.
    ///
    /// ```
    /// use std::time::Duration;
    /// let el = solo::EventLoop::new().unwrap();
    /// let t = el.handle().spawn(async { 1 + 1 });
    /// while !t.is_finished() {
    ///     el.run_once(Some(Duration::ZERO)).unwrap();
    /// }
    /// ```
    ///
    /// A loop that was shut down cannot be stepped: `shutdown` takes the loop.
    ///
    /// ```compile_fail
    /// let el = solo::EventLoop::new().unwrap();
    /// let _report = el.shutdown(std::time::Duration::ZERO);
    /// el.run_once(None).unwrap(); // error: `el` was moved into `shutdown`
    /// ```
    pub fn run_once(&self, max_wait: Option<Duration>) -> Result<(), RunError> {
        let inner = &self.handle.inner;
        let _guard = inner.start_stepping()?;
        inner.run_once(max_wait);
        Ok(())
    }

    /// How long the host may wait before the next step: `Some(Duration::ZERO)` when callbacks
    /// or tasks are ready (or work came from another thread), at most the time until the next
    /// timer (zero if it is overdue; the timer wheel may ask for a step earlier, to move a far
    /// timer closer), `None` when nothing is scheduled.
    ///
    /// ```
    /// use std::time::Duration;
    /// let el = solo::EventLoop::new().unwrap();
    /// assert_eq!(el.next_timeout(), None);
    /// el.handle().call_later(Duration::from_secs(60), || {});
    /// let t = el.next_timeout().unwrap();
    /// assert!(t > Duration::ZERO && t <= Duration::from_secs(60));
    /// el.handle().call_soon(|| {});
    /// assert_eq!(el.next_timeout(), Some(Duration::ZERO));
    /// ```
    pub fn next_timeout(&self) -> Option<Duration> {
        self.handle.inner.next_timeout()
    }
}

impl AsRawFd for EventLoop {
    /// The backend's fd (epoll's): readable when a step would find I/O or remote work ready.
    fn as_raw_fd(&self) -> RawFd {
        self.handle.inner.backend_fd()
    }
}

impl AsFd for EventLoop {
    fn as_fd(&self) -> BorrowedFd<'_> {
        // SAFETY: the fd is the backend's poller, owned by the reactor, which lives as long as
        // this `EventLoop` (the reactor is dropped with the loop's state) and never replaces it.
        unsafe { BorrowedFd::borrow_raw(self.as_raw_fd()) }
    }
}

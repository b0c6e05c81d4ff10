//! What a task is suspended at: the *leaf* await points, noted by solo's own futures when they
//! return `Pending` during a task's poll in debug mode, for the monitor's `ps` and `where`.
//!
//! ```
//! use std::time::Duration;
//!
//! let el = solo::EventLoop::builder().debug(true).build().unwrap();
//! let h = el.handle();
//! h.spawn_named("napper", solo::time::sleep(Duration::from_secs(60)));
//! h.call_soon({ let h = h.clone(); move || h.stop() });
//! el.run_forever().unwrap();
//! let task = &el.tasks()[0];
//! assert!(task.waiting_on[0].what.starts_with("sleep"), "{:?}", task.waiting_on);
//! // The line that called `sleep`:
//! assert_eq!(task.waiting_on[0].site.unwrap().file(), file!());
//! ```
//!
//! A future that cannot make progress returns `Pending` from the bottom of a chain of futures:
//! the user's `async fn`s, combinators, and at the leaf a solo future that registered a waker
//! (a sleep's timer, an fd's readiness, a `JoinHandle`, a `run_in_executor` job). The leaf is
//! what the task waits *on*; it notes itself here, with the site that created it where
//! `#[track_caller]` can carry one (`sleep`, `timeout`, `interval`, `accept`, `recv`, `send`,
//! `incoming`, `run_in_executor`). Reads and writes through the `futures-io` traits have no
//! such site: their leaf says which fd and direction.
//!
//! The loop's debug probe opens a recording around each task poll ([`begin`], [`end`]) and
//! stores what was noted in the task table. When no recording is open (debug mode off, or the
//! future is not polled by a task), noting is one test of a thread-local flag.
//!
//! # The chain of `async fn`s: `async-backtrace`
//!
//! The leaf says what a task waits on, not through which `async fn`s. To see those in `where`:
//! build solo with its `async-backtrace` feature, add `async-backtrace = "0.2"` to your own
//! dependencies, and mark the `async fn`s to show with `#[async_backtrace::framed]`. Each point
//! then keeps the chain of marked functions it was awaited through, innermost first.
//!
//! How the crate was fitted in, and why this way: its `taskdump_tree` dumps every framed task of
//! the process as one text, keyed by nothing solo knows (not by task), and with
//! `wait_for_running_tasks` it waits for a task being polled, which hangs a monitor asking while
//! the loop is stuck in one. Its `backtrace()`, though, answers on the polling thread from
//! inside the frames: exactly where a leaf notes itself. So the leaf calls it there, and the
//! chain lands in solo's task table with the point, under solo's task id, readable while the
//! loop is blocked. The cost is paid only with the feature and in debug mode: one allocation
//! per point noted. What it cannot show: functions not marked, and a task suspended on a future
//! that is not solo's (a channel, a lock), which notes no point at all.
//!
//! This module depends on nothing else in solo, so that the leaves (`time`, `net`, `task`,
//! `executor`) and `debug` can all use it without a circle.

use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::panic::Location;
use std::time::Instant;

/// What a leaf future waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Awaited {
    /// A sleep (also inside `timeout` and `interval`), until this deadline on the loop clock.
    Sleep(Instant),
    /// An fd's readiness: for reading (`write == false`, also `accept` and `recv`) or writing.
    Io { fd: RawFd, write: bool },
    /// Another task's `JoinHandle`: the task's slot in its loop and its spawn site.
    Join {
        slot: u32,
        site: &'static Location<'static>,
    },
    /// A `run_in_executor` job.
    Blocking,
}

/// One leaf await point of a task's last poll.
#[derive(Clone, Debug)]
pub(crate) struct Point {
    pub(crate) awaited: Awaited,
    /// Where the leaf future was created, when known.
    pub(crate) site: Option<&'static Location<'static>>,
    /// The `#[async_backtrace::framed]` functions it was awaited through, innermost first.
    #[cfg(feature = "async-backtrace")]
    pub(crate) chain: Option<Box<[async_backtrace::Location]>>,
}

/// A poll waiting on more leaves than this (a `join` of many) keeps the first ones.
const MAX_POINTS: usize = 4;

thread_local! {
    static RECORDING: Cell<bool> = const { Cell::new(false) };
    static POINTS: RefCell<Vec<Point>> = const { RefCell::new(Vec::new()) };
}

/// What an enclosing recording had noted, put back by [`end`] (a loop stepped inside another
/// loop's task: the outer poll's points are kept apart).
pub(crate) struct Saved(Option<Vec<Point>>);

/// Opens a recording for one task poll.
pub(crate) fn begin() -> Saved {
    let outer = RECORDING.with(|r| r.replace(true));
    let points = POINTS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    Saved(outer.then_some(points))
}

/// Closes the recording opened by [`begin`] and returns what was noted.
pub(crate) fn end(saved: Saved) -> Vec<Point> {
    let points = POINTS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    match saved.0 {
        Some(outer) => POINTS.with(|p| *p.borrow_mut() = outer),
        None => RECORDING.with(|r| r.set(false)),
    }
    points
}

/// Notes a leaf that returned `Pending`, if a task poll is being recorded. `awaited` is only
/// called then.
#[inline]
pub(crate) fn pending(awaited: impl FnOnce() -> Awaited, site: Option<&'static Location<'static>>) {
    if RECORDING.with(Cell::get) {
        note(awaited(), site);
    }
}

#[cold]
#[inline(never)]
fn note(awaited: Awaited, site: Option<&'static Location<'static>>) {
    POINTS.with(|p| {
        let mut p = p.borrow_mut();
        if let Some(same) = p.iter_mut().find(|x| x.awaited == awaited) {
            // Polled again in the same poll (a retry after `WouldBlock`): one point.
            same.site = same.site.or(site);
            return;
        }
        if p.len() < MAX_POINTS {
            p.push(Point {
                awaited,
                site,
                #[cfg(feature = "async-backtrace")]
                chain: async_backtrace::backtrace(),
            });
        }
    });
}

/// Gives the point noted last a site, if it has none: a `#[track_caller]` wrapper (say
/// `accept`) calls this when the leaf inside it returned `Pending`.
#[inline]
pub(crate) fn pending_at(site: &'static Location<'static>) {
    if RECORDING.with(Cell::get) {
        attach(site);
    }
}

#[cold]
#[inline(never)]
fn attach(site: &'static Location<'static>) {
    POINTS.with(|p| {
        if let Some(last) = p.borrow_mut().last_mut() {
            last.site = last.site.or(Some(site));
        }
    });
}

/// `fut`, whose leaf await point (if it returns `Pending`) gets `site` when it has none.
pub(crate) async fn at<F: std::future::Future>(
    site: &'static Location<'static>,
    fut: F,
) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(|cx| {
        let p = fut.as_mut().poll(cx);
        if p.is_pending() {
            pending_at(site);
        }
        p
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_noted_outside_a_recording_and_nesting_keeps_them_apart() {
        pending(|| Awaited::Blocking, None);
        let outer = begin();
        pending(
            || Awaited::Io {
                fd: 3,
                write: false,
            },
            None,
        );
        pending(
            || Awaited::Io {
                fd: 3,
                write: false,
            },
            None,
        ); // the same leaf again
        pending_at(Location::caller());
        let inner = begin();
        pending(|| Awaited::Blocking, None);
        let got = end(inner);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].awaited, Awaited::Blocking);
        let got = end(outer);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(
            got[0].awaited,
            Awaited::Io {
                fd: 3,
                write: false
            }
        );
        assert!(got[0].site.is_some());
        pending(|| Awaited::Blocking, None);
        assert!(end(begin()).is_empty(), "the recording was closed");
    }
}

#[cfg(all(test, feature = "async-backtrace"))]
mod chain_tests {
    use std::time::Duration;

    #[async_backtrace::framed]
    async fn outer() {
        inner().await
    }

    #[async_backtrace::framed]
    async fn inner() {
        crate::time::sleep(Duration::from_secs(3600)).await
    }

    #[test]
    fn framed_async_fns_make_the_chain_of_a_point() {
        let el = crate::EventLoop::builder().debug(true).build().unwrap();
        let h = el.handle();
        h.spawn(outer());
        h.stop();
        el.run_forever().unwrap();
        let t = &el.tasks()[0];
        let chain = &t.waiting_on[0].chain;
        assert_eq!(chain.len(), 2, "{chain:?}");
        assert!(chain[0].contains("inner"), "innermost first: {chain:?}");
        assert!(chain[1].contains("outer"), "{chain:?}");
    }
}

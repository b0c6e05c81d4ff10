//! The errors solo returns. Each says what went wrong in words a user can act on.

use std::any::Any;
use std::fmt;

/// Why a task produced no output.
///
/// ```
/// let el = solo::EventLoop::new().unwrap();
/// el.handle().set_exception_handler(|_| {}); // keep the test's output quiet
/// let task = el.handle().spawn(async { panic!("boom") });
/// let err = el.run_until_complete(task).unwrap().unwrap_err();
/// assert!(err.is_panic());
/// assert_eq!(err.to_string(), "task panicked: boom");
/// ```
pub struct JoinError {
    repr: Repr,
}

// Boxed twice so that a `JoinError` is one pointer wide: it sits in every task's cell.
enum Repr {
    Cancelled,
    Panicked(Box<Box<dyn Any + Send + 'static>>),
}

impl JoinError {
    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn panicked(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panicked(Box::new(payload)),
        }
    }

    /// The task was cancelled (by [`JoinHandle::cancel`](crate::JoinHandle::cancel), by shutdown,
    /// or because its loop was dropped).
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panicked(_))
    }

    /// The panic's payload, to re-raise it with [`std::panic::resume_unwind`]; `Err(self)` if
    /// the task was cancelled instead.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panicked(p) => Ok(*p),
            Repr::Cancelled => Err(self),
        }
    }
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Cancelled => f.write_str("task was cancelled"),
            Repr::Panicked(p) => write!(f, "task panicked: {}", panic_message(&***p)),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinError({self})")
    }
}

impl std::error::Error for JoinError {}

/// Why `run_forever` or `run_until_complete` could not run, or stopped early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RunError {
    /// The loop is already running (a callback called `run_*` on its own loop).
    AlreadyRunning,
    /// Another solo loop is running on this thread; loops do not nest.
    AnotherLoopRunning,
    /// `stop()` was called before the future given to `run_until_complete` finished.
    Stopped,
    /// The loop was shut down and accepts no more work.
    Closed,
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RunError::AlreadyRunning => "this event loop is already running",
            RunError::AnotherLoopRunning => {
                "cannot run the event loop while another loop is running on this thread"
            }
            RunError::Stopped => "event loop stopped before the future completed",
            RunError::Closed => "the event loop is closed",
        })
    }
}

impl std::error::Error for RunError {}

/// The loop a [`Remote`](crate::Remote) points at has been dropped or shut down; the work was
/// not queued and is returned to the caller inside this error where possible.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopClosed;

impl fmt::Display for LoopClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the event loop is closed")
    }
}

impl std::error::Error for LoopClosed {}

/// The message of a panic payload (`panic!` with a literal or a formatted string), or a
/// placeholder for other payloads.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "Box<dyn Any>"
    }
}

/// Drops a panic payload; a payload whose own destructor panics is forgotten instead, so that
/// containing a panic can never start a second one.
pub(crate) fn drop_payload(payload: Box<dyn Any + Send>) {
    if let Err(again) =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || drop(payload)))
    {
        std::mem::forget(again);
    }
}

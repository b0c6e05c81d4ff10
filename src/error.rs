//! The errors solo returns. Each says what went wrong in words a user can act on.

use std::any::Any;
use std::fmt;
use std::io;

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
///
/// An `io::Error` for the same condition carries [`Error::LoopClosed`] instead, which also
/// names the call that was refused; [`Error::is_loop_closed`] tests for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoopClosed;

impl fmt::Display for LoopClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the event loop is closed")
    }
}

impl std::error::Error for LoopClosed {}

/// What went wrong when solo itself (not the OS) fails an I/O call: carried inside the
/// [`io::Error`]s solo makes, so that a caller can tell the cases apart by matching, not by
/// reading the message.
///
/// Get it with [`Error::of`] (or `err.get_ref()` and `downcast_ref::<solo::Error>()`). The
/// `io::Error`'s message is this error's `Display`.
///
/// Their [`io::ErrorKind`] is [`Other`](io::ErrorKind::Other), on purpose: std reserves `Other`
/// for errors that no OS condition describes, which is exactly these (a call made with no loop
/// running, a loop already closed). The kinds that come close describe something else: a
/// program that retries on [`NotConnected`](io::ErrorKind::NotConnected) or
/// [`BrokenPipe`](io::ErrorKind::BrokenPipe) from its peer would retry a call that cannot
/// succeed, and [`InvalidInput`](io::ErrorKind::InvalidInput) would blame an argument that is
/// fine. Match this type instead.
///
/// ```
/// let err = solo::Async::new(std::os::unix::net::UnixStream::pair()?.0).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::Other);
/// match solo::Error::of(&err) {
///     Some(solo::Error::OutsideLoop { call }) => assert_eq!(*call, "Async::new"),
///     other => panic!("unexpected: {other:?}"),
/// }
/// assert_eq!(
///     err.to_string(),
///     "Async::new called outside a running solo event loop; start one with solo::run or #[solo::main]"
/// );
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// `call` needs the solo loop running on this thread, and none is. Start one with
    /// [`solo::run`](crate::run), [`EventLoop::run_until_complete`](crate::EventLoop) or
    /// `#[solo::main]`, or use the call's `with_handle` variant where it has one.
    OutsideLoop {
        /// The call the user made, as they wrote it (`"TcpListener::bind"`, `"solo::fs::read"`).
        call: &'static str,
    },
    /// The loop was dropped or shut down, so `call` was refused: it takes no new work, and the
    /// registrations it held went with it. [`LoopClosed`] is the same condition, reported by a
    /// [`Remote`](crate::Remote).
    LoopClosed {
        /// The call that was refused.
        call: &'static str,
    },
    /// A blocking job that `call` ran on the loop's thread pool panicked (with `message`).
    JobPanicked {
        /// The call that ran the job (`"solo::fs::read"`).
        call: &'static str,
        /// The panic's message.
        message: String,
    },
    /// A future that had already completed with an error was polled again.
    PolledAfterCompletion {
        /// The call that made the future.
        call: &'static str,
    },
}

impl Error {
    /// The solo error inside `err`, if solo made it.
    pub fn of(err: &io::Error) -> Option<&Error> {
        err.get_ref().and_then(|e| e.downcast_ref::<Error>())
    }

    /// The call the error is about, as the user wrote it.
    pub fn call(&self) -> &'static str {
        match self {
            Error::OutsideLoop { call }
            | Error::LoopClosed { call }
            | Error::JobPanicked { call, .. }
            | Error::PolledAfterCompletion { call } => call,
        }
    }

    /// Whether this is [`Error::LoopClosed`] (the condition [`LoopClosed`] reports).
    pub fn is_loop_closed(&self) -> bool {
        matches!(self, Error::LoopClosed { .. })
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::OutsideLoop { call } => write!(
                f,
                "{call} called outside a running solo event loop; start one with solo::run or \
                 #[solo::main]"
            ),
            Error::LoopClosed { call } => write!(
                f,
                "{call}: {LoopClosed} (it was dropped or shut down, and takes no more work)"
            ),
            Error::JobPanicked { call, message } => {
                write!(f, "{call}: its job on the thread pool panicked: {message}")
            }
            Error::PolledAfterCompletion { call } => {
                write!(f, "{call}: the future was polled again after it failed")
            }
        }
    }
}

impl std::error::Error for Error {}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        io::Error::other(e)
    }
}

/// The error of `call`, made with no solo loop running on this thread. Every "outside a running
/// loop" error goes through here, so they all read alike and all carry [`Error::OutsideLoop`];
/// its kind is [`Other`](io::ErrorKind::Other) (see [`Error`] for why).
pub(crate) fn outside_loop(call: &'static str) -> io::Error {
    Error::OutsideLoop { call }.into()
}

/// The error of `call` on a loop that was dropped or shut down ([`Error::LoopClosed`]).
pub(crate) fn loop_closed(call: &'static str) -> io::Error {
    Error::LoopClosed { call }.into()
}

/// The panic message for a free function (`solo::spawn`...) called with no loop running: it
/// names the call and says how to start a loop.
pub(crate) fn outside_loop_panic(call: &'static str) -> String {
    format!(
        "{call} called outside a running solo event loop; start one with solo::run, \
         EventLoop::run_until_complete or #[solo::main]"
    )
}

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

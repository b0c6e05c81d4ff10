//! Unix signals as futures and streams: [`ctrl_c`], and [`signal`] for any [`SignalKind`].
//!
//! ```
//! use futures::StreamExt;
//! use solo::signal::{signal, SignalKind};
//!
//! solo::run(async {
//!     let mut hangups = signal(SignalKind::hangup())?;
//!     // SAFETY: sending a signal to ourselves.
//!     unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
//!     assert_eq!(hangups.next().await, Some(()));
//!     Ok::<(), std::io::Error>(())
//! })??;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A [`Signal`] is a [`Stream`] of deliveries of one signal to this process. Each listener has
//! its own self-pipe (see `signal_pipe.rs`), so several listeners of one signal, on one loop or
//! on several loops on different threads, all see each delivery; they also coexist with
//! [`add_signal_handler`](crate::Handle::add_signal_handler) callbacks for the same signal.
//! A delivery is recorded at once, by the signal handler, even while the loop is not running or
//! nobody polls the stream; it is reported at the next poll. Deliveries between two polls come
//! out as one item: the kernel itself coalesces standard signals that arrive while one is
//! pending, so a count of items is a lower bound of the deliveries, never more.
//!
//! While any listener (a stream, a pending [`ctrl_c`], or a handler) exists, the signal's
//! default action is off: SIGINT no longer terminates the process. When the last one is dropped
//! the signal behaves as before (its default action, or the handler or ignoring that was in
//! place before solo).
//!
//! Streams end (`None`) when their loop is dropped; creating one on a closed loop, outside a
//! running loop (except with [`Signal::with_handle`]), or for a signal that cannot be handled
//! (SIGKILL, SIGSTOP, the fault signals, numbers out of range) is an error.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::error::{self, Error};
use crate::reactor::Dir;
use crate::signal_pipe::Listener;
use crate::{Async, Handle};

/// A signal, by name: `SignalKind::terminate()` rather than `15`. Any other signal number
/// through [`from_raw`](SignalKind::from_raw); whether it can be listened to is checked when a
/// [`Signal`] is made.
///
/// ```
/// use solo::signal::SignalKind;
/// assert_eq!(SignalKind::terminate().as_raw(), libc::SIGTERM);
/// assert_eq!(SignalKind::interrupt().to_string(), "SIGINT");
/// assert_eq!(SignalKind::from_raw(libc::SIGUSR1), SignalKind::user_defined1());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SignalKind(i32);

macro_rules! kinds {
    ($($(#[$doc:meta])* $name:ident => $sig:ident,)*) => {
        impl SignalKind {
            $(
                $(#[$doc])*
                pub const fn $name() -> SignalKind {
                    SignalKind(libc::$sig)
                }
            )*

            /// The signal's name (`"SIGTERM"`), for the signals with a constructor here.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $(libc::$sig => Some(stringify!($sig)),)*
                    _ => None,
                }
            }
        }
    };
}

kinds! {
    /// SIGINT: ctrl-c in a terminal.
    interrupt => SIGINT,
    /// SIGTERM: the polite request to stop (what `kill` and service managers send).
    terminate => SIGTERM,
    /// SIGHUP: the terminal went away; daemons often take it as "reload the configuration".
    hangup => SIGHUP,
    /// SIGQUIT: ctrl-\ in a terminal.
    quit => SIGQUIT,
    /// SIGALRM: a timer set with `alarm(2)` or `setitimer(2)` expired.
    alarm => SIGALRM,
    /// SIGCHLD: a child process exited, stopped or continued.
    child => SIGCHLD,
    /// SIGPIPE: a write to a pipe or socket nobody reads (Rust programs ignore it by default).
    pipe => SIGPIPE,
    /// SIGUSR1: for the application to define.
    user_defined1 => SIGUSR1,
    /// SIGUSR2: for the application to define.
    user_defined2 => SIGUSR2,
    /// SIGWINCH: the terminal window changed size.
    window_change => SIGWINCH,
    /// SIGIO: I/O is possible on an fd set up for signal-driven I/O.
    io => SIGIO,
}

impl SignalKind {
    /// Any signal by number (a `libc::SIG*` constant, or `libc::SIGRTMIN() + n`).
    pub const fn from_raw(signal: i32) -> SignalKind {
        SignalKind(signal)
    }

    /// The signal's number.
    pub const fn as_raw(self) -> i32 {
        self.0
    }
}

impl From<SignalKind> for i32 {
    fn from(kind: SignalKind) -> i32 {
        kind.0
    }
}

impl fmt::Display for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "signal {}", self.0),
        }
    }
}

impl fmt::Debug for SignalKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SignalKind({self})")
    }
}

/// Listens for `kind` on the loop running on this thread: a [`Signal`] stream of its
/// deliveries, from now on.
///
/// # Errors
/// - outside a running loop: [`Error::OutsideLoop`] (use
///   [`Signal::with_handle`] there);
/// - those of [`Signal::with_handle`].
pub fn signal(kind: SignalKind) -> io::Result<Signal> {
    let handle =
        Handle::try_current().ok_or_else(|| error::outside_loop("solo::signal::signal"))?;
    Signal::with_handle_for(kind, &handle, "solo::signal::signal")
}

/// The deliveries of one signal, as a [`Stream`] of `()` (or one at a time with
/// [`recv`](Signal::recv)). See the [module docs](self) for what is seen when.
///
/// ```
/// use solo::signal::{Signal, SignalKind};
/// let el = solo::EventLoop::new().unwrap();
/// // Made before the loop runs: deliveries from now on are kept for it.
/// let mut usr1 = Signal::with_handle(SignalKind::user_defined1(), &el.handle()).unwrap();
/// // SAFETY: sending a signal to ourselves.
/// unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
/// assert_eq!(el.run_until_complete(usr1.recv()).unwrap(), Some(()));
/// drop(el);
/// // The loop is gone: the stream has ended.
/// assert_eq!(futures::executor::block_on(usr1.recv()), None);
/// ```
pub struct Signal {
    kind: SignalKind,
    io: Async<Listener>,
    handle: Handle,
}

impl Signal {
    /// Listens for `kind` on the given loop (which need not be running yet).
    ///
    /// # Errors
    /// - on a closed loop: [`Error::LoopClosed`];
    /// - for signals that cannot be handled (SIGKILL, SIGSTOP, SIGSEGV, SIGILL, SIGFPE, numbers
    ///   out of range): `InvalidInput`;
    /// - with no fd left for the listener's pipe: the OS's error.
    pub fn with_handle(kind: SignalKind, handle: &Handle) -> io::Result<Signal> {
        Signal::with_handle_for(kind, handle, "Signal::with_handle")
    }

    fn with_handle_for(
        kind: SignalKind,
        handle: &Handle,
        call: &'static str,
    ) -> io::Result<Signal> {
        if handle.is_closed() {
            return Err(error::loop_closed(call));
        }
        let listener = Listener::new(kind.0)?;
        Ok(Signal {
            kind,
            io: Async::with_handle_for(listener, handle, call)?,
            handle: handle.clone(),
        })
    }

    /// The signal this listens for.
    pub fn kind(&self) -> SignalKind {
        self.kind
    }

    /// Waits for the next delivery (or the deliveries since the last one, as one). `None` once
    /// the loop is gone.
    pub async fn recv(&mut self) -> Option<()> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    /// Polls for the next delivery; see [`recv`](Signal::recv).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<()>> {
        if self.handle.is_closed() {
            return Poll::Ready(None);
        }
        let mut buf = [0u8; 64];
        match self.io.poll_read_stream(cx, &mut buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(n)) if n > 0 => {
                if n == buf.len() {
                    // More may be waiting: they are the same news. A short read cleared the
                    // cached readiness already; here the drain does.
                    self.io.get_ref().drain();
                    self.io.clear(Dir::Read);
                }
                Poll::Ready(Some(()))
            }
            // The write end is held by signal-hook until this listener is dropped, and the
            // registration by the loop until it closes, so neither an end of file nor an error
            // can come while the loop lives; should one come, the stream ends.
            Poll::Ready(_) => Poll::Ready(None),
        }
    }
}

impl Stream for Signal {
    type Item = ();

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<()>> {
        self.get_mut().poll_recv(cx)
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal").field("kind", &self.kind).finish()
    }
}

/// Completes when the process receives SIGINT (ctrl-c).
///
/// Inside a running loop, the listener is installed by this call, so a ctrl-c that comes
/// between the call and the first poll is not missed; outside one it is installed at the first
/// poll, which then must happen inside a running loop. While the future exists, ctrl-c does
/// not terminate the process.
///
/// # Errors
/// The future completes with an error (of kind `Other`):
/// - first polled outside a running loop, when made outside one:
///   [`Error::OutsideLoop`];
/// - when its loop is closed (dropped or shut down) before ctrl-c comes, or was already:
///   [`Error::LoopClosed`];
/// - polled again after it failed: [`Error::PolledAfterCompletion`];
/// - and those of [`Signal::with_handle`] (no fd left).
///
/// ```no_run
/// # fn main() -> std::io::Result<()> {
/// solo::run(async {
///     println!("press ctrl-c");
///     solo::signal::ctrl_c().await?;
///     println!("bye");
///     Ok::<(), std::io::Error>(())
/// })?
/// # }
/// ```
pub fn ctrl_c() -> CtrlC {
    let state = match Handle::try_current() {
        Some(h) => match Signal::with_handle_for(SignalKind::interrupt(), &h, CTRL_C) {
            Ok(s) => CtrlCState::Listening(s),
            Err(e) => CtrlCState::Failed(Some(e)),
        },
        None => CtrlCState::Lazy,
    };
    CtrlC { state }
}

/// The call the user made, for `ctrl_c`'s errors.
const CTRL_C: &str = "solo::signal::ctrl_c";

/// The future of [`ctrl_c`].
#[derive(Debug)]
#[must_use = "futures do nothing unless polled"]
pub struct CtrlC {
    state: CtrlCState,
}

#[derive(Debug)]
enum CtrlCState {
    Lazy,
    Listening(Signal),
    Failed(Option<io::Error>),
}

impl Future for CtrlC {
    type Output = io::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                CtrlCState::Lazy => {
                    this.state = match Handle::try_current() {
                        Some(h) => {
                            match Signal::with_handle_for(SignalKind::interrupt(), &h, CTRL_C) {
                                Ok(s) => CtrlCState::Listening(s),
                                Err(e) => CtrlCState::Failed(Some(e)),
                            }
                        }
                        None => CtrlCState::Failed(Some(error::outside_loop(CTRL_C))),
                    }
                }
                CtrlCState::Listening(s) => {
                    return match s.poll_recv(cx) {
                        Poll::Ready(Some(())) => Poll::Ready(Ok(())),
                        Poll::Ready(None) => Poll::Ready(Err(error::loop_closed(CTRL_C))),
                        Poll::Pending => Poll::Pending,
                    }
                }
                CtrlCState::Failed(e) => {
                    return Poll::Ready(Err(e
                        .take()
                        .unwrap_or_else(|| Error::PolledAfterCompletion { call: CTRL_C }.into())))
                }
            }
        }
    }
}

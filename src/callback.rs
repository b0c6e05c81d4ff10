//! What a callback is: a boxed closure that knows where it was scheduled, and the kinds of user
//! code the loop runs.
//!
//! ```
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! // The loop remembers this line as the callback's site: reports and the exception handler
//! // name it.
//! h.set_exception_handler(|ctx| assert_eq!(ctx.kind(), solo::CallbackKind::Soon));
//! h.call_soon(|| panic!("reported, not propagated"));
//! h.stop();
//! el.run_forever().unwrap();
//! ```
//!
//! This module depends on nothing else in the crate: the reactor, the debug mode and the
//! cross-thread queue all name callbacks, and the loop runs them.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};

/// What kind of user code is running, for reports and the exception handler.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CallbackKind {
    /// A `call_soon` callback.
    Soon,
    /// A `call_later` / `call_at` callback.
    Timer,
    /// An `add_reader` callback.
    Reader,
    /// An `add_writer` callback.
    Writer,
    /// A `call_soon_threadsafe` callback.
    Remote,
    /// A poll of a spawned task.
    Task,
    /// A poll of the future given to `run_until_complete`.
    Main,
    /// A signal handler.
    Signal,
    /// The loop itself, not user code: a failed wait for I/O, a waker that panicked.
    Loop,
}

impl fmt::Display for CallbackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CallbackKind::Soon => "callback",
            CallbackKind::Timer => "timer callback",
            CallbackKind::Reader => "reader callback",
            CallbackKind::Writer => "writer callback",
            CallbackKind::Remote => "threadsafe callback",
            CallbackKind::Task => "task",
            CallbackKind::Main => "main future",
            CallbackKind::Signal => "signal handler",
            CallbackKind::Loop => "event loop",
        })
    }
}

/// A one-shot callback that knows where it was scheduled and can name its type (for debug
/// reports). The site lives in the callback's own box, which is allocated anyway, so a
/// ready-queue entry stays 32 bytes; the type name is a constant in the vtable.
pub(crate) trait Callback {
    /// Runs the callback, catching a panic (one indirect call, with the panic guard inside).
    fn call(self: Box<Self>) -> Result<(), CallbackPanic>;
    fn site(&self) -> &'static Location<'static>;
    fn type_name(&self) -> &'static str;
}

/// A panic caught in a callback, and where the callback was scheduled.
pub(crate) struct CallbackPanic {
    pub(crate) payload: Box<dyn std::any::Any + Send>,
    pub(crate) site: &'static Location<'static>,
}

/// A closure and its scheduling site.
pub(crate) struct Sited<F> {
    pub(crate) site: &'static Location<'static>,
    pub(crate) f: F,
}

impl<F: FnOnce()> Callback for Sited<F> {
    fn call(self: Box<Self>) -> Result<(), CallbackPanic> {
        let Sited { site, f } = *self;
        catch_unwind(AssertUnwindSafe(f)).map_err(|payload| CallbackPanic { payload, site })
    }
    fn site(&self) -> &'static Location<'static> {
        self.site
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<F>()
    }
}

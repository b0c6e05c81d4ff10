//! Where a panic from user code goes: the exception handler (asyncio's
//! `set_exception_handler`), or stderr. Either way the loop keeps running.
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let seen = Rc::new(RefCell::new(String::new()));
//! let s = seen.clone();
//! h.set_exception_handler(move |ctx| *s.borrow_mut() = ctx.to_string());
//! h.call_soon(|| panic!("oops"));
//! h.stop();
//! el.run_forever().unwrap();
//! assert!(seen.borrow().starts_with("solo: callback (scheduled at "));
//! assert!(seen.borrow().ends_with(") failed: panicked: oops"));
//! ```

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;

use super::{Handle, Inner};
use crate::callback::CallbackKind;
use crate::error::{drop_payload, panic_message};

/// What the exception handler is told about a panic in a callback or task.
#[derive(Debug)]
pub struct ExceptionContext<'a> {
    kind: CallbackKind,
    site: &'static Location<'static>,
    task_name: Option<&'a str>,
    message: &'a str,
}

impl ExceptionContext<'_> {
    /// What panicked.
    pub fn kind(&self) -> CallbackKind {
        self.kind
    }
    /// Where it was scheduled, registered or spawned (for [`CallbackKind::Loop`], where in solo
    /// the error was seen).
    pub fn site(&self) -> &'static Location<'static> {
        self.site
    }
    /// The task's name, for tasks spawned with [`Handle::spawn_named`].
    pub fn task_name(&self) -> Option<&str> {
        self.task_name
    }
    /// The panic message (or a description of the error).
    pub fn message(&self) -> &str {
        self.message
    }
}

impl fmt::Display for ExceptionContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.kind == CallbackKind::Loop {
            return write!(f, "solo: event loop: {}", self.message);
        }
        write!(f, "solo: {}", self.kind)?;
        if let Some(n) = self.task_name {
            write!(f, " {n:?}")?;
        }
        let verb = match self.kind {
            CallbackKind::Task => "spawned",
            CallbackKind::Reader | CallbackKind::Writer | CallbackKind::Signal => "registered",
            _ => "scheduled",
        };
        write!(f, " ({verb} at {}) failed: {}", self.site, self.message)
    }
}

pub(super) type ExceptionHandler = Rc<dyn Fn(&ExceptionContext<'_>)>;

impl Inner {
    /// Reports a panic caught in user code of this kind, scheduled at `site`.
    pub(super) fn report_panic(
        &self,
        kind: CallbackKind,
        site: &'static Location<'static>,
        task_name: Option<&str>,
        payload: &(dyn std::any::Any + Send),
    ) {
        let msg = format!("panicked: {}", panic_message(payload));
        self.report(&ExceptionContext {
            kind,
            site,
            task_name,
            message: &msg,
        });
    }

    /// Reports an error that is not a panic (an fd closed while registered, a failed poll).
    pub(super) fn report_error(
        &self,
        kind: CallbackKind,
        site: &'static Location<'static>,
        msg: &str,
    ) {
        self.report(&ExceptionContext {
            kind,
            site,
            task_name: None,
            message: msg,
        });
    }

    /// Drops `value`, which may run user code (a callback's captures, a future, a waker),
    /// catching a panic from its destructor and reporting it as one of this kind's, scheduled
    /// or registered at `site`. The loop and its caller never see the unwind.
    pub(super) fn drop_guarded<T>(
        &self,
        value: T,
        kind: CallbackKind,
        site: &'static Location<'static>,
    ) {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
            self.report_destructor_panic(kind, site, None, payload);
        }
    }

    /// Reports a panic from a destructor of user code.
    pub(super) fn report_destructor_panic(
        &self,
        kind: CallbackKind,
        site: &'static Location<'static>,
        task_name: Option<&str>,
        payload: Box<dyn std::any::Any + Send>,
    ) {
        let msg = format!("panicked in its destructor: {}", panic_message(&*payload));
        drop_payload(payload);
        self.report(&ExceptionContext {
            kind,
            site,
            task_name,
            message: &msg,
        });
    }

    /// Reports a task that panicked (`msg` says how), with its name if it has one.
    pub(super) fn report_task_failure(
        &self,
        site: &'static Location<'static>,
        task_name: Option<&str>,
        msg: &str,
    ) {
        self.report(&ExceptionContext {
            kind: CallbackKind::Task,
            site,
            task_name,
            message: msg,
        });
    }

    /// Tells the exception handler something it should know that is not a failure of user
    /// code (an accept loop backing off): kind [`CallbackKind::Loop`], at the user's `site`.
    pub(crate) fn report_notice(&self, site: &'static Location<'static>, msg: &str) {
        self.report_error(CallbackKind::Loop, site, msg);
    }

    /// Reports an error of the loop itself (kind [`CallbackKind::Loop`]); the site is the place
    /// in solo that saw it.
    #[track_caller]
    pub(super) fn report_loop_error(&self, msg: &str) {
        self.report_error(CallbackKind::Loop, Location::caller(), msg);
    }

    fn report(&self, ctx: &ExceptionContext<'_>) {
        let handler = self.exception_handler.borrow().clone();
        match handler {
            Some(h) => {
                // A panicking handler must not take the loop down either.
                if catch_unwind(AssertUnwindSafe(|| h(ctx))).is_err() {
                    eprintln!("{ctx}");
                    eprintln!("solo: the exception handler itself panicked");
                }
            }
            None => eprintln!("{ctx}"),
        }
    }
}

impl Handle {
    /// Sets where panics from callbacks and tasks go. The default prints the
    /// [`ExceptionContext`] to stderr; either way the loop keeps running.
    ///
    /// ```
    /// use std::{cell::RefCell, rc::Rc};
    /// let el = solo::EventLoop::new().unwrap();
    /// let h = el.handle();
    /// let seen = Rc::new(RefCell::new(String::new()));
    /// let s = seen.clone();
    /// h.set_exception_handler(move |ctx| *s.borrow_mut() = ctx.message().to_string());
    /// h.call_soon(|| panic!("oops"));
    /// h.stop();
    /// el.run_forever().unwrap();
    /// assert_eq!(*seen.borrow(), "panicked: oops");
    /// ```
    pub fn set_exception_handler(&self, f: impl Fn(&ExceptionContext<'_>) + 'static) {
        let old = self
            .inner
            .exception_handler
            .borrow_mut()
            .replace(Rc::new(f));
        self.inner
            .drop_guarded(old, CallbackKind::Loop, Location::caller());
    }
}

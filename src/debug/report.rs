//! Reports: what debug mode tells the user, and how it reads on screen.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::Duration;
//!
//! let seen = Arc::new(Mutex::new(Vec::new()));
//! let s = seen.clone();
//! let el = solo::EventLoop::builder()
//!     .debug(true)
//!     .slow_callback_duration(Duration::from_millis(5))
//!     .on_slow(move |r| s.lock().unwrap().push(r.to_string()))
//!     .build()
//!     .unwrap();
//! let h = el.handle();
//! h.call_soon(|| std::thread::sleep(Duration::from_millis(20)));
//! h.stop();
//! el.run_forever().unwrap();
//! let seen = seen.lock().unwrap();
//! // solo: slow callback (scheduled at src/main.rs:12:3) took 0.020 s; move blocking work to ...
//! assert!(seen[0].starts_with("solo: slow callback (scheduled at "), "{}", seen[0]);
//! ```

use std::fmt;
use std::panic::Location;
use std::time::Duration;

use crate::callback::CallbackKind;

/// What a [`Report`] is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportKind {
    /// One callback or poll ran longer than `slow_callback_duration`.
    SlowCallback,
    /// One iteration's callbacks together ran longer than `slow_callback_duration`.
    SlowIteration,
    /// The watchdog found the loop stuck in one callback or poll (it has not returned yet).
    Blocked,
    /// A task is pending and no waker for it exists: it can never be woken again.
    LostWaker,
    /// A task was still pending when its loop was dropped.
    PendingAtDrop,
    /// A task panicked and its `JoinHandle` was dropped without looking at the error.
    UnretrievedPanic,
}

/// One contributor to a slow iteration.
#[derive(Clone, Debug)]
pub struct Contributor {
    /// What ran.
    pub kind: CallbackKind,
    /// Where it was scheduled or spawned.
    pub site: &'static Location<'static>,
    /// The task's name, if it was a named task.
    pub name: Option<String>,
    /// How long it ran.
    pub duration: Duration,
}

/// A debug-mode report, handed to the [`on_slow`](crate::Builder::on_slow) hook (or printed to
/// stderr by default). Its `Display` is the one-line message.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    /// What the report is about.
    pub kind: ReportKind,
    /// The kind of callback concerned.
    pub callback: CallbackKind,
    /// Where it was scheduled, registered or spawned.
    pub site: &'static Location<'static>,
    /// The task's name (named tasks), if any.
    pub name: Option<String>,
    /// The closure's or future's type, where known.
    pub type_name: Option<&'static str>,
    /// How long it ran (for `Blocked`: so far; for `SlowIteration`: the whole iteration).
    pub duration: Duration,
    /// For `SlowIteration`: the three callbacks that took longest.
    pub top: Vec<Contributor>,
    /// For `Blocked`: the task table at that moment, as printed by
    /// [`format_task_table`](super::format_task_table).
    pub task_table: Option<String>,
    /// For `Blocked`: the loop thread's stack at that moment, innermost frame first (Linux).
    pub backtrace: Option<String>,
    /// For `Blocked`, with [`trace_on_block`](crate::Builder::trace_on_block): the trace of
    /// the seconds before the block (Chrome trace-event JSON), or why it could not be written.
    pub trace: Option<Result<std::path::PathBuf, String>>,
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}

fn describe(kind: CallbackKind, name: Option<&str>, site: &Location<'_>) -> String {
    let verb = match kind {
        CallbackKind::Task => "spawned",
        CallbackKind::Reader | CallbackKind::Writer | CallbackKind::Signal => "registered",
        CallbackKind::Main => "run",
        _ => "scheduled",
    };
    match name {
        Some(n) => format!("{kind} {n:?} ({verb} at {site})"),
        None => format!("{kind} ({verb} at {site})"),
    }
}

const ADVICE: &str = "move blocking work to run_in_executor";

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = describe(self.callback, self.name.as_deref(), self.site);
        match self.kind {
            ReportKind::SlowCallback => {
                let poll = if matches!(self.callback, CallbackKind::Task | CallbackKind::Main) {
                    " in one poll"
                } else {
                    ""
                };
                write!(
                    f,
                    "solo: slow {who} took {}{poll}; {ADVICE}",
                    secs(self.duration)
                )?;
                // Without a task name, the closure's or future's type is the best identity.
                if let (None, Some(t)) = (&self.name, self.type_name) {
                    write!(f, " [{t}]")?;
                }
                Ok(())
            }
            ReportKind::SlowIteration => {
                write!(f, "solo: slow iteration took {}; top:", secs(self.duration))?;
                for (i, c) in self.top.iter().enumerate() {
                    let sep = if i == 0 { " " } else { ", " };
                    write!(
                        f,
                        "{sep}{} {}",
                        describe(c.kind, c.name.as_deref(), c.site),
                        secs(c.duration)
                    )?;
                }
                write!(f, "; {ADVICE}")
            }
            ReportKind::Blocked => {
                write!(
                    f,
                    "solo: loop blocked for {} in {who}, still running; {ADVICE}",
                    secs(self.duration)
                )?;
                if let Some(t) = &self.task_table {
                    write!(f, "\n{t}")?;
                }
                if let Some(b) = &self.backtrace {
                    write!(f, "  loop thread stack:\n{b}")?;
                }
                match &self.trace {
                    Some(Ok(p)) => writeln!(f, "  trace of the seconds before: {}", p.display())?,
                    Some(Err(e)) => writeln!(f, "  no trace of the seconds before: {e}")?,
                    None => {}
                }
                Ok(())
            }
            ReportKind::LostWaker => write!(
                f,
                "solo: {who} is pending but no waker for it is left: it can never run again"
            ),
            ReportKind::PendingAtDrop => {
                write!(f, "solo: {who} was still pending when its loop was dropped")
            }
            ReportKind::UnretrievedPanic => write!(
                f,
                "solo: {who} panicked and nobody retrieved the error (its JoinHandle was dropped)"
            ),
        }
    }
}

pub(crate) fn lint(
    kind: ReportKind,
    site: &'static Location<'static>,
    name: Option<String>,
) -> Report {
    Report {
        kind,
        callback: CallbackKind::Task,
        site,
        name,
        type_name: None,
        duration: Duration::ZERO,
        top: Vec::new(),
        task_table: None,
        backtrace: None,
        trace: None,
    }
}

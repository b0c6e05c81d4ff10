//! The loop's side of the monitor (`src/monitor/`): what it asks the loop to do, on the loop
//! thread, and the API that registers user commands.
//!
//! ```
//! let el = solo::EventLoop::builder().monitor("127.0.0.1:0").build().unwrap();
//! let h = el.handle();
//! h.monitor_command("uptime", "uptime: how long this loop has run", {
//!     let born = h.time();
//!     let h = h.clone();
//!     move |_args| format!("{:.1} s", (h.time() - born).as_secs_f64())
//! })
//! .unwrap();
//! // A name taken by a built-in command, or with spaces, is refused:
//! assert!(h.monitor_command("ps", "", |_| String::new()).is_err());
//! println!("nc {}", el.monitor_addr().unwrap());
//! ```
//!
//! The monitor's threads never touch `Inner`: a command that needs the loop (`cancel`, a user
//! command) is a callback on the remote queue that calls [`on_loop`] with a [`LoopRequest`];
//! `on_loop` finds the running loop and answers with text, which goes back to the client.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::rc::Rc;

use super::{with_current, EventLoop, Handle, Inner};
use crate::monitor::{LoopRequest, Monitor, MonitorAddr, UserCommand};
use crate::task;

/// A user command's function.
type UserFn = Rc<dyn Fn(&str) -> String>;

/// The monitor, as the loop holds it.
pub(super) struct LoopMonitor {
    pub(super) monitor: Monitor,
    commands: RefCell<HashMap<String, UserFn>>,
}

impl LoopMonitor {
    pub(super) fn new(monitor: Monitor) -> LoopMonitor {
        LoopMonitor {
            monitor,
            commands: RefCell::new(HashMap::new()),
        }
    }
}

/// Runs a monitor request on the loop thread (the remote queue's callback calls it).
pub(super) fn on_loop(req: LoopRequest) -> String {
    match with_current(|i| i.cloned()) {
        Some(inner) => inner.monitor_request(req),
        None => "error: no loop is running on this thread".into(),
    }
}

impl Inner {
    fn monitor_request(&self, req: LoopRequest) -> String {
        match req {
            LoopRequest::Cancel(id) => self.cancel_by_id(id),
            LoopRequest::User { name, args } => {
                let f = self
                    .monitor
                    .as_ref()
                    .and_then(|m| m.commands.borrow().get(&name).cloned());
                let Some(f) = f else {
                    return format!("error: `{name}` is no longer a command");
                };
                match catch_unwind(AssertUnwindSafe(|| f(&args))) {
                    Ok(text) => text,
                    Err(p) => {
                        let msg = crate::error::panic_message(&*p).to_string();
                        crate::error::drop_payload(p);
                        format!("error: command `{name}` panicked: {msg}")
                    }
                }
            }
        }
    }

    /// `cancel ID`: as `JoinHandle::cancel` on the task with that debug id.
    fn cancel_by_id(&self, id: u64) -> String {
        let slot = self.debug().and_then(|d| d.shared().slot_of(id));
        let task = slot.and_then(|s| self.tasks.borrow().get(s as usize).cloned());
        let Some(task) = task else {
            return format!("cancel {id}: task {id} has finished (or was cancelled) meanwhile");
        };
        let name = self
            .task_name(task.header().slot.get())
            .map_or_else(String::new, |n| format!(" ({n})"));
        if task.state() & task::CANCEL != 0 {
            return format!("cancel {id}: task {id}{name} is already being cancelled");
        }
        task.request_cancel();
        format!(
            "cancel {id}: task {id}{name} cancelled; its future is dropped at the loop's next \
             turn, and its JoinHandle yields a cancelled JoinError"
        )
    }
}

impl Handle {
    /// Registers a monitor command (aiomonitor's custom commands): a client's line `NAME ARGS`
    /// runs `f(ARGS)` **on the loop**, as a callback, and its text is the reply. So `f` may use
    /// the loop's state (`Rc`s, handles, tasks) like any callback; and like any callback, it
    /// blocks the loop while it runs. While the loop is blocked by something else, the client is
    /// told the command is queued, and gets the reply when it has run.
    ///
    /// `name` is one word, at most 32 characters, not a built-in command (`help`, `ps`,
    /// `where`...); otherwise an [`InvalidInput`](io::ErrorKind::InvalidInput) error. A second
    /// registration of a name replaces the first. Without a monitor this does nothing (and
    /// succeeds), so a program can register its commands unconditionally.
    ///
    /// A panic in `f` is caught and becomes the reply (`error: command ... panicked: ...`).
    #[track_caller]
    pub fn monitor_command(
        &self,
        name: &str,
        help: &str,
        f: impl Fn(&str) -> String + 'static,
    ) -> io::Result<()> {
        let bad = |why: &str| {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("solo monitor: `{name}` cannot be a command: {why}"),
            ))
        };
        if name.is_empty() || name.len() > 32 || name.chars().any(|c| c.is_whitespace()) {
            return bad("a command is one word of 1 to 32 characters");
        }
        if Monitor::is_builtin(&name.to_ascii_lowercase()) {
            return bad("it is a built-in command");
        }
        let Some(m) = &self.inner.monitor else {
            return Ok(());
        };
        m.commands.borrow_mut().insert(name.to_string(), Rc::new(f));
        m.monitor.add_user_command(UserCommand {
            name: name.to_string(),
            help: if help.is_empty() {
                name.to_string()
            } else {
                help.to_string()
            },
            site: Location::caller(),
        });
        Ok(())
    }

    /// Where the loop's monitor listens, if it has one (with the port it got, for port 0).
    pub fn monitor_addr(&self) -> Option<MonitorAddr> {
        self.inner
            .monitor
            .as_ref()
            .map(|m| m.monitor.addr().clone())
    }
}

impl EventLoop {
    /// Where the loop's monitor listens, if it has one ([`Builder::monitor`](super::Builder::monitor),
    /// `SOLO_MONITOR`).
    pub fn monitor_addr(&self) -> Option<MonitorAddr> {
        self.handle.monitor_addr()
    }
}

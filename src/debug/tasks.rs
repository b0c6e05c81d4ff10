//! The task table: one row per live task (like aiomonitor's `ps`), kept behind a mutex so
//! that other threads (the watchdog, a [`Remote`](crate::Remote)) can read it while the loop
//! is stuck.
//!
//! ```
//! let el = solo::EventLoop::builder().debug(true).build().unwrap();
//! let h = el.handle();
//! h.spawn_named("sleeper", std::future::pending::<()>());
//! h.call_soon({ let h = h.clone(); move || h.stop() });
//! el.run_forever().unwrap();
//! let table = el.tasks();
//! assert_eq!(table[0].name.as_deref(), Some("sleeper"));
//! assert_eq!(table[0].state, solo::debug::TaskState::Waiting);
//! print!("{}", solo::debug::format_task_table(&table));
//! ```

use std::collections::HashMap;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::report::lint;
use super::shared::lock;
use super::{Debug, ReportKind};
use crate::await_point::{Awaited, Point};

/// A task's state in the task table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskState {
    /// In the ready queue, waiting for its turn.
    Scheduled,
    /// Pending, waiting to be woken.
    Waiting,
    /// Being polled right now.
    Running,
}

/// One row of the task table (like aiomonitor's `ps`).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct TaskSnapshot {
    /// A unique id (spawn order).
    pub id: u64,
    /// Its name, for named tasks.
    pub name: Option<String>,
    /// Where it was spawned.
    pub site: &'static Location<'static>,
    /// Scheduled, waiting or running.
    pub state: TaskState,
    /// How many times it was polled.
    pub polls: u64,
    /// Total time spent in its polls (loop clock).
    pub busy: Duration,
    /// Time since it was spawned (real time).
    pub age: Duration,
    /// What it was suspended at when its last poll returned: the solo futures it waits on
    /// (empty when it waits on something else, or has not been polled yet).
    pub waiting_on: Vec<AwaitPoint>,
}

/// A leaf await point: a solo future a task waits on (see [`TaskSnapshot::waiting_on`]).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AwaitPoint {
    /// What it waits for, in words: `sleep, 0.420 s left`, `read on fd 7`, `write on fd 7`,
    /// `JoinHandle of task 3`, `run_in_executor job`.
    pub what: String,
    /// Where that future was created, when solo knows (`sleep`, `timeout`, `interval`,
    /// `accept`, `incoming`, `recv`, `send`, `run_in_executor`: their callers' lines).
    pub site: Option<&'static Location<'static>>,
    /// The `async fn`s it was awaited through, innermost first, as `name at file:line:col`:
    /// those marked `#[async_backtrace::framed]`, with solo's `async-backtrace` feature on.
    /// Empty otherwise.
    pub chain: Vec<String>,
}

impl std::fmt::Display for AwaitPoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.site {
            Some(site) => write!(f, "{} at {site}", self.what),
            None => f.write_str(&self.what),
        }
    }
}

/// Describes a noted point; `ids` maps live slots to (task id, spawn site, name).
pub(super) fn describe(
    p: &Point,
    ids: &HashMap<u32, (u64, &'static Location<'static>, Option<String>)>,
) -> AwaitPoint {
    let what = match p.awaited {
        Awaited::Sleep(deadline) => {
            let now = Instant::now();
            if deadline >= now {
                format!("sleep, {:.3} s left", (deadline - now).as_secs_f64())
            } else {
                format!("sleep, due {:.3} s ago", (now - deadline).as_secs_f64())
            }
        }
        Awaited::Io { fd, write: false } => format!("read on fd {fd}"),
        Awaited::Io { fd, write: true } => format!("write on fd {fd}"),
        Awaited::Join { slot, site } => match ids.get(&slot) {
            Some((id, s, name)) if std::ptr::eq(*s, site) => match name {
                Some(n) => format!("JoinHandle of task {id} ({n})"),
                None => format!("JoinHandle of task {id}"),
            },
            _ => format!("JoinHandle of a task spawned at {site}"),
        },
        Awaited::Blocking => "run_in_executor job".to_string(),
    };
    AwaitPoint {
        what,
        site: p.site,
        #[cfg(feature = "async-backtrace")]
        chain: p
            .chain
            .iter()
            .flat_map(|c| c.iter())
            .map(|l| l.to_string())
            .collect(),
        #[cfg(not(feature = "async-backtrace"))]
        chain: Vec::new(),
    }
}

/// Prints a task table: one row per task, the last column what it waits on (its first await
/// point, and how many more).
pub fn format_task_table(tasks: &[TaskSnapshot]) -> String {
    let sites: Vec<String> = tasks.iter().map(|t| t.site.to_string()).collect();
    let width = sites.iter().map(String::len).max().unwrap_or(0).max(10);
    let mut s = format!(
        "{:>6}  {:<10} {:>7} {:>10} {:>9}  {:<16} {:<width$}  waiting on\n",
        "id", "state", "polls", "busy", "age", "name", "spawned at"
    );
    for (t, site) in tasks.iter().zip(&sites) {
        let waiting = match t.waiting_on.as_slice() {
            [] => "-".to_string(),
            [one] => one.to_string(),
            [first, rest @ ..] => format!("{first} (+{} more)", rest.len()),
        };
        let row = format!(
            "{:>6}  {:<10} {:>7} {:>10} {:>9}  {:<16} {site:<width$}  {waiting}",
            t.id,
            format!("{:?}", t.state).to_lowercase(),
            t.polls,
            format!("{:.3}s", t.busy.as_secs_f64()),
            format!("{:.1}s", t.age.as_secs_f64()),
            t.name.as_deref().unwrap_or("-"),
        );
        s.push_str(row.trim_end());
        s.push('\n');
    }
    s
}

/// A row of the table as the loop keeps it.
pub(super) struct TaskInfo {
    pub(super) id: u64,
    pub(super) name: Option<Arc<str>>,
    pub(super) site: &'static Location<'static>,
    pub(super) state: TaskState,
    pub(super) polls: u64,
    pub(super) busy_ns: u64,
    pub(super) born: Instant,
    pub(super) lost_reported: bool,
    /// The leaf await points of its last poll.
    pub(super) waits: Vec<Point>,
}

impl Debug {
    // ---- the task table ----

    #[cold]
    #[inline(never)]
    pub(crate) fn task_spawned(
        &self,
        slot: u32,
        site: &'static Location<'static>,
        name: Option<&str>,
    ) {
        let next = &self.shared.next_task_id;
        let id = next.load(Ordering::Relaxed);
        next.store(id + 1, Ordering::Relaxed);
        lock(&self.shared.tasks).insert(
            slot,
            TaskInfo {
                id,
                name: name.map(Arc::from),
                site,
                state: TaskState::Scheduled,
                polls: 0,
                busy_ns: 0,
                born: Instant::now(),
                lost_reported: false,
                waits: Vec::new(),
            },
        );
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn task_state(&self, slot: u32, state: TaskState) {
        if let Some(t) = lock(&self.shared.tasks).get_mut(&slot) {
            t.state = state;
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn task_polled(&self, slot: u32, ns: u64, state: TaskState, waits: Vec<Point>) {
        if let Some(t) = lock(&self.shared.tasks).get_mut(&slot) {
            t.polls += 1;
            t.busy_ns += ns;
            t.state = state;
            t.waits = waits;
        }
    }

    #[cold]
    #[inline(never)]
    pub(crate) fn task_gone(&self, slot: u32) {
        lock(&self.shared.tasks).remove(&slot);
    }

    /// Reports a lost waker once per task.
    pub(crate) fn lost_waker(&self, slot: u32, site: &'static Location<'static>) {
        let name = {
            let mut tasks = lock(&self.shared.tasks);
            match tasks.get_mut(&slot) {
                Some(t) if !t.lost_reported => {
                    t.lost_reported = true;
                    t.name.as_deref().map(str::to_owned)
                }
                _ => return,
            }
        };
        self.shared.emit(&lint(ReportKind::LostWaker, site, name));
    }

    pub(crate) fn task_name(&self, slot: u32) -> Option<String> {
        lock(&self.shared.tasks)
            .get(&slot)
            .and_then(|t| t.name.as_deref().map(str::to_owned))
    }

    /// Reports a task lint (`PendingAtDrop`, `UnretrievedPanic`) for the task in `slot`.
    pub(crate) fn lint(&self, kind: ReportKind, site: &'static Location<'static>, slot: u32) {
        self.shared.emit(&lint(kind, site, self.task_name(slot)));
    }

    /// The task table, readable from any thread.
    pub(crate) fn snapshot(&self) -> Vec<TaskSnapshot> {
        self.shared.snapshot()
    }
}

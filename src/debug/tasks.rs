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

use std::panic::Location;
use std::time::{Duration, Instant};

use super::report::lint;
use super::shared::lock;
use super::{Debug, ReportKind};

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
}

/// Prints a task table.
pub fn format_task_table(tasks: &[TaskSnapshot]) -> String {
    let mut s = format!(
        "{:>6}  {:<10} {:>7} {:>10} {:>9}  {:<16} spawned at\n",
        "id", "state", "polls", "busy", "age", "name"
    );
    for t in tasks {
        s.push_str(&format!(
            "{:>6}  {:<10} {:>7} {:>10} {:>9}  {:<16} {}\n",
            t.id,
            format!("{:?}", t.state).to_lowercase(),
            t.polls,
            format!("{:.3}s", t.busy.as_secs_f64()),
            format!("{:.1}s", t.age.as_secs_f64()),
            t.name.as_deref().unwrap_or("-"),
            t.site
        ));
    }
    s
}

/// A row of the table as the loop keeps it.
pub(super) struct TaskInfo {
    pub(super) id: u64,
    pub(super) name: Option<String>,
    pub(super) site: &'static Location<'static>,
    pub(super) state: TaskState,
    pub(super) polls: u64,
    pub(super) busy_ns: u64,
    pub(super) born: Instant,
    pub(super) lost_reported: bool,
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
        let id = self.next_task_id.get();
        self.next_task_id.set(id + 1);
        lock(&self.shared.tasks).insert(
            slot,
            TaskInfo {
                id,
                name: name.map(str::to_owned),
                site,
                state: TaskState::Scheduled,
                polls: 0,
                busy_ns: 0,
                born: Instant::now(),
                lost_reported: false,
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
    pub(crate) fn task_polled(&self, slot: u32, ns: u64, state: TaskState) {
        if let Some(t) = lock(&self.shared.tasks).get_mut(&slot) {
            t.polls += 1;
            t.busy_ns += ns;
            t.state = state;
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
                    t.name.clone()
                }
                _ => return,
            }
        };
        self.shared.emit(&lint(ReportKind::LostWaker, site, name));
    }

    pub(crate) fn task_name(&self, slot: u32) -> Option<String> {
        lock(&self.shared.tasks)
            .get(&slot)
            .and_then(|t| t.name.clone())
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

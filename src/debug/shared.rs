//! The half of debug mode that other threads see: the watchdog's slot, the task table, the
//! report hook. Everything here is `Sync`; the loop thread writes, others read.
//!
//! ```
//! let el = solo::EventLoop::builder().debug(true).build().unwrap();
//! let remote = el.handle().remote();
//! el.handle().spawn(std::future::pending::<()>());
//! el.handle().call_soon({ let h = el.handle(); move || h.stop() });
//! el.run_forever().unwrap();
//! // Another thread reads the task table through the shared half.
//! let rows = std::thread::spawn(move || remote.tasks().len()).join().unwrap();
//! assert_eq!(rows, 1);
//! ```

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe, Location};
use std::sync::atomic::{AtomicPtr, AtomicU64, AtomicU8};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::{Duration, Instant};

use super::profile::SiteCell;
use super::stats::Figures;
use super::tasks::{describe, TaskInfo};
use super::trace::Tracer;
use super::{ExecutorProbe, Hook, Report, TaskSnapshot};
use crate::callback::CallbackKind;
use crate::executor::PoolFigures;

/// The debug state other threads can see: the watchdog's slot, the task table, the hook.
pub(crate) struct DebugShared {
    pub(super) seq: AtomicU64,
    /// Real nanoseconds since `origin` at which the current call started; 0 when none runs.
    pub(super) started: AtomicU64,
    pub(super) kind: AtomicU8,
    pub(super) site: AtomicPtr<Location<'static>>,
    /// Task slot of the running poll, or `u64::MAX`.
    pub(super) task: AtomicU64,
    pub(super) origin: Instant,
    pub(super) blocked_ns: AtomicU64,
    pub(super) hook: RwLock<Option<Hook>>,
    pub(super) tasks: Mutex<HashMap<u32, TaskInfo>>,
    /// The id the next spawned task gets (ids so far are below it).
    pub(super) next_task_id: AtomicU64,
    /// Stats and histograms (see `stats.rs`).
    pub(super) figures: Figures,
    /// The profile's rows, one per site, in the order the sites first ran.
    pub(super) sites: Mutex<Vec<Arc<SiteCell>>>,
    /// Traces (see `trace.rs`).
    pub(crate) trace: Tracer,
    pub(super) stop: Mutex<bool>,
    pub(super) wake: Condvar,
    pub(super) executor: RwLock<Option<ExecutorProbe>>,
    /// The thread running the loop (a pthread id), 0 when it is not running. A lock rather
    /// than an atomic: the stack capture holds it while it signals the thread (see `stack.rs`).
    pub(super) loop_thread: Mutex<u64>,
}

/// The kinds, by the index the watchdog's slot stores.
pub(super) const KINDS: [CallbackKind; 9] = [
    CallbackKind::Soon,
    CallbackKind::Timer,
    CallbackKind::Reader,
    CallbackKind::Writer,
    CallbackKind::Remote,
    CallbackKind::Task,
    CallbackKind::Main,
    CallbackKind::Signal,
    CallbackKind::Loop,
];

pub(super) fn kind_index(k: CallbackKind) -> u8 {
    KINDS.iter().position(|x| *x == k).unwrap_or(0) as u8
}

/// Locks `m`; a poisoned lock is still usable (every update under these locks is a single
/// store or insert, so a panic cannot leave them half-done).
pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl DebugShared {
    /// Records the thread now running the loop (0: none), for the watchdog's stack capture.
    pub(crate) fn set_loop_thread(&self, id: u64) {
        *lock(&self.loop_thread) = id;
    }

    /// Real nanoseconds since the loop was built (never 0).
    pub(crate) fn real_now(&self) -> u64 {
        (self.origin.elapsed().as_nanos() as u64).max(1)
    }

    /// Whether a thread is running the loop now (inside `run_forever`, `run_until_complete`,
    /// a step...).
    pub(crate) fn loop_running(&self) -> bool {
        *lock(&self.loop_thread) != 0
    }

    /// The call the loop is in now, if any: its kind, site, how long it has run, and the task's
    /// slot for a task's poll.
    pub(crate) fn running_now(
        &self,
    ) -> Option<(
        CallbackKind,
        &'static Location<'static>,
        Duration,
        Option<u32>,
    )> {
        let (_, started, kind, site, task) = self.read_slot()?;
        let d = Duration::from_nanos(self.real_now().saturating_sub(started));
        Some((kind, site, d, u32::try_from(task).ok()))
    }

    /// The loop thread's stack now, resolved (Linux, debug mode); `None` if it could not be
    /// taken (no thread runs the loop, or the signal was not handled in time).
    pub(crate) fn stack_now(&self) -> Option<String> {
        let frames = crate::stack::capture(&self.loop_thread, Duration::from_millis(250))?;
        Some(crate::stack::format(&frames))
    }

    /// The slot of the live task with this id.
    pub(crate) fn slot_of(&self, id: u64) -> Option<u32> {
        lock(&self.tasks)
            .iter()
            .find(|(_, t)| t.id == id)
            .map(|(slot, _)| *slot)
    }

    /// The id the next task will get: every id below it was given to a task.
    pub(crate) fn next_task_id(&self) -> u64 {
        self.next_task_id.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Hands a report to the hook, or prints it. The hook is user code: its panic is caught
    /// (it may run on the watchdog thread, which must not die, or inside the loop's accounting).
    pub(crate) fn emit(&self, report: &Report) {
        let hook = self.hook.read().unwrap_or_else(|e| e.into_inner()).clone();
        match hook {
            Some(h) => {
                if catch_unwind(AssertUnwindSafe(|| h(report))).is_err() {
                    eprintln!("{report}");
                    eprintln!("solo: the debug report hook panicked");
                }
            }
            None => eprintln!("{report}"),
        }
    }

    pub(crate) fn set_hook(&self, hook: Option<Hook>) {
        *self.hook.write().unwrap_or_else(|e| e.into_inner()) = hook;
    }

    pub(crate) fn set_executor_probe(&self, probe: ExecutorProbe) {
        *self.executor.write().unwrap_or_else(|e| e.into_inner()) = Some(probe);
    }

    pub(crate) fn executor_figures(&self) -> PoolFigures {
        self.executor
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or_else(PoolFigures::default, |p| p())
    }

    /// The task table, readable from any thread.
    pub(crate) fn snapshot(&self) -> Vec<TaskSnapshot> {
        let now = Instant::now();
        let tasks = lock(&self.tasks);
        let ids: HashMap<u32, _> = tasks
            .iter()
            .map(|(slot, t)| (*slot, (t.id, t.site, t.name.as_deref().map(str::to_owned))))
            .collect();
        let mut v: Vec<TaskSnapshot> = tasks
            .values()
            .map(|t| TaskSnapshot {
                id: t.id,
                name: t.name.as_deref().map(str::to_owned),
                site: t.site,
                state: t.state,
                polls: t.polls,
                busy: Duration::from_nanos(t.busy_ns),
                age: now.saturating_duration_since(t.born),
                waiting_on: t.waits.iter().map(|p| describe(p, &ids)).collect(),
            })
            .collect();
        drop(tasks);
        v.sort_by_key(|t| t.id);
        v
    }
}

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

    pub(super) fn real_now(&self) -> u64 {
        (self.origin.elapsed().as_nanos() as u64).max(1)
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
            .map(|(slot, t)| (*slot, (t.id, t.site, t.name.clone())))
            .collect();
        let mut v: Vec<TaskSnapshot> = tasks
            .values()
            .map(|t| TaskSnapshot {
                id: t.id,
                name: t.name.clone(),
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

//! The watchdog: a thread that catches the loop stuck in one call *while* it is stuck.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use std::time::{Duration, Instant};
//! use solo::debug::ReportKind;
//!
//! let kinds = Arc::new(Mutex::new(Vec::new()));
//! let k = kinds.clone();
//! let el = solo::EventLoop::builder()
//!     .debug(true)
//!     .blocked_threshold(Duration::from_millis(50))
//!     .on_slow(move |r| k.lock().unwrap().push(r.kind))
//!     .build()
//!     .unwrap();
//! let h = el.handle();
//! let k = kinds.clone();
//! h.call_soon(move || {
//!     // Blocks the loop, until the watchdog has said so (the report comes from its thread,
//!     // while this call is still running).
//!     let start = Instant::now();
//!     while !k.lock().unwrap().contains(&ReportKind::Blocked) {
//!         assert!(start.elapsed() < Duration::from_secs(60), "no report");
//!         std::thread::sleep(Duration::from_millis(10));
//!     }
//! });
//! h.stop();
//! el.run_forever().unwrap();
//! assert!(kinds.lock().unwrap().contains(&ReportKind::Blocked));
//! ```
//!
//! The loop *publishes* what it is about to run in a slot of atomics (a sequence number, the
//! start time, the kind, the site, the task) and clears the start time when the call returns.
//! The watchdog reads the slot without locks: the sequence number, read before and after, tells
//! it whether it saw one consistent call. A call running past the blocked threshold is
//! reported with the task table and the loop thread's stack, and again each time its duration
//! doubles. A loop idle in `epoll_wait` has nothing published, so the watchdog stays quiet.

use std::panic::Location;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::shared::{kind_index, lock, DebugShared, KINDS};
use super::{format_task_table, Debug, Report, ReportKind, What};
use crate::callback::CallbackKind;

impl DebugShared {
    /// The call published in the slot, if one consistent call has been running since `started`.
    pub(super) fn read_slot(
        &self,
    ) -> Option<(u64, u64, CallbackKind, &'static Location<'static>, u64)> {
        let s1 = self.seq.load(Ordering::Acquire);
        let started = self.started.load(Ordering::Acquire);
        let kind = KINDS[self.kind.load(Ordering::Relaxed) as usize % KINDS.len()];
        let site = self.site.load(Ordering::Relaxed);
        let task = self.task.load(Ordering::Relaxed);
        let s2 = self.seq.load(Ordering::Acquire);
        if s1 != s2 || started == 0 || site.is_null() {
            return None;
        }
        // SAFETY: the loop only stores pointers obtained from `&'static Location<'static>`
        // (`publish` takes one), so the pointer is valid for 'static and never written through.
        let site: &'static Location<'static> = unsafe { &*site };
        Some((s1, started, kind, site, task))
    }
}

impl Debug {
    /// Publishes the call about to run, for the watchdog.
    #[cold]
    #[inline(never)]
    pub(crate) fn publish(&self, w: &What) {
        let s = self.seq.get() + 1;
        self.seq.set(s);
        let sh = &self.shared;
        sh.started.store(0, Ordering::Release);
        sh.seq.store(s, Ordering::Release);
        sh.kind.store(kind_index(w.kind), Ordering::Relaxed);
        sh.site
            .store(w.site as *const _ as *mut _, Ordering::Relaxed);
        sh.task
            .store(w.task.map_or(u64::MAX, u64::from), Ordering::Relaxed);
        sh.started.store(sh.real_now(), Ordering::Release);
    }

    /// The call returned.
    #[cold]
    #[inline(never)]
    pub(crate) fn unpublish(&self) {
        self.shared.started.store(0, Ordering::Release);
    }
}

/// The watchdog thread: polls the slot and reports a call stuck past the threshold, again each
/// time its duration doubles.
pub(super) fn watchdog(sh: Arc<DebugShared>) {
    let mut reported: Option<(u64, u64)> = None; // (seq, next report at ns of running time)
    let mut stop = lock(&sh.stop);
    loop {
        let threshold = sh.blocked_ns.load(Ordering::Relaxed).max(1_000_000);
        let tick = Duration::from_nanos((threshold / 10).clamp(1_000_000, 100_000_000));
        let (guard, _) = sh
            .wake
            .wait_timeout(stop, tick)
            .unwrap_or_else(|e| e.into_inner());
        stop = guard;
        if *stop {
            return;
        }
        let Some((seq, started, kind, site, task)) = sh.read_slot() else {
            reported = None;
            continue;
        };
        let running = sh.real_now().saturating_sub(started);
        let due = match reported {
            Some((s, next)) if s == seq => next,
            _ => threshold,
        };
        if running < due {
            continue;
        }
        let first = !matches!(reported, Some((s, _)) if s == seq);
        reported = Some((seq, due.saturating_mul(2)));
        drop(stop);
        let name = if task == u64::MAX {
            None
        } else {
            lock(&sh.tasks)
                .get(&(task as u32))
                .and_then(|t| t.name.as_deref().map(str::to_owned))
        };
        let table = format_task_table(&sh.snapshot());
        let frames = crate::stack::capture(&sh.loop_thread, Duration::from_millis(250));
        // Only report if the same call was still running once the stack was taken (it may have
        // returned meanwhile, and then the stack would show something else). Resolving the
        // names comes after this check: it can be slow, and the stack is the call's either way.
        if sh.seq.load(Ordering::Acquire) == seq && sh.started.load(Ordering::Acquire) != 0 {
            // The seconds before the block, once per episode (`trace_on_block`).
            let trace = if first {
                sh.write_block_trace().map(|r| r.map_err(|e| e.to_string()))
            } else {
                None
            };
            let backtrace = frames.as_deref().map(crate::stack::format);
            sh.emit(&Report {
                kind: ReportKind::Blocked,
                callback: kind,
                site,
                name,
                type_name: None,
                duration: Duration::from_nanos(running),
                top: Vec::new(),
                task_table: Some(table),
                backtrace,
                trace,
            });
        }
        stop = lock(&sh.stop);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug::{Config, DEFAULT_SLOW_CALLBACK};

    /// Runs under Miri in CI: the watchdog slot, written here and read as the watchdog does.
    #[test]
    fn miri_watchdog_slot_round_trip() {
        let d = Debug::new(Config {
            slow: DEFAULT_SLOW_CALLBACK,
            blocked: Duration::from_secs(3600),
            hook: Some(Arc::new(|_| {})),
            trace_on_block: None,
        });
        assert!(d.shared.read_slot().is_none(), "nothing published yet");
        let site = Location::caller();
        d.publish(&What {
            kind: CallbackKind::Timer,
            site,
            type_name: None,
            task: Some(7),
        });
        let (_, started, kind, got_site, task) = d.shared.read_slot().unwrap();
        assert!(started > 0);
        assert_eq!(kind, CallbackKind::Timer);
        assert_eq!(got_site, site);
        assert_eq!(task, 7);
        d.unpublish();
        assert!(d.shared.read_slot().is_none());
        d.shutdown();
    }
}

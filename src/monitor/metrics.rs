//! `stats` (for people) and `metrics` (the Prometheus text exposition format, also served to
//! `GET /metrics`), both read from `DebugShared` while the loop may be blocked.

use std::fmt::Write as _;
use std::time::Duration;

use crate::debug::{DebugShared, Histogram, Stats};

/// A duration with three significant digits and a unit that fits.
fn short(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns < 1e3 {
        format!("{ns:.0}ns")
    } else if ns < 1e6 {
        format!("{:.3}µs", ns / 1e3)
    } else if ns < 1e9 {
        format!("{:.3}ms", ns / 1e6)
    } else {
        format!("{:.3}s", ns / 1e9)
    }
}

/// The histograms, with the names `stats` and `metrics` give them.
fn histograms(s: &Stats) -> [(&'static str, &'static str, &'static str, &Histogram); 6] {
    [
        (
            "task poll",
            "solo_task_poll_seconds",
            "Time of each task poll.",
            &s.poll_time,
        ),
        (
            "callback",
            "solo_callback_seconds",
            "Time of each callback.",
            &s.callback_time,
        ),
        (
            "iteration",
            "solo_iteration_seconds",
            "Work of each loop iteration (its time outside the wait for I/O).",
            &s.iteration_time,
        ),
        (
            "timer lateness",
            "solo_timer_lateness_seconds",
            "From a timer's deadline to when the loop acted on it.",
            &s.timer_lateness,
        ),
        (
            "wake-to-run",
            "solo_wake_to_run_seconds",
            "From a callback or task entering the ready queue to its run.",
            &s.wake_to_run,
        ),
        (
            "I/O dispatch",
            "solo_io_dispatch_seconds",
            "From an fd's readiness to its reader or writer callback.",
            &s.io_dispatch,
        ),
    ]
}

const QUANTILES: [(f64, &str); 4] = [(0.5, "0.5"), (0.9, "0.9"), (0.99, "0.99"), (0.999, "0.999")];

/// The `stats` command's text.
pub(super) fn stats(d: &DebugShared) -> String {
    let s = d.stats();
    let tasks = d.snapshot().len();
    let mut out = String::new();
    let state = if !d.loop_running() {
        "not running".to_string()
    } else {
        match d.running_now() {
            Some((kind, site, t, _)) => format!("in {kind} (at {site}) for {}", short(t)),
            None => "idle".to_string(),
        }
    };
    let _ = writeln!(out, "loop: {state}; {tasks} live task(s)");
    let _ = writeln!(
        out,
        "iterations {}, callbacks {}, task polls {}, timers fired {}",
        s.iterations, s.callbacks, s.task_polls, s.timers_fired
    );
    let _ = writeln!(
        out,
        "busy {:.3} s, waiting for I/O {:.3} s, busy ratio {:.1}%",
        s.busy.as_secs_f64(),
        s.in_poll.as_secs_f64(),
        s.busy_ratio() * 100.0
    );
    if let Some(w) = &s.slowest {
        let _ = writeln!(
            out,
            "slowest: {} (at {}) took {}",
            w.kind,
            w.site,
            short(w.duration)
        );
    }
    let _ = writeln!(
        out,
        "executor: {} queued, {} busy, {} waiting for room, {} rejected, {} abandoned",
        s.executor_queued,
        s.executor_busy,
        s.executor_waiting,
        s.executor_rejected,
        s.executor_abandoned
    );
    let _ = writeln!(
        out,
        "{:<15} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "histogram", "count", "p50", "p90", "p99", "p99.9", "max"
    );
    for (name, _, _, h) in histograms(&s) {
        let _ = write!(out, "{name:<15} {:>10}", h.count());
        for (q, _) in QUANTILES {
            let _ = write!(out, " {:>10}", short(h.quantile(q)));
        }
        let _ = writeln!(out, " {:>10}", short(h.max()));
    }
    out
}

fn secs(d: Duration) -> String {
    format!("{}", d.as_secs_f64())
}

/// The `metrics` text: counters, gauges, and a summary (with a `_max` gauge) per histogram.
pub(crate) fn prometheus(d: &DebugShared) -> String {
    let s = d.stats();
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: String| {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}"
        );
    };
    metric(
        "solo_iterations_total",
        "counter",
        "Loop iterations run.",
        s.iterations.to_string(),
    );
    metric(
        "solo_callbacks_total",
        "counter",
        "Callbacks run.",
        s.callbacks.to_string(),
    );
    metric(
        "solo_task_polls_total",
        "counter",
        "Task polls.",
        s.task_polls.to_string(),
    );
    metric(
        "solo_timers_fired_total",
        "counter",
        "Timers fired.",
        s.timers_fired.to_string(),
    );
    metric(
        "solo_busy_seconds_total",
        "counter",
        "Time spent running callbacks and polls.",
        secs(s.busy),
    );
    metric(
        "solo_io_wait_seconds_total",
        "counter",
        "Time spent in the backend's wait for I/O.",
        secs(s.in_poll),
    );
    metric(
        "solo_tasks",
        "gauge",
        "Live tasks.",
        d.snapshot().len().to_string(),
    );
    metric(
        "solo_loop_running",
        "gauge",
        "1 while a thread runs the loop.",
        u8::from(d.loop_running()).to_string(),
    );
    metric(
        "solo_current_call_seconds",
        "gauge",
        "How long the callback or poll running now has run (0 when none): a blocked loop shows here.",
        d.running_now().map_or_else(|| "0".into(), |(_, _, t, _)| secs(t)),
    );
    metric(
        "solo_executor_queued",
        "gauge",
        "Jobs in the run_in_executor queue.",
        s.executor_queued.to_string(),
    );
    metric(
        "solo_executor_busy",
        "gauge",
        "Pool threads running a job.",
        s.executor_busy.to_string(),
    );
    metric(
        "solo_executor_waiting",
        "gauge",
        "run_in_executor futures waiting for room in the queue.",
        s.executor_waiting.to_string(),
    );
    metric(
        "solo_executor_rejected_total",
        "counter",
        "Submissions the pool refused.",
        s.executor_rejected.to_string(),
    );
    metric(
        "solo_executor_abandoned_total",
        "counter",
        "Jobs dropped unrun while waiting for room.",
        s.executor_abandoned.to_string(),
    );
    for (_, name, help, h) in histograms(&s) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} summary");
        for (q, label) in QUANTILES {
            let _ = writeln!(
                out,
                "{name}{{quantile=\"{label}\"}} {}",
                secs(h.quantile(q))
            );
        }
        let _ = writeln!(
            out,
            "{name}_sum {}\n{name}_count {}",
            secs(h.sum()),
            h.count()
        );
        let _ = writeln!(
            out,
            "# HELP {name}_max The largest so far.\n# TYPE {name}_max gauge\n{name}_max {}",
            secs(h.max())
        );
    }
    out
}

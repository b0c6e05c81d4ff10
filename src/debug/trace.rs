//! Traces: what the loop did, event by event, written as Chrome trace-event JSON (open it in
//! Perfetto, <https://ui.perfetto.dev>, or `chrome://tracing`).
//!
//! ```no_run
//! // SOLO_TRACE_ON_BLOCK=/tmp/traces in the environment, or:
//! let el = solo::EventLoop::builder().trace_on_block("/tmp/traces").build().unwrap();
//! el.handle().call_soon(|| std::thread::sleep(std::time::Duration::from_secs(2)));
//! el.handle().stop();
//! el.run_forever().unwrap();
//! // The watchdog wrote /tmp/traces/solo-blocked-<pid>-<n>.json: the last seconds before the
//! // block, and the block itself.
//! ```
//!
//! Recording is off until someone asks: the monitor's `trace SECONDS PATH` command turns it on
//! for that long, and `trace_on_block` (or `SOLO_TRACE_ON_BLOCK=DIR`) keeps it on, in a ring of
//! the most recent events, so that the watchdog can write the seconds before a blocked loop.
//! While it is off, each of the probe's hooks pays one relaxed load.
//!
//! The events: every callback and task poll (a slice with its site, and the task's id and name),
//! each wait for I/O (a slice) and how many sources it made ready (an instant), each timer fired
//! (an instant, with its lateness), and blocked episodes (a slice on a second track, from the
//! watchdog's slot). Timestamps are real time since the loop was built.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::panic::Location;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::shared::{lock, DebugShared};
use super::{Debug, What};
use crate::callback::CallbackKind;

/// Events kept while only `trace_on_block` records (about 2.5 MB).
const RING: usize = 1 << 16;
/// Events kept while a `trace` command records (about 40 MB); older ones are dropped.
const LONG: usize = 1 << 20;
/// How far back a blocked-loop trace reaches.
pub(crate) const ON_BLOCK_WINDOW_NS: u64 = 10_000_000_000;

/// One thing the loop did.
#[derive(Clone, Debug)]
pub(crate) struct Event {
    /// Real ns since the loop was built.
    pub(crate) start: u64,
    /// 0 for an instant.
    pub(crate) dur: u64,
    pub(crate) what: EventKind,
    pub(crate) site: Option<&'static Location<'static>>,
}

#[derive(Clone, Debug)]
pub(crate) enum EventKind {
    /// A callback of this kind, or the `run_until_complete` future's poll.
    Call(CallbackKind),
    /// A task's poll: its id and name.
    Poll(u64, Option<Arc<str>>),
    /// A wait for I/O.
    Wait,
    /// A wait made this many sources ready.
    IoReady(usize),
    /// A timer fired this late (ns).
    Timer(u64),
    /// The loop was stuck in one call (still running when the trace was written).
    Blocked(CallbackKind),
}

/// The recording, in `DebugShared`.
pub(crate) struct Tracer {
    /// How many `trace` commands are recording now.
    sessions: AtomicU32,
    /// Where the watchdog writes the seconds before a block, if anywhere.
    pub(crate) on_block: Option<PathBuf>,
    events: Mutex<VecDeque<Event>>,
    /// Events dropped from a full buffer since the last trace began.
    dropped: AtomicU64,
    /// How many blocked-loop traces were written (for their file names).
    written: AtomicU64,
}

impl Tracer {
    pub(crate) fn new(on_block: Option<PathBuf>) -> Tracer {
        Tracer {
            sessions: AtomicU32::new(0),
            on_block,
            events: Mutex::new(VecDeque::new()),
            dropped: AtomicU64::new(0),
            written: AtomicU64::new(0),
        }
    }

    /// Whether the loop should record events now.
    #[inline]
    pub(crate) fn on(&self) -> bool {
        self.on_block.is_some() || self.sessions.load(Ordering::Relaxed) > 0
    }

    fn push(&self, e: Event) {
        let cap = if self.sessions.load(Ordering::Relaxed) > 0 {
            LONG
        } else {
            RING
        };
        let mut ev = lock(&self.events);
        while ev.len() >= cap {
            ev.pop_front();
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        ev.push_back(e);
    }

    /// Starts a recording session (a `trace` command).
    pub(crate) fn begin(&self) {
        if self.sessions.fetch_add(1, Ordering::AcqRel) == 0 {
            self.dropped.store(0, Ordering::Relaxed);
        }
    }

    /// Ends a session: the events that started at or after `since`, and how many were lost
    /// to a full buffer. The last session out takes the buffer instead of copying it.
    pub(crate) fn end(&self, since: u64) -> (Vec<Event>, u64) {
        let last = self.sessions.fetch_sub(1, Ordering::AcqRel) == 1;
        let dropped = self.dropped.load(Ordering::Relaxed);
        let taken: Vec<Event> = if last && self.on_block.is_none() {
            let all = std::mem::take(&mut *lock(&self.events));
            all.into_iter().filter(|e| e.start >= since).collect()
        } else {
            self.window(since)
        };
        (taken, dropped)
    }

    /// A copy of the events that started at or after `since`.
    pub(crate) fn window(&self, since: u64) -> Vec<Event> {
        let ev = lock(&self.events);
        let first = ev.partition_point(|e| e.start < since);
        ev.range(first..).cloned().collect()
    }
}

impl Debug {
    /// Whether events are being recorded (one relaxed load).
    #[inline]
    pub(crate) fn tracing(&self) -> bool {
        self.shared.trace.on()
    }

    /// Records a call or poll that just took `ns` (loop clock).
    #[cold]
    #[inline(never)]
    pub(crate) fn trace_call(&self, w: &What, ns: u64) {
        let end = self.shared.real_now();
        let what = match w.task {
            Some(slot) => {
                let t = lock(&self.shared.tasks);
                match t.get(&slot) {
                    Some(t) => EventKind::Poll(t.id, t.name.clone()),
                    None => EventKind::Call(w.kind),
                }
            }
            None => EventKind::Call(w.kind),
        };
        self.shared.trace.push(Event {
            start: end.saturating_sub(ns),
            dur: ns,
            what,
            site: Some(w.site),
        });
    }

    /// Records a wait for I/O that took `ns`.
    #[cold]
    #[inline(never)]
    pub(crate) fn trace_wait(&self, ns: u64) {
        let end = self.shared.real_now();
        self.shared.trace.push(Event {
            start: end.saturating_sub(ns),
            dur: ns,
            what: EventKind::Wait,
            site: None,
        });
    }

    /// Records an instant: sources made ready by a wait, or a timer fired.
    #[cold]
    #[inline(never)]
    pub(crate) fn trace_instant(&self, what: EventKind) {
        self.shared.trace.push(Event {
            start: self.shared.real_now(),
            dur: 0,
            what,
            site: None,
        });
    }
}

impl DebugShared {
    /// The call running now, as a blocked slice up to now, if one is running.
    pub(crate) fn running_event(&self) -> Option<Event> {
        let (_, started, kind, site, _) = self.read_slot()?;
        let now = self.real_now();
        Some(Event {
            start: started,
            dur: now.saturating_sub(started),
            what: EventKind::Blocked(kind),
            site: Some(site),
        })
    }

    /// Writes the seconds before a block to the `trace_on_block` folder; the file's path.
    pub(crate) fn write_block_trace(&self) -> Option<io::Result<PathBuf>> {
        let dir = self.trace.on_block.as_ref()?;
        let since = self.real_now().saturating_sub(ON_BLOCK_WINDOW_NS);
        let mut events = self.trace.window(since);
        events.extend(self.running_event());
        if let Err(e) = std::fs::create_dir_all(dir) {
            return Some(Err(e));
        }
        let n = self.trace.written.fetch_add(1, Ordering::Relaxed) + 1;
        let path = dir.join(format!("solo-blocked-{}-{n}.json", std::process::id()));
        Some(write_file(&path, &events).map(|()| path))
    }
}

/// Writes `events` as a Chrome trace to `path`.
pub(crate) fn write_file(path: &Path, events: &[Event]) -> io::Result<()> {
    let mut f = io::BufWriter::new(std::fs::File::create(path)?);
    write_json(&mut f, events)?;
    f.flush()
}

/// JSON string contents for `s`.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn us(ns: u64) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
}

/// Writes the trace-event JSON object format: `{"traceEvents": [...]}`; the loop is thread 1,
/// blocked episodes are thread 2.
pub(crate) fn write_json(w: &mut impl Write, events: &[Event]) -> io::Result<()> {
    let pid = std::process::id();
    write!(w, "{{\"displayTimeUnit\":\"ms\",\"traceEvents\":[")?;
    write!(
        w,
        "\n{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{pid},\"tid\":1,\"args\":{{\"name\":\"solo loop\"}}}},\
         \n{{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":{pid},\"tid\":2,\"args\":{{\"name\":\"blocked (watchdog)\"}}}}"
    )?;
    for e in events {
        let site = e.site.map(|s| esc(&s.to_string()));
        let (name, cat, tid, mut args) = match &e.what {
            EventKind::Call(k) => (
                match e.site {
                    Some(s) => format!("{k} {}:{}", esc(s.file()), s.line()),
                    None => format!("{k}"),
                },
                "callback",
                1,
                String::new(),
            ),
            EventKind::Poll(id, name) => (
                match name {
                    Some(n) => format!("task {id} {}", esc(n)),
                    None => format!("task {id}"),
                },
                "task",
                1,
                format!("\"task\":{id}"),
            ),
            EventKind::Wait => ("wait for I/O".into(), "loop", 1, String::new()),
            EventKind::IoReady(n) => ("I/O ready".into(), "io", 1, format!("\"sources\":{n}")),
            EventKind::Timer(late) => (
                "timer fired".into(),
                "timer",
                1,
                format!("\"late_us\":{}", us(*late)),
            ),
            EventKind::Blocked(k) => (format!("blocked in {k}"), "blocked", 2, String::new()),
        };
        if let Some(s) = site {
            if !args.is_empty() {
                args.push(',');
            }
            let _ = write!(args, "\"site\":\"{s}\"");
        }
        if e.dur == 0 && !matches!(e.what, EventKind::Call(_) | EventKind::Poll(..)) {
            write!(
                w,
                ",\n{{\"name\":\"{name}\",\"cat\":\"{cat}\",\"ph\":\"i\",\"s\":\"t\",\"ts\":{},\"pid\":{pid},\"tid\":{tid},\"args\":{{{args}}}}}",
                us(e.start)
            )?;
        } else {
            write!(
                w,
                ",\n{{\"name\":\"{name}\",\"cat\":\"{cat}\",\"ph\":\"X\",\"ts\":{},\"dur\":{},\"pid\":{pid},\"tid\":{tid},\"args\":{{{args}}}}}",
                us(e.start),
                us(e.dur)
            )?;
        }
    }
    writeln!(w, "\n]}}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debug::{Config, DEFAULT_SLOW_CALLBACK};
    use std::time::Duration;

    #[test]
    fn a_session_keeps_its_window_and_the_json_is_well_formed() {
        let d = Debug::new(Config {
            slow: DEFAULT_SLOW_CALLBACK,
            blocked: Duration::from_secs(3600),
            hook: Some(Arc::new(|_| {})),
            trace_on_block: None,
        });
        assert!(!d.tracing());
        d.shared.trace.begin();
        assert!(d.tracing());
        let w = What {
            kind: CallbackKind::Timer,
            site: Location::caller(),
            type_name: None,
            task: None,
        };
        d.trace_call(&w, 1500);
        d.trace_wait(10);
        d.trace_instant(EventKind::IoReady(2));
        d.trace_instant(EventKind::Timer(3));
        let (events, dropped) = d.shared.trace.end(0);
        assert_eq!((events.len(), dropped), (4, 0));
        assert!(!d.tracing());
        let mut out = Vec::new();
        write_json(&mut out, &events).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("{\"displayTimeUnit\""), "{text}");
        let name = format!("\"name\":\"timer callback {}:", file!());
        assert!(text.contains(&name), "{text}");
        assert!(text.contains("\"cat\":\"callback\",\"ph\":\"X\""), "{text}");
        assert!(text.contains("\"dur\":1.500"), "{text}");
        assert_eq!(
            text.matches('{').count(),
            text.matches('}').count(),
            "{text}"
        );
        assert_eq!(esc("a\"b\\c\n"), "a\\\"b\\\\c\\u000a");
        d.shutdown();
    }
}

//! What each command answers. Read-only commands read `DebugShared` on this thread; `cancel`
//! and user commands are queued to the loop and answered when it runs them (or marked queued).

use std::panic::Location;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{lock, Link, LoopRequest};
use crate::callback::Sited;
use crate::debug::{format_profile, format_task_table, trace};

/// The built-in commands: name, usage, what it does.
pub(super) const BUILTIN: [(&str, &str, &str); 11] = [
    ("help", "help", "this list"),
    ("ps", "ps", "the tasks: id, state, polls, busy time, age, name, spawn site, what it waits on"),
    ("where", "where ID", "a task's spawn site and the await points it is suspended at"),
    ("cancel", "cancel ID", "cancels a task (on the loop: queued while the loop is blocked)"),
    ("signal", "signal NAME", "sends a signal to this process (TERM, INT, HUP, USR1, USR2...)"),
    ("stacktrace", "stacktrace", "the loop thread's native stack, now"),
    ("stats", "stats", "loop health, and p50/p90/p99/p99.9/max of poll, callback, iteration time, timer lateness, wake-to-run"),
    ("profile", "profile", "time spent by scheduling site, most first"),
    ("metrics", "metrics", "the stats in the Prometheus text format (also: HTTP GET /metrics)"),
    ("trace", "trace SECONDS PATH", "records the loop for SECONDS, writes Chrome trace-event JSON to PATH"),
    ("quit", "quit", "closes this connection"),
];

/// How long a command queued to the loop is waited for before the reply says it is queued,
/// when the loop looks stuck (or is not running).
const PATIENCE: Duration = Duration::from_millis(200);
/// How long it is waited for in any case.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// What a line gets.
pub(super) enum Outcome {
    /// The answer.
    Reply(String),
    /// The command went to the loop and is not done: what to say now, and the result to come.
    Queued(String, Pending),
    /// `quit`.
    Quit,
}

/// A result the loop owes a client.
pub(super) struct Pending {
    pub(super) label: String,
    rx: Receiver<String>,
}

impl Pending {
    /// The result, if it came (or will never come); with `now`, an answer in any case.
    pub(super) fn poll(&self, now: bool) -> Option<String> {
        match self.rx.try_recv() {
            Ok(s) => Some(s),
            Err(TryRecvError::Disconnected) => Some("it did not run: the loop closed first".into()),
            Err(TryRecvError::Empty) => now.then(|| "no result: the monitor is stopping".into()),
        }
    }
}

/// The help text.
pub(super) fn help(link: &Link) -> String {
    let mut s = String::from("commands (one per line; `nc` works):\n");
    for (_, usage, what) in BUILTIN {
        s.push_str(&format!("  {usage:<20} {what}\n"));
    }
    let user = lock(&link.user).clone();
    if !user.is_empty() {
        s.push_str("this program's commands (they run on the loop):\n");
        for c in user {
            s.push_str(&format!("  {:<20} {}\n", c.name, c.help));
        }
    }
    s
}

/// Answers one command line (trimmed, not empty). `can_queue`: whether the client may be owed
/// one more result.
pub(super) fn run(line: &str, link: &Link, can_queue: bool) -> Outcome {
    let (cmd, args) = match line.split_once(char::is_whitespace) {
        Some((c, a)) => (c, a.trim()),
        None => (line, ""),
    };
    let reply = match cmd.to_ascii_lowercase().as_str() {
        "help" | "?" => help(link),
        "quit" | "exit" => return Outcome::Quit,
        "ps" => ps(link),
        "where" => match task_id(link, "where", args) {
            Ok(id) => where_(link, id),
            Err(e) => e,
        },
        "cancel" => match task_id(link, "cancel", args) {
            Ok(id) if can_queue => {
                let label = format!("cancel {id}");
                return to_loop(link, label, Location::caller(), LoopRequest::Cancel(id));
            }
            Ok(_) => too_many(),
            Err(e) => e,
        },
        "signal" => signal(args),
        "stacktrace" => stacktrace(link),
        "stats" => super::metrics::stats(&link.debug),
        "profile" => profile(link),
        "metrics" => super::metrics::prometheus(&link.debug),
        "trace" => trace_cmd(link, args),
        _ => {
            let user = lock(&link.user).iter().find(|c| c.name == cmd).cloned();
            match user {
                Some(_) if !can_queue => too_many(),
                Some(c) => {
                    let req = LoopRequest::User {
                        name: c.name.clone(),
                        args: args.to_string(),
                    };
                    let label: String = line.chars().take(60).collect();
                    return to_loop(link, label, c.site, req);
                }
                None => format!(
                    "error: unknown command `{}`\n{}",
                    cmd.chars().take(60).collect::<String>(),
                    help(link)
                ),
            }
        }
    };
    Outcome::Reply(reply)
}

fn too_many() -> String {
    "error: too many results already owed to this connection; wait for them first".into()
}

/// What the loop is doing, in a few words.
fn loop_status(link: &Link) -> String {
    if !link.debug.loop_running() {
        return "not running".into();
    }
    match link.debug.running_now() {
        Some((kind, site, d, _)) if d >= Duration::from_millis(100) => {
            format!("blocked for {:.3} s in {kind} (at {site})", d.as_secs_f64())
        }
        Some(_) => "running".into(),
        None => "idle (waiting for I/O or a timer)".into(),
    }
}

/// Parses a task id for `cmd`, and checks that the task is alive; the error text otherwise.
fn task_id(link: &Link, cmd: &str, args: &str) -> Result<u64, String> {
    let id: u64 = args.parse().map_err(|_| {
        format!(
            "error: `{cmd}` needs a task id, a number as `ps` shows it (got `{}`)",
            args.chars().take(40).collect::<String>()
        )
    })?;
    if link.debug.slot_of(id).is_some() {
        return Ok(id);
    }
    let next = link.debug.next_task_id();
    Err(if id == 0 || id >= next {
        format!(
            "error: no task {id}: ids so far go from 1 to {}",
            next.saturating_sub(1)
        )
    } else {
        format!("error: task {id} has finished (or was cancelled); it is no longer in the table")
    })
}

fn ps(link: &Link) -> String {
    let tasks = link.debug.snapshot();
    format!(
        "{} task(s); the loop is {}\n{}",
        tasks.len(),
        loop_status(link),
        format_task_table(&tasks)
    )
}

fn where_(link: &Link, id: u64) -> String {
    let Some(t) = link.debug.snapshot().into_iter().find(|t| t.id == id) else {
        return format!("error: task {id} has finished (or was cancelled)");
    };
    let mut s = format!("task {id}");
    if let Some(n) = &t.name {
        s.push_str(&format!(" ({n})"));
    }
    s.push_str(&format!(
        ", {}; spawned at {}\n  polls {}, busy {:.3} s, age {:.1} s\n",
        format!("{:?}", t.state).to_lowercase(),
        t.site,
        t.polls,
        t.busy.as_secs_f64(),
        t.age.as_secs_f64()
    ));
    let slot = link.debug.slot_of(id);
    if let Some((_, _, d, Some(running))) = link.debug.running_now() {
        if Some(running) == slot {
            s.push_str(&format!(
                "  running now: the loop has been in its poll for {:.3} s; the loop thread's stack:\n",
                d.as_secs_f64()
            ));
            s.push_str(
                &link
                    .debug
                    .stack_now()
                    .unwrap_or_else(|| "    (not available)\n".into()),
            );
            return s;
        }
    }
    if t.waiting_on.is_empty() {
        s.push_str(if t.polls == 0 {
            "  not polled yet\n"
        } else {
            "  suspended, but not at a solo future (a channel, a lock, another runtime's future...)\n"
        });
    } else {
        s.push_str("  suspended at:\n");
        for p in &t.waiting_on {
            s.push_str(&format!("    {}\n", p.what));
            if let Some(site) = p.site {
                s.push_str(&format!("      at {site}\n"));
            }
            for f in &p.chain {
                s.push_str(&format!("      in {f}\n"));
            }
        }
        if t.waiting_on.iter().all(|p| p.chain.is_empty()) {
            s.push_str(CHAIN_HINT);
        }
    }
    s
}

#[cfg(feature = "async-backtrace")]
const CHAIN_HINT: &str =
    "  (mark your async fns #[async_backtrace::framed] to see the chain that awaited it)\n";
#[cfg(not(feature = "async-backtrace"))]
const CHAIN_HINT: &str = "  (the async fns in between: build solo with its `async-backtrace` feature and mark them #[async_backtrace::framed])\n";

/// Queues `req` to the loop and waits a little for its result.
fn to_loop(
    link: &Link,
    label: String,
    site: &'static Location<'static>,
    req: LoopRequest,
) -> Outcome {
    let (tx, rx) = mpsc::channel();
    let started = Arc::new(AtomicBool::new(false));
    let (s, on_loop) = (started.clone(), link.on_loop);
    let f = move || {
        s.store(true, Ordering::Release);
        let _ = tx.send(on_loop(req));
    };
    if link.shared.push_call(Box::new(Sited { site, f })).is_err() {
        return Outcome::Reply(format!(
            "error: {label}: the loop is closed or shutting down; nothing was queued"
        ));
    }
    let t0 = Instant::now();
    loop {
        match rx.recv_timeout(Duration::from_millis(10)) {
            Ok(text) => return Outcome::Reply(text),
            Err(RecvTimeoutError::Disconnected) => {
                return Outcome::Reply(format!("error: {label}: the loop closed before running it"))
            }
            Err(RecvTimeoutError::Timeout) => {}
        }
        let waited = t0.elapsed();
        if waited < PATIENCE {
            continue;
        }
        let why = if !link.debug.loop_running() {
            "the loop is not running (stopped, or not started); it runs when the loop runs again"
                .to_string()
        } else if started.load(Ordering::Acquire) {
            "it is running on the loop now".to_string()
        } else {
            match link.debug.running_now() {
                Some((kind, site, d, _)) if d >= PATIENCE => format!(
                    "the loop is blocked: {kind} (at {site}) has been running for {:.3} s; it \
                     runs when the loop is free",
                    d.as_secs_f64()
                ),
                _ if waited < MAX_WAIT => continue,
                _ => "the loop has not got to it yet".to_string(),
            }
        };
        return Outcome::Queued(
            format!("{label}: queued; {why}. Its result follows on this connection."),
            Pending { label, rx },
        );
    }
}

/// The signals `signal` knows, by name.
const SIGNALS: [(&str, libc::c_int); 14] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("WINCH", libc::SIGWINCH),
];

fn signal(args: &str) -> String {
    let upper = args.trim().to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    let Some((name, sig)) = SIGNALS.iter().find(|(n, _)| *n == name) else {
        let known: Vec<&str> = SIGNALS.iter().map(|(n, _)| *n).collect();
        return format!(
            "error: `signal` needs a signal name (got `{}`); known: {}",
            args.chars().take(40).collect::<String>(),
            known.join(" ")
        );
    };
    // SAFETY: kill(2) on our own pid with a valid signal number has no memory effects.
    let r = unsafe { libc::kill(libc::getpid(), *sig) };
    if r == 0 {
        format!("sent SIG{name} to process {}", std::process::id())
    } else {
        format!(
            "error: kill(SIG{name}): {}",
            std::io::Error::last_os_error()
        )
    }
}

fn stacktrace(link: &Link) -> String {
    if !link.debug.loop_running() {
        return "the loop is not running: there is no loop thread to take a stack from".into();
    }
    let status = loop_status(link);
    match link.debug.stack_now() {
        Some(stack) => {
            format!("the loop is {status}; its thread's stack, innermost first:\n{stack}")
        }
        None => format!(
            "error: the loop is {status}, but its stack could not be taken (the capture signal \
             was not handled in time; Linux only)"
        ),
    }
}

fn profile(link: &Link) -> String {
    let rows = link.debug.profile();
    if rows.is_empty() {
        return "no calls recorded yet".into();
    }
    let shown = rows.len().min(50);
    let mut s = format!(
        "time by scheduling site ({shown} of {} sites):\n",
        rows.len()
    );
    s.push_str(&format_profile(&rows[..shown]));
    s
}

/// `trace SECONDS PATH`.
fn trace_cmd(link: &Link, args: &str) -> String {
    const USAGE: &str = "usage: trace SECONDS PATH (SECONDS from 0.001 to 600)";
    let Some((secs, path)) = args.split_once(char::is_whitespace) else {
        return format!("error: {USAGE}");
    };
    let path = path.trim();
    let secs: f64 = match secs.parse() {
        Ok(s) if (0.001..=600.0).contains(&s) => s,
        _ => return format!("error: {USAGE} (got `{secs}`)"),
    };
    // Open the file first: a path that cannot be written fails now, not after the wait.
    let file = match std::fs::File::create(path) {
        Ok(f) => f,
        Err(e) => return format!("error: cannot write {path}: {e}"),
    };
    let tracer = &link.debug.trace;
    tracer.begin();
    let since = link.debug.real_now();
    {
        use std::os::fd::AsRawFd;
        let mut p = libc::pollfd {
            fd: link.stop_rx.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let ms = (left.as_millis() as libc::c_int).max(1);
            // SAFETY: one valid pollfd.
            if unsafe { libc::poll(&mut p, 1, ms) } > 0 {
                break; // the monitor stops: write what was recorded
            }
        }
    }
    let (mut events, dropped) = tracer.end(since);
    events.extend(link.debug.running_event());
    let mut w = std::io::BufWriter::new(file);
    let written = trace::write_json(&mut w, &events).and_then(|()| {
        use std::io::Write;
        w.flush()
    });
    if let Err(e) = written {
        return format!("error: writing {path}: {e}");
    }
    let lost = if dropped > 0 {
        format!(" ({dropped} older events did not fit and were dropped)")
    } else {
        String::new()
    };
    format!(
        "trace: {} events over {secs} s written to {path}{lost}; open it in Perfetto \
         (https://ui.perfetto.dev) or chrome://tracing",
        events.len()
    )
}

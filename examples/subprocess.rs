//! A parallel command runner: runs shell commands, at most `--jobs` at a time, streams each
//! one's output lines prefixed with its name (`[name] line`, `[name!] line` for stderr), and
//! kills the commands that run past `--timeout` seconds. Ctrl-c kills what is still running.
//!
//! ```sh
//! cargo run --example subprocess                      # a small demo set
//! cargo run --example subprocess -- --jobs 3 --timeout 2 \
//!     'hi=echo hello' 'count=for i in 1 2 3; do echo $i; sleep 0.3; done' 'stuck=sleep 60'
//! ```
//!
//! Each command runs as `sh -c COMMAND` in a process group of its own, so that a timeout kills
//! the shell and whatever it started (a pipeline, a background job), and the output streams end.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::unix::process::CommandExt;
use std::pin::pin;
use std::process::ExitStatus;
use std::rc::Rc;
use std::time::Duration;

use futures::future::{select, Either};
use futures::io::{AsyncBufReadExt, AsyncRead, BufReader};
use solo::process::{Command, Stdio};
use solo::Handle;

/// One command to run.
#[derive(Clone, Debug)]
pub struct Job {
    /// What its output lines are prefixed with.
    pub name: String,
    /// A shell command line.
    pub command: String,
    /// How long it may run before it is killed.
    pub timeout: Duration,
}

/// How a job ended.
#[derive(Debug)]
pub enum Outcome {
    /// It exited by itself (successfully or not).
    Exited(ExitStatus),
    /// It ran past its timeout and was killed; the status says by which signal.
    TimedOut(ExitStatus),
    /// It could not be started or waited for.
    Failed(io::Error),
}

/// What happened to one job.
#[derive(Debug)]
pub struct Report {
    /// The job's name.
    pub name: String,
    /// How it ended.
    pub outcome: Outcome,
    /// How many lines it wrote (stdout and stderr).
    pub lines: usize,
}

/// The reports, in the jobs' order, and the most jobs that ran at once.
#[derive(Debug)]
pub struct Summary {
    /// One per job.
    pub reports: Vec<Report>,
    /// The most jobs that ran at the same time.
    pub peak: usize,
}

/// Where output lines go (stdout in `main`, a vector in the tests).
pub type Sink = Rc<dyn Fn(&str)>;

/// Runs `jobs`, at most `limit` at a time (at least one), on the running loop.
pub async fn run_all(jobs: Vec<Job>, limit: usize, sink: Sink) -> Summary {
    let count = jobs.len();
    let queue: Rc<RefCell<VecDeque<(usize, Job)>>> =
        Rc::new(RefCell::new(jobs.into_iter().enumerate().collect()));
    let reports: Rc<RefCell<Vec<Option<Report>>>> =
        Rc::new(RefCell::new((0..count).map(|_| None).collect()));
    let (active, peak) = (Rc::new(Cell::new(0)), Rc::new(Cell::new(0)));
    // `limit` workers, each taking the next job when it is done with one.
    let workers: Vec<_> = (0..limit.max(1))
        .map(|_| {
            let (queue, reports, sink) = (queue.clone(), reports.clone(), sink.clone());
            let (active, peak) = (active.clone(), peak.clone());
            Handle::current().spawn(async move {
                loop {
                    let next = queue.borrow_mut().pop_front();
                    let Some((i, job)) = next else { break };
                    active.set(active.get() + 1);
                    peak.set(peak.get().max(active.get()));
                    let report = run_one(job, &sink).await;
                    active.set(active.get() - 1);
                    reports.borrow_mut()[i] = Some(report);
                }
            })
        })
        .collect();
    for w in workers {
        let _ = w.await;
    }
    let reports = reports.borrow_mut().drain(..).flatten().collect();
    Summary {
        reports,
        peak: peak.get(),
    }
}

/// Kills a process group when dropped, unless disarmed: a job cancelled (ctrl-c) or timed out
/// takes its whole group with it.
struct KillGroup(Option<u32>);

impl KillGroup {
    fn kill(&mut self) {
        if let Some(pgid) = self.0.take() {
            // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
            // The group's leader is our child and not yet reaped, so the id is still its own.
            unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) };
        }
    }
}

impl Drop for KillGroup {
    fn drop(&mut self) {
        self.kill();
    }
}

async fn run_one(job: Job, sink: &Sink) -> Report {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(&job.command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd.as_std_mut().process_group(0);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            return Report {
                name: job.name,
                outcome: Outcome::Failed(e),
                lines: 0,
            }
        }
    };
    // Declared after `child`, so dropped before it: the group is killed while its leader is
    // still ours (not yet reaped), so its id cannot be another group's.
    let mut group = KillGroup(child.id());
    let h = Handle::current();
    let out = h.spawn(stream_lines(
        child.stdout.take().expect("piped"),
        format!("[{}] ", job.name),
        sink.clone(),
    ));
    let err = h.spawn(stream_lines(
        child.stderr.take().expect("piped"),
        format!("[{}!] ", job.name),
        sink.clone(),
    ));
    let outcome = match solo::time::timeout(job.timeout, child.wait()).await {
        Ok(Ok(status)) => Outcome::Exited(status),
        Ok(Err(e)) => Outcome::Failed(e),
        Err(_elapsed) => {
            group.kill();
            match child.wait().await {
                Ok(status) => Outcome::TimedOut(status),
                Err(e) => Outcome::Failed(e),
            }
        }
    };
    group.0 = None; // reaped: the id is no longer ours to signal
    let lines = out.await.unwrap_or(0) + err.await.unwrap_or(0);
    Report {
        name: job.name,
        outcome,
        lines,
    }
}

/// Sends each line of `pipe` to `sink` as it comes; returns how many there were.
async fn stream_lines(pipe: impl AsyncRead + Unpin, prefix: String, sink: Sink) -> usize {
    let mut reader = BufReader::new(pipe);
    let mut line = Vec::new();
    let mut n = 0;
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return n,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                sink(&format!("{prefix}{}", text.trim_end_matches(['\n', '\r'])));
                n += 1;
            }
        }
    }
}

fn demo(timeout: Duration) -> Vec<Job> {
    [
        ("greet", "echo hello; echo 'hello on stderr' >&2"),
        ("count", "for i in 1 2 3; do echo tick $i; sleep 0.2; done"),
        ("fail", "echo 'something went wrong' >&2; exit 4"),
        ("stuck", "echo 'sleeping for a minute'; sleep 60"),
        ("missing", "no-such-command-here"),
        ("pipeline", "seq 1 3 | sed 's/^/line /'"),
    ]
    .into_iter()
    .map(|(name, command)| Job {
        name: name.into(),
        command: command.into(),
        timeout,
    })
    .collect()
}

fn parse(args: impl Iterator<Item = String>) -> Result<(usize, Vec<Job>), String> {
    let (mut limit, mut timeout, mut commands) = (2, Duration::from_secs(2), Vec::new());
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        match a.as_str() {
            "--jobs" | "--timeout" => {
                let v = args.next().ok_or(format!("{a} needs a value"))?;
                if a == "--jobs" {
                    limit = v
                        .parse()
                        .ok()
                        .filter(|&n| n > 0)
                        .ok_or(format!("--jobs {v}: not a positive number"))?;
                } else {
                    let secs: f64 = v
                        .parse()
                        .ok()
                        .filter(|s: &f64| s.is_finite() && *s >= 0.0 && *s < 1e9)
                        .ok_or(format!("--timeout {v}: not a number of seconds"))?;
                    timeout = Duration::from_secs_f64(secs);
                }
            }
            _ => {
                let (name, command) = a
                    .split_once('=')
                    .ok_or(format!("{a:?}: expected name=command"))?;
                commands.push((name.to_string(), command.to_string()));
            }
        }
    }
    let jobs = if commands.is_empty() {
        demo(timeout)
    } else {
        commands
            .into_iter()
            .map(|(name, command)| Job {
                name,
                command,
                timeout,
            })
            .collect()
    };
    Ok((limit, jobs))
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Exited(s) => format!("exited: {s}"),
        Outcome::TimedOut(s) => format!("timed out, killed ({s})"),
        Outcome::Failed(e) => format!("failed: {e}"),
    }
}

fn main() -> io::Result<()> {
    let (limit, jobs) = parse(std::env::args().skip(1)).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{e}\nusage: subprocess [--jobs N] [--timeout SECS] name=command..."),
        )
    })?;
    solo::run(async move {
        let sink: Sink = Rc::new(|line| println!("{line}"));
        let all = pin!(run_all(jobs, limit, sink));
        match select(all, pin!(solo::signal::ctrl_c())).await {
            Either::Left((summary, _)) => {
                println!(
                    "--- {} jobs, at most {} at once",
                    summary.reports.len(),
                    summary.peak
                );
                for r in &summary.reports {
                    println!(
                        "{:>10}: {} ({} lines)",
                        r.name,
                        describe(&r.outcome),
                        r.lines
                    );
                }
            }
            // Leaving `run` cancels the workers: their children are killed with their groups.
            Either::Right(_) => eprintln!("interrupted: killing what is still running"),
        }
    })
}

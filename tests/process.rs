//! `solo::process` with real child processes: pipes, exits, kills, bad input, reaping. The
//! scenarios are functions, run here with pidfds (where the kernel has them) and again, all of
//! them, in a child process with `SOLO_NO_PIDFD=1` (the SIGCHLD fallback). Counting fds and
//! children needs a process of its own (tests run on parallel threads), so those checks run in
//! child processes too.

use std::future::Future;
use std::os::unix::process::ExitStatusExt;
use std::rc::Rc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use solo::process::{Child, Command, Stdio};
use solo::{EventLoop, Handle};

mod common;

#[allow(dead_code)]
#[path = "../examples/subprocess.rs"]
mod subprocess;

fn run<F: Future>(f: F) -> F::Output {
    EventLoop::new().unwrap().run_until_complete(f).unwrap()
}

// ---- looking at children from outside ----

#[derive(Debug, PartialEq)]
enum State {
    /// Not a child of ours (any more): reaped.
    Gone,
    Running,
    /// Exited, not reaped.
    Zombie,
}

/// What `pid` is to us, without reaping it (`WNOWAIT`).
fn state(pid: u32) -> State {
    // SAFETY: siginfo_t is plain old data; waitid writes into the valid, exclusive `info`, and
    // WNOWAIT leaves the child as it is.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        if libc::waitid(libc::P_PID, pid, &mut info, flags) < 0 {
            State::Gone
        } else if info.si_pid() == 0 {
            State::Running
        } else {
            State::Zombie
        }
    }
}

/// Whether this process has no child at all, running or zombie.
fn no_children() -> bool {
    // SAFETY: as in `state`.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        libc::waitid(libc::P_ALL, 0, &mut info, flags) < 0
    }
}

/// Runs the loop until the loop has reaped `pid` (the test's watchdog bounds the wait).
async fn until_reaped(pid: u32) {
    while state(pid) != State::Gone {
        solo::time::sleep(Duration::from_millis(2)).await;
    }
}

fn fds() -> Vec<String> {
    std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

fn pidfds_open() -> usize {
    fds().iter().filter(|l| l.contains("pidfd")).count()
}

/// Whether this kernel has pidfd_open (Linux ≥ 5.3).
fn kernel_has_pidfd() -> bool {
    // SAFETY: pidfd_open on our own pid; the fd it returns is closed at once.
    unsafe {
        let fd = libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0);
        fd >= 0 && libc::close(fd as i32) == 0
    }
}

/// Makes `pidfd_open` fail with `ENOSYS` on this thread (and in the processes it starts), as on
/// a kernel older than 5.3: a seccomp filter. False where seccomp filters are not available.
fn forbid_pidfd_open() -> bool {
    let op = |code: u32, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf,
        k,
    };
    let mut filter = [
        op(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0, 0), // the syscall's number
        op(
            libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K,
            1,
            libc::SYS_pidfd_open as u32,
        ),
        op(
            libc::BPF_RET | libc::BPF_K,
            0,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        op(libc::BPF_RET | libc::BPF_K, 0, libc::SECCOMP_RET_ALLOW), // any other
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_mut_ptr(),
    };
    let prog: *const libc::sock_fprog = &prog;
    // SAFETY: prctl with integers, and a filter program that outlives the call (it is copied).
    unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, prog) == 0
    }
}

async fn read_all(pipe: &mut (impl futures::AsyncRead + Unpin)) -> String {
    let mut s = String::new();
    pipe.read_to_string(&mut s).await.unwrap();
    s
}

fn sh(script: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    c
}

// ---- the scenarios ----

async fn output_and_status() {
    let out = sh("echo out; echo err >&2; exit 3").output().await.unwrap();
    assert_eq!(out.stdout, b"out\n");
    assert_eq!(out.stderr, b"err\n");
    assert_eq!(out.status.code(), Some(3));
    assert!(Command::new("true").status().await.unwrap().success());
    assert_eq!(
        Command::new("false").status().await.unwrap().code(),
        Some(1)
    );
    // The defaults of `output` do not stick: a later spawn inherits again (nothing piped).
    let mut c = Command::new("true");
    c.output().await.unwrap();
    let mut child = c.spawn().unwrap();
    assert!(child.stdout.is_none() && child.stderr.is_none() && child.stdin.is_none());
    assert!(child.wait().await.unwrap().success());
}

async fn bad_input() {
    let e = Command::new("/nonexistent/solo-no-such-program")
        .spawn()
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("solo-no-such-program"), "{e}");
    let e = Command::new("solo-no-such-program-in-path")
        .output()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
    let e = Command::new("echo").arg("nul\0byte").spawn().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{e}");
    assert!(Command::new("").status().await.is_err());
    let e = Command::new("/").spawn().unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied, "{e}");
}

async fn stdin_dropped_is_end_of_file() {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello ").await.unwrap();
    stdin.write_all(b"cat").await.unwrap();
    stdin.flush().await.unwrap();
    drop(stdin); // cat sees the end of file and exits
    assert_eq!(read_all(child.stdout.as_mut().unwrap()).await, "hello cat");
    assert!(child.wait().await.unwrap().success());
}

async fn stdout_closed_early() {
    // The child closes its stdout, then waits for a line on stdin.
    let mut child = sh("exec 1>&-; read line; echo \"got $line\" >&2")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = read_all(child.stdout.as_mut().unwrap()).await;
    assert_eq!(out, "", "end of file while the child still runs");
    assert_eq!(child.try_wait().unwrap(), None);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"more\n").await.unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"");
    assert_eq!(out.stderr, b"got more\n");
}

async fn writing_after_the_child_closed_stdin() {
    let mut child = sh("exec 0<&-; echo closed")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(read_all(child.stdout.as_mut().unwrap()).await, "closed\n");
    let mut stdin = child.stdin.take().unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let e = loop {
        // Until nobody holds the read end (a process being spawned elsewhere may, briefly).
        if let Err(e) = stdin.write_all(&chunk).await {
            break e;
        }
    };
    assert_eq!(e.kind(), std::io::ErrorKind::BrokenPipe, "{e}");
    assert!(child.wait().await.unwrap().success());
}

async fn ten_megabytes_on_stderr() {
    const BIG: usize = 10_000_000;
    let script = "head -c 10000000 /dev/zero >&2; echo done";
    // output(): both streams read at once.
    let out = sh(script).output().await.unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"done\n");
    assert_eq!(out.stderr.len(), BIG);
    // By hand: a task drains stderr while this one reads stdout.
    let mut child = sh(script)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let drain = Handle::current().spawn(async move {
        let mut n = 0;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match stderr.read(&mut buf).await.unwrap() {
                0 => return n,
                k => n += k,
            }
        }
    });
    assert_eq!(read_all(child.stdout.as_mut().unwrap()).await, "done\n");
    assert_eq!(drain.await.unwrap(), BIG);
    assert!(child.wait().await.unwrap().success());
}

async fn killed_by_a_signal() {
    let status = sh("kill -TERM $$").status().await.unwrap();
    assert_eq!(status.signal(), Some(libc::SIGTERM));
    assert_eq!(status.code(), None);
    assert!(!status.success());
    let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
    child.kill().unwrap();
    let status = child.wait().await.unwrap();
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(status.to_string().contains("SIGKILL"), "{status}");
}

async fn wait_twice() {
    let mut child = sh("exit 7").spawn().unwrap();
    let pid = child.id().unwrap();
    let first = child.wait().await.unwrap();
    assert_eq!(first.code(), Some(7));
    assert_eq!(state(pid), State::Gone);
    assert_eq!(child.wait().await.unwrap(), first);
    assert_eq!(child.try_wait().unwrap(), Some(first));
    assert_eq!(child.id(), None);
    child.kill().unwrap(); // nothing left to kill: fine
    assert_eq!(child.wait_with_output().await.unwrap().status, first);
}

async fn output_with_no_pipes() {
    let out = sh("echo hidden; echo hidden >&2")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
    // A child with inherited stdio: nothing to collect.
    let child = Command::new("true").spawn().unwrap();
    assert!(child.stdout.is_none());
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success());
    assert!(out.stdout.is_empty() && out.stderr.is_empty());
}

async fn a_dropped_child_is_reaped_by_the_loop() {
    // cat runs until its stdin closes: dropped while it runs.
    let mut child = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
    let pid = child.id().unwrap();
    let stdin = child.stdin.take().unwrap();
    drop(child);
    assert_eq!(state(pid), State::Running);
    drop(stdin);
    until_reaped(pid).await;
    // With kill_on_drop: killed, then reaped.
    let child = Command::new("sleep")
        .arg("1000")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = child.id().unwrap();
    drop(child);
    until_reaped(pid).await;
    // Without: it runs on (until something else kills it), and is still reaped.
    let child = Command::new("sleep").arg("1000").spawn().unwrap();
    let pid = child.id().unwrap();
    drop(child);
    solo::yield_now().await;
    assert_eq!(state(pid), State::Running);
    // SAFETY: kill(2) on our child, not yet reaped (so the pid is still its own).
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    until_reaped(pid).await;
}

async fn a_pipeline() {
    let mut echo = Command::new("echo")
        .arg("quiet words")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let fd = echo.stdout.take().unwrap().into_owned_fd().unwrap();
    let out = Command::new("tr")
        .args(["a-z", "A-Z"])
        .stdin(Stdio::from(fd))
        .output()
        .await
        .unwrap();
    assert_eq!(out.stdout, b"QUIET WORDS\n");
    assert!(echo.wait().await.unwrap().success());
}

/// `n` children at once, half waited for, half dropped at once; then no child, zombie or
/// running, is left, and the fds are back to where they were. Needs a process of its own.
async fn many_at_once(n: usize) {
    Command::new("true").status().await.unwrap(); // anything opened once, opened before
    let before = fds().len();
    let mut waited = Vec::new();
    let mut pids = Vec::new();
    for i in 0..n {
        let child = Command::new("echo")
            .arg(i.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        pids.push(child.id().unwrap());
        if i % 2 == 0 {
            waited.push((i, child));
        } // else dropped here, its stdout with it
    }
    let tasks: Vec<_> = waited
        .into_iter()
        .map(|(i, child): (usize, Child)| {
            Handle::current().spawn(async move {
                let out = child.wait_with_output().await.unwrap();
                assert!(out.status.success());
                assert_eq!(out.stdout, format!("{i}\n").as_bytes());
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    while !no_children() {
        solo::time::sleep(Duration::from_millis(2)).await;
    }
    for pid in pids {
        assert_eq!(state(pid), State::Gone);
    }
    assert_eq!(fds().len(), before, "{:?}", fds());
}

async fn every_scenario() {
    output_and_status().await;
    bad_input().await;
    stdin_dropped_is_end_of_file().await;
    stdout_closed_early().await;
    writing_after_the_child_closed_stdin().await;
    ten_megabytes_on_stderr().await;
    killed_by_a_signal().await;
    wait_twice().await;
    output_with_no_pipes().await;
    a_dropped_child_is_reaped_by_the_loop().await;
    a_pipeline().await;
}

// ---- the tests ----

#[test]
fn output_status_and_pipes() {
    let _watchdog = common::watchdog!();
    run(async {
        output_and_status().await;
        stdin_dropped_is_end_of_file().await;
        output_with_no_pipes().await;
        a_pipeline().await;
    });
}

#[test]
fn programs_that_cannot_run_are_errors() {
    let _watchdog = common::watchdog!();
    run(bad_input());
    // Outside a running loop: an error, not a panic.
    let e = Command::new("true").spawn().unwrap_err();
    assert!(e.to_string().contains("outside a running"), "{e}");
    let e = futures::executor::block_on(Command::new("true").output()).unwrap_err();
    assert!(e.to_string().contains("outside a running"), "{e}");
}

#[test]
fn children_closing_their_stdout_or_stdin_early() {
    let _watchdog = common::watchdog!();
    run(async {
        stdout_closed_early().await; // end of file for us while it runs
        writing_after_the_child_closed_stdin().await; // BrokenPipe
    });
}

#[test]
fn ten_megabytes_on_stderr_while_reading_stdout_does_not_deadlock() {
    let _watchdog = common::watchdog!();
    run(ten_megabytes_on_stderr());
}

#[test]
fn statuses_say_which_signal_killed_and_stay_after_the_first_wait() {
    let _watchdog = common::watchdog!();
    run(async {
        killed_by_a_signal().await;
        wait_twice().await;
    });
}

#[test]
fn dropped_children_are_reaped_by_the_loop() {
    let _watchdog = common::watchdog!();
    run(a_dropped_child_is_reaped_by_the_loop());
}

#[test]
fn a_pidfd_watches_each_child_where_the_kernel_has_them() {
    let _watchdog = common::watchdog!();
    if !kernel_has_pidfd() {
        return; // the fallback is what runs here; the test below covers it
    }
    run(async {
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        assert!(pidfds_open() >= 1);
        child.kill().unwrap();
        child.wait().await.unwrap();
    });
}

#[test]
fn children_outliving_their_loop_are_reaped_later() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let (mut waited, orphaned, killed) = el
        .run_until_complete(async {
            let waited = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
            // Dropped while the loop runs: the loop's callback holds it, then the loop goes.
            let mut orphaned = Command::new("cat").stdin(Stdio::piped()).spawn().unwrap();
            let orphaned_stdin = orphaned.stdin.take().unwrap();
            let orphaned_pid = orphaned.id().unwrap();
            drop(orphaned);
            let killed = Command::new("sleep")
                .arg("1000")
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            (waited, (orphaned_pid, orphaned_stdin), killed)
        })
        .unwrap();
    drop(el);
    // Waiting needs the loop: an error now, not a hang.
    let stdin = waited.stdin.take().unwrap();
    let e = futures::executor::block_on(waited.wait()).unwrap_err();
    assert!(e.to_string().contains("closed"), "{e}");
    let pids = [waited.id().unwrap(), orphaned.0, killed.id().unwrap()];
    // Both cats see the end of file and exit; `killed` is killed as it is dropped.
    drop((stdin, orphaned.1));
    assert!(waited.try_wait().is_ok()); // this one still works
    drop((waited, killed));
    // Nobody watches them any more: the next spawn, anywhere in the process, reaps them.
    run(async {
        for pid in pids {
            while state(pid) != State::Gone {
                Command::new("true").status().await.unwrap();
            }
        }
    });
}

#[test]
fn the_example_runs_jobs_in_parallel_with_a_limit_and_kills_overdue_ones() {
    let _watchdog = common::watchdog!();
    let lines = Rc::new(std::cell::RefCell::new(Vec::<String>::new()));
    let l = lines.clone();
    let sink: subprocess::Sink = Rc::new(move |line| l.borrow_mut().push(line.to_string()));
    let job = |name: &str, command: &str, timeout_ms: u64| subprocess::Job {
        name: name.into(),
        command: command.into(),
        timeout: Duration::from_millis(timeout_ms),
    };
    let forever = 600_000;
    let jobs = vec![
        job("a", "echo one; echo two >&2", forever),
        job("b", "exit 3", forever),
        job("stuck", "sleep 1000", 50),
        // A background job holding the output open: killed with its group.
        job("group", "sleep 1000 & echo started; wait", 50),
        job("e", "echo e", forever),
        job("f", "printf 'no newline'", forever),
    ];
    let summary = run(subprocess::run_all(jobs, 2, sink));
    assert_eq!(summary.peak, 2);
    let names: Vec<&str> = summary.reports.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "stuck", "group", "e", "f"]);
    use subprocess::Outcome::*;
    let r = &summary.reports;
    assert!(matches!(&r[0].outcome, Exited(s) if s.success()));
    assert_eq!(r[0].lines, 2);
    assert!(matches!(&r[1].outcome, Exited(s) if s.code() == Some(3)));
    for timed_out in &r[2..4] {
        assert!(
            matches!(&timed_out.outcome, TimedOut(s) if s.signal() == Some(libc::SIGKILL)),
            "{timed_out:?}"
        );
    }
    let lines = lines.borrow();
    for want in [
        "[a] one",
        "[a!] two",
        "[group] started",
        "[e] e",
        "[f] no newline",
    ] {
        assert!(lines.iter().any(|l| l == want), "{want} in {lines:?}");
    }
}

/// `SOLO_NO_PIDFD=0`: pidfds as by default, in a process of its own for the counts.
#[test]
fn a_thousand_children_at_once_leave_no_zombie_and_no_fd() {
    let _watchdog = common::watchdog!(Duration::from_secs(300));
    common::with_env!(&[("SOLO_NO_PIDFD", "0")], || run(many_at_once(1000)));
}

/// Every scenario again with SIGCHLD instead of pidfds, in a process of its own.
#[test]
fn the_sigchld_fallback() {
    let _watchdog = common::watchdog!(Duration::from_secs(300));
    common::with_env!(&[("SOLO_NO_PIDFD", "1")], || {
        run(async {
            let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
            assert_eq!(pidfds_open(), 0, "{:?}", fds());
            child.kill().unwrap();
            child.wait().await.unwrap();
            every_scenario().await;
            many_at_once(300).await;
        });
    });
}

/// Run in a child process by the test below: a seccomp filter cannot be taken back.
#[test]
#[ignore = "helper process for a_kernel_without_pidfd_open_falls_back_to_sigchld"]
fn no_pidfd_open_helper() {
    let _watchdog = common::watchdog!(Duration::from_secs(300));
    if !forbid_pidfd_open() {
        println!("no seccomp filters here");
        return;
    }
    assert!(!kernel_has_pidfd());
    run(async {
        // The first spawn finds ENOSYS and switches to SIGCHLD for good.
        let mut child = Command::new("sleep").arg("1000").spawn().unwrap();
        assert_eq!(pidfds_open(), 0, "{:?}", fds());
        child.kill().unwrap();
        assert_eq!(child.wait().await.unwrap().signal(), Some(libc::SIGKILL));
        every_scenario().await;
        many_at_once(100).await;
    });
    println!("fell back to SIGCHLD");
}

#[test]
fn a_kernel_without_pidfd_open_falls_back_to_sigchld() {
    let _watchdog = common::watchdog!(Duration::from_secs(300));
    let out = common::rerun("no_pidfd_open_helper")
        .args(["--ignored", "--nocapture"])
        .env_remove("SOLO_NO_PIDFD")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && (stdout.contains("fell back to SIGCHLD") || stdout.contains("no seccomp")),
        "{}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

//! Child processes on the loop: [`Command`] spawns a [`Child`] whose pipes are futures-io
//! streams and whose exit is a future.
//!
//! ```
//! use solo::process::Command;
//!
//! solo::run(async {
//!     let out = Command::new("sh").arg("-c").arg("echo out; echo err >&2; exit 3").output().await?;
//!     assert_eq!(out.stdout, b"out\n");
//!     assert_eq!(out.stderr, b"err\n");
//!     assert_eq!(out.status.code(), Some(3));
//!
//!     let status = Command::new("true").status().await?;
//!     assert!(status.success());
//!     Ok::<(), std::io::Error>(())
//! })??;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! [`Command`] is std's builder (arguments, environment, directory, stdio) with solo's spawn:
//! piped streams become non-blocking pipes registered with the loop ([`ChildStdin`] is
//! `AsyncWrite`, [`ChildStdout`] and [`ChildStderr`] are `AsyncRead`), and [`Child::wait`]
//! is a future. Spawning itself (`fork`/`exec`, or `posix_spawn`) happens on the loop thread
//! when `spawn` is called, as in asyncio: it is short, but it is not free.
//!
//! # Exits and reaping
//!
//! No thread waits for a child. On Linux ≥ 5.3 each child gets a pidfd that the loop watches
//! like any fd; elsewhere (or with `SOLO_NO_PIDFD=1` in the environment) one SIGCHLD listener
//! per loop wakes that loop's waiting children. solo only ever reaps its own children, by pid,
//! so processes that other code spawned are left alone.
//!
//! Every child is reaped, so none stays a zombie:
//!
//! - [`wait`](Child::wait), [`try_wait`](Child::try_wait),
//!   [`wait_with_output`](Child::wait_with_output), [`Command::status`] and
//!   [`Command::output`] reap it;
//! - a [`Child`] dropped before that keeps running (unless
//!   [`kill_on_drop`](Command::kill_on_drop) is set: then it is killed), and its loop reaps it
//!   when it exits, with a reader callback, not a task (a graceful
//!   [`shutdown`](crate::EventLoop::shutdown) does not wait for it);
//! - a child whose loop is dropped before it exits (its `Child` dropped too, or dropped later)
//!   goes to a process-wide queue, reaped whenever any loop in the process spawns a child,
//!   reaps one, or sees SIGCHLD. Until then it may stay a zombie, and if the process exits
//!   first, init reaps it. A `Child` outliving its loop can no longer be waited for: `wait` is
//!   an error (a `try_wait` still works).
//!
//! Something else that reaps children behind solo's back (a `waitpid(-1)`, or SIGCHLD set to
//! `SIG_IGN`, which makes the kernel reap them) takes the exit status with it: `wait` then
//! fails with a clear error instead of hanging.

use std::ffi::OsStr;
use std::fmt;
use std::future::Future;
use std::io;
use std::path::Path;
use std::process::Command as StdCommand;

pub use std::process::{ExitStatus, Output, Stdio};

use crate::{error, Handle};

mod child;
mod reap;

pub use child::{Child, ChildStderr, ChildStdin, ChildStdout};

/// A process to start: std's [`Command`](std::process::Command) builder, spawned onto the
/// loop. The methods are std's; [`kill_on_drop`](Command::kill_on_drop) is solo's.
///
/// ```
/// use futures::AsyncReadExt;
/// use solo::process::{Command, Stdio};
///
/// solo::run(async {
///     let mut child = Command::new("sh")
///         .args(["-c", "echo $GREETING from $PWD"])
///         .env("GREETING", "hello")
///         .current_dir("/")
///         .stdout(Stdio::piped())
///         .spawn()?;
///     let mut line = String::new();
///     child.stdout.take().unwrap().read_to_string(&mut line).await?;
///     assert_eq!(line, "hello from /\n");
///     child.wait().await?;
///     Ok::<(), std::io::Error>(())
/// })??;
/// # Ok::<(), std::io::Error>(())
/// ```
pub struct Command {
    std: StdCommand,
    stdin_set: bool,
    stdout_set: bool,
    stderr_set: bool,
    kill_on_drop: bool,
}

impl Command {
    /// A command that runs `program` (looked up in `PATH` if it has no `/`), with no
    /// arguments, this process's environment and directory, and inherited stdio.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            std: StdCommand::new(program),
            stdin_set: false,
            stdout_set: false,
            stderr_set: false,
            kill_on_drop: false,
        }
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    pub fn env(&mut self, key: impl AsRef<OsStr>, val: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, val);
        self
    }

    /// Sets environment variables for the child.
    pub fn envs<I, K, V>(&mut self, vars: I) -> &mut Command
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        self.std.envs(vars);
        self
    }

    /// Removes a variable from the child's environment.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Starts the child with an empty environment (plus what `env` adds).
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory.
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// Sets the child's stdin: [`Stdio::piped`] for a [`ChildStdin`], `null`, `inherit`
    /// (the default, except for [`output`](Command::output): `null`), or an fd of yours.
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// Sets the child's stdout: [`Stdio::piped`] for a [`ChildStdout`], `null`, `inherit`
    /// (the default, except for [`output`](Command::output): piped), or an fd of yours.
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self.stdout_set = true;
        self
    }

    /// Sets the child's stderr, like [`stdout`](Command::stdout).
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self.stderr_set = true;
        self
    }

    /// Whether dropping the [`Child`] before it was reaped kills it (SIGKILL). Off by default:
    /// a dropped child runs on, and the loop reaps it when it exits. Either way it is reaped.
    pub fn kill_on_drop(&mut self, kill: bool) -> &mut Command {
        self.kill_on_drop = kill;
        self
    }

    /// std's builder, for what this one does not wrap (`CommandExt::process_group`, `uid`,
    /// `pre_exec`...). Set stdio through this `Command`'s own methods, so that
    /// [`output`](Command::output) knows which streams you chose.
    pub fn as_std_mut(&mut self) -> &mut StdCommand {
        &mut self.std
    }

    /// std's builder, to read back what was set.
    pub fn as_std(&self) -> &StdCommand {
        &self.std
    }

    /// Starts the child on the loop running on this thread.
    ///
    /// # Errors
    /// - outside a running loop: [`Error::OutsideLoop`](crate::Error::OutsideLoop) (kind
    ///   `Other`);
    /// - on a closed loop: [`Error::LoopClosed`](crate::Error::LoopClosed) (kind `Other`);
    /// - if the program cannot be started: std's errors, with the program's name added
    ///   (`NotFound` for a program that does not exist, `PermissionDenied`, `InvalidInput` for
    ///   an argument with a NUL byte);
    /// - if there is no fd left to watch the child (the OS's error; the child is killed then,
    ///   and reaped).
    pub fn spawn(&mut self) -> io::Result<Child> {
        let handle = Handle::try_current().ok_or_else(|| error::outside_loop("Command::spawn"))?;
        if handle.is_closed() {
            return Err(error::loop_closed("Command::spawn"));
        }
        reap::reap_orphans();
        let child = self.std.spawn().map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot run {:?}: {e}", self.std.get_program()),
            )
        })?;
        Child::spawned(&handle, child, self.kill_on_drop)
    }

    /// Runs the child to its end and returns its exit status. Stdio is inherited unless set.
    /// The child is started by this call (errors come out of the future).
    ///
    /// # Errors
    /// Those of [`spawn`](Command::spawn) and of [`Child::wait`].
    pub fn status(&mut self) -> impl Future<Output = io::Result<ExitStatus>> + 'static {
        let child = self.spawn();
        async move { child?.wait().await }
    }

    /// Runs the child to its end and collects what it wrote: stdout and stderr are piped and
    /// stdin is null unless set otherwise (std's defaults). Both are read at the same time, so
    /// a child writing much to one while the other is read cannot block. The child is started
    /// by this call.
    ///
    /// # Errors
    /// Those of [`spawn`](Command::spawn) and of [`Child::wait_with_output`].
    pub fn output(&mut self) -> impl Future<Output = io::Result<Output>> + 'static {
        let defaults = [!self.stdin_set, !self.stdout_set, !self.stderr_set];
        if defaults[0] {
            self.std.stdin(Stdio::null());
        }
        if defaults[1] {
            self.std.stdout(Stdio::piped());
        }
        if defaults[2] {
            self.std.stderr(Stdio::piped());
        }
        let child = self.spawn();
        // Back to what `spawn` and `status` use when nothing was set.
        if defaults[0] {
            self.std.stdin(Stdio::inherit());
        }
        if defaults[1] {
            self.std.stdout(Stdio::inherit());
        }
        if defaults[2] {
            self.std.stderr(Stdio::inherit());
        }
        async move { child?.wait_with_output().await }
    }
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Command")
            .field("std", &self.std)
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}

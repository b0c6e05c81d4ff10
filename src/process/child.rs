//! [`Child`], a running child process, and its pipes.
//!
//! ```
//! use futures::{AsyncReadExt, AsyncWriteExt};
//! use solo::process::{Command, Stdio};
//!
//! solo::run(async {
//!     let mut child = Command::new("tr")
//!         .arg("a-z")
//!         .arg("A-Z")
//!         .stdin(Stdio::piped())
//!         .stdout(Stdio::piped())
//!         .spawn()?;
//!     let mut stdin = child.stdin.take().unwrap();
//!     stdin.write_all(b"shout").await?;
//!     drop(stdin); // end of file for the child
//!     let mut out = String::new();
//!     child.stdout.as_mut().unwrap().read_to_string(&mut out).await?;
//!     assert_eq!(out, "SHOUT");
//!     assert!(child.wait().await?.success());
//!     Ok::<(), std::io::Error>(())
//! })??;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fmt;
use std::fs::File;
use std::future::poll_fn;
use std::io::{self, IoSlice};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::process::{Child as StdChild, ExitStatus, Output};
use std::task::{Context, Poll};

use futures_io::{AsyncRead, AsyncWrite};

use super::reap::{self, Watch};
use crate::{error, Async, Handle};

/// A child process started by [`Command::spawn`](super::Command::spawn).
///
/// Its piped standard streams are in `stdin`, `stdout` and `stderr` (`None` for a stream that
/// was not piped), as futures-io `AsyncWrite`/`AsyncRead` on non-blocking pipes registered with
/// the loop; take them out to use them from other tasks.
///
/// Dropping a `Child` does not wait for the process: it keeps running, and the loop reaps it
/// when it exits (see the [module docs](super)). With
/// [`kill_on_drop`](super::Command::kill_on_drop) it is killed first.
pub struct Child {
    /// The child's stdin, if it was piped. Drop it to close it: a child that reads its stdin
    /// then sees the end of file. [`wait`](Child::wait) closes it too.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if it was piped.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if it was piped.
    pub stderr: Option<ChildStderr>,
    state: State,
    kill_on_drop: bool,
    handle: Handle,
}

enum State {
    Running {
        child: StdChild,
        watch: Watch,
    },
    Exited(ExitStatus),
    /// Only while it is dropped.
    Dropped,
}

impl Child {
    /// Wraps a process std just spawned; on failure (no fd left for the pidfd or the pipes),
    /// kills it and leaves it to be reaped.
    pub(super) fn spawned(
        handle: &Handle,
        mut child: StdChild,
        kill_on_drop: bool,
    ) -> io::Result<Child> {
        let (stdin, stdout, stderr) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take());
        let set_up = (|| {
            let watch = Watch::new(handle, child.id())?;
            let stdin = stdin.map(|p| Pipe::new(p.into(), handle, "ChildStdin::write"));
            let stdout = stdout.map(|p| Pipe::new(p.into(), handle, "ChildStdout::read"));
            let stderr = stderr.map(|p| Pipe::new(p.into(), handle, "ChildStderr::read"));
            let (stdin, stdout, stderr) =
                (stdin.transpose()?, stdout.transpose()?, stderr.transpose()?);
            io::Result::Ok((watch, stdin, stdout, stderr))
        })();
        match set_up {
            Ok((watch, stdin, stdout, stderr)) => Ok(Child {
                stdin: stdin.map(ChildStdin),
                stdout: stdout.map(ChildStdout),
                stderr: stderr.map(ChildStderr),
                state: State::Running { child, watch },
                kill_on_drop,
                handle: handle.clone(),
            }),
            Err(e) => {
                let pid = child.id();
                let _ = child.kill();
                reap::give_up(child);
                Err(io::Error::new(
                    e.kind(),
                    format!("started pid {pid} but could not watch it, so it was killed: {e}"),
                ))
            }
        }
    }

    /// The process id, until the child is reaped (`None` after: the number may already belong
    /// to another process).
    pub fn id(&self) -> Option<u32> {
        match &self.state {
            State::Running { child, .. } => Some(child.id()),
            _ => None,
        }
    }

    /// Waits for the child to exit and reaps it; closes its stdin first, so a child that reads
    /// it to the end can finish. Waiting again returns the same status at once.
    ///
    /// Does not read stdout or stderr: a child that fills a piped stream nobody reads blocks
    /// forever. Read them, or use [`wait_with_output`](Child::wait_with_output).
    ///
    /// # Errors
    /// - if the loop is gone: [`Error::LoopClosed`](crate::Error::LoopClosed) (the child is
    ///   still reaped when it exits, see the [module docs](super));
    /// - if something else in the process reaped the child (`ECHILD`, with the pid and the
    ///   likely cause in the message).
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        poll_fn(|cx| self.poll_wait(cx)).await
    }

    /// Polls for the child's exit (see [`wait`](Child::wait); this one leaves stdin open).
    pub fn poll_wait(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<ExitStatus>> {
        let polled = match &mut self.state {
            State::Exited(status) => return Poll::Ready(Ok(*status)),
            State::Dropped => return Poll::Ready(Err(reap::closed("Child::wait"))),
            State::Running { child, watch } => reap::poll_exit(&self.handle, child, watch, cx),
        };
        if let Poll::Ready(Ok(status)) = polled {
            self.exited(status);
        }
        polled
    }

    /// The exit status if the child has exited (reaping it), without waiting.
    ///
    /// # Errors
    /// If something else in the process reaped the child (`ECHILD`).
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        let status = match &mut self.state {
            State::Exited(status) => return Ok(Some(*status)),
            State::Dropped => return Err(reap::closed("Child::try_wait")),
            State::Running { child, .. } => reap::try_reap(child)?,
        };
        if let Some(status) = status {
            self.exited(status);
        }
        Ok(status)
    }

    /// The child was reaped: the pidfd or hub place goes, and it is a good moment for orphans.
    fn exited(&mut self, status: ExitStatus) {
        self.state = State::Exited(status);
        reap::reap_orphans();
    }

    /// Sends SIGKILL to the child (it cannot be caught); does not wait for it. `Ok` if the
    /// child has already been reaped: there is nothing left to kill.
    pub fn kill(&mut self) -> io::Result<()> {
        match &mut self.state {
            State::Running { child, .. } => child.kill(),
            _ => Ok(()),
        }
    }

    /// Reads stdout and stderr to their ends (the ones that are piped; the others come back
    /// empty), at the same time so that a child filling one while we wait on the other cannot
    /// block, then waits for the exit. Closes stdin first.
    ///
    /// # Errors
    /// Those of [`wait`](Child::wait), and a read error on either stream
    /// ([`Error::LoopClosed`](crate::Error::LoopClosed) if the loop is gone: the pipes'
    /// registrations went with it).
    pub async fn wait_with_output(mut self) -> io::Result<Output> {
        drop(self.stdin.take());
        let (mut stdout, mut stderr) = (self.stdout.take(), self.stderr.take());
        let (mut out, mut err) = (Vec::new(), Vec::new());
        poll_fn(|cx| {
            let a = poll_read_all(&mut stdout, |p| &p.0, &mut out, cx)?;
            let b = poll_read_all(&mut stderr, |p| &p.0, &mut err, cx)?;
            if a.is_ready() && b.is_ready() {
                Poll::Ready(io::Result::Ok(()))
            } else {
                Poll::Pending
            }
        })
        .await?;
        let status = self.wait().await?;
        Ok(Output {
            status,
            stdout: out,
            stderr: err,
        })
    }
}

/// Reads `stream` into `buf` until the end of file, then drops it (ready at once for none).
fn poll_read_all<T>(
    stream: &mut Option<T>,
    pipe_of: impl Fn(&T) -> &Pipe,
    buf: &mut Vec<u8>,
    cx: &mut Context<'_>,
) -> Poll<io::Result<()>> {
    let Some(pipe) = stream.as_ref().map(pipe_of) else {
        return Poll::Ready(Ok(()));
    };
    const CHUNK: usize = 64 * 1024; // a pipe's default capacity
    loop {
        let len = buf.len();
        buf.resize(len + CHUNK, 0);
        let r = pipe.poll_read(cx, &mut buf[len..]);
        let n = match &r {
            Poll::Ready(Ok(n)) => *n,
            _ => 0,
        };
        buf.truncate(len + n);
        match r {
            Poll::Ready(Ok(0)) => {
                *stream = None;
                return Poll::Ready(Ok(()));
            }
            Poll::Ready(Ok(_)) => {}
            Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => return Poll::Pending,
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        if let State::Running { mut child, watch } =
            std::mem::replace(&mut self.state, State::Dropped)
        {
            if self.kill_on_drop {
                let _ = child.kill();
            }
            reap::orphan(&self.handle, child, watch);
        }
    }
}

impl fmt::Debug for Child {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Child");
        match &self.state {
            State::Running { child, watch } => d.field("pid", &child.id()).field("watch", watch),
            State::Exited(status) => d.field("status", status),
            State::Dropped => d.field("state", &"dropped"),
        };
        d.field("stdin", &self.stdin.is_some())
            .field("stdout", &self.stdout.is_some())
            .field("stderr", &self.stderr.is_some())
            .field("kill_on_drop", &self.kill_on_drop)
            .finish()
    }
}

// ---- the pipes ----

/// One end of a pipe to the child, non-blocking and registered with the loop.
#[derive(Debug)]
struct Pipe {
    io: Async<File>,
    handle: Handle,
    /// What the user calls on it (`"ChildStdout::read"`), for the errors.
    call: &'static str,
}

impl Pipe {
    fn new(fd: OwnedFd, handle: &Handle, call: &'static str) -> io::Result<Pipe> {
        Ok(Pipe {
            io: Async::with_handle_for(File::from(fd), handle, "Command::spawn")?,
            handle: handle.clone(),
            call,
        })
    }

    /// An error once the loop is gone (the registration went with it).
    fn check_open(&self) -> io::Result<()> {
        if self.handle.is_closed() {
            // The pipes' registrations went with the loop.
            return Err(error::loop_closed(self.call));
        }
        Ok(())
    }

    fn poll_read(&self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        self.check_open()?;
        self.io.poll_read_stream(cx, buf)
    }

    fn poll_write(&self, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        self.check_open()?;
        self.io.poll_write_stream(cx, buf)
    }

    fn poll_write_vectored(
        &mut self,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.check_open()?;
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    /// Deregisters the pipe and puts it back in blocking mode, as another process expects it.
    fn into_owned_fd(self) -> io::Result<OwnedFd> {
        let file = self.io.into_inner()?;
        let fd = file.as_raw_fd();
        // SAFETY: fcntl on an fd we own; F_GETFL/F_SETFL take no pointers.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        // SAFETY: as above.
        if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(file.into())
    }
}

/// The writing end of the child's stdin: futures-io `AsyncWrite`. Dropping it closes it, and
/// the child sees the end of file. A write after the child closed its end fails with
/// `BrokenPipe`; a read or write on any of the three pipes after their loop is gone fails with
/// [`Error::LoopClosed`](crate::Error::LoopClosed).
#[derive(Debug)]
pub struct ChildStdin(Pipe);

/// The reading end of the child's stdout: futures-io `AsyncRead`; the end of file (a read of
/// 0) comes when the child, and every process it shared the pipe with, has closed it.
#[derive(Debug)]
pub struct ChildStdout(Pipe);

/// The reading end of the child's stderr: futures-io `AsyncRead`, like [`ChildStdout`].
#[derive(Debug)]
pub struct ChildStderr(Pipe);

macro_rules! pipe_common {
    ($($t:ident),*) => {$(
        impl $t {
            /// Deregisters the pipe and returns its fd in blocking mode, for another process:
            /// `Stdio::from(fd)` makes it the stdin, stdout or stderr of the next
            /// [`Command`](super::Command) (a shell pipeline).
            pub fn into_owned_fd(self) -> io::Result<OwnedFd> {
                self.0.into_owned_fd()
            }
        }

        impl AsRawFd for $t {
            fn as_raw_fd(&self) -> RawFd {
                self.0.io.as_raw_fd()
            }
        }

        impl AsFd for $t {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.0.io.as_fd()
            }
        }
    )*};
}
pipe_common!(ChildStdin, ChildStdout, ChildStderr);

macro_rules! readable {
    ($($t:ident),*) => {$(
        impl AsyncRead for $t {
            fn poll_read(
                self: Pin<&mut Self>,
                cx: &mut Context<'_>,
                buf: &mut [u8],
            ) -> Poll<io::Result<usize>> {
                self.0.poll_read(cx, buf)
            }
        }
    )*};
}
readable!(ChildStdout, ChildStderr);

impl AsyncWrite for ChildStdin {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.0.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().0.poll_write_vectored(cx, bufs)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // a pipe has no buffer of ours to flush
    }

    fn poll_close(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(())) // the pipe closes when this is dropped
    }
}

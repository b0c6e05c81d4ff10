//! How a child's exit is seen, without a thread per child, and how every child gets reaped.
//!
//! ```
//! // A child dropped while it runs is reaped by the loop when it exits: no zombie is left.
//! use solo::process::{Command, Stdio};
//! solo::run(async {
//!     let child = Command::new("true").stdout(Stdio::null()).spawn()?;
//!     let pid = child.id().unwrap();
//!     drop(child);
//!     // (poll until the loop has reaped it: the pid is no longer a child of ours)
//!     let gone = || unsafe {
//!         // SAFETY: waitid with WNOWAIT only looks; `info` is a valid, writable siginfo_t.
//!         let mut info: libc::siginfo_t = std::mem::zeroed();
//!         libc::waitid(libc::P_PID, pid, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) < 0
//!     };
//!     while !gone() {
//!         solo::time::sleep(std::time::Duration::from_millis(1)).await;
//!     }
//!     Ok::<(), std::io::Error>(())
//! })??;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! **Seeing the exit.** On Linux ≥ 5.3 each child gets a *pidfd* (`pidfd_open(2)`), registered
//! with the loop like any fd: it becomes readable when the child exits, and the task waiting in
//! [`Child::wait`](super::Child::wait) is woken and reaps it with `waitpid(pid, WNOHANG)`. Where
//! `pidfd_open` is missing (`ENOSYS`: an older kernel or another Unix; `EPERM`: a sandbox that
//! forbids it), or when `SOLO_NO_PIDFD=1` is set, a loop has one *SIGCHLD hub*: a
//! [`Listener`] for SIGCHLD (the self-pipe of `signal_pipe.rs`) watched by a reader callback,
//! which at each SIGCHLD wakes every child of that loop still waited for; each checks its own
//! pid with `waitpid(pid, WNOHANG)`. Neither way calls `waitpid(-1)`, so children that other
//! code in the process spawned (std's `Command`, another runtime) are never reaped behind its
//! back. The hub lives while the loop has children to watch and is gone (handler unregistered,
//! fds closed) once it has none.
//!
//! **Reaping every child.** A [`Child`](super::Child) dropped before it was reaped (killed first
//! with `kill_on_drop`) is handed to its loop: with a pidfd, a reader callback on the pidfd reaps
//! it when it exits and removes itself; with the hub, the hub keeps it and reaps it at a SIGCHLD.
//! Neither is a task, so a graceful [`shutdown`](crate::EventLoop::shutdown) does not wait for
//! orphans. A child whose loop is gone (the loop was dropped first, or closed while the
//! callback waited) goes to a process-wide queue, which is reaped whenever any loop spawns a
//! child, reaps one, or sees a SIGCHLD; until one of those happens it stays a zombie. That is the
//! one case this cannot cover without a thread, and the module docs of
//! [`process`](super) say so.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::{Child as StdChild, ExitStatus};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use slab::Slab;

use crate::reactor::Dir;
use crate::signal_pipe::Listener;
use crate::{error, Async, Handle};

/// Set (to anything but `0` or nothing) to watch children with SIGCHLD even where pidfds work.
pub(super) const NO_PIDFD_ENV: &str = "SOLO_NO_PIDFD";

const UNKNOWN: u8 = 0;
const PIDFD: u8 = 1;
const SIGCHLD: u8 = 2;

/// How this process watches children: decided at the first spawn, and switched to SIGCHLD for
/// good if `pidfd_open` turns out to be missing.
static MODE: AtomicU8 = AtomicU8::new(UNKNOWN);

fn mode() -> u8 {
    let m = MODE.load(Ordering::Relaxed);
    if m != UNKNOWN {
        return m;
    }
    let forced = std::env::var_os(NO_PIDFD_ENV).is_some_and(|v| !v.is_empty() && v != "0");
    let m = if forced { SIGCHLD } else { PIDFD };
    // Threads racing here compute the same value.
    MODE.store(m, Ordering::Relaxed);
    m
}

#[cfg(target_os = "linux")]
fn pidfd_open(pid: u32) -> io::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open(2) takes a pid and flags, no pointers. The pid is our own child, not
    // yet reaped, so it cannot name another process.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a non-negative return is a new descriptor (close-on-exec) that nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(not(target_os = "linux"))]
fn pidfd_open(_pid: u32) -> io::Result<OwnedFd> {
    Err(io::Error::from_raw_os_error(libc::ENOSYS))
}

/// What tells the loop that a child exited.
pub(super) enum Watch {
    /// A pidfd: readable once the child has exited.
    Pidfd(Async<OwnedFd>),
    /// A place among the waiters of the loop's SIGCHLD hub.
    Sigchld(Waiter),
}

impl Watch {
    /// Starts watching the child `pid` on `handle`'s loop.
    pub(super) fn new(handle: &Handle, pid: u32) -> io::Result<Watch> {
        if mode() == PIDFD {
            match pidfd_open(pid) {
                Ok(fd) => return Ok(Watch::Pidfd(Async::with_handle(fd, handle)?)),
                Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {
                    MODE.store(SIGCHLD, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Watch::Sigchld(Hub::waiter(handle)?))
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Watch::Pidfd(fd) => write!(f, "pidfd {}", fd.as_raw_fd()),
            Watch::Sigchld(_) => f.write_str("SIGCHLD"),
        }
    }
}

/// `child.try_wait()`, with a clearer error when the child is no longer ours to reap.
pub(super) fn try_reap(child: &mut StdChild) -> io::Result<Option<ExitStatus>> {
    child.try_wait().map_err(|e| {
        if e.raw_os_error() == Some(libc::ECHILD) {
            io::Error::new(
                e.kind(),
                format!(
                    "pid {}: {e}: something else in this process reaped it (a waitpid(-1), or \
                     SIGCHLD set to SIG_IGN), so its exit status is lost",
                    child.id()
                ),
            )
        } else {
            e
        }
    })
}

/// The error of waiting on a loop that is gone: the child's exit can no longer be waited for
/// (it is still reaped once it exits; see solo::process).
pub(super) fn closed(call: &'static str) -> io::Error {
    error::loop_closed(call)
}

/// Polls for the child's exit; reaps it when it has exited.
pub(super) fn poll_exit(
    handle: &Handle,
    child: &mut StdChild,
    watch: &mut Watch,
    cx: &mut Context<'_>,
) -> Poll<io::Result<ExitStatus>> {
    if let Some(status) = try_reap(child)? {
        return Poll::Ready(Ok(status));
    }
    if handle.is_closed() {
        return Poll::Ready(Err(closed("Child::wait")));
    }
    match watch {
        Watch::Pidfd(fd) => {
            if fd.poll_readable(cx)?.is_pending() {
                return Poll::Pending;
            }
            // Readable: the child exited, so this finds it (the kernel makes the pidfd readable
            // only once the child is a zombie). If it does not, forget the readiness and wait
            // for the next event rather than spin.
            if let Some(status) = try_reap(child)? {
                return Poll::Ready(Ok(status));
            }
            fd.clear(Dir::Read);
            if fd.poll_readable(cx)?.is_ready() {
                cx.waker().wake_by_ref();
            }
            Poll::Pending
        }
        Watch::Sigchld(w) => {
            // A SIGCHLD from now on wakes us; one that came before left a byte in the hub's
            // pipe, and the hub's callback runs after this poll.
            w.set_waker(cx.waker());
            Poll::Pending
        }
    }
}

// ---- children nobody waits for ----

/// Children whose loop is gone, reaped whenever any loop spawns, reaps or sees a SIGCHLD.
static ORPHANS: Mutex<Vec<StdChild>> = Mutex::new(Vec::new());

fn still_running(child: &mut StdChild) -> bool {
    matches!(child.try_wait(), Ok(None))
}

/// Puts `child` in the process-wide queue, unless it can be reaped now.
pub(super) fn give_up(mut child: StdChild) {
    if still_running(&mut child) {
        ORPHANS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(child);
    }
}

/// Reaps what it can of the process-wide queue.
pub(super) fn reap_orphans() {
    let mut orphans = ORPHANS.lock().unwrap_or_else(|e| e.into_inner());
    if !orphans.is_empty() {
        orphans.retain_mut(still_running);
    }
}

/// A child that a callback of the loop reaps; the process-wide queue gets it if the callback is
/// dropped first (the loop closed). It owns the pidfd the callback is registered on, so the fd
/// is closed only when the callback, and with it the registration, is gone.
struct Orphan {
    child: Option<StdChild>,
    _pidfd: OwnedFd,
}

impl Drop for Orphan {
    fn drop(&mut self) {
        if let Some(child) = self.child.take() {
            give_up(child);
        }
    }
}

/// Hands over a child that was dropped before it was reaped: its loop reaps it when it exits.
pub(super) fn orphan(handle: &Handle, mut child: StdChild, watch: Watch) {
    if !still_running(&mut child) {
        return; // reaped just now, or not ours to reap
    }
    if handle.is_closed() {
        give_up(child);
        return;
    }
    match watch {
        Watch::Pidfd(fd) => {
            let fd = match fd.into_inner() {
                Ok(fd) => fd,
                Err(_) => return give_up(child),
            };
            let raw = fd.as_raw_fd();
            let h = handle.clone();
            let mut orphan = Orphan {
                child: Some(child),
                _pidfd: fd,
            };
            // A failure drops the callback, and the orphan with it: the queue has it then.
            let _ = handle.add_reader(&raw, move || {
                let reaped = orphan.child.as_mut().is_none_or(|c| !still_running(c));
                if reaped {
                    orphan.child = None;
                    h.remove_reader(&raw); // the callback, and the pidfd, are dropped after it returns
                    reap_orphans();
                }
            });
        }
        Watch::Sigchld(waiter) => {
            waiter.hub.orphans.borrow_mut().push(child);
            drop(waiter); // the hub stays: it has an orphan now
        }
    }
}

// ---- the SIGCHLD hub ----

thread_local! {
    /// The hub of each loop on this thread that has one, by loop id.
    static HUBS: RefCell<HashMap<usize, Weak<Hub>>> = RefCell::new(HashMap::new());
}

/// One loop's SIGCHLD watch. Kept alive by its waiters and by its reader callback, which it
/// removes once it has neither waiters nor orphans (or which the loop drops when it closes).
struct Hub {
    loop_id: usize,
    handle: Handle,
    listener: Listener,
    /// The wakers of the children being waited for, one slot per child watched.
    waiters: RefCell<Slab<Option<Waker>>>,
    /// Children dropped before they were reaped.
    orphans: RefCell<Vec<StdChild>>,
    retired: Cell<bool>,
}

/// A child's place among a hub's waiters.
pub(super) struct Waiter {
    hub: Rc<Hub>,
    slot: usize,
}

impl Hub {
    /// The loop's hub, made and registered if it has none.
    fn get(handle: &Handle) -> io::Result<Rc<Hub>> {
        let loop_id = handle.inner.id();
        let live = HUBS.with(|m| m.borrow().get(&loop_id).and_then(Weak::upgrade));
        if let Some(hub) = live.filter(|h| !h.retired.get()) {
            return Ok(hub);
        }
        let hub = Rc::new(Hub {
            loop_id,
            handle: handle.clone(),
            listener: Listener::new(libc::SIGCHLD)?,
            waiters: RefCell::new(Slab::new()),
            orphans: RefCell::new(Vec::new()),
            retired: Cell::new(false),
        });
        let h = hub.clone();
        handle.add_reader(&hub.listener, move || h.on_sigchld())?;
        HUBS.with(|m| m.borrow_mut().insert(loop_id, Rc::downgrade(&hub)));
        Ok(hub)
    }

    fn waiter(handle: &Handle) -> io::Result<Waiter> {
        let hub = Hub::get(handle)?;
        let slot = hub.waiters.borrow_mut().insert(None);
        Ok(Waiter { hub, slot })
    }

    /// The reader callback: some child (of this process) changed state.
    fn on_sigchld(&self) {
        self.listener.drain();
        self.orphans.borrow_mut().retain_mut(still_running);
        reap_orphans();
        let wakers: Vec<Waker> = self
            .waiters
            .borrow_mut()
            .iter_mut()
            .filter_map(|(_, w)| w.take())
            .collect();
        for w in wakers {
            w.wake();
        }
        self.retire_if_idle();
    }

    /// Unregisters the hub once nobody needs it. Its caller holds a reference (a waiter, or
    /// the running callback), so it is not freed under its own feet.
    fn retire_if_idle(&self) {
        if self.retired.get()
            || !self.waiters.borrow().is_empty()
            || !self.orphans.borrow().is_empty()
        {
            return;
        }
        self.retired.set(true);
        let _ = HUBS.try_with(|m| {
            let mut m = m.borrow_mut();
            if m.get(&self.loop_id)
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), self))
            {
                m.remove(&self.loop_id);
            }
        });
        self.handle.remove_reader(&self.listener);
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        // The loop closed with orphans still here.
        for child in self.orphans.get_mut().drain(..) {
            give_up(child);
        }
    }
}

impl Waiter {
    fn set_waker(&self, waker: &Waker) {
        let old = {
            let mut waiters = self.hub.waiters.borrow_mut();
            match waiters.get_mut(self.slot) {
                Some(Some(w)) if w.will_wake(waker) => None,
                Some(slot) => slot.replace(waker.clone()),
                None => None,
            }
        };
        drop(old);
    }
}

impl Drop for Waiter {
    fn drop(&mut self) {
        let old = self.hub.waiters.borrow_mut().try_remove(self.slot);
        drop(old);
        self.hub.retire_if_idle();
    }
}

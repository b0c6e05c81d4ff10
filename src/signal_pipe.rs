//! The signal-hook glue under [`add_signal_handler`](crate::Handle::add_signal_handler) and
//! [`solo::signal`](crate::signal): one self-pipe per listener, process-wide bookkeeping of who
//! watches which signal. Private; the public API is in `signal.rs`.
//!
//! ```
//! // What this glue serves: a handler and a stream for the same signal both see a delivery.
//! use solo::signal::{Signal, SignalKind};
//! use std::{cell::Cell, rc::Rc};
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let called = Rc::new(Cell::new(false));
//! let c = called.clone();
//! h.add_signal_handler(libc::SIGUSR2, move || c.set(true)).unwrap();
//! let mut stream = Signal::with_handle(SignalKind::user_defined2(), &h).unwrap();
//! // SAFETY: sending a signal to ourselves.
//! unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
//! el.run_until_complete(async {
//!     assert_eq!(stream.recv().await, Some(()));
//!     while !called.get() {
//!         solo::yield_now().await; // the handler runs from the loop, as a callback
//!     }
//! })
//! .unwrap();
//! ```
//!
//! A signal handler may only do async-signal-safe things, so it cannot run user code. The
//! classic answer (asyncio's `set_wakeup_fd`, libuv's signal pipe) is the *self-pipe*: the
//! handler writes one byte into a socket, and the loop, which watches the other end like any
//! reader, calls the user's callback on its own thread at its next iteration.
//!
//! signal-hook provides the handler side (`signal_hook::low_level::pipe`, which installs the
//! handler once per signal, chains with other users of the same signal, and writes the byte
//! without allocating); the loop's reactor watches the read end. Several signals arriving
//! between two iterations are coalesced into one call, as in asyncio. Each [`Listener`] has a
//! pipe of its own, so every listener of a signal sees every delivery (signal-hook runs all the
//! actions registered for it); dropping one unregisters its action before its read end is
//! closed, and signal-hook's unregister waits for handlers still running the old action, so a
//! delivery that races with the drop never writes into a closed socket.
//!
//! signal-hook's process-wide handler stays installed once set, so removing the last handler
//! cannot simply put the old disposition back. For a signal whose disposition was the default
//! when solo first watched it, solo also registers signal-hook's *conditional default*: an
//! action that runs the signal's default behaviour (terminate, stop, ignore) whenever no solo
//! listener in the process watches the signal. So after
//! [`remove_signal_handler`](crate::Handle::remove_signal_handler), once the loop is dropped, or
//! once the last [`Signal`](crate::signal::Signal) stream is dropped, SIGINT terminates the
//! process again, as it did before. A signal that had a handler of its own before keeps being
//! passed to it (signal-hook chains), and an ignored one stays ignored.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use signal_hook::SigId;

/// Process-wide state of one signal that some solo loop has watched.
struct ProcessSignal {
    /// Loops watching it now.
    watchers: usize,
    /// Set while no loop watches it: signal-hook then runs the default action. `None` if the
    /// disposition was not the default when solo first watched the signal.
    run_default: Option<Arc<AtomicBool>>,
}

static PROCESS: Mutex<Option<HashMap<i32, ProcessSignal>>> = Mutex::new(None);

/// Counts a watcher of `signal` in this process, arming the conditional default the first
/// time; `delta` is +1 or -1.
fn count_watcher(signal: i32, delta: isize) -> io::Result<()> {
    let mut process = PROCESS.lock().unwrap_or_else(|e| e.into_inner());
    let map = process.get_or_insert_with(HashMap::new);
    let state = match map.entry(signal) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => {
            // First time: note whether the default disposition is in place, before
            // signal-hook's handler replaces it.
            let run_default = if disposition_is_default(signal)? {
                let flag = Arc::new(AtomicBool::new(false));
                if signal_hook::low_level::signal_name(signal).is_some() {
                    signal_hook::flag::register_conditional_default(signal, flag.clone())?;
                } else {
                    register_terminating_default(signal, flag.clone())?;
                }
                Some(flag)
            } else {
                None
            };
            e.insert(ProcessSignal {
                watchers: 0,
                run_default,
            })
        }
    };
    state.watchers = state.watchers.saturating_add_signed(delta);
    if let Some(flag) = &state.run_default {
        flag.store(state.watchers == 0, Ordering::SeqCst);
    }
    Ok(())
}

/// signal-hook's conditional default for the signals its table does not know (the real-time
/// signals, whose default action is to terminate the process): the steps its
/// `emulate_default_handler` takes for a terminating signal. Put the default disposition
/// back, unblock the signal (it is blocked while its handler runs), and raise it again.
fn register_terminating_default(signal: i32, run_default: Arc<AtomicBool>) -> io::Result<SigId> {
    let action = move || {
        if run_default.load(Ordering::SeqCst) {
            // SAFETY: async-signal-safe calls only (sigaction, sigemptyset, sigaddset,
            // pthread_sigmask, raise), on values that live on this stack frame.
            unsafe {
                let mut dfl: libc::sigaction = std::mem::zeroed();
                dfl.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &dfl, std::ptr::null_mut());
                let mut set: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut set);
                libc::sigaddset(&mut set, signal);
                libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
                libc::raise(signal);
            }
        }
    };
    // SAFETY: the action is async-signal-safe: an atomic load and the calls above; it neither
    // allocates, nor locks, nor panics.
    unsafe { signal_hook::low_level::register(signal, action) }
}

fn disposition_is_default(signal: i32) -> io::Result<bool> {
    // SAFETY: `sigaction` is plain old data, for which all zeroes is a valid value.
    let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
    // SAFETY: a null new action only queries the current one, written into `old`, which is a
    // valid, exclusively borrowed `sigaction`.
    if unsafe { libc::sigaction(signal, std::ptr::null(), &mut old) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(old.sa_sigaction == libc::SIG_DFL)
}

/// Checks that `signal` can be listened to: an error for numbers out of range and for the
/// signals no handler may take (SIGKILL, SIGSTOP, the fault signals).
pub(crate) fn validate(signal: i32) -> io::Result<()> {
    if signal <= 0 || signal >= 65 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid signal number {signal}"),
        ));
    }
    if signal_hook::consts::FORBIDDEN.contains(&signal) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("signal {signal} cannot be handled (SIGKILL, SIGSTOP and the fault signals are forbidden)"),
        ));
    }
    Ok(())
}

/// One listener of one signal: its signal-hook action, which writes a byte into a socket pair
/// at each delivery, and the pair's read end. Counted as a watcher of the signal while it lives.
pub(crate) struct Listener {
    signal: i32,
    id: SigId,
    read: UnixStream,
}

impl Listener {
    /// Starts listening: from now on each delivery of `signal` leaves a byte in the pipe.
    pub(crate) fn new(signal: i32) -> io::Result<Listener> {
        validate(signal)?;
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        count_watcher(signal, 1)?;
        match signal_hook::low_level::pipe::register(signal, write) {
            Ok(id) => Ok(Listener { signal, id, read }),
            Err(e) => {
                let _ = count_watcher(signal, -1);
                Err(e)
            }
        }
    }

    /// The pipe's read end.
    pub(crate) fn read_end(&self) -> &UnixStream {
        &self.read
    }

    /// Empties the pipe; whether there was anything in it (a delivery since the last drain).
    pub(crate) fn drain(&self) -> bool {
        drain(&self.read)
    }
}

impl AsRawFd for Listener {
    fn as_raw_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }
}

impl Read for &Listener {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&self.read).read(buf)
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // The action first (its write end is closed once no handler runs it any more), then
        // the count, then, when the fields drop, the read end.
        signal_hook::low_level::unregister(self.id);
        let _ = count_watcher(self.signal, -1); // cannot fail: the signal is known by now
    }
}

impl std::fmt::Debug for Listener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("signal", &self.signal)
            .field("fd", &self.read.as_raw_fd())
            .finish()
    }
}

/// The signals a loop handles with `add_signal_handler`, by number: one listener each.
#[derive(Default)]
pub(crate) struct Signals {
    pub(crate) watched: HashMap<i32, Listener>,
}

impl Signals {
    /// Installs the handler for `signal` and returns the pipe's read end to watch.
    pub(crate) fn watch(&mut self, signal: i32) -> io::Result<&UnixStream> {
        let l = match self.watched.entry(signal) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Listener::new(signal)?),
        };
        Ok(l.read_end())
    }

    /// Stops watching `signal`; returns the listener, for the caller to stop polling its read
    /// end before dropping it.
    pub(crate) fn unwatch(&mut self, signal: i32) -> Option<Listener> {
        self.watched.remove(&signal)
    }
}

/// Empties the pipe (the bytes only say "it happened"); whether there was anything in it.
pub(crate) fn drain(mut read: &UnixStream) -> bool {
    let mut buf = [0u8; 64];
    let mut any = false;
    while let Ok(n) = read.read(&mut buf) {
        if n == 0 {
            break;
        }
        any = true;
    }
    any
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.watched.keys()).finish()
    }
}

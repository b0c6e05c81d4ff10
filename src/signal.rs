//! Unix signals, delivered on the loop thread as ordinary callbacks.
//!
//! A signal handler may only do async-signal-safe things, so it cannot run user code. The
//! classic answer (asyncio's `set_wakeup_fd`, libuv's signal pipe) is the *self-pipe*: the
//! handler writes one byte into a socket, and the loop, which watches the other end like any
//! reader, calls the user's callback on its own thread at its next iteration.
//!
//! signal-hook provides the handler side (`signal_hook::low_level::pipe`, which installs the
//! handler once per signal, chains with other users of the same signal, and writes the byte
//! without allocating); the loop's reactor watches the read end. Several signals arriving
//! between two iterations are coalesced into one call, as in asyncio.
//!
//! signal-hook's process-wide handler stays installed once set, so removing the last handler
//! cannot simply put the old disposition back. For a signal whose disposition was the default
//! when solo first watched it, solo also registers signal-hook's *conditional default*: an
//! action that runs the signal's default behaviour (terminate, stop, ignore) whenever no solo
//! loop in the process watches the signal. So after
//! [`remove_signal_handler`](crate::Handle::remove_signal_handler), or once the loop is dropped,
//! SIGINT terminates the process again, as it did before. A signal that had a handler of its
//! own before keeps being passed to it (signal-hook chains), and an ignored one stays ignored.

use std::collections::HashMap;
use std::io::{self, Read};
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
                signal_hook::flag::register_conditional_default(signal, flag.clone())?;
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

/// One watched signal: its signal-hook registration and the pipe's read end.
pub(crate) struct Watched {
    id: SigId,
    read: UnixStream,
}

/// The signals a loop watches, by number.
#[derive(Default)]
pub(crate) struct Signals {
    pub(crate) watched: HashMap<i32, Watched>,
}

impl Signals {
    /// Installs the handler for `signal` and returns the pipe's read end to watch.
    pub(crate) fn watch(&mut self, signal: i32) -> io::Result<&UnixStream> {
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
        let w = match self.watched.entry(signal) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let (read, write) = UnixStream::pair()?;
                read.set_nonblocking(true)?;
                write.set_nonblocking(true)?;
                count_watcher(signal, 1)?;
                let id = match signal_hook::low_level::pipe::register(signal, write) {
                    Ok(id) => id,
                    Err(e) => {
                        let _ = count_watcher(signal, -1);
                        return Err(e);
                    }
                };
                e.insert(Watched { id, read })
            }
        };
        Ok(&w.read)
    }

    /// Stops watching `signal`; returns the read end so the caller can stop polling it.
    pub(crate) fn unwatch(&mut self, signal: i32) -> Option<UnixStream> {
        let w = self.watched.remove(&signal)?;
        signal_hook::low_level::unregister(w.id);
        let _ = count_watcher(signal, -1); // cannot fail: the signal is known by now
        Some(w.read)
    }
}

/// Empties the pipe (the bytes only say "it happened").
pub(crate) fn drain(mut read: &UnixStream) {
    let mut buf = [0u8; 64];
    while let Ok(n) = read.read(&mut buf) {
        if n == 0 {
            break;
        }
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for (signal, w) in self.watched.drain() {
            signal_hook::low_level::unregister(w.id);
            let _ = count_watcher(signal, -1);
        }
    }
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.watched.keys()).finish()
    }
}

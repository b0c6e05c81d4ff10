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
//! After [`remove_signal_handler`](crate::Handle::remove_signal_handler) the signal is ignored
//! rather than restored to its previous disposition: signal-hook keeps its process-wide handler
//! installed once it has been set, and cannot put the old one back safely.

use std::collections::HashMap;
use std::io::{self, Read};
use std::os::unix::net::UnixStream;

use signal_hook::SigId;

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
                let id = signal_hook::low_level::pipe::register(signal, write)?;
                e.insert(Watched { id, read })
            }
        };
        Ok(&w.read)
    }

    /// Stops watching `signal`; returns the read end so the caller can stop polling it.
    pub(crate) fn unwatch(&mut self, signal: i32) -> Option<UnixStream> {
        let w = self.watched.remove(&signal)?;
        signal_hook::low_level::unregister(w.id);
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
        for (_, w) in self.watched.drain() {
            signal_hook::low_level::unregister(w.id);
        }
    }
}

impl std::fmt::Debug for Signals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.watched.keys()).finish()
    }
}

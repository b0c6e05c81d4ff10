//! The loop thread's stack, captured from the watchdog while the loop is blocked.
//!
//! One thread cannot walk another's stack directly. The watchdog therefore sends the loop
//! thread a signal (a real-time signal reserved for this, `SIGRTMAX - 3`), and the handler, which
//! runs on the loop thread wherever it is stuck, records the return addresses of its frames into
//! a static buffer. The watchdog waits briefly for the buffer and then resolves the addresses to
//! function names and lines on its own thread, where allocating and taking locks is fine.
//!
//! The handler does only what a signal handler may: it walks the stack with the unwinder
//! (`backtrace::trace_unsynchronized`, as sampling profilers do) and stores integers into
//! atomics. The signal is installed with `SA_RESTART` (signal-hook's default), so a blocking
//! syscall it interrupts is restarted. Captures are serialized by a mutex, since the buffer is
//! process-wide; several debug-mode loops take turns.
//!
//! This exists on Linux only, and only in debug mode: nothing is installed otherwise.

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

const MAX_FRAMES: usize = 48;
static FRAMES: [AtomicUsize; MAX_FRAMES] = [const { AtomicUsize::new(0) }; MAX_FRAMES];
static COUNT: AtomicUsize = AtomicUsize::new(0);
/// 0: idle; 1: a capture is requested; 2: the handler has filled the buffer.
static STATE: AtomicU8 = AtomicU8::new(0);
static INSTALL: Once = Once::new();
static INSTALLED: AtomicU8 = AtomicU8::new(0);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn signal() -> i32 {
    libc::SIGRTMAX() - 3
}

/// Runs in the signal handler, on the loop thread: async-signal-safe work only.
fn on_signal() {
    if STATE.load(Ordering::Acquire) != 1 {
        return; // not ours, or late
    }
    let mut n = 0;
    // SAFETY: `trace_unsynchronized` requires that no other unsynchronized trace runs at the
    // same time in this process: captures are serialized by ONE_AT_A_TIME and only the thread
    // that receives this signal runs the handler's capture (STATE is 1 for one capture).
    unsafe {
        backtrace::trace_unsynchronized(|frame| {
            FRAMES[n].store(frame.ip() as usize, Ordering::Relaxed);
            n += 1;
            n < MAX_FRAMES
        });
    }
    COUNT.store(n, Ordering::Relaxed);
    STATE.store(2, Ordering::Release);
}

fn install() -> bool {
    INSTALL.call_once(|| {
        // SAFETY: the action (`on_signal`) is async-signal-safe: it walks the stack and stores
        // integers into atomics; it allocates nothing and takes no lock.
        let ok = unsafe { signal_hook::low_level::register(signal(), on_signal) }.is_ok();
        INSTALLED.store(ok as u8, Ordering::Release);
    });
    INSTALLED.load(Ordering::Acquire) == 1
}

/// The current thread's id, for [`capture`] from another thread.
pub(crate) fn current_thread() -> u64 {
    // SAFETY: pthread_self has no preconditions.
    unsafe { libc::pthread_self() as u64 }
}

/// Captures the stack of the thread whose id (a value from [`current_thread`], 0 for none) is
/// in `thread`: the return addresses of its frames, innermost first. `None` if no thread is set
/// or the stack could not be taken within `wait`. Turn them into text with [`format`]; that is
/// slow (the first call reads the binary's debug information) and is kept out of here, so that
/// captures, which take turns, stay short.
///
/// The loop thread sets and clears its id under the same lock that is held here while the
/// signal is sent, so the id always names a live thread when it is signalled: a thread that
/// stops running the loop waits for the `pthread_kill` to finish before it can go on and exit.
pub(crate) fn capture(thread: &Mutex<u64>, wait: Duration) -> Option<Vec<usize>> {
    if !install() {
        return None;
    }
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    STATE.store(1, Ordering::Release);
    let sent = {
        let id = thread.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: a non-zero id is the pthread_t of a thread that is running the loop now; it
        // cannot clear the id, let alone exit, while we hold the lock (see above).
        *id != 0 && unsafe { libc::pthread_kill(*id as libc::pthread_t, signal()) } == 0
    };
    let deadline = Instant::now() + wait;
    while sent && STATE.load(Ordering::Acquire) != 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    if STATE.swap(0, Ordering::AcqRel) != 2 {
        return None;
    }
    let n = COUNT.load(Ordering::Relaxed);
    Some(
        FRAMES
            .iter()
            .take(n)
            .map(|slot| slot.load(Ordering::Relaxed))
            .collect(),
    )
}

/// Resolves the addresses from [`capture`] to function names and lines, one frame a line,
/// without the frames of the capture itself.
pub(crate) fn format(ips: &[usize]) -> String {
    let frames: Vec<(String, String)> = ips
        .iter()
        .map(|&ip| {
            let mut line = None;
            backtrace::resolve(ip as *mut std::ffi::c_void, |sym| {
                if line.is_none() {
                    let name = sym.name().map(|n| format!("{n:#}"));
                    let place = match (sym.filename(), sym.lineno()) {
                        (Some(f), Some(l)) => format!(" at {}:{l}", f.display()),
                        _ => String::new(),
                    };
                    line = name.map(|n| (n, place));
                }
            });
            line.unwrap_or_else(|| (format!("{ip:#x}"), String::new()))
        })
        .filter(|(name, _)| name != "0x0")
        .collect();
    render(&frames)
}

/// Lays out resolved frames (name, " at file:line"), without the capture's own frames. Frames
/// that could not be resolved (no symbols, or no fd left to open the binary with) print as
/// addresses: a stack of addresses still says where the loop is, with `addr2line` at hand.
fn render(frames: &[(String, String)]) -> String {
    // Skip the capture's own frames: the handler, signal-hook's dispatch, the trampoline.
    let handler = frames.iter().rposition(|(name, _)| {
        name.contains("stack::on_signal")
            || name.contains("signal_hook")
            || name.contains("restore_rt")
            || name.contains("sigreturn")
    });
    let first = match handler {
        // The trampoline right after the handler often has no symbol.
        Some(i) => {
            i + 1
                + frames[i + 1..]
                    .iter()
                    .take_while(|(name, _)| name.starts_with("0x"))
                    .count()
        }
        // Nothing resolved to the handler (no symbols at all): show every frame.
        None => 0,
    };
    let mut out = String::new();
    if frames.iter().all(|(name, _)| name.starts_with("0x")) && !frames.is_empty() {
        out.push_str("    (symbols could not be resolved; addresses shown)\n");
    }
    for (name, place) in &frames[first..] {
        out.push_str(&format!("    {name}{place}\n"));
    }
    out
}

#[cfg(test)]
mod render_tests {
    use super::render;

    fn frames(names: &[&str]) -> Vec<(String, String)> {
        names
            .iter()
            .map(|n| (n.to_string(), String::new()))
            .collect()
    }

    #[test]
    fn unresolved_frames_still_print_as_addresses() {
        let out = render(&frames(&["0x1000", "0x2000", "0x3000"]));
        assert!(out.contains("0x1000") && out.contains("0x3000"), "{out}");
        assert!(out.contains("could not be resolved"), "{out}");
    }

    #[test]
    fn the_capture_frames_are_skipped() {
        let out = render(&frames(&[
            "solo::stack::on_signal",
            "0x7f00",
            "app::blocking_call",
            "solo::run",
        ]));
        assert_eq!(out, "    app::blocking_call\n    solo::run\n");
    }
}

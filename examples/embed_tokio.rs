//! solo inside another runtime: a tokio current-thread runtime waits on solo's fd through
//! `tokio::io::unix::AsyncFd` and steps solo when it is readable or a solo timer is due.
//!
//!     cargo run --release --example embed_tokio
//!
//! Why tokio rather than glib (GTK's main loop, the first choice): the glib path needs
//! Debian's `libglib2.0-dev` and the `glib` crate's C build on every machine that builds the
//! examples, for a wrapper that is the same twenty lines as this one (a `GSource` whose fd is
//! solo's and whose timeout is `next_timeout`). tokio is already a dev-dependency, so this
//! example builds and is tested everywhere; a glib host follows it line for line.
//! `run` is also started by `tests/embedding.rs`.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use solo::EventLoop;
use tokio::io::unix::AsyncFd;

/// solo's fd, as tokio registers it (tokio takes ownership of what it registers; this only
/// names the number, which the `EventLoop` keeps open).
struct SoloFd(RawFd);

impl AsRawFd for SoloFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// Steps `el` from inside tokio until `done` says so; returns how many steps it took.
pub async fn drive(el: &EventLoop, done: impl Fn() -> bool) -> u64 {
    // SAFETY: the fd is solo's poller, open for as long as `el`, which outlives this function
    // and so the `AsyncFd` (dropped when it returns).
    let fd = unsafe {
        AsyncFd::register_with_interest(SoloFd(el.as_raw_fd()), tokio::io::Interest::READABLE)
    }
    .map_err(|e| e.to_string())
    .unwrap();
    let mut steps = 0;
    while !done() {
        let timeout = el.next_timeout().unwrap_or(Duration::from_secs(3600));
        tokio::select! {
            guard = fd.readable() => {
                let mut guard = guard.unwrap();
                // solo's fd is level-triggered for this purpose: tell tokio to look again.
                guard.clear_ready();
            }
            _ = tokio::time::sleep(timeout) => {}
        }
        el.run_once(Some(Duration::ZERO)).unwrap();
        steps += 1;
    }
    steps
}

/// A solo timer and a solo task, driven by tokio; returns what solo computed.
pub fn run() -> u64 {
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let answer = h.spawn(async {
        solo::time::sleep(Duration::from_millis(20)).await;
        42
    });
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // tokio's own work goes on meanwhile.
        let tokio_side = tokio::spawn(async {
            tokio::time::sleep(Duration::from_millis(5)).await;
            1
        });
        drive(&el, || answer.is_finished()).await;
        assert_eq!(tokio_side.await.unwrap(), 1);
    });
    el.run_until_complete(answer).unwrap().unwrap()
}

#[allow(dead_code)] // the tests include this file for `run` only
fn main() {
    println!("solo answered {} inside tokio", run());
}

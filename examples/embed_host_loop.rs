//! solo inside a host's frame loop: a "game" that runs at 60 frames per second, does its own
//! work each frame, and steps solo without blocking, which meanwhile serves TCP clients (an
//! echo server) and runs its timers.
//!
//!     cargo run --release --example embed_host_loop [SECONDS]     (default 3)
//!
//! `run` is also started in-process by `tests/embedding.rs`.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use solo::net::TcpListener;
use solo::EventLoop;

/// What the host saw: frames drawn, solo timer ticks, clients served.
#[derive(Debug, Default)]
pub struct Report {
    /// Frames the host drew.
    pub frames: u64,
    /// Ticks of solo's 10 ms interval.
    pub ticks: u64,
    /// Echo clients solo served to the end.
    pub served: u64,
}

/// Runs the host loop for `frames` frames of `frame` each; `ready` gets the server's address.
pub fn run(frames: u64, frame: Duration, ready: impl FnOnce(std::net::SocketAddr)) -> Report {
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let ticks = Rc::new(Cell::new(0u64));
    let served = Rc::new(Cell::new(0u64));
    // A solo timer: ticks every 10 ms, whatever the host's frame rate.
    let t = ticks.clone();
    h.spawn(async move {
        let mut interval = solo::time::interval(Duration::from_millis(10));
        loop {
            interval.tick().await;
            t.set(t.get() + 1);
        }
    });
    // A solo server.
    let listener = el
        .run_until_complete(async { TcpListener::bind("127.0.0.1:0") })
        .unwrap()
        .unwrap();
    ready(listener.local_addr().unwrap());
    let s = served.clone();
    h.spawn(async move {
        let mut incoming = listener.incoming();
        loop {
            let Ok((mut conn, _)) = incoming.next().await else {
                return;
            };
            let s = s.clone();
            solo::Handle::current().spawn(async move {
                let mut buf = [0u8; 256];
                while let Ok(n @ 1..) = conn.read(&mut buf).await {
                    if conn.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
                s.set(s.get() + 1);
            });
        }
    });
    // The host's loop: its own work, then one non-blocking step of solo, then sleep until the
    // next frame (or less, if solo has a timer due sooner: it then steps again).
    let mut report = Report::default();
    let mut next_frame = Instant::now();
    while report.frames < frames {
        let now = Instant::now();
        if now >= next_frame {
            report.frames += 1; // "draw"
            next_frame += frame;
        }
        el.run_once(Some(Duration::ZERO)).unwrap();
        let until_frame = next_frame.saturating_duration_since(Instant::now());
        let wait = el
            .next_timeout()
            .map_or(until_frame, |t| t.min(until_frame));
        // A real host would wait on its own fds plus solo's here; a frame loop just sleeps.
        std::thread::sleep(wait.min(Duration::from_millis(2)));
    }
    report.ticks = ticks.get();
    report.served = served.get();
    report
}

#[allow(dead_code)] // the tests include this file for `run` only
fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let report = run(secs * 60, Duration::from_secs(1) / 60, |addr| {
        println!(
            "echo server on {addr}; try: nc {} {}",
            addr.ip(),
            addr.port()
        )
    });
    println!(
        "{} frames, {} solo timer ticks, {} clients served",
        report.frames, report.ticks, report.served
    );
}

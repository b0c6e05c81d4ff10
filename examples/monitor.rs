//! A small server with a monitor: named tasks to look at, and a command that blocks the loop
//! on purpose, to see the monitor answer while the loop is stuck.
//!
//!     cargo run --example monitor                       # monitor on 127.0.0.1:20101
//!     SOLO_MONITOR=unix:/tmp/solo.sock cargo run --example monitor
//!
//! Then, in another terminal:
//!
//!     nc 127.0.0.1 20101                   # help, ps, where 3, stats, metrics, block 3...
//!     printf 'ps\n' | nc -q1 127.0.0.1 20101
//!     curl http://127.0.0.1:20101/metrics
//!     nc 127.0.0.1 20102                   # the app itself: an upper-casing echo
//!
//! The tasks: `ticker` (an interval, once a second), `acceptor` (the app's accept loop), one
//! `client handler` per connection of the app, and `slow job`, which alternates a sleep with
//! blocking work done properly, on the executor. The user command `block SECONDS` does it
//! improperly: it sleeps on the loop thread, and the monitor still answers `ps`, `where`,
//! `stats` and `stacktrace` meanwhile; `cancel` says it is queued.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use futures::{AsyncBufReadExt, AsyncWriteExt};
use solo::net::{TcpListener, TcpStream};
use solo::{EventLoop, Handle};

/// The app's port when run as a program.
const APP_ADDR: &str = "127.0.0.1:20102";
/// The monitor's, unless `SOLO_MONITOR` says otherwise.
const MONITOR_ADDR: &str = "127.0.0.1:20101";

fn main() -> io::Result<()> {
    let mut b = EventLoop::builder();
    if std::env::var_os("SOLO_MONITOR").is_none() {
        b = b.monitor(MONITOR_ADDR);
    }
    let el = b.build()?;
    let h = el.handle();
    let app = start(&h, APP_ADDR)?;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let stop = h.clone();
        h.add_signal_handler(sig, move || stop.stop())?;
    }
    let monitor = el.monitor_addr().expect("a monitor");
    println!(
        "app on {app}; monitor on {monitor}: nc {}",
        nc_args(&monitor)
    );
    el.run_forever().map_err(io::Error::other)?;
    println!("bye");
    Ok(())
}

fn nc_args(a: &solo::monitor::MonitorAddr) -> String {
    match a {
        solo::monitor::MonitorAddr::Tcp(a) => format!("{} {}", a.ip(), a.port()),
        solo::monitor::MonitorAddr::Unix(p) => format!("-U {}", p.display()),
    }
}

/// Spawns the app's tasks on `h`'s loop (which is running, or about to) and registers the
/// `block` command; returns the app's address (`app` may have port 0).
pub fn start(h: &Handle, app: &str) -> io::Result<SocketAddr> {
    let ticks = Rc::new(Cell::new(0u64));
    let t = ticks.clone();
    h.spawn_named("ticker", async move {
        let mut every = solo::time::interval(Duration::from_secs(1));
        loop {
            every.tick().await;
            t.set(t.get() + 1);
        }
    });
    h.spawn_named("slow job", slow_job());
    // Bound here, so that the address is known at once; registered with the loop by the task
    // (solo's sockets need a running loop).
    let std = std::net::TcpListener::bind(app)?;
    std.set_nonblocking(true)?;
    let addr = std.local_addr()?;
    let h2 = h.clone();
    h.spawn_named("acceptor", async move {
        let Ok(listener) = TcpListener::from_std(std) else {
            return;
        };
        let mut incoming = listener.incoming();
        let mut n = 0u64;
        while let Ok((conn, _peer)) = incoming.next().await {
            n += 1;
            h2.spawn_named(&format!("client handler {n}"), handle_client(conn));
        }
    });
    h.monitor_command(
        "block",
        "block SECONDS: blocks the loop that long (on purpose: try ps, where, stats meanwhile)",
        |args| match args.trim().parse::<f64>() {
            Ok(s) if (0.0..=60.0).contains(&s) => {
                std::thread::sleep(Duration::from_secs_f64(s)); // the mistake, on purpose
                format!("the loop was blocked for {s} s")
            }
            _ => "usage: block SECONDS (0 to 60)".to_string(),
        },
    )?;
    h.monitor_command("ticks", "ticks: how often the ticker ticked", move |_| {
        format!("{} ticks", ticks.get())
    })?;
    Ok(addr)
}

async fn slow_job() {
    loop {
        solo::time::sleep(Duration::from_secs(2)).await;
        let sum = solo::run_in_executor(|| {
            std::thread::sleep(Duration::from_millis(500)); // blocking, but not on the loop
            (1..=1000u64).sum::<u64>()
        })
        .await;
        drop(sum);
    }
}

async fn handle_client(conn: TcpStream) {
    let (r, mut w) = conn.into_split();
    let mut lines = futures::io::BufReader::new(r).lines();
    while let Some(Ok(line)) = futures::StreamExt::next(&mut lines).await {
        if w.write_all(format!("{}\n", line.to_uppercase()).as_bytes())
            .await
            .is_err()
        {
            break;
        }
    }
}

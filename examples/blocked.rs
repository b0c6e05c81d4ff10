//! A callback stuck for 3 s. Debug mode's watchdog reports it *while* it is stuck, at about 1 s
//! and 2 s (the interval doubles), naming the callback and where it was scheduled; the
//! slow-callback report follows when it finally returns.
//!
//!     cargo run --example blocked

use std::time::{Duration, Instant};

use solo::EventLoop;

fn main() -> std::io::Result<()> {
    let el = EventLoop::builder().debug(true).build()?;
    let h = el.handle();
    let start = Instant::now();
    h.set_on_slow(move |report| {
        eprintln!("[{:>5.2} s] {report}", start.elapsed().as_secs_f64());
    });
    h.spawn_named("ticker", async {
        loop {
            solo::time::sleep(Duration::from_millis(500)).await;
        }
    });
    h.call_soon(|| {
        eprintln!("[ 0.00 s] callback starts blocking for 3 s");
        std::thread::sleep(Duration::from_secs(3));
        eprintln!("[ 3.00 s] callback returns");
    });
    h.call_later(Duration::from_millis(100), {
        let h = h.clone();
        move || h.stop()
    });
    el.run_forever().unwrap();
    Ok(())
}

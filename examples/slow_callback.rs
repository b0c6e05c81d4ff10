//! The classic mistake, caught by debug mode: a task that blocks the loop with
//! `std::thread::sleep`. Then the fix, `run_in_executor`, which debug mode does not flag.
//!
//!     cargo run --example slow_callback
//!
//! Debug mode is switched on in the builder here; `SOLO_DEBUG=1` does the same for any program
//! without recompiling.

use std::time::Duration;

use solo::EventLoop;

async fn fetch_wrongly() -> &'static str {
    std::thread::sleep(Duration::from_millis(100)); // blocks the whole loop
    "data"
}

async fn fetch_rightly() -> &'static str {
    solo::run_in_executor(|| {
        std::thread::sleep(Duration::from_millis(100)); // blocks a pool thread, not the loop
        "data"
    })
    .await
    .unwrap()
}

fn main() -> std::io::Result<()> {
    let el = EventLoop::builder().debug(true).build()?;
    let h = el.handle();

    println!("-- wrong: std::thread::sleep inside a task");
    let t = h.spawn_named("fetch", fetch_wrongly());
    el.run_until_complete(t).unwrap().unwrap();

    println!("-- right: the same sleep through run_in_executor (no warning expected)");
    let t = h.spawn_named("fetch", fetch_rightly());
    el.run_until_complete(t).unwrap().unwrap();
    println!("-- done");
    Ok(())
}

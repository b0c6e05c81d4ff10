//! `#[solo::main]` and the free functions on the running loop: no `EventLoop` to build and no
//! `Handle` to pass around.
//!
//! ```sh
//! cargo run --example macros
//! ```

use std::time::Duration;

#[solo::main]
async fn main() -> std::io::Result<()> {
    // Tasks, from anywhere inside the loop.
    let fetch = solo::spawn_named("fetch", async {
        solo::time::sleep(Duration::from_millis(20)).await;
        "data"
    });
    // Callbacks, asyncio's call_soon and call_later.
    solo::call_soon(|| println!("a callback, at the next iteration"));
    solo::call_later(Duration::from_millis(10), || {
        println!("a callback 10 ms later, which spawns a task");
        solo::spawn(async { println!("the task it spawned") });
    });
    // Blocking work goes to the pool, never on the loop.
    let sum = solo::run_in_executor(|| (1..=1_000_000u64).sum::<u64>())
        .await
        .expect("the job does not panic");
    println!("sum computed on the pool: {sum}");
    println!("fetched: {}", fetch.await.expect("the task does not panic"));
    // Errors that solo makes carry a solo::Error, to match on.
    let missing = solo::fs::read("/nonexistent/solo-example")
        .await
        .unwrap_err();
    println!("an OS error has none: {:?}", solo::Error::of(&missing));
    Ok(())
}

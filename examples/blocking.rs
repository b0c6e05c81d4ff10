//! Blocking work done wrongly (on the loop) and rightly (through `run_in_executor`), side by
//! side, for the two classic cases: a blocking sleep and a CPU-heavy prime check. A timer ticks
//! every 50 ms meanwhile; the gaps between its ticks show whether the loop kept serving it.
//!
//!     cargo run --release --example blocking

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use solo::{EventLoop, Handle};

fn is_prime(n: u64) -> bool {
    n >= 2 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

/// Runs `work` while a 50 ms ticker records its tick times; returns the largest gap.
fn measure(el: &EventLoop, label: &str, work: impl std::future::Future<Output = ()>) -> Duration {
    let ticks = Rc::new(RefCell::new(Vec::new()));
    let t = ticks.clone();
    let ticker = el.handle().spawn(async move {
        let mut iv = solo::time::interval(Duration::from_millis(50));
        loop {
            iv.tick().await;
            t.borrow_mut().push(Instant::now());
        }
    });
    el.run_until_complete(async {
        solo::time::sleep(Duration::from_millis(60)).await;
        work.await;
        solo::time::sleep(Duration::from_millis(60)).await;
    })
    .unwrap();
    ticker.cancel();
    let ticks = ticks.borrow();
    let gaps: Vec<u128> = ticks
        .windows(2)
        .map(|w| (w[1] - w[0]).as_millis())
        .collect();
    let max = gaps.iter().copied().max().unwrap_or(0);
    println!("{label:<34} tick gaps (ms): {gaps:?}  worst {max} ms");
    Duration::from_millis(max as u64)
}

fn main() -> std::io::Result<()> {
    let el = EventLoop::builder().debug(true).build()?;
    el.handle().set_on_slow(|r| println!("    debug mode: {r}"));
    const LIMIT: u64 = 2_000_000;

    measure(&el, "sleep 300 ms on the loop (wrong)", async {
        std::thread::sleep(Duration::from_millis(300));
    });
    measure(&el, "sleep 300 ms in the pool (right)", async {
        Handle::current()
            .run_in_executor(|| std::thread::sleep(Duration::from_millis(300)))
            .await
            .unwrap();
    });
    measure(&el, "prime check on the loop (wrong)", async {
        let found = (2..LIMIT).filter(|&n| is_prime(n)).count();
        println!("    {found} primes below {LIMIT}");
    });
    measure(&el, "prime check in the pool (right)", async {
        let found = solo::run_in_executor(|| (2..LIMIT).filter(|&n| is_prime(n)).count())
            .await
            .unwrap();
        println!("    {found} primes below {LIMIT}");
    });
    Ok(())
}

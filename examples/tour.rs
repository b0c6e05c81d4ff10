//! A tour of solo: every part of the API once, with what happens printed as it happens.
//!
//!     cargo run --release --example tour

use std::cell::RefCell;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

use solo::{EventLoop, Handle};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let el = EventLoop::new()?;
    let h = el.handle();
    let t0 = Instant::now();
    let ms = move || format!("{:>6.1} ms", t0.elapsed().as_secs_f64() * 1e3);

    println!("== callbacks: call_soon runs in FIFO order on the next iteration");
    for i in 1..=3 {
        h.call_soon(move || println!("   call_soon #{i}"));
    }
    h.stop(); // stop() before run_forever: exactly one iteration
    el.run_forever()?;

    println!("== timers: call_later / call_at, cancellable");
    let m = ms;
    h.call_later(Duration::from_millis(20), move || {
        println!("   {} call_later(20 ms) fired", m())
    });
    let m = ms;
    h.call_at(h.time() + Duration::from_millis(10), move || {
        println!("   {} call_at(now + 10 ms) fired", m())
    });
    let doomed = h.call_later(Duration::from_millis(15), || println!("   never printed"));
    doomed.cancel();
    println!(
        "   cancelled a 15 ms timer: cancelled() = {}",
        doomed.cancelled()
    );
    el.run_until_complete(solo::time::sleep(Duration::from_millis(30)))?;

    println!("== readers: add_reader is level-triggered, like asyncio's");
    let (a, mut b) = UnixStream::pair()?;
    a.set_nonblocking(true)?;
    let got = Rc::new(RefCell::new(String::new()));
    {
        let (got, h2, mut a2) = (got.clone(), h.clone(), a.try_clone()?);
        h.add_reader(&a, move || {
            let mut buf = [0u8; 4]; // read a little at a time: we are called again
            if let Ok(n) = a2.read(&mut buf) {
                got.borrow_mut()
                    .push_str(std::str::from_utf8(&buf[..n]).unwrap());
                println!(
                    "   reader got {:?}",
                    std::str::from_utf8(&buf[..n]).unwrap()
                );
                if got.borrow().ends_with('!') {
                    h2.stop();
                }
            }
        })?;
    }
    b.write_all(b"hello, reader!")?;
    el.run_forever()?;
    println!("   removed the reader: {}", h.remove_reader(&a));

    println!("== tasks: spawn futures, await their JoinHandles");
    let results = el.run_until_complete(async {
        let h = Handle::current(); // like asyncio.get_running_loop()
        let tasks: Vec<_> = (1..=3u64)
            .map(|i| {
                h.spawn_named(&format!("worker-{i}"), async move {
                    solo::time::sleep(Duration::from_millis(10 * i)).await;
                    i * i
                })
            })
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await.unwrap());
        }
        out
    })?;
    println!("   squares from three tasks: {results:?}");
    let forever = h.spawn(std::future::pending::<()>());
    forever.cancel();
    let err = el.run_until_complete(forever)?.unwrap_err();
    println!("   a cancelled task's JoinHandle says: {err}");

    println!("== errors: a panicking callback goes to the exception handler; the loop runs on");
    h.set_exception_handler(|ctx| println!("   handler: {ctx}"));
    h.call_soon(|| panic!("something broke"));
    h.stop();
    std::panic::set_hook(Box::new(|_| {})); // keep the demo's output tidy
    el.run_forever()?;
    let _ = std::panic::take_hook();

    println!("== threads: a Remote is Send; it wakes a loop blocked in poll");
    let remote = h.remote();
    let start = Instant::now();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        remote
            .call_soon_threadsafe(|| {
                println!("   call_soon_threadsafe ran on the loop thread");
                Handle::current().stop();
            })
            .unwrap();
    });
    h.call_later(Duration::from_secs(3600), || unreachable!());
    el.run_forever()?;
    println!(
        "   woken after {:.0?} despite a timer an hour away",
        start.elapsed()
    );

    println!("== blocking work: run_in_executor keeps the loop free");
    let n = el.run_until_complete(h.run_in_executor(|| {
        std::thread::sleep(Duration::from_millis(50)); // blocking, but not on the loop
        (1..=20u64).product::<u64>()
    }))??;
    println!("   20! computed on the pool: {n}");

    println!("== debug mode: a callback that blocks the loop is named, with its line");
    let dbg = EventLoop::builder().debug(true).build()?;
    let dh = dbg.handle();
    dh.set_on_slow(|report| println!("   {report}"));
    dh.call_soon(|| std::thread::sleep(Duration::from_millis(120)));
    dh.stop();
    dbg.run_forever()?;
    let stats = dbg.stats().unwrap();
    println!(
        "   stats: {} iteration(s), {} callback(s), busy {:.0?}, slowest {:.0?}",
        stats.iterations,
        stats.callbacks,
        stats.busy,
        stats.slowest.map(|s| s.duration).unwrap_or_default()
    );
    drop(dbg); // a debug-mode loop prints its per-site profile when dropped

    println!("== shutdown: cancel what is left, report it");
    h.spawn_named("lingering", std::future::pending::<()>());
    println!("   {}", el.shutdown(Duration::from_millis(10)));
    Ok(())
}

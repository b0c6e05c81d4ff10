//! The cooperative budget: a task whose I/O is always ready (or always failing) still lets
//! timers, signals and other tasks run. On a manual clock, so "on time" is exact.

use std::cell::Cell;
use std::io;
use std::os::unix::net::UnixStream;
use std::rc::Rc;
use std::time::Duration;

use futures::AsyncReadExt;
use solo::{Async, Handle};

mod common;

/// Each read takes this much loop time (the manual clock is advanced by the reader itself).
const READ_COST: Duration = Duration::from_micros(1);

/// Reads a socket at end of file (always readable, every read returns 0 at once) until told
/// to stop or a bound is reached; returns how many reads it made.
async fn endless_reader(stop: Rc<Cell<bool>>, clock: solo::ManualClock, bound: u64) -> u64 {
    let (a, b) = UnixStream::pair().unwrap();
    drop(b);
    let mut a = Async::new(a).unwrap();
    let mut reads = 0;
    let mut buf = [0u8; 8];
    while !stop.get() && reads < bound {
        assert_eq!(a.read(&mut buf).await.unwrap(), 0);
        clock.advance(READ_COST);
        reads += 1;
    }
    reads
}

#[test]
fn an_always_ready_reader_lets_a_timer_fire_on_time() {
    let _watchdog = common::watchdog!();
    let (el, clock) = common::manual();
    let h = el.handle();
    let stop = Rc::new(Cell::new(false));
    let reads_at_fire = Rc::new(Cell::new(None));
    let reader = h.spawn(endless_reader(stop.clone(), clock.clone(), 1_000_000));
    // 10 ms of loop time is 10,000 reads.
    let (s, at) = (stop.clone(), reads_at_fire.clone());
    let t0 = el.time();
    h.call_later(Duration::from_millis(10), move || {
        at.set(Some(clock_ms(t0)));
        s.set(true);
    });
    let reads = el.run_until_complete(reader).unwrap().unwrap();
    let fired_at = reads_at_fire
        .get()
        .expect("the timer fired before the reader's bound");
    // The reader yields every 128 reads, so the timer runs within one budget of its deadline.
    assert!(reads < 1_000_000, "stopped by the timer, not by its bound");
    assert!(
        (10.0..=10.0 + 2.0 * 128.0 * 0.001).contains(&fired_at),
        "fired at {fired_at} ms of loop time"
    );
}

fn clock_ms(t0: std::time::Instant) -> f64 {
    (Handle::current().time() - t0).as_secs_f64() * 1000.0
}

#[test]
fn an_always_ready_reader_lets_other_tasks_and_signals_run() {
    let _watchdog = common::watchdog!();
    let (el, clock) = common::manual();
    let h = el.handle();
    let stop = Rc::new(Cell::new(false));
    let reader = h.spawn(endless_reader(stop.clone(), clock.clone(), 1_000_000));
    // Another task gets polled between the reader's budgets.
    let other_ran = Rc::new(Cell::new(false));
    let o = other_ran.clone();
    h.spawn(async move { o.set(true) });
    // A signal, raised by the loop itself once the reader is under way, stops everything.
    let s = stop.clone();
    h.add_signal_handler(libc::SIGUSR1, move || s.set(true))
        .unwrap();
    h.call_soon(|| {
        // SAFETY: sending a signal to this process; its handler only writes to a pipe.
        unsafe { libc::kill(libc::getpid(), libc::SIGUSR1) };
    });
    let reads = el.run_until_complete(reader).unwrap().unwrap();
    assert!(other_ran.get());
    assert!(
        reads < 1_000_000,
        "the signal handler ran while the reader was busy"
    );
    assert!(h.remove_signal_handler(libc::SIGUSR1));
}

#[test]
fn an_operation_that_always_fails_does_not_spin_the_loop() {
    let _watchdog = common::watchdog!();
    // Debug mode for its iteration count.
    let el = solo::EventLoop::builder().debug(true).build().unwrap();
    let h = el.handle();
    let (a, b) = UnixStream::pair().unwrap();
    let failures = Rc::new(Cell::new(0u64));
    let f = failures.clone();
    let task = h.spawn(async move {
        let a = Async::new(a).unwrap();
        let _keep = b; // `a` stays writable: every operation finds it ready
        while f.get() < 20 {
            let r: io::Result<()> = a.write_with(|_| Err(io::Error::other("always"))).await;
            assert_eq!(r.unwrap_err().to_string(), "always");
            f.set(f.get() + 1);
        }
    });
    el.run_until_complete(task).unwrap().unwrap();
    // A failure re-arms the fd instead of leaving it marked ready: the next attempt waits for
    // the backend to report it again, in the next iteration; the task does not loop in place.
    assert_eq!(failures.get(), 20);
    let iterations = el.stats().unwrap().iterations;
    assert!(iterations >= 20, "{iterations} iterations for 20 failures");
}

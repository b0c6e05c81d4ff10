//! `Builder::spin_before_sleep`: the loop polls without blocking before it sleeps. These tests
//! check what it must never change (no event lost, no timer late or early) and, through debug
//! mode's `sleeps` and `spin_hits`, that it spins and sleeps when it should. The spins are made
//! far longer (10 s) or far shorter (1 ms) than the waits, so the outcome does not depend on how
//! fast this machine is.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use solo::{Async, EventLoop, ManualClock};

mod common;

const LONG_SPIN: Duration = Duration::from_secs(10);

fn spinning_loop(spin: Duration) -> EventLoop {
    EventLoop::builder()
        .debug(true)
        .spin_before_sleep(spin)
        .build()
        .unwrap()
}

#[test]
fn io_that_arrives_while_spinning_is_handled_without_sleeping() {
    let _watchdog = common::watchdog!();
    let el = spinning_loop(LONG_SPIN);
    let (a, mut b) = UnixStream::pair().unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        b.write_all(b"ping").unwrap();
        b
    });
    let got = el
        .run_until_complete(async move {
            let a = Async::new(a).unwrap();
            let mut buf = [0u8; 16];
            let n = a.read_with(|mut s| s.read(&mut buf)).await.unwrap();
            buf[..n].to_vec()
        })
        .unwrap();
    assert_eq!(got, b"ping");
    drop(writer.join().unwrap());
    let s = el.stats().unwrap();
    assert_eq!(s.sleeps, 0, "the 10 s spin outlasts the 20 ms wait");
    assert!(s.spin_hits >= 1);
}

#[test]
fn a_call_from_another_thread_ends_the_spin() {
    let _watchdog = common::watchdog!();
    let el = spinning_loop(LONG_SPIN);
    let remote = el.handle().remote();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        remote
            .call_soon_threadsafe(|| solo::Handle::current().stop())
            .unwrap();
    });
    let started = Instant::now();
    el.run_forever().unwrap();
    t.join().unwrap();
    assert!(started.elapsed() < LONG_SPIN / 2, "the call ended the spin");
    let s = el.stats().unwrap();
    assert_eq!(s.sleeps, 0);
    assert!(s.spin_hits >= 1);
}

#[test]
fn a_timer_shorter_than_the_spin_fires_on_time_without_sleeping() {
    let _watchdog = common::watchdog!();
    let el = spinning_loop(LONG_SPIN);
    let started = Instant::now();
    el.run_until_complete(solo::time::sleep(Duration::from_millis(30)))
        .unwrap();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(30),
        "never earlier than asked"
    );
    assert!(took < LONG_SPIN / 2, "the spin ends at the deadline");
    assert_eq!(el.stats().unwrap().sleeps, 0);
}

#[test]
fn after_a_short_spin_the_loop_sleeps() {
    let _watchdog = common::watchdog!();
    let el = spinning_loop(Duration::from_millis(1));
    el.run_until_complete(solo::time::sleep(Duration::from_millis(200)))
        .unwrap();
    let s = el.stats().unwrap();
    assert!(s.sleeps >= 1, "{s:?}");
    assert_eq!(s.spin_hits, 0, "nothing but the timer happened");
}

#[test]
fn without_spin_every_wait_sleeps() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::builder()
        .debug(true)
        .spin_before_sleep(Duration::ZERO)
        .build()
        .unwrap();
    el.run_until_complete(solo::time::sleep(Duration::from_millis(5)))
        .unwrap();
    let s = el.stats().unwrap();
    assert!(s.sleeps >= 1);
    assert_eq!(s.spin_hits, 0);
}

#[test]
fn a_manual_clock_jumps_to_timers_without_spinning() {
    let _watchdog = common::watchdog!();
    let clock = ManualClock::new();
    let el = EventLoop::builder()
        .debug(true)
        .clock(clock.clone())
        .spin_before_sleep(LONG_SPIN)
        .build()
        .unwrap();
    let started = Instant::now();
    el.run_until_complete(solo::time::sleep(Duration::from_secs(3600)))
        .unwrap();
    assert!(started.elapsed() < LONG_SPIN / 2);
    assert!(clock.elapsed() >= Duration::from_secs(3600));
    let s = el.stats().unwrap();
    assert_eq!((s.sleeps, s.spins, s.spin_hits), (0, 0, 0));
}

#[test]
fn the_spin_can_come_from_the_environment() {
    let _watchdog = common::watchdog!();
    // Each value in a child process with the variable set (see tests/common): this process's
    // environment, which the loops of the other tests read, is never written.
    let sleeps = || {
        let el = EventLoop::builder().debug(true).build().unwrap();
        el.run_until_complete(solo::time::sleep(Duration::from_millis(30)))
            .unwrap();
        el.stats().unwrap().sleeps
    };
    common::with_env!(&[("SOLO_SPIN_US", "10000000")], || {
        assert_eq!(sleeps(), 0, "a 10 s spin covers the 30 ms timer");
    });
    common::with_env!(&[("SOLO_SPIN_US", "")], || {
        assert!(sleeps() >= 1, "empty: no spin");
    });
    common::with_env!(&[("SOLO_SPIN_US", "100us")], || {
        let err = EventLoop::builder().build().unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("SOLO_SPIN_US"), "{err}");
    });
}

#[test]
fn a_wake_from_another_thread_ends_the_spin() {
    let _watchdog = common::watchdog!();
    let el = spinning_loop(LONG_SPIN);
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        tx.send(5).unwrap();
    });
    let started = Instant::now();
    // The future given to run_until_complete, woken by the sending thread.
    assert_eq!(el.run_until_complete(rx).unwrap().unwrap(), 5);
    t.join().unwrap();
    assert!(started.elapsed() < LONG_SPIN / 2);
    let s = el.stats().unwrap();
    assert_eq!(s.sleeps, 0);
    assert!(s.spin_hits >= 1);
}

/// Reads what a thread writes into the other end of a socket pair 5 ms from now.
async fn read_a_write_made_soon(a: &Async<UnixStream>, b: &UnixStream) {
    let mut b = b.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(5));
        b.write_all(b"x").unwrap();
    });
    let mut buf = [0u8; 8];
    assert_eq!(a.read_with(|mut s| s.read(&mut buf)).await.unwrap(), 1);
    writer.join().unwrap();
}

/// Spinning only while it pays: a spin that finds nothing disarms it, and a sleep that ends
/// with events soon after (within the spin time) arms it again. The spin (200 ms) is far
/// longer than the writes' 5 ms and far shorter than the 600 ms timer.
#[test]
fn a_spin_that_finds_nothing_disarms_until_events_come_close_together_again() {
    let _watchdog = common::watchdog!();
    let el = spinning_loop(Duration::from_millis(200));
    let (a, b) = UnixStream::pair().unwrap();
    // Registered, and its first (writable) event consumed, before counting.
    let a = el
        .run_until_complete(async {
            let a = Async::new(a).unwrap();
            a.writable().await.unwrap();
            a
        })
        .unwrap();
    let stats = || {
        let s = el.stats().unwrap();
        (s.spins, s.spin_hits, s.sleeps)
    };
    // A long quiet wait: one spin of 200 ms for nothing, then sleep (the timer may take a
    // second, shorter sleep to come due); spinning is now disarmed.
    let (spins, hits, sleeps) = stats();
    el.run_until_complete(solo::time::sleep(Duration::from_millis(600)))
        .unwrap();
    let after_quiet = stats();
    assert_eq!(
        (after_quiet.0, after_quiet.1),
        (spins + 1, hits),
        "{after_quiet:?}"
    );
    assert!(after_quiet.2 > sleeps);
    // Disarmed: the next wait sleeps at once, and it ends 5 ms later with an event: re-armed.
    el.run_until_complete(read_a_write_made_soon(&a, &b))
        .unwrap();
    let after_first = stats();
    assert_eq!(
        (after_first.0, after_first.1),
        (spins + 1, hits),
        "{after_first:?}"
    );
    assert!(after_first.2 > after_quiet.2);
    // Armed: the next wait spins and catches the write without sleeping.
    el.run_until_complete(read_a_write_made_soon(&a, &b))
        .unwrap();
    assert_eq!(stats(), (spins + 2, hits + 1, after_first.2));
}

//! `Builder::nap_before_sleep`: under dense traffic the loop sleeps a short fixed time instead
//! of waiting on the poller, then takes what arrived. These tests check what it must never
//! change (no event, call or wake lost; no timer early) and, through debug mode's `naps`,
//! `nap_hits` and `sleeps`, that it naps when it should. The nap is the largest allowed (1 ms),
//! and the cases are built so that their outcome does not depend on this machine's speed:
//! data written before the loop waits is there after any nap; a wait of 20 ms or more outlasts
//! one.

use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use solo::{Async, EventLoop, ManualClock};

mod common;

const NAP: Duration = Duration::from_millis(1);

fn napping_loop() -> EventLoop {
    EventLoop::builder()
        .debug(true)
        .nap_before_sleep(NAP)
        .build()
        .unwrap()
}

/// (naps, nap hits, sleeps, spins): the figures these tests read.
fn figures(el: &EventLoop) -> (u64, u64, u64, u64) {
    let s = el.stats().unwrap();
    (s.naps, s.nap_hits, s.sleeps, s.spins)
}

#[test]
fn data_already_waiting_is_taken_after_the_nap_without_sleeping() {
    let _watchdog = common::watchdog!();
    let el = napping_loop();
    let (a, mut b) = UnixStream::pair().unwrap();
    b.write_all(b"ping").unwrap();
    let got = el
        .run_until_complete(async move {
            let a = Async::new(a).unwrap();
            let mut buf = [0u8; 16];
            let n = a.read_with(|mut s| s.read(&mut buf)).await.unwrap();
            buf[..n].to_vec()
        })
        .unwrap();
    assert_eq!(got, b"ping");
    let (naps, hits, sleeps, spins) = figures(&el);
    assert_eq!((sleeps, spins), (0, 0));
    assert!(naps >= 1 && hits == naps, "{naps} naps, {hits} hits");
}

#[test]
fn a_nap_that_finds_nothing_gives_way_to_a_sleep_and_the_event_is_not_lost() {
    let _watchdog = common::watchdog!();
    let el = napping_loop();
    let (a, mut b) = UnixStream::pair().unwrap();
    // Registered, and its first (writable) event consumed, before counting.
    let a = el
        .run_until_complete(async {
            let a = Async::new(a).unwrap();
            a.writable().await.unwrap();
            a
        })
        .unwrap();
    let before = figures(&el);
    let writer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        b.write_all(b"late").unwrap();
        b
    });
    let got = el
        .run_until_complete(async move {
            let mut buf = [0u8; 16];
            let n = a.read_with(|mut s| s.read(&mut buf)).await.unwrap();
            buf[..n].to_vec()
        })
        .unwrap();
    assert_eq!(got, b"late");
    drop(writer.join().unwrap());
    let after = figures(&el);
    // The first wait naps 1 ms for nothing and disarms napping; the loop then sleeps on the
    // poller until the write, 20 ms in, which is too late to arm it again. (On a machine so
    // loaded that the loop's nap ends after the write, the nap finds it instead.)
    let (naps, hits, sleeps) = (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    assert!(
        (naps, hits) == (1, 0) && sleeps >= 1 || (naps, hits, sleeps) == (1, 1, 0),
        "{naps} naps, {hits} hits, {sleeps} sleeps"
    );
}

#[test]
fn a_call_and_a_wake_from_another_thread_are_not_lost() {
    let _watchdog = common::watchdog!();
    let el = napping_loop();
    let remote = el.handle().remote();
    let (tx, rx) = futures::channel::oneshot::channel::<u32>();
    let t = std::thread::spawn(move || {
        for _ in 0..50 {
            remote.call_soon_threadsafe(|| {}).unwrap();
            std::thread::sleep(Duration::from_micros(200));
        }
        tx.send(5).unwrap();
    });
    // The future given to run_until_complete, woken by the sending thread.
    assert_eq!(el.run_until_complete(rx).unwrap().unwrap(), 5);
    t.join().unwrap();
    assert!(el.stats().unwrap().naps >= 1);
}

#[test]
fn a_timer_never_fires_early_and_a_nap_does_not_outlast_the_wait() {
    let _watchdog = common::watchdog!();
    let el = napping_loop();
    let started = Instant::now();
    el.run_until_complete(solo::time::sleep(Duration::from_millis(30)))
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(30));
    // One nap for nothing, then (unless the nap and the scheduler took the whole 30 ms) a sleep.
    let (naps, hits, _, _) = figures(&el);
    assert_eq!((naps, hits), (1, 0));
}

/// A ping-pong with a thread that answers at once: most answers land within a nap, so the loop
/// naps and finds them; a slow answer (a busy machine) disarms napping, and the next quick one
/// arms it again. Every byte comes back in order.
#[test]
fn dense_traffic_is_taken_by_naps_and_every_byte_arrives() {
    let _watchdog = common::watchdog!();
    let el = napping_loop();
    let (a, mut b) = UnixStream::pair().unwrap();
    const ROUNDS: u32 = 300;
    let echo = std::thread::spawn(move || {
        let mut buf = [0u8; 4];
        for _ in 0..ROUNDS {
            b.read_exact(&mut buf).unwrap();
            b.write_all(&buf).unwrap();
        }
    });
    el.run_until_complete(async move {
        let a = Async::new(a).unwrap();
        for i in 0..ROUNDS {
            let msg = i.to_le_bytes();
            a.write_with(|mut s| s.write_all(&msg)).await.unwrap();
            let mut back = [0u8; 4];
            let mut got = 0;
            while got < 4 {
                got += a.read_with(|mut s| s.read(&mut back[got..])).await.unwrap();
            }
            assert_eq!(u32::from_le_bytes(back), i);
        }
    })
    .unwrap();
    echo.join().unwrap();
    let (naps, hits, sleeps, _) = figures(&el);
    assert!(hits >= 1, "{naps} naps, {hits} hits, {sleeps} sleeps");
    assert!(naps >= hits);
}

#[test]
fn a_manual_clock_jumps_to_timers_without_napping() {
    let _watchdog = common::watchdog!();
    let clock = ManualClock::new();
    let el = EventLoop::builder()
        .debug(true)
        .clock(clock.clone())
        .nap_before_sleep(NAP)
        .build()
        .unwrap();
    el.run_until_complete(solo::time::sleep(Duration::from_secs(3600)))
        .unwrap();
    assert!(clock.elapsed() >= Duration::from_secs(3600));
    assert_eq!(figures(&el), (0, 0, 0, 0));
}

#[test]
fn a_zero_nap_never_naps() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::builder()
        .debug(true)
        .nap_before_sleep(Duration::ZERO)
        .build()
        .unwrap();
    el.run_until_complete(solo::time::sleep(Duration::from_millis(5)))
        .unwrap();
    let (naps, hits, sleeps, _) = figures(&el);
    assert_eq!((naps, hits), (0, 0));
    assert!(sleeps >= 1);
}

#[test]
fn a_nap_over_a_millisecond_or_with_a_spin_is_refused() {
    let _watchdog = common::watchdog!();
    for nap in [
        Duration::from_micros(1001),
        Duration::from_secs(1),
        Duration::MAX,
    ] {
        let err = EventLoop::builder()
            .nap_before_sleep(nap)
            .build()
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        let msg = err.to_string();
        assert!(
            msg.contains("nap_before_sleep") && msg.contains("at most 1ms"),
            "{msg}"
        );
    }
    let err = EventLoop::builder()
        .nap_before_sleep(NAP)
        .spin_before_sleep(Duration::from_micros(10))
        .build()
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("both spin"), "{err}");
    // Exactly the limit is allowed.
    EventLoop::builder().nap_before_sleep(NAP).build().unwrap();
}

#[test]
fn the_nap_can_come_from_the_environment() {
    let _watchdog = common::watchdog!();
    // Each value in a child process with the variable set (see tests/common): this process's
    // environment, which the loops of the other tests read, is never written.
    let naps = || {
        let el = EventLoop::builder().debug(true).build().unwrap();
        el.run_until_complete(solo::time::sleep(Duration::from_millis(10)))
            .unwrap();
        el.stats().unwrap().naps
    };
    common::with_env!(&[("SOLO_NAP_US", "500")], || {
        assert_eq!(naps(), 1);
    });
    common::with_env!(&[("SOLO_NAP_US", "")], || {
        assert_eq!(naps(), 0, "empty: no nap");
    });
    for bad in ["20us", "-5", "1.5", "not a number"] {
        common::with_env!(&[("SOLO_NAP_US", bad)], || {
            let err = EventLoop::builder().build().unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains("SOLO_NAP_US"), "{err}");
        });
    }
    common::with_env!(&[("SOLO_NAP_US", "5000")], || {
        let err = EventLoop::builder().build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("SOLO_NAP_US"), "{err}");
        // The builder's own choice overrides the environment's.
        let el = EventLoop::builder()
            .nap_before_sleep(Duration::ZERO)
            .build();
        assert!(el.is_ok());
    });
    common::with_env!(&[("SOLO_NAP_US", "20"), ("SOLO_SPIN_US", "20")], || {
        let err = EventLoop::builder().build().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("both spin"), "{err}");
    });
    // A mode chosen by the builder switches the environment's other mode off.
    common::with_env!(&[("SOLO_NAP_US", "500")], || {
        let el = EventLoop::builder()
            .debug(true)
            .spin_before_sleep(Duration::from_micros(50))
            .build()
            .unwrap();
        el.run_until_complete(solo::time::sleep(Duration::from_millis(10)))
            .unwrap();
        let (naps, _, _, spins) = figures(&el);
        assert_eq!(naps, 0);
        assert!(spins >= 1);
    });
    common::with_env!(&[("SOLO_SPIN_US", "500")], || {
        let el = napping_loop();
        el.run_until_complete(solo::time::sleep(Duration::from_millis(10)))
            .unwrap();
        let (naps, _, _, spins) = figures(&el);
        assert_eq!((naps, spins), (1, 0));
    });
    // An explicit zero spin leaves the environment's nap in force.
    common::with_env!(&[("SOLO_NAP_US", "500")], || {
        let el = EventLoop::builder()
            .debug(true)
            .spin_before_sleep(Duration::ZERO)
            .build()
            .unwrap();
        el.run_until_complete(solo::time::sleep(Duration::from_millis(10)))
            .unwrap();
        assert_eq!(figures(&el).0, 1);
    });
}

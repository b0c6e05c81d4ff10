//! Embedding: solo stepped by a host's loop (`run_once`, `next_timeout`, the loop's fd), the
//! embedding examples run in-process, and the bad inputs of the step API.

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use solo::{EventLoop, RunError};

mod common;

#[path = "../examples/embed_host_loop.rs"]
mod embed_host_loop;
#[path = "../examples/embed_poll.rs"]
mod embed_poll;
#[path = "../examples/embed_tokio.rs"]
mod embed_tokio;

/// Whether `fd` is readable now (poll(2) with a zero timeout).
fn readable(fd: &impl AsRawFd, wait_ms: i32) -> bool {
    let mut p = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, wait_ms) == 1 && p.revents & libc::POLLIN != 0 }
}

#[test]
fn a_step_runs_one_iteration_with_tasks_timers_readers_and_debug_mode() {
    let _watchdog = common::watchdog!();
    let clock = solo::ManualClock::new();
    let el = EventLoop::builder()
        .clock(clock.clone())
        .debug(true)
        .build()
        .unwrap();
    let h = el.handle();
    let log = Rc::new(std::cell::RefCell::new(Vec::new()));
    let l = log.clone();
    h.call_soon(move || l.borrow_mut().push("soon"));
    let l = log.clone();
    h.call_later(Duration::from_millis(10), move || {
        l.borrow_mut().push("timer")
    });
    let (a, mut b) = std::os::unix::net::UnixStream::pair().unwrap();
    let l = log.clone();
    let h2 = h.clone();
    let fd = a.as_raw_fd();
    h.add_reader(&a, move || {
        l.borrow_mut().push("reader");
        h2.remove_reader(&fd);
    })
    .unwrap();
    let task = h.spawn(async { 5 });
    el.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(*log.borrow(), ["soon"]);
    assert!(task.is_finished());
    // Overdue: next_timeout says "now".
    clock.advance(Duration::from_millis(25));
    assert_eq!(el.next_timeout(), Some(Duration::ZERO));
    b.write_all(b"x").unwrap();
    el.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(*log.borrow(), ["soon", "reader", "timer"]);
    // The host slept 15 ms too long: the timer ran late, and debug mode says by how much.
    assert!(el.stats().unwrap().timer_lag_max >= Duration::from_millis(15));
    assert_eq!(el.next_timeout(), None, "nothing left");
}

#[test]
fn late_timers_run_in_order() {
    let _watchdog = common::watchdog!();
    let (el, clock) = common::manual();
    let h = el.handle();
    let order = Rc::new(std::cell::RefCell::new(Vec::new()));
    for ms in [30u64, 10, 20] {
        let o = order.clone();
        h.call_later(Duration::from_millis(ms), move || o.borrow_mut().push(ms));
    }
    clock.advance(Duration::from_millis(100)); // the host slept far past all three
    el.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(*order.borrow(), [10, 20, 30]);
}

#[test]
fn a_zero_wait_step_never_blocks_and_a_bounded_one_jumps_no_further() {
    let _watchdog = common::watchdog!();
    let (el, clock) = common::manual();
    let fired = Rc::new(Cell::new(false));
    let f = fired.clone();
    el.handle()
        .call_later(Duration::from_secs(3600), move || f.set(true));
    let t0 = el.time();
    el.run_once(Some(Duration::ZERO)).unwrap(); // would hang on a blocking wait
    el.run_once(Some(Duration::from_secs(1))).unwrap();
    assert!(!fired.get());
    assert_eq!(
        el.time(),
        t0,
        "the manual clock did not jump to a timer out of reach"
    );
    // Steps that may wait as long as the loop would: the clock jumps there (the timer wheel may
    // need a step or two on the way, to bring a far timer closer).
    for _ in 0..10 {
        if fired.get() {
            break;
        }
        el.run_once(None).unwrap();
    }
    assert!(fired.get());
    drop(clock);
}

#[test]
fn the_fd_is_readable_when_another_thread_sends_work_even_while_the_host_is_not_stepping() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_once(Some(Duration::ZERO)).unwrap();
    assert!(!readable(&el, 0), "nothing pending");
    let remote = el.handle().remote();
    let ran = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let r = ran.clone();
    std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(move || r.store(true, std::sync::atomic::Ordering::SeqCst))
            .unwrap()
    })
    .join()
    .unwrap();
    assert!(
        readable(&el, 10_000),
        "the remote push made the fd readable"
    );
    assert_eq!(el.next_timeout(), Some(Duration::ZERO));
    el.run_once(Some(Duration::ZERO)).unwrap();
    assert!(ran.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn a_step_inside_its_own_callback_is_an_error_and_inside_another_loop_works() {
    let _watchdog = common::watchdog!();
    let outer = EventLoop::new().unwrap();
    let inner = Rc::new(EventLoop::new().unwrap());
    // The inner loop's own callback may not step it.
    let result = Rc::new(Cell::new(None));
    let (i2, r2) = (inner.clone(), result.clone());
    inner.handle().call_soon(move || {
        r2.set(Some(i2.run_once(Some(Duration::ZERO))));
    });
    inner.run_once(Some(Duration::ZERO)).unwrap();
    assert_eq!(result.get(), Some(Err(RunError::AlreadyRunning)));
    // Loop in loop, through the public API only: the outer loop watches the inner loop's fd
    // with a reader and steps it when it is readable; work sent to the inner loop from another
    // thread makes that fd readable.
    let got = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (i3, g, oh) = (inner.clone(), got.clone(), outer.handle());
    let inner_fd = inner.as_raw_fd();
    outer
        .handle()
        .add_reader(&inner_fd, move || {
            i3.run_once(Some(Duration::ZERO)).unwrap();
            if g.load(std::sync::atomic::Ordering::SeqCst) {
                oh.remove_reader(&inner_fd);
                oh.stop();
            }
        })
        .unwrap();
    let remote = inner.handle().remote();
    let g = got.clone();
    std::thread::spawn(move || {
        remote
            .call_soon_threadsafe(move || g.store(true, std::sync::atomic::Ordering::SeqCst))
            .unwrap()
    })
    .join()
    .unwrap();
    outer.run_forever().unwrap();
    assert!(got.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn dropping_the_loop_between_steps_with_work_pending_drops_everything_once() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let drops = Rc::new(Cell::new(0));
    let c = common::Counted(drops.clone());
    h.call_later(Duration::from_secs(60), move || drop(c));
    let c = common::Counted(drops.clone());
    h.spawn(async move {
        let _c = c;
        std::future::pending::<()>().await
    });
    let c = common::Counted(drops.clone());
    h.call_soon(move || drop(c));
    el.run_once(Some(Duration::ZERO)).unwrap(); // runs the call_soon, polls the task once
    assert_eq!(drops.get(), 1);
    let c = common::Counted(drops.clone());
    h.call_soon(move || drop(c)); // pending when the loop goes
    drop(el);
    assert_eq!(drops.get(), 4);
    assert!(h.is_closed());
}

#[test]
fn stepping_starts_no_thread() {
    let _watchdog = common::watchdog!();
    let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
    let before = threads();
    let el = EventLoop::new().unwrap();
    for _ in 0..10 {
        el.run_once(Some(Duration::ZERO)).unwrap();
    }
    let _ = el.next_timeout();
    let _ = el.as_raw_fd();
    // (Other tests of this file run meanwhile on threads of their own; allow for them, but a
    // thread per loop or per step would show.)
    assert!(threads() <= before + 4, "{before} -> {}", threads());
}

#[test]
fn the_host_frame_loop_example_serves_clients_and_timers_between_frames() {
    let _watchdog = common::watchdog!();
    let client = std::sync::Arc::new(std::sync::Mutex::new(None));
    let c = client.clone();
    let report = embed_host_loop::run(30, Duration::from_millis(10), move |addr| {
        *c.lock().unwrap() = Some(std::thread::spawn(move || {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"ping").unwrap();
            let mut b = [0u8; 4];
            s.read_exact(&mut b).unwrap();
            b
        }));
    });
    assert_eq!(report.frames, 30);
    assert!(report.ticks >= 1, "{report:?}");
    let echoed = client.lock().unwrap().take().unwrap().join().unwrap();
    assert_eq!(&echoed, b"ping");
}

#[test]
fn the_poll_host_example_serves_its_own_fds_and_solos() {
    let _watchdog = common::watchdog!();
    let report = embed_poll::run(10);
    assert_eq!(
        report,
        embed_poll::Report {
            device_messages: 10,
            solo_timers: 3,
            remote_calls: 10
        }
    );
}

#[test]
fn the_tokio_host_example_steps_solo_inside_tokio() {
    let _watchdog = common::watchdog!();
    assert_eq!(embed_tokio::run(), 42);
}

#[test]
fn a_signal_reaches_a_stepped_loop_through_its_fd() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let got = Rc::new(Cell::new(false));
    let g = got.clone();
    el.handle()
        .add_signal_handler(libc::SIGUSR2, move || g.set(true))
        .unwrap();
    // SAFETY: sending a signal to this process; only this test of the binary handles it.
    unsafe { libc::kill(libc::getpid(), libc::SIGUSR2) };
    assert!(readable(&el, 10_000), "the delivery made the fd readable");
    el.run_once(Some(Duration::ZERO)).unwrap();
    assert!(got.get());
    assert!(el.handle().remove_signal_handler(libc::SIGUSR2));
}

//! solo inside a host built on `poll(2)`, the way a C program would embed it: the host waits on
//! its own fds *and* solo's fd, for at most what solo's `next_timeout` says, then steps solo.
//!
//!     cargo run --release --example embed_poll
//!
//! The host's own fd here is a pipe that a "device" thread writes to; solo meanwhile runs a
//! timer and work sent from another thread. `run` is also started by `tests/embedding.rs`.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use solo::EventLoop;

/// What happened: device messages the host read, solo timers fired, remote calls run by solo.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// Bytes the device thread wrote to the host's own fd, as the host read them.
    pub device_messages: u32,
    /// solo timers that fired.
    pub solo_timers: u32,
    /// `call_soon_threadsafe` callbacks solo ran.
    pub remote_calls: u32,
}

/// Runs the host until `messages` device messages and remote calls and three timers are done.
pub fn run(messages: u32) -> Report {
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let timers = std::rc::Rc::new(std::cell::Cell::new(0u32));
    let remote_calls = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    for i in 1..=3u64 {
        let t = timers.clone();
        h.call_later(Duration::from_millis(5 * i), move || t.set(t.get() + 1));
    }
    // The host's own fd, fed by a device thread; the same thread also sends work to solo.
    let (mut host_end, mut device_end) = UnixStream::pair().unwrap();
    let remote = h.remote();
    let rc = remote_calls.clone();
    let device = std::thread::spawn(move || {
        for _ in 0..messages {
            device_end.write_all(b"m").unwrap();
            let rc = rc.clone();
            remote
                .call_soon_threadsafe(move || {
                    rc.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })
                .unwrap();
            std::thread::sleep(Duration::from_millis(2));
        }
    });
    let mut report = Report::default();
    while report.device_messages < messages
        || timers.get() < 3
        || remote_calls.load(std::sync::atomic::Ordering::SeqCst) < messages
    {
        let timeout_ms = match el.next_timeout() {
            None => -1,
            Some(d) => d.as_millis().min(i32::MAX as u128) as i32,
        };
        let mut fds = [
            libc::pollfd {
                fd: host_end.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: el.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two valid pollfd structs in a local array.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
        assert!(n >= 0, "poll: {}", std::io::Error::last_os_error());
        if fds[0].revents & libc::POLLIN != 0 {
            let mut b = [0u8; 64];
            report.device_messages += host_end.read(&mut b).unwrap() as u32;
        }
        // Step solo whether or not its fd was readable: its timers need steps too.
        el.run_once(Some(Duration::ZERO)).unwrap();
    }
    device.join().unwrap();
    report.solo_timers = timers.get();
    report.remote_calls = remote_calls.load(std::sync::atomic::Ordering::SeqCst);
    report
}

#[allow(dead_code)] // the tests include this file for `run` only
fn main() {
    println!("{:?}", run(20));
}

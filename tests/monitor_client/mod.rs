//! Helpers of the monitor's tests (`tests/monitor.rs`, `tests/monitor_states.rs`): a client
//! that speaks the monitor's line protocol, a loop run beside a client thread, a gate to block
//! the loop for as long as a client wants, and checks of the HTTP `/metrics` answer.

#![allow(dead_code)] // each file uses some of the helpers

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use solo::monitor::MonitorAddr;
use solo::{EventLoop, Handle};

/// A monitor client: sends lines, reads replies (lines up to an empty one).
pub struct Client {
    pub r: BufReader<Box<dyn Read + Send>>,
    pub w: Box<dyn Write + Send>,
    /// Ends the writing half (the server sees end of file).
    pub finish: Box<dyn Fn() + Send>,
}

impl Client {
    pub fn connect(addr: &MonitorAddr) -> Client {
        match addr {
            MonitorAddr::Tcp(a) => {
                let s = TcpStream::connect(a).unwrap();
                let f = s.try_clone().unwrap();
                Client {
                    r: BufReader::new(Box::new(s.try_clone().unwrap())),
                    w: Box::new(s),
                    finish: Box::new(move || drop(f.shutdown(std::net::Shutdown::Write))),
                }
            }
            MonitorAddr::Unix(p) => {
                let s = std::os::unix::net::UnixStream::connect(p).unwrap();
                let f = s.try_clone().unwrap();
                Client {
                    r: BufReader::new(Box::new(s.try_clone().unwrap())),
                    w: Box::new(s),
                    finish: Box::new(move || drop(f.shutdown(std::net::Shutdown::Write))),
                }
            }
        }
    }

    pub fn send(&mut self, line: &str) {
        self.w.write_all(line.as_bytes()).unwrap();
        self.w.write_all(b"\n").unwrap();
    }

    /// The next reply; `None` at end of file.
    pub fn try_reply(&mut self) -> Option<String> {
        let mut out = String::new();
        loop {
            let mut line = String::new();
            if self.r.read_line(&mut line).unwrap_or(0) == 0 {
                return (!out.is_empty()).then_some(out);
            }
            if line == "\n" {
                return Some(out);
            }
            out.push_str(&line);
        }
    }

    pub fn reply(&mut self) -> String {
        self.try_reply()
            .expect("a reply, not the end of the connection")
    }

    pub fn ask(&mut self, line: &str) -> String {
        self.send(line);
        self.reply()
    }
}

/// Runs the loop on this thread while `client` runs on another with the monitor's address;
/// the loop stops when the client returns (or panics, which is then re-raised here).
pub fn with_client<T: Send + 'static>(
    el: &EventLoop,
    client: impl FnOnce(MonitorAddr) -> T + Send + 'static,
) -> T {
    let addr = el.monitor_addr().expect("a monitor");
    let remote = el.handle().remote();
    let t = std::thread::spawn(move || {
        let r = catch_unwind(AssertUnwindSafe(|| client(addr)));
        let _ = remote.call_soon_threadsafe(|| Handle::current().stop());
        r
    });
    el.run_forever().unwrap();
    match t.join().unwrap() {
        Ok(v) => v,
        Err(p) => resume_unwind(p),
    }
}

pub fn monitored() -> EventLoop {
    EventLoop::builder().monitor("127.0.0.1:0").build().unwrap()
}

/// The id in the first column of the `ps` row that contains `name`.
pub fn id_of(ps: &str, name: &str) -> u64 {
    let row = ps
        .lines()
        .find(|l| l.contains(name))
        .unwrap_or_else(|| panic!("no {name} in\n{ps}"));
    row.split_whitespace().next().unwrap().parse().unwrap()
}

/// Asks a command that runs on the loop: its reply, or (if it took long enough to be reported
/// queued) that and the result that followed.
pub fn ask_loop(c: &mut Client, q: &str) -> String {
    let first = c.ask(q);
    if first.contains(": queued;") {
        return first + &c.reply();
    }
    first
}

/// Asks `ps` until the loop is reported blocked.
pub fn until_blocked(c: &mut Client) -> String {
    loop {
        let ps = c.ask("ps");
        if ps.contains("the loop is blocked") {
            return ps;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A gate a callback on the loop waits at, for blocking the loop as long as a client wants.
#[derive(Clone, Default)]
pub struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    pub fn wait(&self) {
        let (m, cv) = &*self.0;
        let mut open = m.lock().unwrap();
        while !*open {
            open = cv.wait(open).unwrap();
        }
    }
    pub fn open(&self) {
        *self.0 .0.lock().unwrap() = true;
        self.0 .1.notify_all();
    }
}

/// `GET path` over HTTP/1.1 on the monitor's port: the whole response.
pub fn http_get(addr: &MonitorAddr, path: &str) -> String {
    let MonitorAddr::Tcp(a) = addr else {
        panic!("HTTP is for TCP")
    };
    let mut s = TcpStream::connect(a).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n").unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

/// A 200 response whose body is well-formed Prometheus text with the expected families.
pub fn check_prometheus(resp: &str) {
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(len, body.len());
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (name, value) = line.rsplit_once(' ').unwrap();
        assert!(value.parse::<f64>().is_ok(), "{line}");
        let base = name.split('{').next().unwrap();
        assert!(
            base.starts_with("solo_")
                && base.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
    }
    for family in [
        "solo_iterations_total",
        "solo_task_poll_seconds{quantile=\"0.99\"}",
        "solo_callback_seconds_count",
        "solo_iteration_seconds_sum",
        "solo_timer_lateness_seconds_max",
        "solo_wake_to_run_seconds{quantile=\"0.999\"}",
    ] {
        assert!(body.contains(family), "{family} in\n{body}");
    }
}

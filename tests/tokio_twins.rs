//! The tokio twins of the example servers (`examples/echo_tokio.rs`, `kv_tokio.rs`,
//! `hello_http_tokio.rs`), which the benchmarks run against solo: started in-process on
//! ephemeral ports, on tokio's current_thread runtime and with `--threads N` on its
//! multi-thread runtime, and driven by plain blocking clients on several connections at once.
//! No solo loop runs here; the watchdog bounds each test all the same.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

mod common;

#[allow(dead_code)]
#[path = "../examples/echo_tokio.rs"]
mod echo_tokio;

#[allow(dead_code)]
#[path = "../examples/kv_tokio.rs"]
mod kv_tokio;

// It includes echo_tokio.rs again, for its runtime and command line.
#[cfg(feature = "hyper")]
#[allow(dead_code, clippy::duplicate_mod)]
#[path = "../examples/hello_http_tokio.rs"]
mod hello_http_tokio;

/// Runs `run` on its own thread (the server runs until the test process ends) and returns the
/// address it bound.
fn start(
    run: impl FnOnce(Box<dyn FnOnce(SocketAddr) + Send>) -> std::io::Result<()> + Send + 'static,
) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || run(Box::new(move |a| tx.send(a).unwrap())).unwrap());
    rx.recv_timeout(Duration::from_secs(20)).unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c
}

/// Reads until `len` bytes came or the peer closed.
fn read_n(c: &mut TcpStream, len: usize) -> Vec<u8> {
    let mut got = vec![0u8; len];
    let mut at = 0;
    while at < len {
        match c.read(&mut got[at..]).unwrap() {
            0 => break,
            n => at += n,
        }
    }
    got.truncate(at);
    got
}

#[test]
fn echo_tokio_echoes_on_both_runtimes() {
    let _watchdog = common::watchdog!();
    for threads in [None, Some(1), Some(4)] {
        let addr = start(move |bound| echo_tokio::run("127.0.0.1:0", threads, bound));
        let clients: Vec<_> = (0..20u8)
            .map(|i| {
                std::thread::spawn(move || {
                    let mut c = connect(addr);
                    let msg = vec![i; 100_000];
                    let mut w = c.try_clone().unwrap();
                    let m = msg.clone();
                    let writer = std::thread::spawn(move || w.write_all(&m).unwrap());
                    let back = read_n(&mut c, msg.len());
                    writer.join().unwrap();
                    back == msg
                })
            })
            .collect();
        for c in clients {
            assert!(c.join().unwrap(), "threads {threads:?}");
        }
    }
}

#[test]
fn the_twins_refuse_bad_command_lines() {
    let args = |line: &[&str]| line.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    for bad in [
        &["--threads"][..],
        &["--threads", "0"],
        &["--threads", "many"],
        &["--shards", "2"],
        &["127.0.0.1:1", "127.0.0.1:2"],
    ] {
        assert!(
            echo_tokio::parse_args(args(bad).into_iter(), "127.0.0.1:0").is_err(),
            "{bad:?}"
        );
    }
    let ok = echo_tokio::parse_args(args(&["--threads", "3"]).into_iter(), "127.0.0.1:9").unwrap();
    assert_eq!(ok, ("127.0.0.1:9".to_string(), Some(3)));
    for bad in [
        &["--threads", "0"][..],
        &["--threads", "2", "--reply-soft-limit", "1k"],
        &["--threads", "2", "127.0.0.1:1", "127.0.0.1:2"],
        &["--nope", "1"],
    ] {
        assert!(
            kv_tokio::parse_args(args(bad).into_iter()).is_err(),
            "{bad:?}"
        );
    }
    assert!(matches!(
        kv_tokio::parse_args(args(&["127.0.0.1:5", "--threads", "2"]).into_iter()),
        Ok((Some(_), kv_tokio::Mode::Threads(2)))
    ));
    assert!(matches!(
        kv_tokio::parse_args(args(&["--reply-soft-limit", "1k"]).into_iter()),
        Ok((None, kv_tokio::Mode::Single(_)))
    ));
}

/// RESP for one request.
fn resp(args: &[&str]) -> String {
    let mut s = format!("*{}\r\n", args.len());
    for a in args {
        s.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s
}

#[test]
fn kv_tokio_shares_its_keys_across_connections_on_both_runtimes() {
    let _watchdog = common::watchdog!();
    for threads in [None, Some(4)] {
        let addr = start(move |bound| {
            let mode = match threads {
                None => kv_tokio::Mode::Single(Default::default()),
                Some(n) => kv_tokio::Mode::Threads(n),
            };
            kv_tokio::run("127.0.0.1:0", mode, bound)
        });
        // A thousand pipelined SETs on one connection, read back on several others (on the
        // multi-thread runtime they land on different workers).
        let mut w = connect(addr);
        let sets: String = (0..1000)
            .map(|i| resp(&["SET", &format!("key:{i}"), &format!("value {i}")]))
            .collect();
        w.write_all(sets.as_bytes()).unwrap();
        assert_eq!(read_n(&mut w, 5 * 1000), "+OK\r\n".repeat(1000).as_bytes());
        let readers: Vec<_> = (0..4)
            .map(|r| {
                std::thread::spawn(move || {
                    let mut c = connect(addr);
                    let (mut gets, mut want) = (String::new(), String::new());
                    for i in (r..1000).step_by(4) {
                        gets.push_str(&resp(&["GET", &format!("key:{i}")]));
                        let v = format!("value {i}");
                        want.push_str(&format!("${}\r\n{v}\r\n", v.len()));
                    }
                    gets.push_str(&resp(&["PING"]));
                    want.push_str("+PONG\r\n");
                    c.write_all(gets.as_bytes()).unwrap();
                    String::from_utf8(read_n(&mut c, want.len())).unwrap() == want
                })
            })
            .collect();
        for r in readers {
            assert!(r.join().unwrap(), "threads {threads:?}");
        }
        // Not RESP: an error, then the connection closes.
        let mut bad = connect(addr);
        bad.write_all(b"*1\r\n$-7\r\n").unwrap();
        let mut reply = String::new();
        bad.read_to_string(&mut reply).unwrap();
        assert!(reply.starts_with("-ERR Protocol error"), "{reply:?}");
    }
}

#[cfg(feature = "hyper")]
#[test]
fn hello_http_tokio_answers_pipelined_requests_on_both_runtimes() {
    let _watchdog = common::watchdog!();
    for threads in [None, Some(2)] {
        let addr = start(move |bound| hello_http_tokio::run("127.0.0.1:0", threads, bound));
        let mut c = connect(addr);
        c.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut reply = String::new();
        c.read_to_string(&mut reply).unwrap();
        assert_eq!(reply.matches("HTTP/1.1 200 OK").count(), 2, "{reply}");
        assert_eq!(reply.matches("Hello, World!").count(), 2, "{reply}");
    }
}

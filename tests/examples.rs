//! The example servers, started in-process on ephemeral ports and driven by pipelined clients.

use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use solo::net::TcpStream;
use solo::{EventLoop, Handle};

mod common;

#[allow(dead_code)]
#[path = "../examples/echo.rs"]
mod echo;

#[allow(dead_code)]
#[path = "../examples/kv.rs"]
mod kv;

#[test]
fn echo_answers_a_pipelined_client() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let addr = common::start_server(echo::serve);
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut all = Vec::new();
        for i in 0..500u32 {
            all.extend_from_slice(format!("message {i}\n").as_bytes());
        }
        // Everything at once, then read it all back.
        c.write_all(&all).await.unwrap();
        let mut back = vec![0u8; all.len()];
        c.read_exact(&mut back).await.unwrap();
        assert_eq!(back, all);
        // Several clients at once.
        let clients: Vec<_> = (0..20u8)
            .map(|i| {
                Handle::current().spawn(async move {
                    let mut c = TcpStream::connect(addr).await.unwrap();
                    let msg = vec![i; 10_000];
                    c.write_all(&msg).await.unwrap();
                    let mut back = vec![0u8; msg.len()];
                    c.read_exact(&mut back).await.unwrap();
                    back == msg
                })
            })
            .collect();
        for c in clients {
            assert!(c.await.unwrap());
        }
    })
    .unwrap();
}

/// Sends `req` and reads until `expect` bytes arrived (or the peer closed).
async fn roundtrip(c: &mut TcpStream, req: &[u8], expect: usize) -> Vec<u8> {
    c.write_all(req).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while got.len() < expect {
        let n = c.read(&mut buf).await.unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
    got
}

fn resp(args: &[&str]) -> Vec<u8> {
    let mut v = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        v.extend_from_slice(format!("${}\r\n{a}\r\n", a.len()).as_bytes());
    }
    v
}

#[test]
fn kv_speaks_resp_with_pipelining() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let addr = common::start_server(kv::serve);
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut req = Vec::new();
        for cmd in [
            &["PING"][..],
            &["ECHO", "hello world"],
            &["SET", "k", "v1"],
            &["GET", "k"],
            &["GET", "missing"],
            &["INCR", "n"],
            &["INCR", "n"],
            &["INCR", "k"],
            &["MSET", "a", "1", "b", "2"],
            &["MGET", "a", "b", "zz"],
            &["EXISTS", "a", "b", "zz"],
            &["DEL", "a", "zz"],
            &["SET", "t", "x", "PX", "5000"],
            &["GET", "t"],
            &["SET", "bad", "x", "EX", "0"],
            &["SET", "bad", "x", "NOPE"],
            &["MSET", "odd"],
            &["DBSIZE"],
            &["NOSUCH", "x"],
            &["CONFIG", "GET", "save"],
            &["CONFIG", "GET", "appendonly", "nosuch"],
            &["CONFIG", "SET", "save", ""],
        ] {
            req.extend(resp(cmd));
        }
        let want: &[u8] = b"+PONG\r\n$11\r\nhello world\r\n+OK\r\n$2\r\nv1\r\n$-1\r\n:1\r\n:2\r\n\
-ERR value is not an integer or out of range\r\n+OK\r\n*3\r\n$1\r\n1\r\n$1\r\n2\r\n$-1\r\n:2\r\n:1\r\n\
+OK\r\n$1\r\nx\r\n-ERR invalid expire time in 'set' command\r\n-ERR syntax error\r\n\
-ERR wrong number of arguments for 'mset' command\r\n:4\r\n\
-ERR unknown command 'NOSUCH', with args beginning with: 'x'\r\n\
*2\r\n$4\r\nsave\r\n$0\r\n\r\n*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n\
-ERR only CONFIG GET is supported\r\n";
        let got = roundtrip(&mut c, &req, want.len()).await;
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
        // Inline commands (as typed into telnet) work too.
        let got = roundtrip(&mut c, b"PING\r\nGET k\r\n", 15).await;
        assert_eq!(got, b"+PONG\r\n$2\r\nv1\r\n");
    })
    .unwrap();
}

#[test]
fn kv_expires_keys() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let addr = common::start_server(kv::serve);
        let mut c = TcpStream::connect(addr).await.unwrap();
        let got = roundtrip(&mut c, &resp(&["SET", "gone", "x", "PX", "1"]), 5).await;
        assert_eq!(got, b"+OK\r\n");
        solo::time::sleep(Duration::from_millis(30)).await;
        let got = roundtrip(&mut c, &resp(&["GET", "gone"]), 5).await;
        assert_eq!(got, b"$-1\r\n");
    })
    .unwrap();
}

#[test]
fn kv_malformed_request_gets_an_error_and_others_are_unaffected() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let addr = common::start_server(kv::serve);
        let mut good = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            roundtrip(&mut good, &resp(&["SET", "k", "1"]), 5).await,
            b"+OK\r\n"
        );

        for bad in [
            &b"*2\r\n$3\r\nGET\r\n$x\r\n"[..],
            b"*1\r\n+GET\r\n",
            b"*-5x\r\n",
            b"*1\r\n$3\r\nGETxx",
        ] {
            let mut c = TcpStream::connect(addr).await.unwrap();
            let got = roundtrip(&mut c, bad, usize::MAX).await; // reads until closed
            let text = String::from_utf8_lossy(&got);
            assert!(
                text.starts_with("-ERR Protocol error"),
                "{bad:?} -> {text:?}"
            );
        }
        // A client that disconnects in the middle of a command.
        {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhal")
                .await
                .unwrap();
        }
        solo::time::sleep(Duration::from_millis(10)).await;
        // The good client is still served, and the half-sent SET did not happen.
        assert_eq!(
            roundtrip(&mut good, &resp(&["GET", "k"]), 7).await,
            b"$1\r\n1\r\n"
        );
    })
    .unwrap();
}

/// Starts kv with `limits` in the running loop: its address, and the server (for its stats).
fn start_kv(limits: kv::Limits) -> (SocketAddr, Rc<kv::Server>) {
    let server = Rc::new(kv::Server::new(limits));
    let s = server.clone();
    (common::start_server(move |l| kv::serve_with(l, s)), server)
}

/// Reads until the server closes the connection (an orderly close, or a reset when it closed
/// with bytes of ours unread): what came before.
async fn read_until_closed(c: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf).await {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("read: {e}"),
        }
    }
}

/// Waits, looking every millisecond, until `done` holds; fails the test after 20 s.
async fn until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "waited 20 s for {what}");
        solo::time::sleep(Duration::from_millis(1)).await;
    }
}

#[test]
fn kv_stops_reading_a_client_that_pipelines_and_never_reads() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let soft = 128 * 1024;
        let (addr, server) = start_kv(kv::Limits {
            reply_soft: soft,
            ..Default::default()
        });
        let stats = server.stats();
        let value = "v".repeat(64 * 1024);
        let reply = format!("${}\r\n{value}\r\n", value.len()).into_bytes();
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            roundtrip(&mut c, &resp(&["SET", "big", &value]), 5).await,
            b"+OK\r\n"
        );

        // 2,000 GETs in one go (44 kB, which the socket takes at once), whose 128 MB of
        // replies are far more than the kernel's socket buffers hold; nothing read.
        let n = 2000;
        let (mut rx, mut tx) = TcpStream::connect(addr).await.unwrap().into_split();
        tx.write_all(&resp(&["GET", "big"]).repeat(n))
            .await
            .unwrap();
        until("the server to stop reading the client", || {
            stats.stalled.get() == 1
        })
        .await;
        // Stopped: with most requests unanswered, and at most the soft limit and one reply
        // held (without backpressure it answered all it had read, some 700 GETs, 47 MB).
        let answered = stats.requests.get() - 1;
        assert!(answered < n as u64 / 2, "{answered} of {n} answered");
        let peak = stats.peak_unsent.get();
        assert!(peak <= soft + reply.len(), "{peak} bytes of replies held");
        // Another client is served meanwhile.
        assert_eq!(roundtrip(&mut c, &resp(&["PING"]), 7).await, b"+PONG\r\n");

        // Once the client reads, it gets every reply, in order.
        let mut got = vec![0u8; reply.len()];
        for i in 0..n {
            rx.read_exact(&mut got).await.unwrap();
            assert!(got == reply, "reply {i}");
        }
        assert_eq!(stats.requests.get(), n as u64 + 2);
        assert_eq!(stats.stalled.get(), 0);
        // Draining, the server reads again whenever its replies fall under the soft limit, so
        // the peak may move (by how much was left unsent when it resumed), but never past the
        // bound: the limit and one reply.
        let drained_peak = stats.peak_unsent.get();
        assert!(drained_peak >= peak);
        assert!(
            drained_peak <= soft + reply.len(),
            "{drained_peak} bytes of replies held"
        );
        assert_eq!(stats.over_reply_limit.get(), 0);
    })
    .unwrap();
}

#[test]
fn kv_closes_a_client_whose_replies_pass_the_hard_limit() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let hard = 1024 * 1024;
        let (addr, server) = start_kv(kv::Limits {
            reply_soft: 64 * 1024,
            reply_hard: hard,
            ..Default::default()
        });
        let value = "v".repeat(256 * 1024);
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            roundtrip(&mut c, &resp(&["SET", "big", &value]), 5).await,
            b"+OK\r\n"
        );
        // A reply within the hard limit is sent (past the soft limit: that only pauses).
        let reply = format!("${}\r\n{value}\r\n", value.len()).into_bytes();
        let got = roundtrip(&mut c, &resp(&["GET", "big"]), reply.len()).await;
        assert!(got == reply);
        // Six of them in one reply, 1.5 MB: the connection is closed, nothing sent.
        let mget = resp(&["MGET", "big", "big", "big", "big", "big", "big"]);
        c.write_all(&mget).await.unwrap();
        assert_eq!(read_until_closed(&mut c).await, b"");
        let stats = server.stats();
        assert_eq!(stats.over_reply_limit.get(), 1);
        // The MGET stopped at the limit instead of building all of its reply.
        assert!(stats.peak_unsent.get() <= hard + reply.len() + 16);
        // Other clients are unaffected.
        let mut other = TcpStream::connect(addr).await.unwrap();
        assert_eq!(
            roundtrip(&mut other, &resp(&["PING"]), 7).await,
            b"+PONG\r\n"
        );
    })
    .unwrap();
}

#[test]
fn kv_parses_a_request_trickled_one_byte_at_a_time_in_linear_work() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (addr, server) = start_kv(kv::Limits::default());
        let stats = server.stats();
        let mut args = vec!["MSET".to_string()];
        for i in 0..300 {
            args.extend([format!("key{i}"), format!("value {i}")]);
        }
        args.extend(["long".to_string(), "x".repeat(2000)]);
        let args: Vec<&str> = args.iter().map(|a| &a[..]).collect();
        let req = resp(&args);

        // One byte, then wait until the server has read it: every read is one byte.
        let mut c = TcpStream::connect(addr).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        for (i, byte) in req.iter().enumerate() {
            c.write_all(&[*byte]).await.unwrap();
            while stats.read.get() < i as u64 + 1 {
                assert!(
                    Instant::now() < deadline,
                    "the server did not read byte {i}"
                );
                solo::yield_now().await;
            }
        }
        let got = roundtrip(&mut c, b"", 5).await;
        assert_eq!(got, b"+OK\r\n");
        // Each byte looked at once, and at most one byte again per read (a CR waiting for its
        // LF). Parsing from the request's start on every read looked at over 20 million.
        let len = req.len() as u64;
        let parsed = stats.parsed.get();
        assert!(parsed <= 2 * len, "{parsed} bytes looked at for {len}");
        let value = "x".repeat(2000);
        let want = format!("${}\r\n{value}\r\n", value.len()).into_bytes();
        assert!(roundtrip(&mut c, &resp(&["GET", "long"]), want.len()).await == want);
    })
    .unwrap();
}

#[test]
fn kv_grows_its_buffer_for_a_partial_bulk_string_only_as_it_arrives() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (addr, server) = start_kv(kv::Limits::default());
        let value = vec![b'y'; 300_000];
        let mut req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$300000\r\n".to_vec();
        req.extend_from_slice(&value);
        req.extend_from_slice(b"\r\n");
        let mut c = TcpStream::connect(addr).await.unwrap();
        for piece in req.chunks(10_000) {
            c.write_all(piece).await.unwrap();
        }
        assert_eq!(roundtrip(&mut c, b"", 5).await, b"+OK\r\n");
        // The buffer doubled from 16 kB, and stopped at the request's size instead of
        // doubling on to 512 kB.
        let peak = server.stats().peak_buffer.get();
        assert!(
            (value.len()..=req.len()).contains(&peak),
            "{peak} for a request of {}",
            req.len()
        );

        // A client that announces 512 MB and sends 1 kB gets 16 kB.
        let mut c = TcpStream::connect(addr).await.unwrap();
        let mut req = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$536870912\r\n".to_vec();
        req.extend_from_slice(&[b'z'; 1000]);
        c.write_all(&req).await.unwrap();
        let read = server.stats().read.get();
        until("the server to read it", || {
            server.stats().read.get() >= read + req.len() as u64
        })
        .await;
        assert_eq!(server.stats().peak_buffer.get(), peak);
    })
    .unwrap();
}

#[test]
fn kv_refuses_a_bulk_length_of_2_to_the_40() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let (addr, _) = start_kv(kv::Limits::default());
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"*2\r\n$3\r\nGET\r\n$1099511627776\r\n")
            .await
            .unwrap();
        assert_eq!(
            read_until_closed(&mut c).await,
            b"-ERR Protocol error: invalid bulk length\r\n"
        );

        // The limit is configurable: the largest bulk string is accepted, one byte more not.
        let (addr, server) = start_kv(kv::Limits {
            max_bulk: 1000,
            ..Default::default()
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        let ok = roundtrip(&mut c, &resp(&["SET", "k", &"a".repeat(1000)]), 5).await;
        assert_eq!(ok, b"+OK\r\n");
        let want = b"*2\r\n$18\r\nproto-max-bulk-len\r\n$4\r\n1000\r\n";
        let config = resp(&["CONFIG", "GET", "proto-max-bulk-len"]);
        assert_eq!(roundtrip(&mut c, &config, want.len()).await, want);
        c.write_all(&resp(&["SET", "k", &"a".repeat(1001)]))
            .await
            .unwrap();
        assert_eq!(
            read_until_closed(&mut c).await,
            b"-ERR Protocol error: invalid bulk length\r\n"
        );
        // Its data was never buffered: refused at the length.
        assert_eq!(server.stats().peak_buffer.get(), 16 * 1024);
    })
    .unwrap();
}

#[test]
fn kv_refuses_a_multibulk_count_of_2_to_the_31() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let query = 64 * 1024;
        let (addr, server) = start_kv(kv::Limits {
            query_buffer: query,
            ..Default::default()
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(b"*2147483648\r\n").await.unwrap();
        assert_eq!(
            read_until_closed(&mut c).await,
            b"-ERR Protocol error: invalid multibulk length\r\n"
        );

        // 2^31 - 1 is Redis's largest; the arguments are taken as they come (no room is made
        // for 2^31 of them), until the request passes the query buffer limit: then the
        // connection is closed without a reply, as Redis does.
        let (mut rx, mut tx) = TcpStream::connect(addr).await.unwrap().into_split();
        let mut req = b"*2147483647\r\n".to_vec();
        req.extend_from_slice(&b"$1\r\nx\r\n".repeat(2 * query / 7));
        let writer = Handle::current().spawn(async move {
            let _ = tx.write_all(&req).await; // the server may close before it has all
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 64];
        loop {
            match rx.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        assert_eq!(got, b"");
        writer.await.unwrap();
        let stats = server.stats();
        assert_eq!(stats.over_query_limit.get(), 1);
        assert_eq!(stats.peak_buffer.get(), query);

        // The count limit is configurable too.
        let (addr, _) = start_kv(kv::Limits {
            max_multibulk: 2,
            ..Default::default()
        });
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert_eq!(roundtrip(&mut c, &resp(&["GET", "k"]), 5).await, b"$-1\r\n");
        c.write_all(&resp(&["MGET", "k", "l"])).await.unwrap();
        assert_eq!(
            read_until_closed(&mut c).await,
            b"-ERR Protocol error: invalid multibulk length\r\n"
        );
    })
    .unwrap();
}

#[test]
fn kv_closes_a_client_past_the_query_buffer_limit() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    el.run_until_complete(async {
        let query = 64 * 1024;
        let (addr, server) = start_kv(kv::Limits {
            query_buffer: query,
            ..Default::default()
        });
        // A request of exactly the limit is served.
        let mut c = TcpStream::connect(addr).await.unwrap();
        let value = "a".repeat(query - 30); // 30: the rest of the request
        let req = resp(&["SET", "k", &value]);
        assert_eq!(req.len(), query);
        assert_eq!(roundtrip(&mut c, &req, 5).await, b"+OK\r\n");
        // A bulk string a byte longer cannot be: closed, without a reply.
        let value = "a".repeat(query);
        let (mut rx, mut tx) = TcpStream::connect(addr).await.unwrap().into_split();
        let req = resp(&["SET", "k", &value]);
        let writer = Handle::current().spawn(async move {
            let _ = tx.write_all(&req).await;
        });
        let mut buf = [0u8; 64];
        match rx.read(&mut buf).await {
            Ok(n) => assert_eq!(n, 0, "{:?}", &buf[..n]),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset),
        }
        writer.await.unwrap();
        assert_eq!(server.stats().over_query_limit.get(), 1);
        assert_eq!(server.stats().peak_buffer.get(), query);
        // Others are served.
        assert_eq!(roundtrip(&mut c, &resp(&["DBSIZE"]), 4).await, b":1\r\n");
    })
    .unwrap();
}

mod kv_parser {
    use std::ops::Range;

    use super::kv::{Limits, Parsed, Parser};
    use proptest::prelude::*;

    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut v = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            v.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            v.extend_from_slice(a);
            v.extend_from_slice(b"\r\n");
        }
        v
    }

    /// Feeds `wire` to one parser as a client's buffer fills, `cuts` the lengths it has at
    /// each call, then all of it: what it found at the end, the arguments, and how many bytes
    /// it looked at against how many calls it took.
    fn parse_in_pieces(wire: &[u8], cuts: &[usize]) -> (Parsed, Vec<Vec<u8>>, u64, u64) {
        let mut p = Parser::new(&Limits::default());
        let mut calls = 0;
        for &cut in cuts {
            calls += 1;
            assert_eq!(p.parse(&wire[..cut]), Parsed::Incomplete, "at {cut}");
        }
        let parsed = p.parse(wire);
        let args = p.args().iter().map(|r| wire[r.clone()].to_vec()).collect();
        (parsed, args, p.take_scanned(), calls + 1)
    }

    /// An MSET of `pairs` keys and values.
    fn mset(pairs: usize) -> (Vec<Vec<u8>>, Vec<u8>) {
        let mut args = vec![b"MSET".to_vec()];
        for i in 0..pairs {
            args.push(format!("key:{i}").into_bytes());
            args.push(format!("value {i}").into_bytes());
        }
        let wire = encode(&args);
        (args, wire)
    }

    #[test]
    fn a_request_a_byte_at_a_time_costs_what_it_costs_at_once() {
        let (args, wire) = mset(20_000); // 0.5 MB, 40,001 arguments
        let (parsed, got, whole, _) = parse_in_pieces(&wire, &[]);
        assert_eq!(parsed, Parsed::Request(wire.len()));
        assert!(got == args);
        assert!(whole <= wire.len() as u64, "{whole} for {}", wire.len());
        let cuts: Vec<usize> = (0..wire.len()).collect();
        let (parsed, got, trickled, calls) = parse_in_pieces(&wire, &cuts);
        assert_eq!(parsed, Parsed::Request(wire.len()));
        assert!(got == args);
        // Each byte once, and once more at most per call: a CR whose LF had not come.
        assert!(trickled <= whole + calls, "{trickled} for {}", wire.len());
        // Inline requests too: the search for the line end goes on where it stopped.
        let line = format!("SET k {}\r\n", "v".repeat(50_000)).into_bytes();
        let cuts: Vec<usize> = (0..line.len()).collect();
        let (parsed, got, trickled, calls) = parse_in_pieces(&line, &cuts);
        assert_eq!(parsed, Parsed::Request(line.len()));
        assert_eq!(got.len(), 3);
        assert!(trickled <= 2 * line.len() as u64 + calls, "{trickled}");
    }

    #[test]
    fn lengths_past_the_limits_are_errors() {
        let error = |bytes: &[u8], limits: Limits| Parser::new(&limits).parse(bytes);
        let bulk = || Parsed::Error("invalid bulk length".into());
        let multibulk = || Parsed::Error("invalid multibulk length".into());
        let d = Limits::default;
        assert_eq!(error(b"*1\r\n$1099511627776\r\n", d()), bulk());
        assert_eq!(error(b"*1\r\n$536870913\r\n", d()), bulk());
        assert_eq!(error(b"*1\r\n$536870912\r\n", d()), Parsed::Incomplete);
        assert_eq!(error(b"*1\r\n$-1\r\n", d()), bulk());
        assert_eq!(error(b"*1\r\n$1234567890123456789", d()), bulk()); // 19 digits
        assert_eq!(error(b"*2147483648\r\n", d()), multibulk());
        assert_eq!(error(b"*2147483647\r\n", d()), Parsed::Incomplete);
        assert_eq!(error(b"*0\r\n", d()), Parsed::Request(4)); // empty: skipped
        let small = || Limits {
            max_bulk: 3,
            max_multibulk: 2,
            ..Limits::default()
        };
        assert_eq!(
            error(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", small()),
            Parsed::Request(20)
        );
        assert_eq!(error(b"*3\r\n", small()), multibulk());
        assert_eq!(error(b"*1\r\n$4\r\n", small()), bulk());
    }

    #[test]
    fn limits_read_from_the_command_line() {
        use super::kv::parse_bytes;
        assert_eq!(parse_bytes("512mb"), Some(512 << 20));
        assert_eq!(parse_bytes("1GB"), Some(1 << 30));
        assert_eq!(parse_bytes("1k"), Some(1000));
        assert_eq!(parse_bytes("1kb"), Some(1024));
        assert_eq!(parse_bytes("1000"), Some(1000));
        for bad in ["", "mb", "1x", "-1", "1.5mb", "99999999999999999999"] {
            assert_eq!(parse_bytes(bad), None, "{bad}");
        }
        let args = |a: &[&str]| Limits::from_args(a.iter().map(|s| s.to_string()));
        assert_eq!(args(&[]), Ok((None, Limits::default())));
        let (addr, limits) = args(&[
            "127.0.0.1:7000",
            "--proto-max-bulk-len",
            "1mb",
            "--reply-soft-limit",
            "64kb",
            "--reply-hard-limit",
            "0",
            "--client-query-buffer-limit",
            "2mb",
            "--max-multibulk-len",
            "100",
        ])
        .unwrap();
        assert_eq!(addr.as_deref(), Some("127.0.0.1:7000"));
        let want = Limits {
            max_bulk: 1 << 20,
            max_multibulk: 100,
            query_buffer: 2 << 20,
            reply_soft: 64 << 10,
            reply_hard: 0,
        };
        assert_eq!(limits, want);
        assert!(args(&["--reply-soft-limit"]).is_err());
        assert!(args(&["--reply-soft-limit", "lots"]).is_err());
        assert!(args(&["--no-such-limit", "1"]).is_err());
        assert!(args(&["a:1", "b:2"]).is_err());
    }

    /// Parses `bytes` with a new parser: what it found, and the argument ranges.
    fn parse(bytes: &[u8]) -> (Parsed, Vec<Range<usize>>) {
        let mut p = Parser::new(&Limits::default());
        let parsed = p.parse(bytes);
        (parsed, p.args().to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Any bytes at all: no panic, and a request never claims bytes it was not given.
        #[test]
        fn garbage_never_panics_or_overreads(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            if let (Parsed::Request(used), ranges) = parse(&bytes) {
                prop_assert!(used <= bytes.len());
                for r in &ranges {
                    prop_assert!(r.start <= r.end && r.end <= used);
                }
            }
        }

        /// Garbage after a '*' or '$' header, where the length parser runs.
        #[test]
        fn bad_headers_never_panic(tail in "[*$0-9\r\n-]{0,40}") {
            let _ = parse(format!("*{tail}").as_bytes());
        }

        /// An encoded request parses back to its arguments, exactly its own length; every
        /// strict prefix of it is incomplete (so a request split across reads waits for the
        /// rest); and a second request behind it is left alone.
        #[test]
        fn requests_round_trip_and_prefixes_wait(
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 1..6),
        ) {
            let wire = encode(&args);
            let mut two = wire.clone();
            two.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
            let (parsed, ranges) = parse(&two);
            prop_assert_eq!(parsed, Parsed::Request(wire.len()));
            let got: Vec<Vec<u8>> = ranges.iter().map(|r| two[r.clone()].to_vec()).collect();
            prop_assert_eq!(got, args);
            for cut in 0..wire.len() {
                prop_assert_eq!(parse(&wire[..cut]).0, Parsed::Incomplete, "prefix {}", cut);
            }
        }

        /// However a request is split into reads, one parser taking the pieces as they come
        /// finds the same arguments, looking at each byte once and at most one byte again per
        /// call; at once, it looks at each byte once.
        #[test]
        fn split_requests_parse_alike_in_linear_work(
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..40),
        ) {
            let wire = encode(&args);
            let (parsed, got, whole, _) = parse_in_pieces(&wire, &[]);
            prop_assert_eq!(parsed, Parsed::Request(wire.len()));
            prop_assert_eq!(&got, &args);
            prop_assert!(whole <= wire.len() as u64);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len())).collect();
            cuts.sort_unstable();
            let (parsed, got, split, calls) = parse_in_pieces(&wire, &cuts);
            prop_assert_eq!(parsed, Parsed::Request(wire.len()));
            prop_assert_eq!(got, args);
            prop_assert!(split <= whole + calls, "{} > {} + {}", split, whole, calls);
        }
    }
}

//! The example servers, started in-process on ephemeral ports and driven by pipelined clients.

use std::time::Duration;

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

mod kv_parser {
    use super::kv::{parse, Parsed};
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

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Any bytes at all: no panic, and a request never claims bytes it was not given.
        #[test]
        fn garbage_never_panics_or_overreads(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut ranges = Vec::new();
            if let Parsed::Request(used) = parse(&bytes, &mut ranges) {
                prop_assert!(used <= bytes.len());
                for r in &ranges {
                    prop_assert!(r.start <= r.end && r.end <= used);
                }
            }
        }

        /// Garbage after a '*' or '$' header, where the length parser runs.
        #[test]
        fn bad_headers_never_panic(tail in "[*$0-9\r\n-]{0,40}") {
            let mut ranges = Vec::new();
            let bytes = format!("*{tail}").into_bytes();
            let _ = parse(&bytes, &mut ranges);
        }

        /// An encoded request parses back to its arguments, exactly its own length; every
        /// strict prefix of it is incomplete (so a request split across reads waits for the
        /// rest); and a second request behind it is left alone.
        #[test]
        fn requests_round_trip_and_prefixes_wait(
            args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..24), 1..6),
        ) {
            let wire = encode(&args);
            let mut ranges = Vec::new();
            let mut two = wire.clone();
            two.extend_from_slice(b"*1\r\n$4\r\nPING\r\n");
            prop_assert_eq!(parse(&two, &mut ranges), Parsed::Request(wire.len()));
            let got: Vec<Vec<u8>> = ranges.iter().map(|r| two[r.clone()].to_vec()).collect();
            prop_assert_eq!(got, args);
            for cut in 0..wire.len() {
                prop_assert_eq!(parse(&wire[..cut], &mut ranges), Parsed::Incomplete, "prefix {}", cut);
            }
        }
    }
}

//! A minimal HTTP/1.1 server on monoio, thread-per-core, answering every request as
//! `examples/hello_http.rs` (hyper on solo) does: `200 OK`, `content-length: 13`, a `date`
//! header, and the body `Hello, World!`. Keep-alive and pipelining (every complete request in
//! a read is answered in one write); `connection: close` and HTTP/1.0 close after the answer;
//! a request with a body (`content-length`) has its body skipped. Not a general HTTP server:
//! chunked request bodies and malformed heads get a 400 and a close. It is the monoio point of
//! the scaling benchmark, under wrk.
//!
//!     cargo run --release --manifest-path benches/monoio/Cargo.toml --bin hello_http -- [ADDR] [--threads N]
//!     (default 127.0.0.1:8082)

use std::cell::RefCell;
use std::time::{SystemTime, UNIX_EPOCH};

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

/// The longest request head accepted (hyper's default is ~400 KiB; wrk's are ~40 bytes).
const MAX_HEAD: usize = 64 * 1024;

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) for `secs` since the epoch.
fn http_date(secs: u64) -> String {
    let days = secs / 86_400;
    let (h, m, s) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    let name = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][month as usize - 1];
    format!("{weekday}, {day:02} {name} {year} {h:02}:{m:02}:{s:02} GMT")
}

thread_local! {
    /// The response, rebuilt when the second changes (hyper caches its date the same way).
    static RESPONSE: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
}

fn push_response(out: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    RESPONSE.with(|r| {
        let mut r = r.borrow_mut();
        if r.0 != now {
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-length: 13\r\ndate: {}\r\n\r\nHello, World!",
                http_date(now)
            );
            *r = (now, head.into_bytes());
        }
        out.extend_from_slice(&r.1);
    })
}

/// What to do with one request head.
#[derive(Debug, PartialEq)]
enum Head {
    /// Answer it; skip this many body bytes; close after the answer if `close`.
    Answer { body: usize, close: bool },
    /// Answer 400 and close.
    Bad,
}

fn header_is(line: &[u8], name: &str) -> Option<String> {
    let colon = line.iter().position(|&b| b == b':')?;
    line[..colon]
        .eq_ignore_ascii_case(name.as_bytes())
        .then(|| {
            String::from_utf8_lossy(&line[colon + 1..])
                .trim()
                .to_ascii_lowercase()
        })
}

fn read_head(head: &[u8]) -> Head {
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request = lines.next().unwrap_or_default();
    let parts: Vec<&[u8]> = request.split(|&b| b == b' ').collect();
    let [_method, _target, version] = parts[..] else {
        return Head::Bad;
    };
    let mut close = match version {
        b"HTTP/1.1" => false,
        b"HTTP/1.0" => true,
        _ => return Head::Bad,
    };
    let mut body = 0;
    for line in lines.filter(|l| !l.is_empty()) {
        if let Some(v) = header_is(line, "connection") {
            close = v.contains("close") || (version == b"HTTP/1.0" && !v.contains("keep-alive"));
        } else if let Some(v) = header_is(line, "content-length") {
            match v.parse() {
                Ok(n) => body = n,
                Err(_) => return Head::Bad,
            }
        } else if header_is(line, "transfer-encoding").is_some() {
            return Head::Bad;
        }
    }
    Head::Answer { body, close }
}

/// Answers the complete requests at the front of `buf`; returns the bytes used and whether
/// to close after writing `out`.
fn answer(buf: &[u8], skip: &mut usize, out: &mut Vec<u8>) -> (usize, bool) {
    let mut at = 0;
    loop {
        let skipped = (*skip).min(buf.len() - at);
        *skip -= skipped;
        at += skipped;
        if *skip > 0 {
            return (at, false);
        }
        let rest = &buf[at..];
        let Some(end) = rest.windows(4).position(|w| w == b"\r\n\r\n") else {
            if rest.len() > MAX_HEAD {
                out.extend_from_slice(b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                return (buf.len(), true);
            }
            return (at, false);
        };
        match read_head(&rest[..end]) {
            Head::Answer { body, close } => {
                push_response(out);
                at += end + 4;
                *skip = body;
                if close {
                    return (at, true);
                }
            }
            Head::Bad => {
                out.extend_from_slice(
                    b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                return (buf.len(), true);
            }
        }
    }
}

async fn serve_conn(mut conn: monoio::net::TcpStream) {
    let mut buf: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(8 * 1024);
    let mut skip = 0; // body bytes of the last request still to come
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity());
        }
        let len = buf.len();
        let (res, slice) = conn.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (used, close) = answer(&buf, &mut skip, &mut out);
        buf.drain(..used);
        if !out.is_empty() {
            let (res, b) = conn.write_all(out).await;
            out = b;
            out.clear();
            if res.is_err() {
                return;
            }
        }
        if close {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let args = solo_bench_peers::Args::from_env_or_exit("hello_http", "127.0.0.1:8082");
    solo_bench_peers::serve("hello_http", &args, serve_conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_imf_fixdates() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_709_210_096), "Thu, 29 Feb 2024 12:34:56 GMT");
    }

    fn run(input: &[u8]) -> (String, usize, bool, usize) {
        let (mut out, mut skip) = (Vec::new(), 0);
        let (used, close) = answer(input, &mut skip, &mut out);
        (String::from_utf8(out).unwrap(), used, close, skip)
    }

    #[test]
    fn answers_pipelined_requests_and_keeps_a_partial_one() {
        let two = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\nGET / HT";
        let (out, used, close, _) = run(two);
        assert_eq!(out.matches("HTTP/1.1 200 OK\r\n").count(), 2);
        assert_eq!(out.matches("\r\n\r\nHello, World!").count(), 2);
        assert_eq!((used, close), (two.len() - 8, false));
    }

    #[test]
    fn closes_when_asked_and_skips_bodies() {
        let (out, _, close, _) = run(b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n");
        assert!(out.starts_with("HTTP/1.1 200 OK") && close);
        assert!(run(b"GET / HTTP/1.0\r\n\r\n").2);
        assert!(!run(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").2);
        let (out, used, close, skip) = run(b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n12345");
        assert_eq!(
            (out.matches("200 OK").count(), used, close, skip),
            (1, 44, false, 5)
        );
    }

    #[test]
    fn bad_heads_get_400_and_close() {
        for bad in [
            &b"GET /\r\n\r\n"[..],
            b"GET / SPDY/9\r\n\r\n",
            b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            let (out, _, close, _) = run(bad);
            assert!(out.starts_with("HTTP/1.1 400") && close, "{bad:?}");
        }
        let (out, _, close, _) = run(&vec![b'a'; MAX_HEAD + 1]);
        assert!(out.starts_with("HTTP/1.1 431") && close);
    }
}

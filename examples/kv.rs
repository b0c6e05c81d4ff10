//! An in-memory key-value server that speaks the Redis protocol (RESP2), on one solo loop.
//!
//!     cargo run --release --example kv [ADDR]        (default 127.0.0.1:6380)
//!     redis-cli -p 6380 set greeting hello
//!     redis-benchmark -p 6380 -t set,get,ping -n 200000 -c 50 -P 16
//!
//! Its loop polls for up to 100 µs before it sleeps (`Builder::spin_before_sleep`): a server that
//! answers a batch before the next one arrives would otherwise sleep between batches, and its
//! clients would pay for waking it every time. Under steady load that uses the whole CPU; a spin
//! that finds nothing turns spinning off until requests come close together again, so an idle
//! or lightly used server costs next to nothing. `SOLO_SPIN_US` overrides it (`SOLO_SPIN_US=0`:
//! sleep at once).
//! `bash benches/kv_vs_redis.sh` compares both settings with redis-server.
//!
//! Commands: PING, ECHO, SET (with EX/PX), GET, DEL, EXISTS, INCR, MGET, MSET, plus DBSIZE,
//! FLUSHALL/FLUSHDB, SELECT 0, QUIT, CONFIG GET for the settings clients ask about on connect
//! (`save`, `appendonly`, `databases`), and an empty answer to the COMMAND request
//! that redis-cli and redis-benchmark send when they connect. Requests may be pipelined; each
//! batch of complete requests is answered with one write. A malformed request gets a RESP
//! protocol error and the connection is closed, as Redis does; other clients are unaffected.
//!
//! `serve` is also started in-process by `tests/examples.rs`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Range;
use std::rc::Rc;
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use solo::net::TcpListener;
use solo::Handle;

/// Largest bulk string accepted (Redis's default proto-max-bulk-len).
const MAX_BULK: usize = 512 * 1024 * 1024;
/// Largest number of arguments in one request.
const MAX_ARGS: usize = 1024 * 1024;
/// Largest inline request or header line without a line end.
const MAX_LINE: usize = 64 * 1024;

struct Value {
    data: Vec<u8>,
    expires: Option<Instant>,
}

/// FNV-1a: keys are short and chosen by clients we serve, not attackers we fear, so a fast
/// hash beats SipHash here (Redis itself uses SipHash; swap back if that matters to you).
#[derive(Default, Clone, Copy)]
struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<Fnv>>;

/// The key space, shared by every connection of one server.
#[derive(Default)]
#[allow(missing_debug_implementations)] // holds user data; printing it is not useful
pub struct Store {
    map: FastMap<Vec<u8>, Value>,
    with_ttl: usize,
}

impl Store {
    fn get(&mut self, key: &[u8], now: impl Fn() -> Instant) -> Option<&Value> {
        let expired = match self.map.get(key) {
            Some(v) if v.expires.is_some_and(|t| t <= now()) => true,
            Some(_) => false,
            None => return None,
        };
        if expired {
            self.remove(key);
            return None;
        }
        self.map.get(key)
    }

    fn set(&mut self, key: &[u8], data: &[u8], expires: Option<Instant>) {
        self.with_ttl += expires.is_some() as usize;
        if let Some(v) = self.map.get_mut(key) {
            // Reuse the key and the value's buffer: no allocation for an overwrite.
            self.with_ttl -= v.expires.is_some() as usize;
            v.data.clear();
            v.data.extend_from_slice(data);
            v.expires = expires;
            return;
        }
        let value = Value {
            data: data.to_vec(),
            expires,
        };
        self.map.insert(key.to_vec(), value);
    }

    fn remove(&mut self, key: &[u8]) -> bool {
        match self.map.remove(key) {
            Some(v) => {
                self.with_ttl -= v.expires.is_some() as usize;
                true
            }
            None => false,
        }
    }

    /// Drops expired keys (reads also drop them lazily).
    fn sweep(&mut self, now: Instant) {
        if self.with_ttl > 0 {
            self.map.retain(|_, v| v.expires.is_none_or(|t| t > now));
            self.with_ttl = self.map.values().filter(|v| v.expires.is_some()).count();
        }
    }
}

/// Accepts connections forever, one task each, sharing one store.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let store = Rc::new(RefCell::new(Store::default()));
    let s = store.clone();
    let sweeper = Handle::current().spawn(async move {
        let mut tick = solo::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            s.borrow_mut().sweep(Handle::current().time());
        }
    });
    let result = loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                let _ = conn.set_nodelay(true);
                drop(Handle::current().spawn(client(conn, store.clone())));
            }
            Err(e) => break Err(e),
        }
    };
    sweeper.cancel();
    result
}

/// Outcome of parsing the start of a buffer (public for the property tests in
/// `tests/examples.rs`).
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A complete request, this many bytes long (its arguments are in the ranges).
    Request(usize),
    /// More bytes are needed.
    Incomplete,
    /// Not RESP: answer with this error and close.
    Error(String),
}

/// What [`line_int`] found.
enum Line {
    /// The integer and the index just past its CRLF.
    Int(i64, usize),
    Incomplete,
    Invalid,
}

/// Reads a RESP length line at `buf[pos..]`: an optional '-', 1 to 18 digits, CRLF. One pass, no
/// UTF-8 check, no `str::parse`: this runs for every argument of every request.
fn line_int(buf: &[u8], mut pos: usize) -> Line {
    let negative = buf.get(pos) == Some(&b'-');
    pos += usize::from(negative);
    let digits = pos;
    let mut n: i64 = 0;
    loop {
        match buf.get(pos) {
            None => return Line::Incomplete,
            Some(&c) if c.is_ascii_digit() && pos - digits < 18 => {
                n = n * 10 + i64::from(c - b'0');
                pos += 1;
            }
            Some(&b'\r') if pos > digits => {
                return match buf.get(pos + 1) {
                    None => Line::Incomplete,
                    Some(&b'\n') => Line::Int(if negative { -n } else { n }, pos + 2),
                    Some(_) => Line::Invalid,
                };
            }
            Some(_) => return Line::Invalid,
        }
    }
}

/// Parses one request at the start of `buf`, putting argument ranges in `args`.
pub fn parse(buf: &[u8], args: &mut Vec<Range<usize>>) -> Parsed {
    args.clear();
    if buf.is_empty() {
        return Parsed::Incomplete;
    }
    if buf[0] != b'*' {
        // Inline command: space-separated words up to a newline.
        let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
            return if buf.len() > MAX_LINE {
                Parsed::Error("too big inline request".into())
            } else {
                Parsed::Incomplete
            };
        };
        let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
            nl - 1
        } else {
            nl
        };
        let mut i = 0;
        while i < line_end {
            if buf[i].is_ascii_whitespace() {
                i += 1;
                continue;
            }
            let start = i;
            while i < line_end && !buf[i].is_ascii_whitespace() {
                i += 1;
            }
            args.push(start..i);
        }
        return Parsed::Request(nl + 1);
    }
    let (n, mut pos) = match line_int(buf, 1) {
        Line::Int(n, next) if n <= MAX_ARGS as i64 => (n, next),
        Line::Incomplete => return Parsed::Incomplete,
        _ => return Parsed::Error("invalid multibulk length".into()),
    };
    for _ in 0..n.max(0) {
        if pos >= buf.len() {
            return Parsed::Incomplete;
        }
        if buf[pos] != b'$' {
            return Parsed::Error(format!("expected '$', got '{}'", buf[pos].escape_ascii()));
        }
        let (len, start) = match line_int(buf, pos + 1) {
            Line::Int(l, next) if (0..=MAX_BULK as i64).contains(&l) => (l as usize, next),
            Line::Incomplete => return Parsed::Incomplete,
            _ => return Parsed::Error("invalid bulk length".into()),
        };
        let end = start + len;
        if buf.len() < end + 2 {
            return Parsed::Incomplete;
        }
        if &buf[end..end + 2] != b"\r\n" {
            return Parsed::Error("bulk string not terminated by CRLF".into());
        }
        args.push(start..end);
        pos = end + 2;
    }
    Parsed::Request(pos)
}

fn push_int(out: &mut Vec<u8>, prefix: u8, n: i64) {
    out.push(prefix);
    // Digits into a stack buffer, back to front: no allocation per reply.
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n.unsigned_abs();
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[i..]);
    out.extend_from_slice(b"\r\n");
}

fn push_bulk(out: &mut Vec<u8>, data: Option<&[u8]>) {
    match data {
        Some(d) => {
            push_int(out, b'$', d.len() as i64);
            out.extend_from_slice(d);
            out.extend_from_slice(b"\r\n");
        }
        None => out.extend_from_slice(b"$-1\r\n"),
    }
}

fn push_err(out: &mut Vec<u8>, msg: &str) {
    out.extend_from_slice(b"-");
    out.extend_from_slice(msg.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn wrong_args(out: &mut Vec<u8>, cmd: &[u8]) {
    push_err(
        out,
        &format!(
            "ERR wrong number of arguments for '{}' command",
            String::from_utf8_lossy(cmd).to_lowercase()
        ),
    );
}

/// What to do with the connection after a command.
#[derive(PartialEq)]
enum After {
    Continue,
    Close,
}

/// The loop's time (the real clock when run on another runtime, as `kv_tokio` does).
fn now() -> Instant {
    Handle::try_current().map_or_else(Instant::now, |h| h.time())
}

/// CONFIG GET: the settings that clients ask about when they connect (redis-benchmark asks for
/// `save` and `appendonly`, and warns if it gets no answer), as name/value pairs. This server
/// keeps nothing on disk and has one database; unknown names are left out, as Redis does.
fn config_get(params: &[&[u8]], out: &mut Vec<u8>) {
    const SETTINGS: [(&str, &str); 3] = [("save", ""), ("appendonly", "no"), ("databases", "1")];
    let found: Vec<_> = SETTINGS
        .iter()
        .filter(|(name, _)| {
            params
                .iter()
                .any(|p| p.eq_ignore_ascii_case(name.as_bytes()))
        })
        .collect();
    push_int(out, b'*', 2 * found.len() as i64);
    for (name, value) in found {
        push_bulk(out, Some(name.as_bytes()));
        push_bulk(out, Some(value.as_bytes()));
    }
}

/// Executes one request; appends the reply to `out`.
fn execute(store: &mut Store, args: &[&[u8]], out: &mut Vec<u8>) -> After {
    let Some((&cmd, rest)) = args.split_first() else {
        return After::Continue; // an empty line: Redis ignores it
    };
    let is = |name: &str| cmd.eq_ignore_ascii_case(name.as_bytes());
    if is("GET") {
        match rest {
            [key] => push_bulk(out, store.get(key, now).map(|v| &v.data[..])),
            _ => wrong_args(out, cmd),
        }
    } else if is("SET") {
        let [key, value, opts @ ..] = rest else {
            wrong_args(out, cmd);
            return After::Continue;
        };
        let expires = match opts {
            [] => None,
            [unit, n] if unit.eq_ignore_ascii_case(b"EX") || unit.eq_ignore_ascii_case(b"PX") => {
                match std::str::from_utf8(n)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                {
                    Some(n) if n > 0 => {
                        let d = if unit.eq_ignore_ascii_case(b"EX") {
                            Duration::from_secs(n)
                        } else {
                            Duration::from_millis(n)
                        };
                        Some(now() + d)
                    }
                    _ => {
                        push_err(out, "ERR invalid expire time in 'set' command");
                        return After::Continue;
                    }
                }
            }
            _ => {
                push_err(out, "ERR syntax error");
                return After::Continue;
            }
        };
        store.set(key, value, expires);
        out.extend_from_slice(b"+OK\r\n");
    } else if is("PING") {
        match rest {
            [] => out.extend_from_slice(b"+PONG\r\n"),
            [msg] => push_bulk(out, Some(msg)),
            _ => wrong_args(out, cmd),
        }
    } else if is("ECHO") {
        match rest {
            [msg] => push_bulk(out, Some(msg)),
            _ => wrong_args(out, cmd),
        }
    } else if is("DEL") || is("EXISTS") {
        if rest.is_empty() {
            wrong_args(out, cmd);
        } else {
            let del = is("DEL");
            let mut n = 0;
            for key in rest {
                n += if del {
                    store.get(key, now).is_some() && store.remove(key)
                } else {
                    store.get(key, now).is_some()
                } as i64;
            }
            push_int(out, b':', n);
        }
    } else if is("INCR") {
        let [key] = rest else {
            wrong_args(out, cmd);
            return After::Continue;
        };
        let (current, expires) = match store.get(key, now) {
            Some(v) => (
                std::str::from_utf8(&v.data)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok()),
                v.expires,
            ),
            None => (Some(0), None),
        };
        match current.and_then(|c| c.checked_add(1)) {
            Some(n) => {
                store.set(key, n.to_string().as_bytes(), expires);
                push_int(out, b':', n);
            }
            None => push_err(out, "ERR value is not an integer or out of range"),
        }
    } else if is("MGET") {
        if rest.is_empty() {
            wrong_args(out, cmd);
        } else {
            push_int(out, b'*', rest.len() as i64);
            for key in rest {
                push_bulk(out, store.get(key, now).map(|v| &v.data[..]));
            }
        }
    } else if is("MSET") {
        if rest.is_empty() || rest.len() % 2 != 0 {
            wrong_args(out, cmd);
        } else {
            for kv in rest.chunks(2) {
                store.set(kv[0], kv[1], None);
            }
            out.extend_from_slice(b"+OK\r\n");
        }
    } else if is("DBSIZE") {
        push_int(out, b':', store.map.len() as i64);
    } else if is("FLUSHALL") || is("FLUSHDB") {
        *store = Store::default();
        out.extend_from_slice(b"+OK\r\n");
    } else if is("SELECT") {
        match rest {
            [db] if &db[..] == b"0" => out.extend_from_slice(b"+OK\r\n"),
            [_] => push_err(out, "ERR DB index is out of range"),
            _ => wrong_args(out, cmd),
        }
    } else if is("CONFIG") {
        match rest {
            [sub, params @ ..] if sub.eq_ignore_ascii_case(b"GET") && !params.is_empty() => {
                config_get(params, out)
            }
            _ => push_err(out, "ERR only CONFIG GET is supported"),
        }
    } else if is("COMMAND") {
        out.extend_from_slice(b"*0\r\n");
    } else if is("QUIT") {
        out.extend_from_slice(b"+OK\r\n");
        return After::Close;
    } else {
        let mut msg = format!(
            "ERR unknown command '{}', with args beginning with:",
            String::from_utf8_lossy(cmd)
        );
        for a in rest.iter().take(8) {
            msg.push_str(&format!(" '{}'", String::from_utf8_lossy(a)));
        }
        push_err(out, &msg);
    }
    After::Continue
}

/// Serves one connection: any futures-io stream (`kv_tokio` passes tokio's, through `compat`).
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(mut conn: S, store: Rc<RefCell<Store>>) {
    // Bytes buf[start..end] are received but not yet parsed.
    let mut buf = vec![0u8; 16 * 1024];
    let (mut start, mut end) = (0, 0);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut ranges: Vec<Range<usize>> = Vec::new();
    loop {
        // Make room: move a partial request to the front, or grow for a big one.
        if end == buf.len() {
            if start > 0 {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            } else {
                buf.resize(buf.len() * 2, 0);
            }
        }
        let n = match conn.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return, // closed, possibly in the middle of a request
            Ok(n) => n,
        };
        end += n;

        // Answer every complete request in the buffer.
        let mut after = After::Continue;
        {
            let mut store = store.borrow_mut();
            let mut args: Vec<&[u8]> = Vec::with_capacity(8);
            while after == After::Continue {
                let pending = &buf[start..end];
                match parse(pending, &mut ranges) {
                    Parsed::Request(used) => {
                        args.clear();
                        args.extend(ranges.iter().map(|r| &pending[r.clone()]));
                        after = execute(&mut store, &args, &mut out);
                        start += used;
                    }
                    Parsed::Incomplete => break,
                    Parsed::Error(msg) => {
                        push_err(&mut out, &format!("ERR Protocol error: {msg}"));
                        after = After::Close;
                    }
                }
            }
        }
        if start == end {
            (start, end) = (0, 0);
        }
        if !out.is_empty() {
            if conn.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if after == After::Close {
            return;
        }
    }
}

#[allow(dead_code)] // the tests include this file for `serve` only
fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:6380".into());
    let mut builder = solo::EventLoop::builder();
    if std::env::var_os("SOLO_SPIN_US").is_none() {
        builder = builder.spin_before_sleep(Duration::from_micros(100));
    }
    let el = builder.build()?;
    let served = el
        .run_until_complete(async move {
            let listener = TcpListener::bind(&addr)?;
            println!("kv (RESP2) on {}", listener.local_addr()?);
            serve(listener).await
        })
        .map_err(std::io::Error::other)?;
    el.shutdown(Duration::ZERO);
    served
}

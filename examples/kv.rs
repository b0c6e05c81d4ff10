//! An in-memory key-value server that speaks the Redis protocol (RESP2), on one solo loop.
//!
//!     cargo run --release --example kv [ADDR] [--LIMIT VALUE]...   (default 127.0.0.1:6380)
//!     redis-cli -p 6380 set greeting hello
//!     redis-benchmark -p 6380 -t set,get,ping -n 200000 -c 50 -P 16
//!
//! Its loop naps 20 µs before it sleeps (`Builder::nap_before_sleep`): a server that answers a
//! batch before the next one arrives would otherwise sleep on its poller between batches, and
//! its clients would pay for waking it every time. While it naps, nobody waits on its poller,
//! so the clients' writes wake nobody, and each wake-up takes the batches of a whole nap. A nap
//! that finds nothing turns napping off until requests come close together again, so an idle or
//! lightly used server sleeps as any loop does. `SOLO_NAP_US` and `SOLO_SPIN_US` override it
//! (`SOLO_NAP_US=0`: sleep at once; `SOLO_SPIN_US=100`: spin 100 µs instead). `bash
//! benches/kv_vs_redis.sh` compares these settings with redis-server. The sharded mode (below)
//! neither naps nor spins unless one of the two variables says so.
//!
//! Commands: PING, ECHO, SET (with EX/PX), GET, DEL, EXISTS, INCR, MGET, MSET, plus DBSIZE,
//! FLUSHALL/FLUSHDB, SELECT 0, QUIT, CONFIG GET for the settings clients ask about on connect
//! (`save`, `appendonly`, `databases`) and for the limits below, and an empty answer to the
//! COMMAND request that redis-cli and redis-benchmark send when they connect. Requests may be
//! pipelined; each batch of complete requests is answered with one write (a batch ends at the
//! reply soft limit below). A malformed request
//! gets a RESP protocol error and the connection is closed, as Redis does; other clients are
//! unaffected.
//!
//! # Limits
//!
//! What one client can make the server hold is bounded, on both sides of the connection. Each
//! limit is a flag, `--NAME VALUE`, with a byte count written as Redis writes them (`1000`,
//! `1k` = 1000, `1kb` = 1024, `mb`, `gb`):
//!
//! | flag | default | what happens at it |
//! |---|---|---|
//! | `--proto-max-bulk-len` | 512mb, Redis's | a longer (or negative) bulk length: `-ERR Protocol error: invalid bulk length`, then close |
//! | `--max-multibulk-len` | 2147483647, Redis's | more arguments: `-ERR Protocol error: invalid multibulk length`, then close |
//! | `--client-query-buffer-limit` | 1gb, Redis's | a request that is still incomplete at this size: the connection is closed, without a reply (as Redis does) |
//! | `--reply-soft-limit` | 1mb | while more than this is unsent, the client is not read and no more of its requests are answered |
//! | `--reply-hard-limit` | 1gb; `0`: none | a reply that takes the unsent bytes past it closes the connection, and its unsent replies are dropped |
//!
//! The soft limit is backpressure: a client that pipelines requests and never reads their
//! replies stops being read once the kernel's socket buffers and this much of the server's
//! memory hold its replies; it is served again as soon as it reads. Redis has no such limit
//! (its `client-output-buffer-limit` for normal clients is `0 0 0`, none, and it goes on
//! reading and answering); the hard limit is the one of Redis's output buffer limits that has a
//! meaning here, for a single reply larger than it (MGET of many large values). Since answering
//! stops at the soft limit, a connection holds at most the soft limit plus one reply of unsent
//! replies, and at most the query buffer limit of an incomplete request (and, for that
//! request's argument table, 16 bytes per argument received).
//!
//! Requests are parsed incrementally: a request that arrives in pieces is taken up where the
//! last piece ended, so each byte is looked at once, and at most one byte again per read (a CR
//! whose LF has not come), however the request is split. The read buffer of a partly received
//! bulk string grows (doubling) only up to the request's size, as its bytes arrive.
//!
//! # Shards
//!
//! `--shards N [--share reuseport|acceptor] [--pin]` runs N loops, one per thread
//! (`solo::shards`), that share the port and partition the key space by key hash: a request
//! for another shard's key is executed there and its reply comes back in its place, so
//! pipelined replies keep their order (see "sharding" at the end of this file). The requests
//! of all connections for one other shard that a loop iteration answers travel there in one
//! message. SIGUSR1 and the exit print the connections per shard; the exit also prints each
//! shard's requests and what it forwarded. Shards neither nap nor spin before sleeping unless
//! `SOLO_NAP_US` or `SOLO_SPIN_US` says so (see `main_sharded`).
//!
//! `serve` is also started in-process by `tests/examples.rs`, and `serve_with` with other
//! limits; [`Stats`] counts what the tests check. `serve_shard` is started by
//! `tests/shards.rs`.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::future::poll_fn;
use std::ops::Range;
use std::pin::Pin;
use std::rc::Rc;
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::{AsyncRead, AsyncWrite, AsyncWriteExt};
use solo::net::TcpListener;
use solo::Handle;

/// Largest inline request (a line typed into telnet) without a line end: Redis's
/// PROTO_INLINE_MAX_SIZE.
const MAX_INLINE: usize = 64 * 1024;
/// A connection's read buffer to start with, and its reply buffer's first capacity.
const BUF_START: usize = 16 * 1024;
/// A buffer that grew past this for a large request or reply goes back to [`BUF_START`] once
/// it is empty, so that an idle connection does not keep what its largest request needed.
const BUF_KEEP: usize = 256 * 1024;

/// What one client may make the server hold (see the module's documentation).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Longest bulk string (argument) in a request: Redis's `proto-max-bulk-len`.
    pub max_bulk: usize,
    /// Most arguments in one request (Redis's is `INT_MAX`, not configurable there).
    pub max_multibulk: usize,
    /// Largest incomplete request: Redis's `client-query-buffer-limit`.
    pub query_buffer: usize,
    /// Unsent reply bytes past which the client is neither read nor answered.
    pub reply_soft: usize,
    /// Unsent reply bytes past which the client is disconnected; 0: no limit.
    pub reply_hard: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_bulk: 512 << 20,
            max_multibulk: i32::MAX as usize,
            query_buffer: 1 << 30,
            reply_soft: 1 << 20,
            reply_hard: 1 << 30,
        }
    }
}

impl Limits {
    /// Reads `[ADDR] [--NAME VALUE]...` (the example's command line, without the program's
    /// name): the address, if given, and the limits, defaults where not given.
    pub fn from_args(
        args: impl IntoIterator<Item = String>,
    ) -> Result<(Option<String>, Limits), String> {
        let mut limits = Limits::default();
        let mut addr = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let Some(name) = arg.strip_prefix("--") else {
                if addr.replace(arg.clone()).is_some() {
                    return Err(format!("unexpected argument '{arg}'"));
                }
                continue;
            };
            let field = match name {
                "proto-max-bulk-len" => &mut limits.max_bulk,
                "max-multibulk-len" => &mut limits.max_multibulk,
                "client-query-buffer-limit" => &mut limits.query_buffer,
                "reply-soft-limit" => &mut limits.reply_soft,
                "reply-hard-limit" => &mut limits.reply_hard,
                _ => return Err(format!("unknown option '{arg}'")),
            };
            let value = args.next().ok_or(format!("'{arg}' needs a value"))?;
            *field = parse_bytes(&value).ok_or(format!("'{arg} {value}': not a byte count"))?;
        }
        Ok((addr, limits))
    }
}

/// A byte count as Redis's configuration writes it: digits, then nothing or `b` (bytes), `k`,
/// `m`, `g` (powers of 1000) or `kb`, `mb`, `gb` (powers of 1024), in any case.
pub fn parse_bytes(s: &str) -> Option<usize> {
    let lower = s.to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit: usize = match &lower[digits.len()..] {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1 << 10,
        "m" => 1000 * 1000,
        "mb" => 1 << 20,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1 << 30,
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<usize>().ok()?.checked_mul(unit)
}

/// What a server did, for the tests (which run it in their own loop, so plain cells do).
#[derive(Debug, Default)]
pub struct Stats {
    /// Bytes the request parsers looked at, all connections together (a byte looked at twice
    /// counts twice; the data of a bulk string is not looked at, only its length and CRLF).
    pub parsed: Cell<u64>,
    /// Bytes read from clients.
    pub read: Cell<u64>,
    /// Requests answered.
    pub requests: Cell<u64>,
    /// The most unsent reply bytes one connection held.
    pub peak_unsent: Cell<usize>,
    /// The largest read buffer of one connection.
    pub peak_buffer: Cell<usize>,
    /// Connections waiting now with reading stopped: their unsent replies exceed the soft
    /// limit and the socket takes no more.
    pub stalled: Cell<usize>,
    /// Connections closed at the reply hard limit.
    pub over_reply_limit: Cell<u64>,
    /// Connections closed at the query buffer limit.
    pub over_query_limit: Cell<u64>,
    /// `--shards`: messages sent to other shards (at most one per shard and loop iteration).
    pub forwarded: Cell<u64>,
    /// `--shards`: requests (or parts of one) those messages carried.
    pub forwarded_requests: Cell<u64>,
}

impl Stats {
    fn add(cell: &Cell<u64>, n: u64) {
        cell.set(cell.get() + n);
    }

    fn peak(cell: &Cell<usize>, n: usize) {
        cell.set(cell.get().max(n));
    }
}

/// One server: its key space, its limits, and what it counts.
#[allow(missing_debug_implementations)] // holds user data; printing it is not useful
pub struct Server {
    store: RefCell<Store>,
    limits: Limits,
    stats: Stats,
}

impl Server {
    /// An empty server with these limits.
    pub fn new(limits: Limits) -> Server {
        Server {
            store: RefCell::default(),
            limits,
            stats: Stats::default(),
        }
    }

    /// What it has done so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }
}

struct Value {
    data: Vec<u8>,
    expires: Option<Instant>,
}

/// The key space's hash: keys are chosen by clients we serve, not attackers we fear, so a fast
/// hash beats SipHash here (Redis itself uses SipHash; swap back if that matters to you). It
/// takes a key 8 bytes at a time (FNV-1a, used before, took it a byte at a time, and the length
/// that `Hash for [u8]` writes first as 8 more bytes: 24 dependent multiplies for a 16-byte
/// key), each word mixed in with a folded multiply (the 128-bit product's halves xored, as
/// foldhash and ahash do), so every input bit reaches both the low bits that pick a bucket and
/// the top bits that hashbrown keeps as a tag.
#[derive(Default, Clone, Copy)]
struct WordHash(u64);

impl WordHash {
    fn mix(h: u64, word: u64) -> u64 {
        const K: u64 = 0x9e37_79b9_7f4a_7c15; // 2^64 / the golden ratio, odd
        let p = u128::from(h ^ word) * u128::from(K);
        (p as u64) ^ ((p >> 64) as u64)
    }
}

impl std::hash::Hasher for WordHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = self.0;
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            h = WordHash::mix(h, u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut last = [0u8; 8];
            last[..rest.len()].copy_from_slice(rest);
            h = WordHash::mix(h, u64::from_le_bytes(last));
        }
        self.0 = h;
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = WordHash::mix(self.0, n as u64);
    }
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<WordHash>>;

/// The key space, shared by every connection of one server.
#[derive(Default)]
#[allow(missing_debug_implementations)] // holds user data; printing it is not useful
pub struct Store {
    map: FastMap<Vec<u8>, Value>,
    with_ttl: usize,
}

impl Store {
    fn get(&mut self, key: &[u8], now: impl Fn() -> Instant) -> Option<&Value> {
        if self.with_ttl == 0 {
            return self.map.get(key); // nothing can have expired: one lookup
        }
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

/// Accepts connections forever, one task each, sharing one store, with the default limits.
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    serve_with(listener, Rc::new(Server::new(Limits::default()))).await
}

/// Accepts connections forever for `server`, one task each.
pub async fn serve_with(listener: TcpListener, server: Rc<Server>) -> std::io::Result<()> {
    let s = server.clone();
    let sweeper = Handle::current().spawn(async move {
        let mut tick = solo::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            s.store.borrow_mut().sweep(Handle::current().time());
        }
    });
    // `incoming` rides out accept errors: out of fds it backs off and retries instead of ending
    // the server; only the listener's own failure ends the loop.
    let mut incoming = listener.incoming();
    let result = loop {
        match incoming.next().await {
            Ok((conn, _)) => {
                let _ = conn.set_nodelay(true);
                drop(Handle::current().spawn(client(conn, server.clone())));
            }
            Err(e) => break Err(e),
        }
    };
    sweeper.cancel();
    result
}

/// Outcome of [`Parser::parse`] (public for the tests in `tests/examples.rs`).
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A complete request, this many bytes long (its arguments are [`Parser::args`]).
    Request(usize),
    /// More bytes are needed.
    Incomplete,
    /// Not RESP, or past a limit: answer with this error and close.
    Error(String),
}

/// What [`line_int`] found.
enum Line {
    /// The integer and the index just past its CRLF.
    Int(i64, usize),
    Incomplete,
    Invalid,
}

/// A length line read so far: its sign, its value, and how many of its bytes (after the `*` or
/// `$`) were taken. A CR waiting for its LF is not taken: it is looked at again.
#[derive(Debug, Clone, Copy, Default)]
struct Num {
    n: i64,
    negative: bool,
    taken: usize,
}

/// Reads a RESP length line whose digits start at `buf[at]`: an optional '-', 1 to 18 digits,
/// CRLF, going on from what `num` took before. One pass, no UTF-8 check, no `str::parse`: this
/// runs for every argument of every request. Adds the bytes it looked at to `scanned`.
#[inline]
fn line_int(buf: &[u8], at: usize, num: &mut Num, scanned: &mut usize) -> Line {
    let from = at + num.taken;
    let mut pos = from;
    if num.taken == 0 && buf.get(pos) == Some(&b'-') {
        num.negative = true;
        pos += 1;
    }
    let digits = at + usize::from(num.negative);
    loop {
        match buf.get(pos) {
            None => {
                num.taken = pos - at;
                *scanned += pos - from;
                return Line::Incomplete;
            }
            Some(&c) if c.is_ascii_digit() && pos - digits < 18 => {
                num.n = num.n * 10 + i64::from(c - b'0');
                pos += 1;
            }
            Some(&b'\r') if pos > digits => {
                return match buf.get(pos + 1) {
                    None => {
                        num.taken = pos - at;
                        *scanned += pos + 1 - from;
                        Line::Incomplete
                    }
                    Some(&b'\n') => {
                        *scanned += pos + 2 - from;
                        Line::Int(if num.negative { -num.n } else { num.n }, pos + 2)
                    }
                    Some(_) => Line::Invalid,
                };
            }
            Some(_) => return Line::Invalid,
        }
    }
}

/// Where the parser stands in the request it is reading; positions count from the request's
/// first byte, so the bytes may move (the connection compacts its buffer) between calls.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Nothing of the request looked at yet.
    Start,
    /// An inline request whose first `checked` bytes hold no line end.
    Inline { checked: usize },
    /// The argument count of a multibulk request, after its `*`.
    Count(Num),
    /// `left` arguments to go, the next one's `$` due at `pos`.
    Arg { left: usize, pos: usize },
    /// An argument's length, after its `$` at `pos - 1`.
    Len { left: usize, pos: usize, num: Num },
    /// An argument's `len` bytes at `start`, then CRLF.
    Data {
        left: usize,
        start: usize,
        len: usize,
    },
}

/// Reads RESP requests incrementally: called again with more bytes of the same request, it
/// goes on where it stopped, so a request costs the same however it is split into reads.
#[derive(Debug)]
pub struct Parser {
    state: State,
    args: Vec<Range<usize>>,
    max_bulk: usize,
    max_multibulk: usize,
    /// Bytes looked at since the last [`take_scanned`](Parser::take_scanned).
    scanned: u64,
}

impl Parser {
    /// A parser that enforces the bulk length and argument count limits of `limits`.
    pub fn new(limits: &Limits) -> Parser {
        Parser {
            state: State::Start,
            args: Vec::new(),
            max_bulk: limits.max_bulk,
            max_multibulk: limits.max_multibulk,
            scanned: 0,
        }
    }

    /// The argument ranges of the request [`parse`](Parser::parse) just returned, in its bytes.
    pub fn args(&self) -> &[Range<usize>] {
        &self.args
    }

    /// Bytes looked at since the last call, and starts counting again.
    pub fn take_scanned(&mut self) -> u64 {
        std::mem::take(&mut self.scanned)
    }

    /// How long the request being read is at least, when the parser knows (it waits for a bulk
    /// string's data); 0 when it does not.
    pub fn wants(&self) -> usize {
        match self.state {
            State::Data { start, len, .. } => start.saturating_add(len).saturating_add(2),
            _ => 0,
        }
    }

    /// Parses the request at the start of `buf`. After `Incomplete`, call again with the same
    /// bytes and more behind them; after `Request(n)`, with what follows those `n` bytes.
    pub fn parse(&mut self, buf: &[u8]) -> Parsed {
        if matches!(self.state, State::Start) && buf.first() == Some(&b'*') {
            return self.parse_fresh(buf);
        }
        // Locals while parsing, written back once: this runs for every request.
        let mut state = self.state;
        let mut scanned = 0;
        let parsed = loop {
            match state {
                State::Start => {
                    let Some(&first) = buf.first() else {
                        break Parsed::Incomplete;
                    };
                    self.args.clear();
                    if first == b'*' {
                        scanned += 1;
                        state = State::Count(Num::default());
                    } else {
                        state = State::Inline { checked: 0 };
                    }
                }
                State::Inline { checked } => {
                    // Space-separated words up to a newline.
                    let Some(found) = buf[checked..].iter().position(|&b| b == b'\n') else {
                        scanned += buf.len() - checked;
                        if buf.len() > MAX_INLINE {
                            break Parsed::Error("too big inline request".into());
                        }
                        state = State::Inline { checked: buf.len() };
                        break Parsed::Incomplete;
                    };
                    let nl = checked + found;
                    let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
                        nl - 1
                    } else {
                        nl
                    };
                    scanned += found + 1 + line_end; // the search, then the words
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
                        self.args.push(start..i);
                    }
                    state = State::Start;
                    break Parsed::Request(nl + 1);
                }
                State::Count(mut num) => match line_int(buf, 1, &mut num, &mut scanned) {
                    // An empty or null array: an empty request, which Redis skips.
                    Line::Int(n, next) if n <= 0 => {
                        state = State::Start;
                        break Parsed::Request(next);
                    }
                    Line::Int(n, next) if n as u64 <= self.max_multibulk as u64 => {
                        // No room reserved for `n` arguments: they grow as they arrive.
                        state = State::Arg {
                            left: n as usize,
                            pos: next,
                        };
                    }
                    Line::Incomplete => {
                        state = State::Count(num);
                        break Parsed::Incomplete;
                    }
                    _ => break bad_multibulk_length(),
                },
                State::Arg { left, pos } => match buf.get(pos) {
                    None => break Parsed::Incomplete,
                    Some(&b'$') => {
                        scanned += 1;
                        state = State::Len {
                            left,
                            pos: pos + 1,
                            num: Num::default(),
                        };
                    }
                    Some(&c) => break expected_dollar(c),
                },
                State::Len { left, pos, mut num } => {
                    match line_int(buf, pos, &mut num, &mut scanned) {
                        Line::Int(len, start) if len >= 0 && len as u64 <= self.max_bulk as u64 => {
                            state = State::Data {
                                left,
                                start,
                                len: len as usize,
                            };
                        }
                        Line::Incomplete => {
                            state = State::Len { left, pos, num };
                            break Parsed::Incomplete;
                        }
                        _ => break bad_bulk_length(),
                    }
                }
                State::Data { left, start, len } => {
                    // `start` is at most `buf.len()`: line_int found it there.
                    if buf.len() - start < len.saturating_add(2) {
                        break Parsed::Incomplete;
                    }
                    let end = start + len;
                    scanned += 2;
                    if &buf[end..end + 2] != b"\r\n" {
                        break bulk_not_terminated();
                    }
                    self.args.push(start..end);
                    if left == 1 {
                        state = State::Start;
                        break Parsed::Request(end + 2);
                    }
                    state = State::Arg {
                        left: left - 1,
                        pos: end + 2,
                    };
                }
            }
        };
        self.state = match parsed {
            Parsed::Error(_) => State::Start,
            _ => state,
        };
        self.scanned += scanned as u64;
        parsed
    }

    /// The common case, a multibulk request from its first byte, as straight-line code: the
    /// steps of the state machine in [`parse`](Parser::parse), with the position in locals
    /// instead of a `State` matched at every step (that match was most of the parser's
    /// instructions). If the bytes run out, the parser is left in the state the machine would
    /// have reached, so the next call goes on from there and no byte is looked at twice.
    fn parse_fresh(&mut self, buf: &[u8]) -> Parsed {
        self.args.clear();
        let mut scanned = 1; // the '*'
        let mut num = Num::default();
        let (parsed, state) = 'done: {
            let (mut left, mut pos) = match line_int(buf, 1, &mut num, &mut scanned) {
                // An empty or null array: an empty request, which Redis skips.
                Line::Int(n, next) if n <= 0 => break 'done (Parsed::Request(next), State::Start),
                Line::Int(n, next) if n as u64 <= self.max_multibulk as u64 => (n as usize, next),
                Line::Incomplete => break 'done (Parsed::Incomplete, State::Count(num)),
                _ => break 'done (bad_multibulk_length(), State::Start),
            };
            loop {
                match buf.get(pos) {
                    None => break 'done (Parsed::Incomplete, State::Arg { left, pos }),
                    Some(&b'$') => scanned += 1,
                    Some(&c) => break 'done (expected_dollar(c), State::Start),
                }
                let mut num = Num::default();
                let (start, len) = match line_int(buf, pos + 1, &mut num, &mut scanned) {
                    Line::Int(len, start) if len >= 0 && len as u64 <= self.max_bulk as u64 => {
                        (start, len as usize)
                    }
                    Line::Incomplete => {
                        let pos = pos + 1;
                        break 'done (Parsed::Incomplete, State::Len { left, pos, num });
                    }
                    _ => break 'done (bad_bulk_length(), State::Start),
                };
                // `start` is at most `buf.len()`: line_int found it there.
                if buf.len() - start < len.saturating_add(2) {
                    break 'done (Parsed::Incomplete, State::Data { left, start, len });
                }
                let end = start + len;
                scanned += 2;
                if &buf[end..end + 2] != b"\r\n" {
                    break 'done (bulk_not_terminated(), State::Start);
                }
                self.args.push(start..end);
                if left == 1 {
                    break 'done (Parsed::Request(end + 2), State::Start);
                }
                left -= 1;
                pos = end + 2;
            }
        };
        self.state = state;
        self.scanned += scanned as u64;
        parsed
    }
}

/// The parser's errors, shared by its two paths.
fn bad_multibulk_length() -> Parsed {
    Parsed::Error("invalid multibulk length".into())
}

fn bad_bulk_length() -> Parsed {
    Parsed::Error("invalid bulk length".into())
}

fn expected_dollar(c: u8) -> Parsed {
    Parsed::Error(format!("expected '$', got '{}'", c.escape_ascii()))
}

fn bulk_not_terminated() -> Parsed {
    Parsed::Error("bulk string not terminated by CRLF".into())
}

/// The integer of an integer reply's line (`:N\r\n`, after the `:`).
fn parse_int(line: &[u8]) -> Option<i64> {
    std::str::from_utf8(line.strip_suffix(b"\r\n")?)
        .ok()?
        .parse()
        .ok()
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
    /// Send the replies, then close.
    Close,
    /// The replies passed the hard limit: close without sending them.
    Overflow,
}

/// The loop's time (the real clock when run on another runtime, as `kv_tokio` does).
fn now() -> Instant {
    Handle::try_current().map_or_else(Instant::now, |h| h.time())
}

/// CONFIG GET: the settings that clients ask about when they connect (redis-benchmark asks for
/// `save` and `appendonly`, and warns if it gets no answer), as name/value pairs. This server
/// keeps nothing on disk and has one database; unknown names are left out, as Redis does.
/// The limits that Redis also has are answered with their values.
fn config_get(limits: &Limits, params: &[&[u8]], out: &mut Vec<u8>) {
    let settings = [
        ("save", String::new()),
        ("appendonly", "no".into()),
        ("databases", "1".into()),
        ("proto-max-bulk-len", limits.max_bulk.to_string()),
        ("client-query-buffer-limit", limits.query_buffer.to_string()),
    ];
    let found: Vec<_> = settings
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

/// Executes one request; appends the reply to `out`. A reply that would take `out` past `cap`
/// bytes may be cut short, with `After::Overflow`.
fn execute(
    store: &mut Store,
    limits: &Limits,
    args: &[&[u8]],
    out: &mut Vec<u8>,
    cap: usize,
) -> After {
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
                // The one reply that can grow without bound: many keys, each a large value.
                if out.len() > cap {
                    return After::Overflow;
                }
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
                config_get(limits, params, out)
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

/// An emptied vector of slices, with its memory, for slices of another lifetime: the argument
/// table borrows the read buffer, which is written between batches, so the table cannot be kept
/// as it is. Collecting an emptied `vec::IntoIter` into a vector of an element of the same size
/// reuses its allocation (std's in-place collection); `tests/kv_hot_path.rs` counts the
/// allocations of a pipelining client's batches and would see one per batch.
fn reuse<'b>(mut v: Vec<&[u8]>) -> Vec<&'b [u8]> {
    v.clear();
    v.into_iter()
        .map(|_| -> &'b [u8] { unreachable!() })
        .collect()
}

/// Counts a connection in [`Stats::stalled`] while it is set.
struct Stalled<'a> {
    count: &'a Cell<usize>,
    on: bool,
}

impl Stalled<'_> {
    fn set(&mut self, on: bool) {
        if on != self.on {
            self.on = on;
            let n = self.count.get();
            self.count.set(if on { n + 1 } else { n - 1 });
        }
    }
}

impl Drop for Stalled<'_> {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// Serves one connection: any futures-io stream (`kv_tokio` passes tokio's, through `compat`).
///
/// It answers the complete requests it has while its unsent replies are within the soft limit,
/// then writes them; it reads while they are within the soft limit, and while a write waits
/// for the client to read; past the soft limit it only writes.
pub async fn client<S: AsyncRead + AsyncWrite + Unpin>(mut conn: S, server: Rc<Server>) {
    let (limits, stats) = (&server.limits, &server.stats);
    let soft = limits.reply_soft;
    let hard = match limits.reply_hard {
        0 => usize::MAX,
        n => n,
    };
    let buf_start = BUF_START.min(limits.query_buffer).max(1);
    // Bytes buf[start..end] are received but not yet answered; out[sent..] are replies not
    // yet sent.
    let mut buf = vec![0u8; buf_start];
    let (mut start, mut end) = (0, 0);
    let mut out: Vec<u8> = Vec::with_capacity(BUF_START);
    let mut sent = 0;
    let mut parser = Parser::new(limits);
    let mut routing = Routing::for_this_thread(); // `--shards`: keys of other shards
    let mut spare_args: Vec<&'static [u8]> = Vec::new();
    let mut eof = false; // the client has sent all it will send
    let mut stalled = Stalled {
        count: &stats.stalled,
        on: false,
    };
    Stats::peak(&stats.peak_buffer, buf.len());
    loop {
        // Drop the replies that were sent: all of them, usually.
        if sent == out.len() {
            out.clear();
            if out.capacity() > BUF_KEEP {
                out = Vec::with_capacity(BUF_START);
            }
        } else if sent > 0 {
            out.drain(..sent);
        }
        sent = 0;

        // Answer complete requests while the unsent replies are within the soft limit.
        let mut after = After::Continue;
        if out.len() <= soft {
            let mut store = server.store.borrow_mut();
            // The argument table of the previous batch, its memory kept: no allocation per
            // batch (nor per request) once it has grown to the longest request's.
            let mut args = reuse(std::mem::take(&mut spare_args));
            let mut answered = 0;
            while after == After::Continue && out.len() <= soft {
                let pending = &buf[start..end];
                match parser.parse(pending) {
                    Parsed::Request(used) => {
                        args.clear();
                        args.extend(parser.args().iter().map(|r| &pending[r.clone()]));
                        after = match &mut routing {
                            Some(r) => r.execute(&mut store, limits, &args, &mut out, hard),
                            None => execute(&mut store, limits, &args, &mut out, hard),
                        };
                        start += used;
                        answered += 1;
                    }
                    Parsed::Incomplete => break,
                    Parsed::Error(msg) => {
                        push_err(&mut out, &format!("ERR Protocol error: {msg}"));
                        after = After::Close;
                    }
                }
            }
            spare_args = reuse(args);
            Stats::add(&stats.requests, answered);
            Stats::add(&stats.parsed, parser.take_scanned());
            Stats::peak(&stats.peak_unsent, out.len());
        }
        if let Some(r) = routing.as_mut().filter(|r| r.is_pending()) {
            // The replies from other shards, in their places. Boxed, so that its state stays
            // out of this loop's code: inline, the unsharded server ran 1.0% more instructions
            // (callgrind, redis-benchmark GET/SET -P 16), boxed 0.65%.
            let gather: Pin<Box<dyn std::future::Future<Output = ()> + '_>> =
                Box::pin(r.gather(&mut out));
            gather.await;
        }
        if out.len() > hard {
            after = After::Overflow;
        }
        match after {
            After::Continue => {}
            After::Close => {
                let _ = conn.write_all(&out).await;
                return;
            }
            After::Overflow => {
                Stats::add(&stats.over_reply_limit, 1);
                return;
            }
        }
        if start == end {
            (start, end) = (0, 0);
            if buf.len() > BUF_KEEP {
                buf = vec![0u8; buf_start];
            }
        }
        let reading = !eof && out.len() <= soft;
        if eof && out.len() <= soft {
            // Every complete request is answered; the rest of one can never come.
            let _ = conn.write_all(&out).await;
            return;
        }
        if reading && end == buf.len() {
            // Make room: move a partial request to the front, or grow for a big one.
            if start > 0 {
                buf.copy_within(start..end, 0);
                (start, end) = (0, end - start);
            } else if end >= limits.query_buffer {
                // No reply to this request, as Redis does; those before it are owed theirs.
                Stats::add(&stats.over_query_limit, 1);
                let _ = conn.write_all(&out).await;
                return;
            } else {
                // Doubling, but never past what the request is known to need: a client that
                // announces a large bulk string gets room as its bytes arrive.
                let wants = match parser.wants() {
                    0 => usize::MAX,
                    n => n,
                };
                let len = (buf.len() * 2).min(wants).min(limits.query_buffer);
                buf.resize(len, 0);
                Stats::peak(&stats.peak_buffer, len);
            }
        }

        // Write; read too while the unsent replies are within the soft limit.
        let open = poll_fn(|cx| {
            let mut conn = Pin::new(&mut conn);
            while sent < out.len() {
                match conn.as_mut().poll_write(cx, &out[sent..]) {
                    Poll::Ready(Ok(n)) if n > 0 => sent += n,
                    Poll::Ready(_) => return Poll::Ready(false),
                    Poll::Pending => break,
                }
            }
            if sent > 0 && sent == out.len() {
                return Poll::Ready(true); // all sent: answer what is in, or read
            }
            if reading {
                match conn.as_mut().poll_read(cx, &mut buf[end..]) {
                    Poll::Ready(Ok(0)) => eof = true,
                    Poll::Ready(Ok(n)) => {
                        end += n;
                        Stats::add(&stats.read, n as u64);
                    }
                    Poll::Ready(Err(_)) => return Poll::Ready(false),
                    Poll::Pending => return Poll::Pending,
                }
                return Poll::Ready(true);
            }
            if out.len() - sent <= soft {
                return Poll::Ready(true); // back within the soft limit: answer more
            }
            stalled.set(true);
            Poll::Pending
        })
        .await;
        stalled.set(false);
        if !open {
            return;
        }
    }
}

/// How to start the server, for a command line it cannot read.
pub const USAGE: &str = "usage: kv [ADDR] [--proto-max-bulk-len BYTES] [--max-multibulk-len N] \
[--client-query-buffer-limit BYTES] [--reply-soft-limit BYTES] [--reply-hard-limit BYTES] \
[--shards N [--share reuseport|acceptor] [--pin]]";

/// The address and limits from the command line; exits with the usage if it cannot read them.
pub fn args_or_exit() -> (Option<String>, Limits) {
    Limits::from_args(std::env::args().skip(1)).unwrap_or_else(|problem| {
        eprintln!("{problem}\n{USAGE}");
        std::process::exit(2)
    })
}

/// Reads `[ADDR] [--NAME VALUE]... [--shards N [--share MODE] [--pin]]`: the address, if
/// given, the limits, and the shard options if `--shards` is given.
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
) -> Result<(Option<String>, Limits, Option<solo::shards::Flags>), String> {
    let (rest, flags) = solo::shards::Flags::take(args).map_err(|e| e.to_string())?;
    let (addr, limits) = Limits::from_args(rest)?;
    Ok((addr, limits, flags))
}

/// [`args_or_exit`], and the shard options (`--shards N` and its companions).
pub fn sharded_args_or_exit() -> (Option<String>, Limits, Option<solo::shards::Flags>) {
    parse_args(std::env::args().skip(1)).unwrap_or_else(|problem| {
        eprintln!("{problem}\n{USAGE}");
        std::process::exit(2)
    })
}

#[allow(dead_code)] // the tests include this file for `serve` only
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (addr, limits, shards) = sharded_args_or_exit();
    let addr = addr.unwrap_or_else(|| "127.0.0.1:6380".into());
    if let Some(shards) = shards {
        return main_sharded(&addr, limits, shards);
    }
    let mut builder = solo::EventLoop::builder();
    if std::env::var_os("SOLO_SPIN_US").is_none() && std::env::var_os("SOLO_NAP_US").is_none() {
        builder = builder.nap_before_sleep(Duration::from_micros(20));
    }
    let el = builder.build()?;
    let served = el
        .run_until_complete(async move {
            let listener = TcpListener::bind(&addr)?;
            println!("kv (RESP2) on {}", listener.local_addr()?);
            serve_with(listener, Rc::new(Server::new(limits))).await
        })
        .map_err(std::io::Error::other)?;
    el.shutdown(Duration::ZERO);
    Ok(served?)
}

// ---- sharding: `--shards N` ----
//
// Each shard owns the keys that hash to it (`owner`) in its own `Server`. A connection is
// served by whichever shard accepted it; a request for keys of other shards is executed there.
// While a batch of pipelined requests is answered, the requests (or, for MGET, MSET, DEL and
// EXISTS, the parts of one) for another shard join that shard's boarding `Flight`: one per
// destination shard, which every connection this loop iteration serves adds to, each request
// parsed (its arguments back to back in an `Envelope`). A task spawned with the flight sends
// it once those connections have run: one message per destination shard and iteration
// (`Peer::ask`, through that shard's remote queue), however many connections and requests.
// There the requests run in order and the envelope comes back with their replies back to
// back, and its buffers go to a pool for the next flights: a round trip allocates the flight,
// its task and the message, and no buffer once the pool's have grown. Each connection waits
// for the flights its batch took and puts the replies in their requests' places before it
// writes the batch, so replies keep the order of the requests, and each key sees the requests
// of one connection in order. DBSIZE and FLUSHALL go to every shard. A shard that has stopped
// answers with an error in the reply's place.

/// The shard that owns `key` among `count`: the key space's hash ([`WordHash`], 8 bytes at a
/// time, unseeded, so the same on every shard), modulo the count.
pub fn owner(key: &[u8], count: usize) -> usize {
    use std::hash::Hasher;
    let mut h = WordHash::default();
    h.write(key);
    (h.finish() % count as u64) as usize
}

/// What the shard running on this thread serves, for its connections and for the requests
/// other shards send it.
struct Router {
    index: usize,
    peers: Vec<solo::shards::Peer>,
    server: Rc<Server>,
    /// The argument table of the last envelope executed here (for another shard), its memory
    /// kept.
    spare_args: Cell<Vec<&'static [u8]>>,
    /// For each other shard, the flight its requests join now, until it leaves.
    boarding: RefCell<Vec<Option<Rc<Flight>>>>,
    /// Envelopes back from their trip, with their buffers, for the next flights.
    pool: RefCell<Vec<Envelope>>,
}

/// Envelopes kept in a shard's pool at most: the flights of one iteration, about.
const POOL_KEEP: usize = 64;

impl Router {
    /// The flight to `shard` that requests join now: the one boarding, or a new one, which
    /// leaves once the connections that are ready now have run (so that they all join it).
    fn flight(self: &Rc<Router>, shard: usize) -> Rc<Flight> {
        if let Some(f) = &self.boarding.borrow()[shard] {
            return f.clone();
        }
        let env = self.pool.borrow_mut().pop().unwrap_or_default();
        let flight = Rc::new(Flight {
            env: RefCell::new(env),
            back: OnceCell::new(),
            landed: solo::sync::Event::new(),
        });
        self.boarding.borrow_mut()[shard] = Some(flight.clone());
        let (router, f) = (self.clone(), flight.clone());
        // A task, not a callback: spawned now, it is polled after the tasks already in the
        // ready queue, the other connections this iteration serves.
        drop(Handle::current().spawn(async move {
            router.boarding.borrow_mut()[shard] = None;
            let env = std::mem::take(&mut *f.env.borrow_mut());
            let mut landing = Landing {
                flight: f,
                shard,
                requests: env.requests(),
                answered: false,
            };
            Stats::add(&router.server.stats.forwarded, 1);
            Stats::add(
                &router.server.stats.forwarded_requests,
                env.requests() as u64,
            );
            if let Ok(env) = router.peers[shard].ask(move || execute_here(env)).await {
                landing.answered = landing.flight.back.set(env).is_ok();
            }
        }));
        flight
    }
}

/// The requests of this shard's connections for one other shard, gathered while they run in
/// one loop iteration, then sent there in one message, and their replies back.
struct Flight {
    /// The requests, while it boards.
    env: RefCell<Envelope>,
    /// The envelope back with the replies (or an error for each request), once landed.
    back: OnceCell<Envelope>,
    /// Set once `back` is.
    landed: solo::sync::Event,
}

impl Drop for Flight {
    fn drop(&mut self) {
        // Its envelope goes back to the pool, buffers and all (not while the thread ends).
        let mut env = self
            .back
            .take()
            .unwrap_or_else(|| std::mem::take(self.env.get_mut()));
        env.clear();
        let _ = ROUTER.try_with(|r| {
            if let Some(router) = r.try_borrow().ok().as_ref().and_then(|r| r.as_ref()) {
                if let Ok(mut pool) = router.pool.try_borrow_mut() {
                    if pool.len() < POOL_KEEP {
                        pool.push(env);
                    }
                }
            }
        });
    }
}

/// Marks its flight landed when dropped: with the replies, or with an error for each request
/// if they did not come (the shard has stopped, or this one stops and cancels the flight's
/// task), so that no connection waits for it forever.
struct Landing {
    flight: Rc<Flight>,
    shard: usize,
    requests: usize,
    answered: bool,
}

impl Drop for Landing {
    fn drop(&mut self) {
        if !self.answered {
            let err = format!("-ERR shard {} is unavailable\r\n", self.shard);
            let mut env = Envelope::default();
            env.fail(self.requests, err.as_bytes());
            let _ = self.flight.back.set(env);
        }
        self.flight.landed.set();
    }
}

thread_local! {
    static ROUTER: RefCell<Option<Rc<Router>>> = const { RefCell::new(None) };
}

/// The requests a flight carries to one other shard, and then their replies (a connection also
/// keeps one for the replies of the parts it executes itself). The requests travel parsed
/// (their arguments and where each ends), so the owner does not read them again.
#[derive(Default)]
struct Envelope {
    /// The arguments of the requests, back to back...
    data: Vec<u8>,
    /// ...where each argument ends in `data`...
    arg_ends: Vec<usize>,
    /// ...and where each request's arguments end in `arg_ends`.
    request_ends: Vec<usize>,
    /// The replies, back to back...
    replies: Vec<u8>,
    /// ...and where each one ends in `replies`.
    reply_ends: Vec<usize>,
}

impl Envelope {
    /// Adds a request; the index of its reply.
    fn push(&mut self, args: &[&[u8]]) -> usize {
        for a in args {
            self.data.extend_from_slice(a);
            self.arg_ends.push(self.data.len());
        }
        self.request_ends.push(self.arg_ends.len());
        self.request_ends.len() - 1
    }

    fn requests(&self) -> usize {
        self.request_ends.len()
    }

    /// Marks the end of a reply appended to `replies`; its index.
    fn end_reply(&mut self) -> usize {
        self.reply_ends.push(self.replies.len());
        self.reply_ends.len() - 1
    }

    fn reply(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.reply_ends[i - 1] };
        &self.replies[start..self.reply_ends[i]]
    }

    /// Empties it for the next flight, keeping its buffers unless a large one grew them.
    fn clear(&mut self) {
        for buf in [&mut self.data, &mut self.replies] {
            buf.clear();
            if buf.capacity() > BUF_KEEP {
                *buf = Vec::new();
            }
        }
        for ends in [
            &mut self.arg_ends,
            &mut self.request_ends,
            &mut self.reply_ends,
        ] {
            ends.clear();
            if ends.capacity() > BUF_KEEP / 8 {
                *ends = Vec::new();
            }
        }
    }

    /// `count` requests answered with `err` (their shard could not execute them).
    fn fail(&mut self, count: usize, err: &[u8]) {
        self.replies.clear();
        self.reply_ends.clear();
        for _ in 0..count {
            self.replies.extend_from_slice(err);
            self.end_reply();
        }
    }
}

/// Runs on the owner's thread: executes the requests of `env` on this shard's keys and puts
/// one reply each in it.
fn execute_here(mut env: Envelope) -> Envelope {
    env.replies.clear();
    env.reply_ends.clear();
    let Some(router) = ROUTER.with(|r| r.borrow().clone()) else {
        env.fail(env.requests(), b"-ERR not a kv shard\r\n");
        return env;
    };
    let server = &router.server;
    let mut store = server.store.borrow_mut();
    let mut args = reuse(router.spare_args.take());
    let Envelope {
        data,
        arg_ends,
        request_ends,
        replies,
        reply_ends,
    } = &mut env;
    let (mut arg, mut at) = (0, 0);
    for &end in request_ends.iter() {
        args.clear();
        for &arg_end in &arg_ends[arg..end] {
            args.push(&data[at..arg_end]);
            at = arg_end;
        }
        arg = end;
        execute(&mut store, &server.limits, &args, replies, usize::MAX);
        reply_ends.push(replies.len());
    }
    router.spare_args.set(reuse(args));
    env
}

/// How the parts of one routed request become its reply.
enum Gather {
    /// One part, as is (GET, SET, INCR).
    One,
    /// An array of the parts (MGET: one GET per key).
    Array,
    /// The sum of integer parts (DEL, EXISTS, DBSIZE).
    Sum,
    /// `+OK` if every part is (MSET: one SET per pair; FLUSHALL), else the first error.
    AllOk,
}

/// A request whose reply comes from parts: where it goes in `out`, and its parts (a range of
/// [`Routing::parts`]).
struct Routed {
    at: usize,
    gather: Gather,
    parts: Range<usize>,
}

/// One connection's sharded requests of the batch being answered, and the buffers kept for
/// the next batch.
struct Routing {
    router: Rc<Router>,
    routed: Vec<Routed>,
    /// Each part's reply: (shard, index in that shard's flight's envelope, or in `local`).
    parts: Vec<(usize, usize)>,
    /// The replies of the parts this shard executed at once.
    local: Envelope,
    /// The flights this batch's requests took, by shard.
    flights: Vec<Option<Rc<Flight>>>,
    /// The batch's replies with the shards' in their places, swapped with the connection's.
    spare: Vec<u8>,
}

impl Routing {
    /// The routing of a connection on a kv shard's thread; `None` on an unsharded server.
    fn for_this_thread() -> Option<Routing> {
        let router = ROUTER.with(|r| r.borrow().clone())?;
        let n = router.peers.len();
        Some(Routing {
            router,
            routed: Vec::new(),
            parts: Vec::new(),
            local: Envelope::default(),
            flights: vec![None; n],
            spare: Vec::new(),
        })
    }

    /// Adds a request for another shard to this batch's flight there; its reply's index.
    fn send(&mut self, shard: usize, args: &[&[u8]]) -> usize {
        let flight = self.flights[shard].get_or_insert_with(|| self.router.flight(shard));
        flight.env.borrow_mut().push(args)
    }

    /// Answers `args` like `execute`, the keys this shard owns at once; the
    /// rest is sent by [`gather`](Routing::gather).
    fn execute(
        &mut self,
        store: &mut Store,
        limits: &Limits,
        args: &[&[u8]],
        out: &mut Vec<u8>,
        cap: usize,
    ) -> After {
        let n = self.router.peers.len();
        let me = self.router.index;
        let Some((&cmd, rest)) = args.split_first() else {
            return execute(store, limits, args, out, cap);
        };
        let is = |name: &str| cmd.eq_ignore_ascii_case(name.as_bytes());
        // The keys of this request (or of each of its parts), and how its parts gather.
        let (gather, step) = if (is("GET") && rest.len() == 1)
            || (is("SET") && rest.len() >= 2)
            || (is("INCR") && rest.len() == 1)
        {
            // The common case: one key, the request forwarded whole.
            let shard = owner(rest[0], n);
            if shard == me {
                return execute(store, limits, args, out, cap);
            }
            let i = self.send(shard, args);
            self.route(out, Gather::One, &[(shard, i)]);
            return After::Continue;
        } else if is("MGET") && !rest.is_empty() {
            (Gather::Array, 1)
        } else if (is("DEL") || is("EXISTS")) && !rest.is_empty() {
            (Gather::Sum, 1)
        } else if is("MSET") && !rest.is_empty() && rest.len() % 2 == 0 {
            (Gather::AllOk, 2)
        } else if is("DBSIZE") && rest.is_empty() {
            (Gather::Sum, 0)
        } else if (is("FLUSHALL") || is("FLUSHDB")) && rest.is_empty() {
            (Gather::AllOk, 0)
        } else {
            // No key (PING, CONFIG...), or wrong arguments: this shard answers.
            return execute(store, limits, args, out, cap);
        };
        if step > 0 && rest.chunks(step).all(|c| owner(c[0], n) == me) {
            return execute(store, limits, args, out, cap); // all here: as unsharded
        }
        let first = self.parts.len();
        if step == 0 {
            // Every shard, the request as it came.
            for shard in 0..n {
                let i = self.part(store, limits, shard, args);
                self.parts.push((shard, i));
            }
        } else {
            // One part per key (per pair, for MSET): GET for MGET, SET for MSET.
            let name: &[u8] = match gather {
                Gather::Array => b"GET",
                Gather::AllOk => b"SET",
                _ => cmd,
            };
            for c in rest.chunks(step) {
                let shard = owner(c[0], n);
                let part: &[&[u8]] = &[&[name][..], c].concat();
                let i = self.part(store, limits, shard, part);
                self.parts.push((shard, i));
            }
        }
        self.routed.push(Routed {
            at: out.len(),
            gather,
            parts: first..self.parts.len(),
        });
        After::Continue
    }

    /// Records a request whose reply is gathered from `parts`.
    fn route(&mut self, out: &[u8], gather: Gather, parts: &[(usize, usize)]) {
        let first = self.parts.len();
        self.parts.extend_from_slice(parts);
        self.routed.push(Routed {
            at: out.len(),
            gather,
            parts: first..self.parts.len(),
        });
    }

    /// One part for `shard`: executed now if it is this one, else put in its envelope; the
    /// index of its reply there.
    fn part(&mut self, store: &mut Store, limits: &Limits, shard: usize, args: &[&[u8]]) -> usize {
        if shard == self.router.index {
            execute(store, limits, args, &mut self.local.replies, usize::MAX);
            return self.local.end_reply();
        }
        self.send(shard, args)
    }

    /// Whether requests of this batch wait for other shards.
    fn is_pending(&self) -> bool {
        !self.routed.is_empty()
    }

    /// Waits for the flights this batch's requests took to come back, and puts each routed
    /// request's reply in its place in `out`.
    async fn gather(&mut self, out: &mut Vec<u8>) {
        if self.routed.is_empty() {
            return;
        }
        for flight in self.flights.iter().flatten() {
            flight.landed.wait().await;
        }
        let (me, local, flights) = (self.router.index, &self.local, &self.flights);
        let reply = |&(shard, i): &(usize, usize)| -> &[u8] {
            if shard == me {
                return local.reply(i);
            }
            match flights[shard].as_ref().and_then(|f| f.back.get()) {
                Some(env) => env.reply(i),
                None => b"-ERR no reply from the shard\r\n", // not reached: landed means back
            }
        };
        let whole = &mut self.spare;
        whole.clear();
        let mut from = 0;
        for r in self.routed.drain(..) {
            whole.extend_from_slice(&out[from..r.at]);
            from = r.at;
            let mut parts = self.parts[r.parts].iter().map(reply);
            match r.gather {
                Gather::One => whole.extend_from_slice(parts.next().unwrap_or(b"")),
                Gather::Array => {
                    push_int(whole, b'*', parts.len() as i64);
                    parts.for_each(|p| whole.extend_from_slice(p));
                }
                // The first part that is not an integer is the reply (an error).
                Gather::Sum => match parts.clone().find(|p| !p.starts_with(b":")) {
                    Some(err) => whole.extend_from_slice(err),
                    None => {
                        let sum = parts
                            .filter_map(|p| parse_int(&p[1..]))
                            .fold(0i64, i64::saturating_add);
                        push_int(whole, b':', sum);
                    }
                },
                Gather::AllOk => match parts.clone().find(|p| *p != b"+OK\r\n") {
                    Some(err) => whole.extend_from_slice(err),
                    None => whole.extend_from_slice(b"+OK\r\n"),
                },
            }
        }
        whole.extend_from_slice(&out[from..]);
        std::mem::swap(out, whole);
        if self.spare.capacity() > BUF_KEEP {
            self.spare = Vec::new();
        }
        self.parts.clear();
        self.local.clear();
        self.flights.iter_mut().for_each(|f| *f = None);
    }
}

/// One shard's part of a sharded kv: a store of the keys this shard owns, served to the
/// connections this shard accepts on `port`, and to the other shards' requests, until the
/// shards stop.
pub async fn serve_shard(
    shard: solo::shards::Shard,
    port: solo::shards::Port,
    limits: Limits,
) -> std::io::Result<ShardCounts> {
    let server = Rc::new(Server::new(limits));
    let router = Rc::new(Router {
        index: shard.index(),
        peers: shard.peers().to_vec(),
        spare_args: Cell::new(Vec::new()),
        boarding: RefCell::new(vec![None; shard.count()]),
        pool: RefCell::new(Vec::new()),
        server: server.clone(),
    });
    ROUTER.with(|r| *r.borrow_mut() = Some(router));
    let s = server.clone();
    let sweeper = Handle::current().spawn(async move {
        let mut tick = solo::time::interval(Duration::from_secs(1));
        loop {
            tick.tick().await;
            s.store.borrow_mut().sweep(Handle::current().time());
        }
    });
    let listener = port.listener(&shard)?;
    let result = loop {
        match listener.accept().await {
            Ok(Some(accepted)) => {
                let solo::shards::Accepted { stream, conn, .. } = accepted;
                let _ = stream.set_nodelay(true);
                let server = server.clone();
                drop(Handle::current().spawn(async move {
                    client(stream, server).await;
                    drop(conn); // counted as open until here
                }));
            }
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    sweeper.cancel();
    let stats = server.stats();
    result.map(|()| ShardCounts {
        requests: stats.requests.get(),
        messages: stats.forwarded.get(),
        forwarded: stats.forwarded_requests.get(),
    })
}

/// What one shard of a sharded kv did, as [`serve_shard`] returns it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardCounts {
    /// Requests its connections sent.
    pub requests: u64,
    /// Messages it sent other shards with requests: at most one per shard and loop iteration,
    /// whatever the number of connections and requests.
    pub messages: u64,
    /// Requests (or parts of one) those messages carried.
    pub forwarded: u64,
}

impl std::fmt::Display for ShardCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let per = self.forwarded as f64 / self.messages.max(1) as f64;
        write!(
            f,
            "{} requests, {} forwarded to other shards in {} messages ({per:.1} per message)",
            self.requests, self.forwarded, self.messages
        )
    }
}

/// `main` with `--shards N`: N loops, one per thread, sharing the port and the key space.
/// They neither nap nor spin before sleeping (the single loop naps) unless `SOLO_NAP_US` or
/// `SOLO_SPIN_US` says so: a shard waits for other shards' replies, which a nap would delay,
/// and a spinning shard takes the CPU that they, and on a small machine the clients, need (2
/// shards and redis-benchmark on 2 cores: 1.3 to 1.5 M requests per server CPU-second without
/// spinning, 0.8 to 1.1 M with it).
#[allow(dead_code)]
fn main_sharded(
    addr: &str,
    limits: Limits,
    flags: solo::shards::Flags,
) -> Result<(), Box<dyn std::error::Error>> {
    let port = solo::shards::Port::bind(addr, flags.share)?;
    let (count, share) = (flags.count, flags.share);
    println!(
        "kv (RESP2) on {} ({count} shards, {share})",
        port.local_addr()
    );
    let served = flags.serve(&port, |shard, port| {
        serve_shard(shard, port, limits.clone())
    });
    eprintln!("{}", port.summary());
    for (i, c) in served?.iter().enumerate() {
        eprintln!("  shard {i}: {c}");
    }
    Ok(())
}

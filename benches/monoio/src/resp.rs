//! A small Redis-protocol (RESP2) key-value core that any number of threads share, for the
//! multi-threaded peers of `examples/kv.rs` in the scaling benchmark: monoio's kv
//! (`benches/monoio/src/bin/kv.rs`) and `examples/kv_tokio.rs --threads N` both include this
//! file. It does no I/O: a connection hands it the bytes it has received and gets the replies
//! of every complete request in them (a pipelined batch: one write).
//!
//! The key space is one map split into 64 stripes, each behind its own mutex (the usual shape
//! of a shared-memory server on a work-stealing runtime: mini-redis has one mutex, DashMap
//! stripes), so two threads contend only when their keys hash to the same stripe. solo's kv
//! shards instead (one loop owns each part of the key space, and requests for keys it does
//! not own travel to their owner): these peers are what a user of those runtimes writes, not a
//! port of solo's design.
//!
//! Commands: PING, ECHO, SET key value, GET, DEL, EXISTS, INCR, MGET, MSET, DBSIZE, FLUSHALL,
//! SELECT 0, QUIT, CONFIG GET (`save`, `appendonly`: redis-benchmark asks), COMMAND (an empty
//! answer). Requests are RESP arrays of bulk strings, or inline lines (`PING\r\n`). A request
//! that is not RESP gets a protocol error and the connection closes, as Redis does.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Mutex;

/// Redis's `proto-max-bulk-len`.
const MAX_BULK: usize = 512 * 1024 * 1024;
/// Redis's limit on the arguments of one request.
const MAX_ARGS: usize = 1024 * 1024;
/// Redis's `PROTO_INLINE_MAX_SIZE`: an inline request (or a header line) longer than this
/// without its line end is an error.
const MAX_INLINE: usize = 64 * 1024;
/// A connection whose incomplete request grows past this is closed (Redis's
/// `client-query-buffer-limit`).
pub const MAX_QUERY: usize = 1024 * 1024 * 1024;
const STRIPES: usize = 64;

/// FNV-1a, as `examples/kv.rs` hashes keys.
#[derive(Default, Clone, Copy)]
struct Fnv(u64);

impl Hasher for Fnv {
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

type Map = HashMap<Vec<u8>, Vec<u8>, BuildHasherDefault<Fnv>>;

/// The key space, shared by every thread (put it in an `Arc`).
pub struct Store {
    stripes: Vec<Mutex<Map>>,
}

impl Default for Store {
    fn default() -> Store {
        Store {
            stripes: (0..STRIPES).map(|_| Mutex::default()).collect(),
        }
    }
}

impl Store {
    fn stripe(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Map> {
        let h = BuildHasherDefault::<Fnv>::default().hash_one(key);
        // A panic while a stripe was held cannot leave a map half-updated in a way that
        // matters here (each update is one insert or remove), so a poisoned stripe is used on.
        self.stripes[(h >> 58) as usize % STRIPES]
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn set(&self, key: &[u8], value: &[u8]) {
        let mut map = self.stripe(key);
        match map.get_mut(key) {
            Some(v) => {
                v.clear();
                v.extend_from_slice(value);
            }
            None => {
                map.insert(key.to_vec(), value.to_vec());
            }
        }
    }

    fn len(&self) -> usize {
        self.stripes
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }
}

/// What a connection does after [`answer`].
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Send the replies and read on.
    Read,
    /// Send the replies, then close (QUIT, or a protocol error).
    Close,
}

/// Answers every complete request at the front of `input`, appending the replies to `out`;
/// returns how many bytes of `input` were used (an incomplete request is left for the next
/// call, with more bytes) and what to do next.
pub fn answer(store: &Store, input: &[u8], out: &mut Vec<u8>) -> (usize, Next) {
    let mut used = 0;
    let mut args: Vec<&[u8]> = Vec::new();
    loop {
        args.clear();
        match parse(&input[used..], &mut args) {
            Ok(Some(n)) => {
                used += n;
                if execute(store, &args, out) == Next::Close {
                    return (used, Next::Close);
                }
            }
            Ok(None) => {
                if input.len() - used > MAX_QUERY {
                    return (used, Next::Close);
                }
                return (used, Next::Read);
            }
            Err(msg) => {
                out.extend_from_slice(b"-ERR Protocol error: ");
                out.extend_from_slice(msg.as_bytes());
                out.extend_from_slice(b"\r\n");
                return (used, Next::Close);
            }
        }
    }
}

/// The line at the front of `buf` without its CRLF, and the length with it; `None` while the
/// line end has not arrived.
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, &'static str> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some((&buf[..i], i + 2))),
        None if buf.len() > MAX_INLINE => Err("too big inline request"),
        None => Ok(None),
    }
}

fn number(digits: &[u8]) -> Option<i64> {
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// One request: its arguments into `args`, and its length; `Ok(None)` if it is incomplete.
fn parse<'a>(buf: &'a [u8], args: &mut Vec<&'a [u8]>) -> Result<Option<usize>, &'static str> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let Some((head, mut at)) = line(buf)? else {
        return Ok(None);
    };
    if first != b'*' {
        args.extend(head.split(|&b| b == b' ').filter(|a| !a.is_empty()));
        return Ok(Some(at));
    }
    let count = match number(&head[1..]) {
        Some(n) if n <= MAX_ARGS as i64 => n,
        _ => return Err("invalid multibulk length"),
    };
    for _ in 0..count.max(0) {
        let Some((h, n)) = line(&buf[at..])? else {
            return Ok(None);
        };
        if h.first() != Some(&b'$') {
            return Err("expected '$'");
        }
        let len = match number(&h[1..]) {
            Some(n) if (0..=MAX_BULK as i64).contains(&n) => n as usize,
            _ => return Err("invalid bulk length"),
        };
        at += n;
        if buf.len() < at + len + 2 {
            return Ok(None);
        }
        if &buf[at + len..at + len + 2] != b"\r\n" {
            return Err("bulk string without its CRLF");
        }
        args.push(&buf[at..at + len]);
        at += len + 2;
    }
    Ok(Some(at))
}

fn push_int(out: &mut Vec<u8>, prefix: u8, n: i64) {
    out.push(prefix);
    out.extend_from_slice(n.to_string().as_bytes());
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
    out.push(b'-');
    out.extend_from_slice(msg.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn execute(store: &Store, args: &[&[u8]], out: &mut Vec<u8>) -> Next {
    let Some((&cmd, rest)) = args.split_first() else {
        return Next::Read; // an empty line: Redis ignores it
    };
    let is = |name: &str| cmd.eq_ignore_ascii_case(name.as_bytes());
    let wrong = |out: &mut Vec<u8>| {
        push_err(
            out,
            &format!(
                "ERR wrong number of arguments for '{}' command",
                String::from_utf8_lossy(cmd).to_lowercase()
            ),
        )
    };
    match rest {
        [key] if is("GET") => push_bulk(out, store.stripe(key).get(*key).map(|v| &v[..])),
        [key, value] if is("SET") => {
            store.set(key, value);
            out.extend_from_slice(b"+OK\r\n");
        }
        [_, _, _, ..] if is("SET") => push_err(out, "ERR syntax error"),
        [] if is("PING") => out.extend_from_slice(b"+PONG\r\n"),
        [msg] if is("PING") || is("ECHO") => push_bulk(out, Some(msg)),
        [_, ..] if is("DEL") || is("EXISTS") => {
            let del = is("DEL");
            let n = rest
                .iter()
                .filter(|k| {
                    let mut map = store.stripe(k);
                    if del {
                        map.remove(**k).is_some()
                    } else {
                        map.contains_key(**k)
                    }
                })
                .count();
            push_int(out, b':', n as i64);
        }
        [key] if is("INCR") => {
            let mut map = store.stripe(key);
            let current = match map.get(*key) {
                Some(v) => std::str::from_utf8(v)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok()),
                None => Some(0),
            };
            match current.and_then(|c| c.checked_add(1)) {
                Some(n) => {
                    map.insert(key.to_vec(), n.to_string().into_bytes());
                    push_int(out, b':', n);
                }
                None => push_err(out, "ERR value is not an integer or out of range"),
            }
        }
        [_, ..] if is("MGET") => {
            push_int(out, b'*', rest.len() as i64);
            for key in rest {
                push_bulk(out, store.stripe(key).get(*key).map(|v| &v[..]));
            }
        }
        [_, ..] if is("MSET") && rest.len() % 2 == 0 => {
            for kv in rest.chunks(2) {
                store.set(kv[0], kv[1]);
            }
            out.extend_from_slice(b"+OK\r\n");
        }
        [] if is("DBSIZE") => push_int(out, b':', store.len() as i64),
        [] if is("FLUSHALL") || is("FLUSHDB") => {
            for s in &store.stripes {
                s.lock().unwrap_or_else(|p| p.into_inner()).clear();
            }
            out.extend_from_slice(b"+OK\r\n");
        }
        [db] if is("SELECT") => match &db[..] {
            b"0" => out.extend_from_slice(b"+OK\r\n"),
            _ => push_err(out, "ERR DB index is out of range"),
        },
        [sub, params @ ..] if is("CONFIG") && sub.eq_ignore_ascii_case(b"GET") => {
            let settings: [(&[u8], &[u8]); 2] = [(b"save", b""), (b"appendonly", b"no")];
            let found: Vec<_> = settings
                .iter()
                .filter(|(name, _)| params.iter().any(|p| p.eq_ignore_ascii_case(name)))
                .collect();
            push_int(out, b'*', 2 * found.len() as i64);
            for (name, value) in found {
                push_bulk(out, Some(name));
                push_bulk(out, Some(value));
            }
        }
        _ if is("COMMAND") => out.extend_from_slice(b"*0\r\n"),
        [] if is("QUIT") => {
            out.extend_from_slice(b"+OK\r\n");
            return Next::Close;
        }
        _ if [
            "GET", "SET", "PING", "ECHO", "DEL", "EXISTS", "INCR", "MGET", "MSET", "DBSIZE",
            "FLUSHALL", "FLUSHDB", "SELECT", "CONFIG", "QUIT",
        ]
        .iter()
        .any(|name| is(name)) =>
        {
            wrong(out)
        }
        _ => push_err(
            out,
            &format!(
                "ERR unknown command '{}'",
                String::from_utf8_lossy(cmd).replace(['\r', '\n'], " ")
            ),
        ),
    }
    Next::Read
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(store: &Store, input: &[u8]) -> (String, usize, Next) {
        let mut out = Vec::new();
        let (used, next) = answer(store, input, &mut out);
        (String::from_utf8(out).unwrap(), used, next)
    }

    #[test]
    fn answers_a_pipelined_batch_in_order() {
        let s = Store::default();
        let batch: &[u8] = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nv1\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\nPING\r\n*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n*3\r\n$4\r\nMGET\r\n$1\r\nk\r\n$1\r\nx\r\n";
        let (out, used, next) = run(&s, batch);
        assert_eq!(
            out,
            "+OK\r\n$2\r\nv1\r\n+PONG\r\n:1\r\n*2\r\n$2\r\nv1\r\n$-1\r\n"
        );
        assert_eq!(next, Next::Read);
        assert_eq!(used, batch.len());
        assert_eq!(run(&s, b"DBSIZE\r\n").0, ":2\r\n");
        assert_eq!(run(&s, b"DEL k x\r\n").0, ":1\r\n");
    }

    #[test]
    fn leaves_an_incomplete_request_for_later() {
        let s = Store::default();
        let full = b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
        for cut in 0..full.len() {
            let (out, used, next) = run(&s, &full[..cut]);
            assert_eq!((out.as_str(), used, next), ("", 0, Next::Read), "cut {cut}");
        }
        assert_eq!(run(&s, full).0, "$5\r\nhello\r\n");
    }

    #[test]
    fn bad_requests_get_an_error_and_close() {
        let s = Store::default();
        for bad in [
            &b"*x\r\n"[..],
            b"*1\r\n+GET\r\n",
            b"*1\r\n$-5\r\n",
            b"*1\r\n$999999999999\r\n",
            b"*1\r\n$3\r\nGETxx",
        ] {
            let (out, _, next) = run(&s, bad);
            assert!(out.starts_with("-ERR Protocol error"), "{bad:?}: {out}");
            assert_eq!(next, Next::Close);
        }
        let (out, _, next) = run(&s, b"GET\r\nNOPE 1\r\nINCR\r\n");
        assert_eq!(next, Next::Read);
        assert_eq!(
            out,
            "-ERR wrong number of arguments for 'get' command\r\n-ERR unknown command 'NOPE'\r\n-ERR wrong number of arguments for 'incr' command\r\n"
        );
        assert_eq!(run(&s, b"QUIT\r\nPING\r\n").2, Next::Close);
        assert_eq!(
            run(&s, b"SET a b\r\nINCR a\r\n").0,
            "+OK\r\n-ERR value is not an integer or out of range\r\n"
        );
    }

    #[test]
    fn threads_share_the_key_space() {
        let s = std::sync::Arc::new(Store::default());
        let writers: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..500 {
                        run(&s, format!("SET k{t}-{i} {i}\r\n").as_bytes());
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        assert_eq!(run(&s, b"DBSIZE\r\n").0, ":2000\r\n");
        assert_eq!(run(&s, b"GET k3-499\r\n").0, "$3\r\n499\r\n");
    }
}

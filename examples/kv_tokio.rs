//! The kv example's connection code (`examples/kv.rs`, the very same `client` function) run on
//! tokio's current_thread runtime, to tell what in the kv-vs-redis-server gap is the runtime's.
//!
//!     cargo run --release --example kv_tokio [ADDR] [--LIMIT VALUE]...   (default 127.0.0.1:6381)
//!     cargo run --release --example kv_tokio [ADDR] --threads N
//!
//! It takes kv's limits, the same flags (see `kv.rs`).
//!
//! With `--threads N` it runs tokio's multi-thread runtime with N workers instead, for the
//! scaling benchmark. kv's `client` cannot run there (its futures share one `Rc` store and are
//! not `Send`), so that mode serves the RESP core of `benches/monoio/src/resp.rs`, which
//! monoio's kv serves too: one key space in 64 mutex-guarded stripes that every worker shares,
//! what a tokio user writes. kv's limit flags do not apply to it and are refused with
//! `--threads`.

use std::rc::Rc;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::compat::TokioAsyncReadCompatExt;

#[allow(dead_code)] // its own `main` and `serve` are solo's; this file uses `client`, `Server`
#[path = "kv.rs"]
mod kv;

/// The shared-store RESP core of the multi-thread mode.
#[allow(dead_code)]
#[path = "../benches/monoio/src/resp.rs"]
mod resp;

/// How to run: kv's connection code with its limits on current_thread, or the shared store on
/// a multi-thread runtime with this many workers.
#[derive(Debug)]
pub enum Mode {
    /// current_thread, `kv::client`.
    Single(kv::Limits),
    /// multi-thread, `resp`.
    Threads(usize),
}

/// `[ADDR] [--LIMIT VALUE]...` or `[ADDR] --threads N`, or what is wrong with it.
pub fn parse_args(args: impl Iterator<Item = String>) -> Result<(Option<String>, Mode), String> {
    let mut rest = Vec::new();
    let mut threads = None;
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        if a == "--threads" {
            let v = args.next().ok_or("--threads needs a value")?;
            threads = match v.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("--threads: not a positive count: {v:?}")),
            };
        } else {
            rest.push(a);
        }
    }
    match threads {
        None => {
            let (addr, limits) = kv::Limits::from_args(rest)?;
            Ok((addr, Mode::Single(limits)))
        }
        Some(n) => match &rest[..] {
            [] => Ok((None, Mode::Threads(n))),
            [addr] if !addr.starts_with("--") => Ok((Some(addr.clone()), Mode::Threads(n))),
            _ => Err(format!(
                "--threads takes only an address beside it (kv's limits apply to the \
                 single-thread mode), not {rest:?}"
            )),
        },
    }
}

/// One connection of the multi-thread mode: read, answer every complete request, one write.
async fn shared_client(mut conn: tokio::net::TcpStream, store: Arc<resp::Store>) {
    let mut buf: Vec<u8> = vec![0; 16 * 1024];
    let mut end = 0;
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        if end == buf.len() {
            let len = buf.len() * 2;
            buf.resize(len, 0);
        }
        match conn.read(&mut buf[end..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => end += n,
        }
        let (used, next) = resp::answer(&store, &buf[..end], &mut out);
        buf.copy_within(used..end, 0);
        end -= used;
        if !out.is_empty() {
            if conn.write_all(&out).await.is_err() {
                return;
            }
            out.clear();
        }
        if next == resp::Next::Close {
            return;
        }
    }
}

/// Binds `addr`, tells `bound` the address, and serves until the listener fails.
pub fn run(
    addr: &str,
    mode: Mode,
    bound: impl FnOnce(std::net::SocketAddr),
) -> std::io::Result<()> {
    match mode {
        Mode::Single(limits) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let local = tokio::task::LocalSet::new();
            local.block_on(&rt, async move {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                bound(listener.local_addr()?);
                let server = Rc::new(kv::Server::new(limits));
                loop {
                    let (conn, _) = listener.accept().await?;
                    let _ = conn.set_nodelay(true);
                    tokio::task::spawn_local(kv::client(conn.compat(), server.clone()));
                }
            })
        }
        Mode::Threads(n) => {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind(addr).await?;
                bound(listener.local_addr()?);
                let store = Arc::new(resp::Store::default());
                loop {
                    let (conn, _) = match listener.accept().await {
                        Ok(c) => c,
                        Err(_) => {
                            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                            continue;
                        }
                    };
                    let _ = conn.set_nodelay(true);
                    tokio::spawn(shared_client(conn, store.clone()));
                }
            })
        }
    }
}

#[allow(dead_code)] // the tests include this file for `run` only
fn main() -> std::io::Result<()> {
    let (addr, mode) = parse_args(std::env::args().skip(1)).unwrap_or_else(|problem| {
        eprintln!(
            "{problem}\n{}\n   or: kv_tokio [ADDR] --threads N",
            kv::USAGE
        );
        std::process::exit(2)
    });
    let addr = addr.unwrap_or_else(|| "127.0.0.1:6381".into());
    let what = match &mode {
        Mode::Single(_) => "tokio".to_string(),
        Mode::Threads(n) => format!("tokio, {n} workers, shared store"),
    };
    run(&addr, mode, |at| println!("kv (RESP2) on {what} at {at}"))
}

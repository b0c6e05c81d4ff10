//! A Redis-protocol key-value server on monoio, thread-per-core, for the scaling benchmark:
//! the shared RESP core of `src/resp.rs` (a lock-striped key space that every thread shares)
//! behind monoio's connections. Enough for redis-cli and redis-benchmark (SET, GET, PING,
//! pipelining; the commands are listed in `resp.rs`).
//!
//!     cargo run --release --manifest-path benches/monoio/Cargo.toml --bin kv -- [ADDR] [--threads N]
//!     (default 127.0.0.1:6382)

use std::sync::Arc;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use solo_bench_peers::resp::{answer, Next, Store};

async fn client(mut conn: monoio::net::TcpStream, store: Arc<Store>) {
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    let mut out: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity()); // a request larger than the buffer: double it
        }
        let len = buf.len();
        let (res, slice) = conn.read(buf.slice_mut(len..)).await;
        buf = slice.into_inner();
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (used, next) = answer(&store, &buf, &mut out);
        buf.drain(..used);
        if !out.is_empty() {
            let (res, b) = conn.write_all(out).await;
            out = b;
            out.clear();
            if res.is_err() {
                return;
            }
        }
        if next == Next::Close {
            return;
        }
    }
}

fn main() -> std::io::Result<()> {
    let args = solo_bench_peers::Args::from_env_or_exit("kv", "127.0.0.1:6382");
    let store = Arc::new(Store::default());
    solo_bench_peers::serve("kv (RESP2)", &args, move |conn| client(conn, store.clone()))
}

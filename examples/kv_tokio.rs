//! The kv example's connection code (`examples/kv.rs`, the very same `client` function) run on
//! tokio's current_thread runtime, to tell what in the kv-vs-redis-server gap is the runtime's.
//!
//!     cargo run --release --example kv_tokio [ADDR] [--LIMIT VALUE]...   (default 127.0.0.1:6381)
//!
//! It takes kv's limits, the same flags (see `kv.rs`).

use std::rc::Rc;

use tokio_util::compat::TokioAsyncReadCompatExt;

#[allow(dead_code)] // its own `main` and `serve` are solo's; this file uses `client`, `Server`
#[path = "kv.rs"]
mod kv;

fn main() -> std::io::Result<()> {
    let (addr, limits) = kv::args_or_exit();
    let addr = addr.unwrap_or_else(|| "127.0.0.1:6381".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("kv (RESP2) on tokio at {}", listener.local_addr()?);
        let server = Rc::new(kv::Server::new(limits));
        loop {
            let (conn, _) = listener.accept().await?;
            let _ = conn.set_nodelay(true);
            tokio::task::spawn_local(kv::client(conn.compat(), server.clone()));
        }
    })
}

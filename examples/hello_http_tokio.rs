//! The same hyper service as `hello_http`, on tokio (enable_all), for the side-by-side and
//! scaling comparisons in BENCHMARKS.md: tokio's current_thread runtime, or with `--threads N`
//! its multi-thread runtime with N workers.
//!
//!     cargo run --release --features hyper --example hello_http_tokio [ADDR] [--threads N]
//!     (default 127.0.0.1:8081)
//!
//! `run` is also started in-process by `tests/tokio_twins.rs`.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};

/// The runtime and the command line are echo_tokio's.
#[allow(dead_code)] // this file uses `runtime` and `parse_args`
#[path = "echo_tokio.rs"]
mod echo_tokio;

async fn hello(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

/// Binds `addr`, tells `bound` the address, and serves HTTP/1 on every connection, one task
/// each, until the listener fails.
pub fn run(
    addr: &str,
    threads: Option<usize>,
    bound: impl FnOnce(std::net::SocketAddr),
) -> std::io::Result<()> {
    echo_tokio::runtime(threads)?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        bound(listener.local_addr()?);
        loop {
            let (conn, _) = match listener.accept().await {
                Ok(c) => c,
                Err(_) => {
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                    continue;
                }
            };
            let _ = conn.set_nodelay(true);
            tokio::spawn(async move {
                let _ = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(TokioIo::new(conn), service_fn(hello))
                    .await;
            });
        }
    })
}

#[allow(dead_code)] // the tests include this file for `run` only
fn main() -> std::io::Result<()> {
    let (addr, threads) = echo_tokio::parse_args(std::env::args().skip(1), "127.0.0.1:8081")
        .unwrap_or_else(|problem| {
            eprintln!("{problem}\nusage: hello_http_tokio [ADDR] [--threads N]");
            std::process::exit(2)
        });
    run(&addr, threads, |at| {
        let mode = threads.map_or("current_thread".into(), |n| format!("{n} workers"));
        println!("hello_http_tokio ({mode}) on http://{at}");
    })
}

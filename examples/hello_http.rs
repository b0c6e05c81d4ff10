//! hyper 1.x serving HTTP/1 on solo: "Hello, World!" for every request.
//!
//!     cargo run --release --features hyper --example hello_http [ADDR]   (default 127.0.0.1:8080)
//!     curl http://127.0.0.1:8080/
//!     wrk -t1 -c50 -d10s http://127.0.0.1:8080/
//!
//! `examples/hello_http_tokio.rs` is the same service on tokio's current_thread runtime, for the
//! comparison in BENCHMARKS.md. `serve` is also started in-process by `tests/hyper.rs`.

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use solo::hyper::{HyperIo, HyperTimer};
use solo::net::TcpListener;
use solo::Handle;

async fn hello(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

/// Serves HTTP/1 on every accepted connection, one task each (`incoming` rides out accept
/// errors such as running out of fds).
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let mut incoming = listener.incoming();
    loop {
        let (conn, _) = incoming.next().await?;
        let _ = conn.set_nodelay(true);
        drop(Handle::current().spawn(async move {
            let _ = http1::Builder::new()
                .timer(HyperTimer)
                .serve_connection(HyperIo::new(conn), service_fn(hello))
                .await;
        }));
    }
}

#[allow(dead_code)] // the tests include this file for `serve` only
fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    solo::run(async move {
        let listener = TcpListener::bind(&addr)?;
        println!(
            "hello_http (hyper on solo) on http://{}",
            listener.local_addr()?
        );
        serve(listener).await
    })?
}

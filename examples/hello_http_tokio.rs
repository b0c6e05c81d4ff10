//! The same hyper service as `hello_http`, on tokio's current_thread runtime (enable_all), for
//! the side-by-side comparison in BENCHMARKS.md.
//!
//!     cargo run --release --features hyper --example hello_http_tokio [ADDR]  (default 127.0.0.1:8081)

use std::convert::Infallible;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};

async fn hello(_req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(Response::new(Full::new(Bytes::from_static(
        b"Hello, World!",
    ))))
}

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8081".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        println!("hello_http_tokio on http://{}", listener.local_addr()?);
        loop {
            let (conn, _) = listener.accept().await?;
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

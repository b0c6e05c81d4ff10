//! hyper 1.x serving HTTP/1 on solo: "Hello, World!" for every request.
//!
//!     cargo run --release --features hyper --example hello_http [ADDR]   (default 127.0.0.1:8080)
//!     curl http://127.0.0.1:8080/
//!     wrk -t1 -c50 -d10s http://127.0.0.1:8080/
//!     cargo run --release --features hyper --example hello_http -- [ADDR] --shards N \
//!         [--share reuseport|acceptor] [--pin]
//!
//! With `--shards N` it runs N loops, one per thread (`solo::shards`), sharing the port by
//! `SO_REUSEPORT` or through an acceptor shard (the default); SIGUSR1 and the exit (SIGTERM,
//! ctrl-c) print the connections per shard. `serve_shard` is started in-process by
//! `tests/shards.rs`.
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
use solo::net::{TcpListener, TcpStream};
use solo::shards::{Accepted, Flags, Port, Shard};
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
        drop(Handle::current().spawn(http(conn)));
    }
}

async fn http(conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let _ = http1::Builder::new()
        .timer(HyperTimer)
        .serve_connection(HyperIo::new(conn), service_fn(hello))
        .await;
}

/// One shard's part of a sharded server: serves this shard's connections of `port`, one task
/// each, until the shards stop.
pub async fn serve_shard(shard: Shard, port: Port) -> std::io::Result<()> {
    let listener = port.listener(&shard)?;
    while let Some(accepted) = listener.accept().await? {
        let Accepted { stream, conn, .. } = accepted;
        drop(Handle::current().spawn(async move {
            http(stream).await;
            drop(conn); // counted as open until here
        }));
    }
    Ok(())
}

/// How to start it, for a command line it cannot read.
fn usage(problem: impl std::fmt::Display) -> ! {
    eprintln!("{problem}\nusage: hello_http [ADDR] {}", Flags::USAGE);
    std::process::exit(2)
}

#[allow(dead_code)] // the tests include this file for `serve` only
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (rest, flags) = Flags::take(std::env::args().skip(1)).unwrap_or_else(|e| usage(e));
    let addr = match &rest[..] {
        [] => "127.0.0.1:8080".to_string(),
        [addr] if !addr.starts_with('-') => addr.clone(),
        _ => usage(format!("unexpected arguments {rest:?}")),
    };
    let Some(flags) = flags else {
        return Ok(solo::run(async move {
            let listener = TcpListener::bind(&addr)?;
            println!(
                "hello_http (hyper on solo) on http://{}",
                listener.local_addr()?
            );
            serve(listener).await
        })??);
    };
    let port = Port::bind(&addr, flags.share)?;
    let (count, share) = (flags.count, flags.share);
    println!(
        "hello_http (hyper on solo) on http://{} ({count} shards, {share})",
        port.local_addr()
    );
    let served = flags.serve(&port, serve_shard);
    eprintln!("{}", port.summary());
    served?;
    Ok(())
}

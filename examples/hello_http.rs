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
use solo::shards::{Accepted, Port, Shard};
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

/// `--shards N`, `--share` and `--pin`: the count, how the port is shared, whether to pin.
pub type Sharding = (usize, solo::shards::Share, bool);

/// `[ADDR] [--shards N] [--share reuseport|acceptor] [--pin]`: the address, and the shard
/// count and options when `--shards` is given.
pub fn parse_args(
    args: impl IntoIterator<Item = String>,
) -> Result<(Option<String>, Option<Sharding>), String> {
    let (mut addr, mut shards, mut share, mut pin) = (None, None, None, false);
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--shards" => {
                let n = args.next().ok_or("--shards needs a count")?;
                shards = Some(
                    n.parse::<usize>()
                        .map_err(|_| format!("--shards {n}: not a count"))?,
                );
            }
            "--share" => share = Some(args.next().ok_or("--share needs a mode")?.parse()?),
            "--pin" => pin = true,
            _ if arg.starts_with("--") => return Err(format!("unknown option '{arg}'")),
            _ if addr.is_none() => addr = Some(arg),
            _ => return Err(format!("unexpected argument '{arg}'")),
        }
    }
    match shards {
        Some(n) => Ok((addr, Some((n, share.unwrap_or_default(), pin)))),
        None if share.is_some() || pin => Err("--share and --pin go with --shards".into()),
        None => Ok((addr, None)),
    }
}

#[allow(dead_code)] // the tests include this file for `serve` only
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (addr, shards) = parse_args(std::env::args().skip(1)).unwrap_or_else(|e| {
        eprintln!(
            "{e}\nusage: hello_http [ADDR] [--shards N [--share reuseport|acceptor] [--pin]]"
        );
        std::process::exit(2)
    });
    let addr = addr.unwrap_or_else(|| "127.0.0.1:8080".into());
    let Some((count, share, pin)) = shards else {
        return Ok(solo::run(async move {
            let listener = TcpListener::bind(&addr)?;
            println!(
                "hello_http (hyper on solo) on http://{}",
                listener.local_addr()?
            );
            serve(listener).await
        })??);
    };
    let port = Port::bind(&addr, share)?;
    println!(
        "hello_http (hyper on solo) on http://{} ({count} shards, {share})",
        port.local_addr()
    );
    let served = solo::shards::Builder::new()
        .count(count)
        .pin(pin)
        .run(|shard| {
            let port = port.clone();
            async move {
                if shard.index() == 0 {
                    print_on_sigusr1(port.clone())?;
                }
                serve_shard(shard, port).await
            }
        });
    eprintln!("{}", port.summary());
    served?;
    Ok(())
}

/// Prints the port's per-shard counts at each SIGUSR1, for as long as the shard runs.
#[allow(dead_code)]
fn print_on_sigusr1(port: Port) -> std::io::Result<()> {
    let mut usr1 = solo::signal::signal(solo::signal::SignalKind::user_defined1())?;
    drop(Handle::current().spawn(async move {
        while usr1.recv().await.is_some() {
            eprintln!("{}", port.summary());
        }
    }));
    Ok(())
}

//! A TCP echo server: every byte a client sends comes back.
//!
//!     cargo run --release --example echo [ADDR]     (default 127.0.0.1:7000)
//!     cargo run --release --example echo -- [ADDR] --shards N [--share reuseport|acceptor] [--pin]
//!
//! With `--shards N` it runs N loops, one per thread (`solo::shards`), sharing the port by
//! `SO_REUSEPORT` or through an acceptor shard (the default; see `solo::shards::Share`); each
//! shard echoes its own connections. SIGUSR1 prints the connections per shard, and so does the
//! exit (SIGTERM or ctrl-c stop every shard, which finish within a 5 s grace).
//!
//! `serve` is also started in-process by `tests/examples.rs`, `serve_shard` by
//! `tests/shards.rs`.

use futures::{AsyncReadExt, AsyncWriteExt};
use solo::net::{TcpListener, TcpStream};
use solo::shards::{Accepted, Flags, Port, Shard};
use solo::Handle;

/// Accepts connections forever, one task each. `incoming` rides out accept errors (out of fds:
/// back off and retry; a connection reset before it was accepted: skip it).
pub async fn serve(listener: TcpListener) -> std::io::Result<()> {
    let mut incoming = listener.incoming();
    loop {
        let (conn, _) = incoming.next().await?;
        drop(Handle::current().spawn(echo(conn)));
    }
}

/// One shard's part of a sharded server: accepts this shard's connections of `port`, one task
/// each, until the shards stop.
pub async fn serve_shard(shard: Shard, port: Port) -> std::io::Result<()> {
    let listener = port.listener(&shard)?;
    while let Some(accepted) = listener.accept().await? {
        let Accepted { stream, conn, .. } = accepted;
        drop(Handle::current().spawn(async move {
            echo(stream).await;
            drop(conn); // counted as open until here
        }));
    }
    Ok(())
}

async fn echo(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if conn.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// How to start it, for a command line it cannot read.
fn usage(problem: impl std::fmt::Display) -> ! {
    eprintln!("{problem}\nusage: echo [ADDR] {}", Flags::USAGE);
    std::process::exit(2)
}

#[allow(dead_code)] // the tests include this file for `serve` only
fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (rest, flags) = Flags::take(std::env::args().skip(1)).unwrap_or_else(|e| usage(e));
    let addr = match &rest[..] {
        [] => "127.0.0.1:7000".to_string(),
        [addr] if !addr.starts_with('-') => addr.clone(),
        _ => usage(format!("unexpected arguments {rest:?}")),
    };
    let Some(flags) = flags else {
        return Ok(solo::run(async move {
            let listener = TcpListener::bind(&addr)?;
            println!("echo server on {}", listener.local_addr()?);
            serve(listener).await
        })??);
    };
    let port = Port::bind(&addr, flags.share)?;
    let (count, share) = (flags.count, flags.share);
    println!(
        "echo server on {} ({count} shards, {share})",
        port.local_addr()
    );
    let served = flags.serve(&port, serve_shard);
    eprintln!("{}", port.summary());
    served?;
    Ok(())
}

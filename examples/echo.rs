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
use solo::shards::{Accepted, Port, Shard};
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
        eprintln!("{e}\nusage: echo [ADDR] [--shards N [--share reuseport|acceptor] [--pin]]");
        std::process::exit(2)
    });
    let addr = addr.unwrap_or_else(|| "127.0.0.1:7000".into());
    let Some((count, share, pin)) = shards else {
        return Ok(solo::run(async move {
            let listener = TcpListener::bind(&addr)?;
            println!("echo server on {}", listener.local_addr()?);
            serve(listener).await
        })??);
    };
    let port = Port::bind(&addr, share)?;
    println!(
        "echo server on {} ({count} shards, {share})",
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

//! The echo server of `examples/echo.rs` on tokio, for the syscall, throughput and scaling
//! comparisons in BENCHMARKS.md: tokio's current_thread runtime, or with `--threads N` its
//! multi-thread runtime with N workers (one listener, tokio's work-stealing scheduler spreads
//! the connections).
//!
//!     cargo run --release --example echo_tokio [ADDR] [--threads N]    (default 127.0.0.1:7002)
//!
//! `run` is also started in-process by `tests/tokio_twins.rs`.

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The runtime: current_thread (`None`), or multi-thread with this many workers.
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    match threads {
        None => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(n);
            b
        }
    }
    .enable_all()
    .build()
}

/// `[ADDR] [--threads N]`, or what is wrong with it.
pub fn parse_args(
    args: impl Iterator<Item = String>,
    default_addr: &str,
) -> Result<(String, Option<usize>), String> {
    let (mut addr, mut threads) = (None, None);
    let mut args = args.peekable();
    while let Some(a) = args.next() {
        if a == "--threads" {
            let v = args.next().ok_or("--threads needs a value")?;
            threads = match v.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => return Err(format!("--threads: not a positive count: {v:?}")),
            };
        } else if a.starts_with("--") || addr.is_some() {
            return Err(format!("unexpected argument {a:?}"));
        } else {
            addr = Some(a);
        }
    }
    Ok((addr.unwrap_or_else(|| default_addr.into()), threads))
}

/// Serves echo on `listener` forever, one task per connection.
pub async fn serve(listener: tokio::net::TcpListener) -> std::io::Result<()> {
    loop {
        let (mut conn, _) = match listener.accept().await {
            Ok(c) => c,
            // Out of fds, or a connection reset before it was accepted: skip it, after a pause.
            Err(_) => {
                tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                continue;
            }
        };
        let _ = conn.set_nodelay(true);
        tokio::spawn(async move {
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
        });
    }
}

/// Binds `addr`, tells `bound` the address, and serves until the listener fails.
pub fn run(
    addr: &str,
    threads: Option<usize>,
    bound: impl FnOnce(std::net::SocketAddr),
) -> std::io::Result<()> {
    runtime(threads)?.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        bound(listener.local_addr()?);
        serve(listener).await
    })
}

#[allow(dead_code)] // the tests include this file for `run` only
fn main() -> std::io::Result<()> {
    let (addr, threads) =
        parse_args(std::env::args().skip(1), "127.0.0.1:7002").unwrap_or_else(|problem| {
            eprintln!("{problem}\nusage: echo_tokio [ADDR] [--threads N]");
            std::process::exit(2)
        });
    run(&addr, threads, |at| {
        let mode = threads.map_or("current_thread".into(), |n| format!("{n} workers"));
        println!("echo server (tokio, {mode}) on {at}");
    })
}

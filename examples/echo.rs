//! A TCP echo server: every byte a client sends comes back.
//!
//!     cargo run --release --example echo [ADDR]     (default 127.0.0.1:7000)
//!
//! `serve` is also started in-process by `tests/examples.rs`.

use futures::{AsyncReadExt, AsyncWriteExt};
use solo::net::{TcpListener, TcpStream};
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

#[allow(dead_code)] // the tests include this file for `serve` only
fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7000".into());
    solo::run(async move {
        let listener = TcpListener::bind(&addr)?;
        println!("echo server on {}", listener.local_addr()?);
        serve(listener).await
    })?
}

//! `examples/echo.rs` on monoio: every byte a client sends comes back, thread-per-core.
//!
//!     cargo run --release --manifest-path benches/monoio/Cargo.toml --bin echo -- [ADDR] [--threads N]
//!     (default 127.0.0.1:7003)

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};

async fn echo(mut conn: monoio::net::TcpStream) {
    // The same 16 KiB buffer as solo's and tokio's echo. monoio owns it during each operation
    // and reads into its spare capacity (a read sets its length), as monoio's own echo does.
    let mut buf: Vec<u8> = Vec::with_capacity(16 * 1024);
    loop {
        let (res, b) = conn.read(buf).await;
        buf = b;
        match res {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let (res, b) = conn.write_all(buf).await;
        buf = b;
        if res.is_err() {
            return;
        }
        buf.clear();
    }
}

fn main() -> std::io::Result<()> {
    let args = solo_bench_peers::Args::from_env_or_exit("echo", "127.0.0.1:7003");
    solo_bench_peers::serve("echo server", &args, echo)
}

//! A TCP server that stops cleanly on Ctrl-C or SIGTERM: it stops accepting, lets in-flight
//! requests finish (each takes 1 s here), then shuts the loop down and reports what was left.
//!
//!     cargo run --example shutdown [ADDR]        (default 127.0.0.1:7001)
//!     printf 'hi\n' | nc 127.0.0.1 7001          then press Ctrl-C while it answers

use std::rc::Rc;
use std::time::Duration;

use futures::{AsyncReadExt, AsyncWriteExt};
use solo::net::TcpListener;
use solo::{EventLoop, Handle};

fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:7001".into());
    let el = EventLoop::new()?;
    let h = el.handle();
    let server = el
        .run_until_complete(async { TcpListener::bind(&addr) })
        .unwrap()?;
    println!("listening on {}", server.local_addr()?);

    let acceptor = Rc::new(h.spawn_named("acceptor", async move {
        let mut n = 0u64;
        // Out of fds, `incoming` backs off on the loop's timers instead of spinning, so the
        // signal handlers below still get their turn.
        let mut incoming = server.incoming();
        loop {
            let Ok((mut conn, peer)) = incoming.next().await else {
                return; // the listener itself failed
            };
            n += 1;
            Handle::current().spawn_named(&format!("request-{n}"), async move {
                let mut buf = [0u8; 1024];
                let len = conn.read(&mut buf).await.unwrap_or(0);
                solo::time::sleep(Duration::from_secs(1)).await; // "work"
                let _ = conn.write_all(&buf[..len]).await;
                println!("answered {peer}");
            });
        }
    }));

    // On a signal: stop accepting (cancel the acceptor), then stop the loop.
    for sig in [libc::SIGINT, libc::SIGTERM] {
        let (h2, acceptor) = (h.clone(), acceptor.clone());
        h.add_signal_handler(sig, move || {
            println!("signal {sig}: no new connections; finishing in-flight requests");
            acceptor.cancel();
            h2.stop();
        })?;
    }
    el.run_forever().unwrap();
    drop(acceptor);
    let report = el.shutdown(Duration::from_secs(5));
    println!("{report}");
    Ok(())
}

//! What monoio's twins of solo's example servers share: the command line, and starting one
//! monoio runtime per thread, each with its own `SO_REUSEPORT` listener on the same port
//! (thread-per-core, nothing shared between the threads; the kernel spreads connections).
//!
//! The driver is monoio's `FusionDriver`: io_uring where the kernel offers it, otherwise
//! monoio's epoll ("legacy") driver. `MONOIO_FORCE_LEGACY_DRIVER=1` forces the epoll driver
//! (monoio reads it). Each server prints which driver it got.

pub mod resp;

use std::future::Future;
use std::net::SocketAddr;

/// What a server was asked for on its command line: `[ADDR] [--threads N]`.
#[derive(Debug, Clone)]
pub struct Args {
    /// The address every thread listens on.
    pub addr: SocketAddr,
    /// How many threads (runtimes, listeners) to run.
    pub threads: usize,
}

impl Args {
    /// Reads `[ADDR] [--threads N]`; a bad command line is an error that says what was wrong.
    pub fn parse(
        mut args: impl Iterator<Item = String>,
        default_addr: &str,
    ) -> Result<Args, String> {
        let mut addr = None;
        let mut threads = 1;
        while let Some(a) = args.next() {
            if a == "--threads" {
                let v = args.next().ok_or("--threads needs a value")?;
                threads = match v.parse::<usize>() {
                    Ok(n) if n > 0 => n,
                    _ => return Err(format!("--threads: not a positive count: {v:?}")),
                };
            } else if a.starts_with("--") {
                return Err(format!("unknown flag {a:?}"));
            } else if addr.is_none() {
                addr = Some(a.parse().map_err(|e| format!("bad address {a:?}: {e}"))?);
            } else {
                return Err(format!("unexpected argument {a:?}"));
            }
        }
        let addr = match addr {
            Some(a) => a,
            None => default_addr.parse().map_err(|e| format!("{e}"))?,
        };
        Ok(Args { addr, threads })
    }

    /// The command line of this process, or the usage and exit status 2.
    pub fn from_env_or_exit(name: &str, default_addr: &str) -> Args {
        Args::parse(std::env::args().skip(1), default_addr).unwrap_or_else(|problem| {
            eprintln!("{problem}\nusage: {name} [ADDR] [--threads N]   (default {default_addr})");
            std::process::exit(2)
        })
    }
}

/// Which driver a runtime built now gets: "io_uring" or "epoll (legacy)".
pub fn driver_name() -> &'static str {
    if monoio::utils::detect_uring() {
        "io_uring"
    } else {
        "epoll (legacy)"
    }
}

/// A listener on `addr` with `SO_REUSEPORT`, so that every thread can have its own.
fn reuseport_listener(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Runs `threads` monoio runtimes, one per thread, each accepting on its own listener and
/// running `conn` for every connection it accepts; returns only if a thread fails.
///
/// All listeners are bound before any thread starts, so that a bad address fails at once and a
/// client that connects after the banner finds every listener there.
pub fn serve<F, Fut>(name: &str, args: &Args, conn: F) -> std::io::Result<()>
where
    F: Fn(monoio::net::TcpStream) -> Fut + Send + Clone + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let listeners = (0..args.threads)
        .map(|_| reuseport_listener(args.addr))
        .collect::<std::io::Result<Vec<_>>>()?;
    let local = listeners[0].local_addr()?;
    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(i, std_listener)| {
            let conn = conn.clone();
            std::thread::Builder::new()
                .name(format!("monoio-{i}"))
                .spawn(move || -> std::io::Result<()> {
                    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
                        .with_entries(1024)
                        .enable_timer()
                        .build()?;
                    rt.block_on(async move {
                        let listener = monoio::net::TcpListener::from_std(std_listener)?;
                        loop {
                            match listener.accept().await {
                                Ok((stream, _)) => {
                                    let _ = stream.set_nodelay(true);
                                    monoio::spawn(conn(stream));
                                }
                                // Out of fds, a connection reset before it was accepted:
                                // skip it, after a pause that lets fds come back.
                                Err(_) => {
                                    monoio::time::sleep(std::time::Duration::from_millis(1)).await
                                }
                            }
                        }
                    })
                })
        })
        .collect::<std::io::Result<_>>()?;
    println!(
        "{name} (monoio, {} thread(s), {}) on {local}",
        args.threads,
        driver_name()
    );
    for t in threads {
        match t.join() {
            Ok(r) => r?,
            Err(_) => return Err(std::io::Error::other("a server thread panicked")),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::Args;

    fn parse(line: &[&str]) -> Result<Args, String> {
        Args::parse(line.iter().map(|s| s.to_string()), "127.0.0.1:7000")
    }

    #[test]
    fn reads_address_and_threads() {
        let a = parse(&["127.0.0.1:9000", "--threads", "4"]).unwrap();
        assert_eq!((a.addr.port(), a.threads), (9000, 4));
        let a = parse(&[]).unwrap();
        assert_eq!((a.addr.port(), a.threads), (7000, 1));
    }

    #[test]
    fn refuses_bad_command_lines() {
        for bad in [
            &["--threads"][..],
            &["--threads", "0"],
            &["--threads", "x"],
            &["--shards", "2"],
            &["nowhere"],
            &["127.0.0.1:1", "127.0.0.1:2"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was accepted");
        }
    }
}

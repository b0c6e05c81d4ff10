//! The echo load generator of the scaling benchmark, and the client of `benches/echo_vs.sh`.
//!
//!     echo_load ADDR [--conns C] [--threads T] [--secs S] [--size B]
//!         Throughput: C connections spread over T threads, each thread driving its
//!         connections through epoll (mio), every connection doing B-byte round trips (send
//!         B bytes, wait for all B to come back, again) for S seconds. Prints the round trips
//!         per second on its last line: `rps N`.
//!     echo_load ADDR --rounds R [--conns C]
//!         The shape of `tcp_echo_C` in `benches/versus.rs` (`echo_client`), out of process: C
//!         blocking connections, one thread each, each doing R round trips of 1 KiB
//!         (write_all, read_exact). Prints `ns_per_op N`: elapsed time / (C × R).
//!
//! Defaults: 100 connections, 1 thread, 5 s, 1024 bytes. Every byte that comes back is checked
//! against what was sent; an echo that differs, or a connection that fails, ends the run with
//! an error (exit status 1), so a broken server cannot pass for a fast one.

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use mio::{Events, Interest, Poll, Token};

#[derive(Debug)]
struct Opts {
    addr: SocketAddr,
    conns: usize,
    threads: usize,
    secs: f64,
    size: usize,
    rounds: Option<usize>,
}

fn parse(mut args: impl Iterator<Item = String>) -> Result<Opts, String> {
    let addr = args
        .next()
        .ok_or("missing ADDR")?
        .parse()
        .map_err(|e| format!("bad ADDR: {e}"))?;
    let mut o = Opts {
        addr,
        conns: 100,
        threads: 1,
        secs: 5.0,
        size: 1024,
        rounds: None,
    };
    while let Some(flag) = args.next() {
        let v = args.next().ok_or(format!("{flag} needs a value"))?;
        let count = || match v.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!("{flag}: not a positive count: {v:?}")),
        };
        match flag.as_str() {
            "--conns" => o.conns = count()?,
            "--threads" => o.threads = count()?,
            "--size" => o.size = count()?,
            "--rounds" => o.rounds = Some(count()?),
            "--secs" => {
                o.secs = match v.parse::<f64>() {
                    Ok(s) if s > 0.0 && s.is_finite() => s,
                    _ => return Err(format!("--secs: not a positive number: {v:?}")),
                }
            }
            _ => return Err(format!("unknown flag {flag:?}")),
        }
    }
    Ok(o)
}

/// One connection of the throughput mode: what is left to send and to receive of the current
/// round trip.
struct Conn {
    stream: mio::net::TcpStream,
    sent: usize,
    received: usize,
}

/// Moves `c` on as far as it goes without blocking; returns the round trips it completed.
fn drive(c: &mut Conn, msg: &[u8], buf: &mut [u8]) -> std::io::Result<u64> {
    let mut done = 0;
    loop {
        while c.sent < msg.len() {
            match c.stream.write(&msg[c.sent..]) {
                Ok(n) => c.sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        while c.received < c.sent {
            match c.stream.read(&mut buf[..c.sent - c.received]) {
                Ok(0) => return Err(ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    if buf[..n] != msg[c.received..c.received + n] {
                        return Err(std::io::Error::other("the echo differs from what was sent"));
                    }
                    c.received += n;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if c.received < msg.len() {
            return Ok(done);
        }
        done += 1;
        (c.sent, c.received) = (0, 0);
    }
}

/// One thread of the throughput mode: its connections until `deadline`; the round trips done.
fn load_thread(
    streams: Vec<std::net::TcpStream>,
    size: usize,
    start: Arc<Barrier>,
    secs: f64,
) -> std::io::Result<u64> {
    // Set up, then meet the others at the barrier even if setting up failed, so that no
    // thread waits there for one that left.
    let setup = (|| -> std::io::Result<(Poll, Vec<Conn>)> {
        let poll = Poll::new()?;
        let mut conns = Vec::with_capacity(streams.len());
        for (i, s) in streams.into_iter().enumerate() {
            s.set_nonblocking(true)?;
            let mut stream = mio::net::TcpStream::from_std(s);
            poll.registry().register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            conns.push(Conn {
                stream,
                sent: 0,
                received: 0,
            });
        }
        Ok((poll, conns))
    })();
    start.wait();
    let (mut poll, mut conns) = setup?;
    let msg: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let mut buf = vec![0u8; size];
    let mut events = Events::with_capacity(1024);
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let mut total = 0;
    for c in &mut conns {
        total += drive(c, &msg, &mut buf)?;
    }
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Ok(total);
        }
        poll.poll(&mut events, Some(deadline - now))?;
        for ev in &events {
            total += drive(&mut conns[ev.token().0], &msg, &mut buf)?;
        }
    }
}

fn throughput(o: &Opts) -> std::io::Result<f64> {
    let mut per_thread: Vec<Vec<std::net::TcpStream>> = (0..o.threads).map(|_| vec![]).collect();
    for i in 0..o.conns {
        let s = std::net::TcpStream::connect(o.addr)?;
        s.set_nodelay(true)?;
        per_thread[i % o.threads].push(s);
    }
    let start = Arc::new(Barrier::new(o.threads + 1));
    let threads: Vec<_> = per_thread
        .into_iter()
        .map(|streams| {
            let (start, size, secs) = (start.clone(), o.size, o.secs);
            std::thread::spawn(move || load_thread(streams, size, start, secs))
        })
        .collect();
    start.wait();
    let began = Instant::now();
    let mut total = 0;
    for t in threads {
        total += t
            .join()
            .map_err(|_| std::io::Error::other("a load thread panicked"))??;
    }
    Ok(total as f64 / began.elapsed().as_secs_f64())
}

/// `benches/common/mod.rs`'s `echo_client`, out of process.
fn rounds(o: &Opts, rounds: usize) -> std::io::Result<f64> {
    let barrier = Arc::new(Barrier::new(o.conns + 1));
    let addr = o.addr;
    let threads: Vec<_> = (0..o.conns)
        .map(|_| {
            let b = barrier.clone();
            let s = std::net::TcpStream::connect(addr);
            std::thread::spawn(move || -> std::io::Result<()> {
                let connected = s.and_then(|s| s.set_nodelay(true).map(|_| s));
                b.wait();
                let mut s = connected?;
                let msg = [7u8; 1024];
                let mut back = [0u8; 1024];
                for _ in 0..rounds {
                    s.write_all(&msg)?;
                    s.read_exact(&mut back)?;
                    if back != msg {
                        return Err(std::io::Error::other("the echo differs from what was sent"));
                    }
                }
                Ok(())
            })
        })
        .collect();
    barrier.wait();
    let start = Instant::now();
    for t in threads {
        t.join()
            .map_err(|_| std::io::Error::other("a client thread panicked"))??;
    }
    Ok(start.elapsed().as_nanos() as f64 / (o.conns * rounds) as f64)
}

fn main() {
    let o = parse(std::env::args().skip(1)).unwrap_or_else(|problem| {
        eprintln!(
            "{problem}\nusage: echo_load ADDR [--conns C] [--threads T] [--secs S] [--size B] \
             | echo_load ADDR --rounds R [--conns C]"
        );
        std::process::exit(2)
    });
    let result = match o.rounds {
        Some(r) => rounds(&o, r).map(|ns| println!("ns_per_op {ns:.1}")),
        None => throughput(&o).map(|rps| {
            println!(
                "{} connections, {} thread(s), {} B round trips, {} s",
                o.conns, o.threads, o.size, o.secs
            );
            println!("rps {rps:.0}");
        }),
    };
    if let Err(e) = result {
        eprintln!("echo_load: {e}");
        std::process::exit(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(line: &[&str]) -> Result<Opts, String> {
        parse(line.iter().map(|s| s.to_string()))
    }

    #[test]
    fn reads_and_refuses_command_lines() {
        let o = opts(&["127.0.0.1:1", "--conns", "7", "--secs", "0.5"]).unwrap();
        assert_eq!((o.conns, o.threads, o.secs, o.size), (7, 1, 0.5, 1024));
        for bad in [
            &[][..],
            &["nowhere"],
            &["127.0.0.1:1", "--conns"],
            &["127.0.0.1:1", "--conns", "0"],
            &["127.0.0.1:1", "--secs", "-1"],
            &["127.0.0.1:1", "--secs", "inf"],
            &["127.0.0.1:1", "--depth", "2"],
        ] {
            assert!(opts(bad).is_err(), "{bad:?}");
        }
    }

    /// A std echo server on a thread per connection, for the two modes to drive.
    fn echo_server(corrupt: bool) -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let mut s = s.unwrap();
                std::thread::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            return;
                        }
                        if corrupt {
                            buf[0] ^= 1;
                        }
                        if s.write_all(&buf[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn both_modes_count_round_trips_and_catch_a_bad_echo() {
        let addr = echo_server(false).to_string();
        let o = opts(&[&addr, "--conns", "8", "--threads", "2", "--secs", "0.3"]).unwrap();
        assert!(throughput(&o).unwrap() > 0.0);
        let o = opts(&[&addr, "--conns", "3", "--rounds", "50"]).unwrap();
        assert!(rounds(&o, 50).unwrap() > 0.0);
        let bad = echo_server(true).to_string();
        let o = opts(&[&bad, "--conns", "2", "--secs", "0.3"]).unwrap();
        assert!(throughput(&o).is_err());
        assert!(rounds(&o, 5).is_err());
    }
}

//! `examples/kv.rs --shards`: what a batch of pipelined requests for keys of another shard
//! allocates. A round trip to the other shard allocates its message (the flight, its task, the
//! `Peer::ask` closure and reply) and the connection's boxed wait, and no buffer: the requests
//! and their replies travel in an envelope whose buffers are reused. Before, every forwarded
//! request allocated its arguments and its reply, about ten allocations each. This binary's
//! global allocator counts every allocation of every thread; the client is a plain thread with
//! blocking std sockets and buffers made before it counts. This file holds one test, so nothing
//! else allocates while it measures.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use solo::shards::{Builder, Port, Share};

mod common;

#[path = "common/alloc_count.rs"]
mod alloc_count;
use alloc_count::{allocations, request, run};

#[allow(dead_code)]
#[path = "../examples/kv.rs"]
mod kv;

/// Requests per batch (redis-benchmark's `-P 16`), and batches after the warm-up.
const PIPELINE: usize = 16;
const BATCHES: usize = 1_000;
const WARM_UP: usize = 50;

#[test]
fn a_sharded_batch_allocates_its_messages_and_no_buffers() {
    let _watchdog = common::watchdog!();
    let count = 2;
    let port = Port::bind("127.0.0.1:0", Share::Acceptor).unwrap();
    let addr = port.local_addr();
    let builder = Builder::new()
        .count(count)
        .signals(false)
        .grace(Duration::from_secs(2));
    let stopper = builder.stopper();
    let p = port.clone();
    let server = std::thread::spawn(move || {
        builder.run(|shard| kv::serve_shard(shard, p.clone(), kv::Limits::default()))
    });
    while port.stats().len() < count {
        std::thread::sleep(Duration::from_millis(1));
    }

    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    c.write_all(&request(&[b"PING"])).unwrap();
    c.read_exact(&mut [0u8; 7]).unwrap();
    let home = port.stats().iter().position(|s| s.open == 1).unwrap();
    // Eight keys of the other shard and eight of this one: a SET and a GET of each (the same
    // keys every batch, so the store overwrites in place and allocates nothing).
    let keys: Vec<String> = (0..)
        .map(|i| format!("key:{i:012}"))
        .filter(|k| kv::owner(k.as_bytes(), count) != home)
        .take(PIPELINE / 4)
        .chain(
            (0..)
                .map(|i| format!("key:{i:012}"))
                .filter(|k| kv::owner(k.as_bytes(), count) == home)
                .take(PIPELINE / 4),
        )
        .collect();
    let value = [b'v'; 64];
    let (mut batch, mut expect) = (Vec::new(), Vec::new());
    for k in &keys {
        batch.extend(request(&[b"SET", k.as_bytes(), &value]));
        expect.extend_from_slice(b"+OK\r\n");
        batch.extend(request(&[b"GET", k.as_bytes()]));
        expect.extend_from_slice(b"$64\r\n");
        expect.extend_from_slice(&value);
        expect.extend_from_slice(b"\r\n");
    }
    let mut back = vec![0u8; expect.len()];
    run(&mut c, &batch, &expect, &mut back, WARM_UP);
    let before = allocations();
    run(&mut c, &batch, &expect, &mut back, BATCHES);
    let allocations = allocations() - before;
    drop(c);
    stopper.stop();
    let counts = server.join().unwrap().unwrap();
    let forwarded = counts[home].forwarded - (WARM_UP * PIPELINE / 2) as u64;
    assert_eq!(
        forwarded,
        (BATCHES * PIPELINE / 2) as u64,
        "{}",
        counts[home]
    );
    // A batch sends one message (it is the one connection): about 6 allocations. Ten per
    // forwarded request, as before, would be 80 a batch.
    let per_batch = allocations as f64 / BATCHES as f64;
    assert!(
        per_batch <= 8.0,
        "{allocations} allocations over {BATCHES} batches of {PIPELINE} requests, half of them \
         for the other shard: {per_batch:.1} a batch"
    );
    eprintln!("{per_batch:.2} allocations a batch");
}

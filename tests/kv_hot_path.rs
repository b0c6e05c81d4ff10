//! `examples/kv.rs`'s hot path allocates nothing per request and nothing per batch: a client
//! pipelines batches of SETs and GETs of one key (an overwrite reuses the key and the value's
//! buffer) while this binary's global allocator counts every allocation, of all threads.
//!
//! The client is a plain thread with blocking std sockets and buffers made before it counts, so
//! what it counts is the server's: the loop, the connection's task, the parser, `execute`, the
//! replies. This file holds one test, so nothing else allocates while it measures.

use std::net::{SocketAddr, TcpStream};

use solo::EventLoop;

mod common;

#[path = "common/alloc_count.rs"]
mod alloc_count;
use alloc_count::{allocations, request, run};

#[allow(dead_code)]
#[path = "../examples/kv.rs"]
mod kv;

/// Requests per batch (redis-benchmark's `-P 16`), and batches after the warm-up.
const PIPELINE: usize = 16;
const BATCHES: usize = 2_000;
const WARM_UP: usize = 50;

fn client(addr: SocketAddr) -> usize {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_nodelay(true).unwrap();
    let value = [b'v'; 64];
    let (mut batch, mut expect) = (Vec::new(), Vec::new());
    for i in 0..PIPELINE {
        if i % 2 == 0 {
            batch.extend(request(&[b"SET", b"key:000000000042", &value]));
            expect.extend_from_slice(b"+OK\r\n");
        } else {
            batch.extend(request(&[b"GET", b"key:000000000042"]));
            expect.extend_from_slice(b"$64\r\n");
            expect.extend_from_slice(&value);
            expect.extend_from_slice(b"\r\n");
        }
    }
    let mut back = vec![0u8; expect.len()];
    run(&mut c, &batch, &expect, &mut back, WARM_UP);
    let before = allocations();
    run(&mut c, &batch, &expect, &mut back, BATCHES);
    allocations() - before
}

#[test]
fn kv_allocates_nothing_per_request_or_per_batch() {
    let _watchdog = common::watchdog!();
    let el = EventLoop::new().unwrap();
    let h = el.handle();
    let allocations = el
        .run_until_complete(async move {
            let addr = common::start_server(kv::serve);
            h.run_in_executor(move || client(addr)).await
        })
        .unwrap()
        .unwrap();
    // The pool's thread and the executor's bookkeeping allocate at its start and end, not per
    // batch: a handful in all. One allocation per batch would be 2,000.
    assert!(
        allocations < BATCHES / 100,
        "{allocations} allocations over {BATCHES} batches of {PIPELINE} requests"
    );
}

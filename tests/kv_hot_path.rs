//! `examples/kv.rs`'s hot path allocates nothing per request and nothing per batch: a client
//! pipelines batches of SETs and GETs of one key (an overwrite reuses the key and the value's
//! buffer) while this binary's global allocator counts every allocation, of all threads.
//!
//! The client is a plain thread with blocking std sockets and buffers made before it counts, so
//! what it counts is the server's: the loop, the connection's task, the parser, `execute`, the
//! replies. This file holds one test, so nothing else allocates while it measures.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};

use solo::EventLoop;

mod common;

#[allow(dead_code)]
#[path = "../examples/kv.rs"]
mod kv;

/// Counts allocations (calls to `alloc` and `realloc`), forwarding everything to the system
/// allocator.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator with the caller's arguments; the
// counter is only a figure.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Requests per batch (redis-benchmark's `-P 16`), and batches after the warm-up.
const PIPELINE: usize = 16;
const BATCHES: usize = 2_000;
const WARM_UP: usize = 50;

/// One RESP request.
fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut r = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        r.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        r.extend_from_slice(a);
        r.extend_from_slice(b"\r\n");
    }
    r
}

/// Sends `batches` batches (each one write: SETs, then GETs) and reads each batch's replies
/// before the next, as redis-benchmark's connections do. Allocates nothing: the buffers are
/// the caller's.
fn run(c: &mut TcpStream, batch: &[u8], expect: &[u8], back: &mut [u8], batches: usize) {
    for _ in 0..batches {
        c.write_all(batch).unwrap();
        c.read_exact(back).unwrap();
        assert_eq!(&back[..], expect);
    }
}

/// The client: warms up, then counts the process's allocations over `BATCHES` batches.
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
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    run(&mut c, &batch, &expect, &mut back, BATCHES);
    ALLOCATIONS.load(Ordering::SeqCst) - before
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

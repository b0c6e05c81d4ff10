//! A global allocator that counts allocations, and a blocking RESP client, for the files that
//! measure what `examples/kv.rs` allocates (`kv_hot_path.rs`, `kv_sharded_hot_path.rs`). Each
//! of those files is a test binary of its own holding one test, so that nothing else allocates
//! while it measures; they include this file with `#[path]`, which makes the allocator theirs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts allocations (calls to `alloc` and `realloc`), forwarding everything to the system
/// allocator.
pub struct Counting;

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

/// Allocations so far, by every thread of this binary.
pub fn allocations() -> usize {
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// One RESP request.
pub fn request(args: &[&[u8]]) -> Vec<u8> {
    let mut r = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        r.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        r.extend_from_slice(a);
        r.extend_from_slice(b"\r\n");
    }
    r
}

/// Sends `batches` batches, each one write, and reads each batch's replies before the next, as
/// redis-benchmark's connections do. Allocates nothing: the buffers are the caller's.
pub fn run(c: &mut TcpStream, batch: &[u8], expect: &[u8], back: &mut [u8], batches: usize) {
    for _ in 0..batches {
        c.write_all(batch).unwrap();
        c.read_exact(back).unwrap();
        assert!(back == expect, "a reply differs from what was expected");
    }
}

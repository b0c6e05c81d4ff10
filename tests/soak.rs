//! Soak: tens of thousands of connect/send/close cycles against the echo example's server, in
//! this process on 127.0.0.1, with the clients on the same loop. Afterwards the process must
//! have the file descriptors and the heap it had before: a leak of one fd or one allocation per
//! connection shows as thousands.
//!
//! The heap is counted by this binary's global allocator (live bytes and live allocations, all
//! threads). This file holds one test, so nothing else allocates or opens fds while it
//! measures. Bounded in count ([`CYCLES`]) and in time ([`TIME_CAP`]: a slow machine stops
//! early, and says how far it got).

use std::alloc::{GlobalAlloc, Layout, System};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{AsyncReadExt, AsyncWriteExt};
use solo::net::TcpStream;
use solo::{EventLoop, Handle};

mod common;

#[allow(dead_code)]
#[path = "../examples/echo.rs"]
mod echo;

/// Counts live bytes and live allocations, forwarding everything to the system allocator.
struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator with the caller's arguments; the
// counters are only figures.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller upholds `alloc`'s contract, passed on unchanged.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            ALLOCS.fetch_add(1, Ordering::Relaxed);
            let live = BYTES.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        ALLOCS.fetch_sub(1, Ordering::Relaxed);
        BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            BYTES.fetch_sub(layout.size(), Ordering::Relaxed);
            let live = BYTES.fetch_add(new_size, Ordering::Relaxed) + new_size;
            PEAK.fetch_max(live, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Connect/send/close cycles in the soak (on each of the two loops). Each leaves a socket in
/// TIME_WAIT on the client's side; the ephemeral ports (about 28,000 by default) are counted
/// per destination, and each loop's server has a port of its own, so this stays below that.
const CYCLES: usize = 20_000;
/// Clients running cycles at once.
const CLIENTS: usize = 8;
/// Cycles before the baseline is taken, so that the loop's slabs and queues have grown to
/// what this load needs.
const WARM_UP: usize = 500;
/// The soak stops here even if it has not run all its cycles.
const TIME_CAP: Duration = Duration::from_secs(90);

/// Allowed drift from the baseline after the soak: a few allocations (a queue or a table that
/// a peak of load made grow moves to a bigger block, it does not add blocks), and their bytes.
/// A leak of one allocation in 2,000 cycles fails; so does one fd.
const SLACK_ALLOCS: usize = 8;
const SLACK_BYTES: usize = 64 * 1024;
/// What the soak may hold at its peak above the baseline: the connections open at once and
/// their buffers (16 KiB each on the server), not anything that grows with the cycles.
const PEAK_BYTES: usize = 4 * 1024 * 1024;

/// Open file descriptors of this process.
fn fds() -> usize {
    // The directory's own fd is counted too, every time alike.
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Heap {
    bytes: usize,
    allocs: usize,
}

fn heap() -> Heap {
    Heap {
        bytes: BYTES.load(Ordering::SeqCst),
        allocs: ALLOCS.load(Ordering::SeqCst),
    }
}

/// One cycle: connect, then (by `i`) echo a message and close, send and close without reading
/// the echo (the server may then write to a reset connection), or close at once.
async fn cycle(addr: SocketAddr, i: usize) -> io::Result<()> {
    let mut c = TcpStream::connect(addr).await?;
    match i % 8 {
        7 => {}
        5 => c.write_all(b"gone before the echo").await?,
        _ => {
            let msg = format!("cycle {i}");
            c.write_all(msg.as_bytes()).await?;
            let mut back = vec![0u8; msg.len()];
            c.read_exact(&mut back).await?;
            assert_eq!(back, msg.as_bytes());
        }
    }
    Ok(())
}

/// Runs up to `n` cycles on [`CLIENTS`] client tasks; stops at `deadline`. Returns how many
/// ran.
async fn cycles(addr: SocketAddr, n: usize, deadline: Instant) -> usize {
    let next = Rc::new(AtomicUsize::new(0));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let next = next.clone();
            Handle::current().spawn(async move {
                let mut done = 0;
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n || Instant::now() >= deadline {
                        return done;
                    }
                    cycle(addr, i).await.unwrap();
                    done += 1;
                }
            })
        })
        .collect();
    let mut done = 0;
    for c in clients {
        done += c.await.unwrap();
    }
    done
}

/// Lets the loop run until the fd count has stopped changing (the server's ends of closed
/// connections close when their tasks see the end of stream), or until it equals `want`.
async fn settle(want: Option<usize>) -> usize {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut last = fds();
    let mut stable = 0;
    loop {
        solo::time::sleep(Duration::from_millis(10)).await;
        let now = fds();
        if Some(now) == want || Instant::now() >= deadline {
            return now;
        }
        stable = if now == last { stable + 1 } else { 0 };
        if want.is_none() && stable >= 10 {
            return now;
        }
        last = now;
    }
}

/// The soak on one loop: warm-up, baseline, cycles, and the checks.
fn soak(debug: bool) {
    let el = EventLoop::builder()
        .debug(debug)
        // Slow polls on a loaded machine are not what this test is about; and a blocked-loop
        // report would resolve a stack and keep its symbol cache (megabytes) on the heap.
        .on_slow(|_| {})
        .blocked_threshold(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (ran, start, base_fds, base_heap, peak, after_fds, after_heap) = el
        .run_until_complete(async {
            let addr = common::start_server(echo::serve);
            let far = Instant::now() + TIME_CAP;
            assert_eq!(cycles(addr, WARM_UP, far).await, WARM_UP);
            let base_fds = settle(None).await;
            let base_heap = heap();
            PEAK.store(base_heap.bytes, Ordering::SeqCst);

            let start = Instant::now();
            let ran = cycles(addr, CYCLES, start + TIME_CAP).await;
            let peak = PEAK.load(Ordering::SeqCst) - base_heap.bytes;
            let after_fds = settle(Some(base_fds)).await;
            let after_heap = heap();
            (ran, start, base_fds, base_heap, peak, after_fds, after_heap)
        })
        .unwrap();
    let took = start.elapsed();
    eprintln!(
        "soak (debug {debug}): {ran} cycles in {:.1} s; fds {base_fds} -> {after_fds}; heap \
         {base_heap:?} -> {after_heap:?}, peak +{peak} bytes",
        took.as_secs_f64()
    );
    assert!(
        ran == CYCLES || took >= TIME_CAP,
        "stopped after {ran} cycles"
    );
    assert!(ran >= CYCLES / 10, "only {ran} cycles in {TIME_CAP:?}");
    assert_eq!(after_fds, base_fds, "fds leaked");
    assert!(
        after_heap.allocs <= base_heap.allocs + SLACK_ALLOCS,
        "allocations leaked: {base_heap:?} -> {after_heap:?} after {ran} cycles"
    );
    assert!(
        after_heap.bytes <= base_heap.bytes + SLACK_BYTES,
        "heap grew: {base_heap:?} -> {after_heap:?} after {ran} cycles"
    );
    assert!(peak <= PEAK_BYTES, "peak {peak} bytes above the baseline");
}

#[test]
fn connect_send_close_cycles_return_fds_and_heap_to_baseline() {
    let _watchdog = common::watchdog!(TIME_CAP * 3);
    soak(false);
    // Debug mode keeps a task table and per-site figures: they must not grow either.
    soak(true);
}

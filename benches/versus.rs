//! The quick comparison table: every workload, solo and tokio (current_thread, enable_all)
//! alternately in one process, median ns per operation, and the ratio tokio/solo (above 1 means
//! solo is faster).
//!
//!     cargo bench --bench versus                 # the table (under two minutes)
//!     cargo bench --bench versus -- --csv out.csv
//!     cargo bench --bench versus -- --quick      # fewer rounds, for a smoke test
//!     cargo bench --bench versus -- --only timeout   # workloads whose name contains this
//!
//! CSV columns: `workload,solo_ns_per_op,tokio_ns_per_op,ratio`. The `call_soon_*` rows have no
//! tokio figure (tokio has no callback API); the `floor_*` rows are the raw floors. The
//! `memory_*` rows are bytes, not nanoseconds. The `sync_*` rows compare channels, not
//! runtimes: `solo::sync::channel` against tokio's `mpsc::unbounded_channel` (`_tokio`) and
//! async-channel's `unbounded` (`_async_ch`, whose figure then stands in the tokio column), all
//! three driven by tasks of the same solo loop.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

mod common;
use common::*;

/// Counts live heap bytes, for the memory rows.
struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

struct Row {
    name: String,
    solo: f64,
    other: Option<f64>,
    unit: &'static str,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn ns_per_op(ops: usize, f: &mut dyn FnMut()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / ops as f64
}

/// The CPU time this process has used, in ns: all its threads, so that work a runtime hands to
/// a thread of its own is counted too.
fn process_cpu_ns() -> u128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; the call only writes it.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID)");
    ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128
}

fn cpu_ns_per_op(ops: usize, f: &mut dyn FnMut()) -> f64 {
    let t = process_cpu_ns();
    f();
    (process_cpu_ns() - t) as f64 / ops as f64
}

/// As `duel`, but timing the CPU the process spends rather than the wall clock: for workloads
/// that wait on real time, whose wall time is mostly waiting. (Nothing else in the process is
/// busy while a row runs: the echo servers start after the timer rows.)
fn duel_cpu(
    name: &str,
    ops: usize,
    rounds: usize,
    solo: &mut dyn FnMut(),
    other: &mut dyn FnMut(),
) -> Row {
    duel_by(name, ops, rounds, solo, other, (cpu_ns_per_op, "cpu-ns/op"))
}

/// Runs both sides alternately `rounds` times after one warm-up each; medians.
fn duel(
    name: &str,
    ops: usize,
    rounds: usize,
    solo: &mut dyn FnMut(),
    other: &mut dyn FnMut(),
) -> Row {
    duel_by(name, ops, rounds, solo, other, (ns_per_op, "ns/op"))
}

/// A measure of one run (`ops` operations), and the unit it gives.
type Measure = (fn(usize, &mut dyn FnMut()) -> f64, &'static str);

fn duel_by(
    name: &str,
    ops: usize,
    rounds: usize,
    solo: &mut dyn FnMut(),
    other: &mut dyn FnMut(),
    (measure, unit): Measure,
) -> Row {
    if skipped(name) {
        return skipped_row(name);
    }
    solo();
    other();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(measure(ops, solo));
        b.push(measure(ops, other));
    }
    let row = Row {
        name: name.into(),
        solo: median(a),
        other: Some(median(b)),
        unit,
    };
    print_row(&row);
    row
}

/// Three sides alternately, as `duel` does two: solo against two others, one row for each
/// (named `{name}_{b}` and `{name}_{c}`).
#[allow(clippy::too_many_arguments)]
fn trio(
    name: &str,
    ops: usize,
    rounds: usize,
    solo: &mut dyn FnMut(),
    (b_name, b): (&str, &mut dyn FnMut()),
    (c_name, c): (&str, &mut dyn FnMut()),
) -> [Row; 2] {
    if skipped(name) {
        return [skipped_row(name), skipped_row(name)];
    }
    solo();
    b();
    c();
    let (mut xs, mut ys, mut zs) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        xs.push(ns_per_op(ops, solo));
        ys.push(ns_per_op(ops, b));
        zs.push(ns_per_op(ops, c));
    }
    let solo = median(xs);
    let rows = [(b_name, ys), (c_name, zs)].map(|(other, v)| Row {
        name: format!("{name}_{other}"),
        solo,
        other: Some(median(v)),
        unit: "ns/op",
    });
    rows.iter().for_each(print_row);
    rows
}

fn solo_only(name: &str, ops: usize, rounds: usize, f: &mut dyn FnMut()) -> Row {
    if skipped(name) {
        return skipped_row(name);
    }
    f();
    let v: Vec<f64> = (0..rounds).map(|_| ns_per_op(ops, f)).collect();
    let row = Row {
        name: name.into(),
        solo: median(v),
        other: None,
        unit: "ns/op",
    };
    print_row(&row);
    row
}

/// A solo-only row timed alternately with its floor: the row, then the floor's row (named
/// `floor_boxed_closure`, after the first; `floor_boxed_closure_for_{name}` after later ones),
/// and the ratio printed beside them. `--only floor` or `--only call_soon` runs both.
fn against_floor(
    name: &str,
    ops: usize,
    rounds: usize,
    solo: &mut dyn FnMut(),
    floor: &mut dyn FnMut(),
) -> Vec<Row> {
    if skipped(name) && skipped("floor_boxed_closure") {
        return vec![skipped_row(name)];
    }
    solo();
    floor();
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        a.push(ns_per_op(ops, solo));
        b.push(ns_per_op(ops, floor));
    }
    let floor_name = if name == "call_soon_chain" {
        "floor_boxed_closure".to_string()
    } else {
        format!("floor_boxed_closure_for_{name}")
    };
    let rows = vec![
        Row {
            name: name.into(),
            solo: median(a),
            other: None,
            unit: "ns/op",
        },
        Row {
            name: floor_name,
            solo: median(b),
            other: None,
            unit: "ns/op",
        },
    ];
    rows.iter().for_each(print_row);
    println!(
        "{:<24} {:>12.2}x the floor, same run",
        format!("{name}/floor"),
        rows[0].solo / rows[1].solo
    );
    rows
}

/// `--only SUBSTRING` runs only the matching workloads.
fn skipped_row(name: &str) -> Row {
    Row {
        name: name.into(),
        solo: f64::NAN,
        other: None,
        unit: "skipped",
    }
}

fn skipped(name: &str) -> bool {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == "--only") {
        Some(i) => args.get(i + 1).is_some_and(|f| !name.contains(f.as_str())),
        None => false,
    }
}

fn print_row(r: &Row) {
    match r.other {
        Some(o) => println!(
            "{:<24} {:>12.1} {:>12.1} {:>8.2}x  {}",
            r.name,
            r.solo,
            o,
            o / r.solo,
            r.unit
        ),
        None => println!(
            "{:<24} {:>12.1} {:>12} {:>9}  {}",
            r.name, r.solo, "-", "-", r.unit
        ),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let csv = args
        .iter()
        .position(|a| a == "--csv")
        .and_then(|i| args.get(i + 1).cloned());
    let r = |n: usize| if quick { 1.max(n / 5) } else { n };

    let el = solo::EventLoop::new().unwrap();
    let rt = tokio_rt();
    let started = Instant::now();
    println!(
        "{:<24} {:>12} {:>12} {:>9}  unit",
        "workload", "solo", "tokio", "tokio/solo"
    );
    let mut rows = Vec::new();

    for n in [1_000, 10_000] {
        let rounds = if n == 1_000 { r(40) } else { r(10) };
        rows.push(duel(
            &format!("spawn_many_{n}"),
            n,
            rounds,
            &mut || solo_spawn_many(&el, n),
            &mut || tokio_spawn_many(&rt, n),
        ));
    }
    let ex = async_executor::LocalExecutor::new();
    for n in [1_000, 10_000] {
        let rounds = if n == 1_000 { r(40) } else { r(10) };
        let smol = duel(
            &format!("spawn_many_{n}_smol"),
            n,
            rounds,
            &mut || solo_spawn_many(&el, n),
            &mut || smol_spawn_many(&ex, n),
        );
        drop(smol); // printed for reference; the CSV compares with tokio only
    }
    rows.push(duel(
        "chained_spawn",
        1_000,
        r(40),
        &mut || solo_chained_spawn(&el, 1_000),
        &mut || tokio_chained_spawn(&rt, 1_000),
    ));
    rows.push(duel(
        "yield_many",
        200 * 1_000,
        r(10),
        &mut || solo_yield_many(&el, 200, 1_000),
        &mut || tokio_yield_many(&rt, 200, 1_000),
    ));
    rows.push(duel(
        "ping_pong",
        1_000,
        r(30),
        &mut || solo_ping_pong(&el, 1_000),
        &mut || tokio_ping_pong(&rt, 1_000),
    ));
    // solo::sync's channel against the thread-safe ones, all three on the same solo loop.
    rows.extend(trio(
        "sync_ping_pong",
        10_000,
        r(20),
        &mut || sync_ping_pong_solo(&el, 10_000),
        ("tokio", &mut || sync_ping_pong_tokio_mpsc(&el, 10_000)),
        ("async_ch", &mut || {
            sync_ping_pong_async_channel(&el, 10_000)
        }),
    ));
    rows.extend(trio(
        "sync_fan_in",
        10 * 2_000,
        r(20),
        &mut || sync_fan_in_solo(&el, 10, 2_000),
        ("tokio", &mut || sync_fan_in_tokio_mpsc(&el, 10, 2_000)),
        ("async_ch", &mut || {
            sync_fan_in_async_channel(&el, 10, 2_000)
        }),
    ));
    // Each call_soon row is timed in turns with the floor it is read against (a bare boxed
    // closure pushed, popped and called), so that the ratio comes from one run.
    rows.extend(against_floor(
        "call_soon_chain",
        1_000_000,
        r(8),
        &mut || solo_call_soon_chain(&el, 1_000_000),
        &mut || floor_boxed_closures(1_000_000),
    ));
    rows.extend(against_floor(
        "call_soon_batch",
        1_000_000,
        r(8),
        &mut || solo_call_soon_batch(&el, 1_000_000),
        &mut || floor_boxed_closures(1_000_000),
    ));
    rows.push(duel(
        "timers_fire",
        100_000,
        r(3),
        &mut || solo_timers_fire(&el, 100_000),
        &mut || tokio_timers_fire(&rt, 100_000),
    ));
    // The same workload by CPU time: its wall time is at least the 100 ms its timers span, so
    // the row above cannot pass 1.29 (tokio's 129 ms / 100 ms); this one is the firing's cost.
    rows.push(duel_cpu(
        "timers_fire_cpu",
        100_000,
        r(3),
        &mut || solo_timers_fire(&el, 100_000),
        &mut || tokio_timers_fire(&rt, 100_000),
    ));
    rows.push(duel(
        "timeout",
        100_000,
        r(10),
        &mut || solo_timeout(&el, 100_000),
        &mut || tokio_timeout(&rt, 100_000),
    ));
    rows.push(duel(
        "pending_timers",
        1_000_000,
        r(3),
        &mut || solo_pending_timers(&el, 1_000_000),
        &mut || tokio_pending_timers(&rt, 1_000_000),
    ));
    rows.push(duel(
        "pending_timers_task",
        1_000_000,
        r(3),
        &mut || solo_pending_timers_task(&el, 1_000_000),
        &mut || tokio_pending_timers_task(&rt, 1_000_000),
    ));

    // The same echo server on a default solo loop, on one that spins 100 µs before it sleeps
    // (`Builder::spin_before_sleep`; tokio has no such option, so its side is the same), and on
    // the polling backend (oneshot: one re-arm per wait), against the same tokio server.
    let tokio_addr = spawn_tokio_echo();
    for (suffix, spin, backend) in [
        ("", Duration::ZERO, solo::Backend::Mio),
        ("_spin", Duration::from_micros(100), solo::Backend::Mio),
        ("_polling", Duration::ZERO, solo::Backend::Polling),
    ] {
        let solo_addr = spawn_solo_echo_on(spin, backend, None);
        for (conns, rounds) in [(1usize, 4_000usize), (10, 800), (100, 80)] {
            let ops = conns * rounds;
            let mut a = || {
                echo_client(solo_addr, conns, rounds);
            };
            let mut b = || {
                echo_client(tokio_addr, conns, rounds);
            };
            rows.push(duel(
                &format!("tcp_echo_{conns}{suffix}"),
                ops,
                r(5),
                &mut a,
                &mut b,
            ));
        }
    }
    if !skipped("syscalls") {
        for backend in [solo::Backend::Mio, solo::Backend::Polling] {
            let (waits, modifies) = echo_syscalls(backend, 2_000);
            println!(
                "{:<24} {waits:>12.2} waits + {modifies:.2} epoll_ctl(MOD) per echo request",
                format!("syscalls_echo_{}", backend.name())
            );
            // Also as CSV rows (solo only: the loop's own counters, `Stats::backend_*`).
            for (what, per_request) in [("waits", waits), ("modifies", modifies)] {
                rows.push(Row {
                    name: format!("syscalls_echo_{}_{what}", backend.name()),
                    solo: per_request,
                    other: None,
                    unit: "syscalls/op",
                });
            }
        }
    }

    if !skipped("memory") {
        rows.extend(memory_rows());
    }
    for r in rows.iter().filter(|r| r.unit == "bytes") {
        print_row(r);
    }

    // The raw floors of the machine, for reading the table.
    rows.push(solo_only(
        "floor_pending_futures",
        1_000_000,
        r(3),
        &mut || floor_pending_futures(&el, 1_000_000),
    ));
    rows.push(solo_only("floor_epoll_wait_0", 100_000, r(5), &mut || {
        floor_epoll_wait(100_000)
    }));
    rows.push(solo_only("floor_loopback_rw", 100_000, r(5), &mut || {
        floor_loopback(100_000)
    }));
    println!("total time: {:.1} s", started.elapsed().as_secs_f64());

    if let Some(path) = csv {
        let mut out = String::from("workload,solo_ns_per_op,tokio_ns_per_op,ratio\n");
        for r in rows.iter().filter(|r| r.unit != "skipped") {
            match r.other {
                Some(o) => out.push_str(&format!(
                    "{},{:.1},{:.1},{:.3}\n",
                    r.name,
                    r.solo,
                    o,
                    o / r.solo
                )),
                None => out.push_str(&format!("{},{:.1},,\n", r.name, r.solo)),
            }
        }
        std::fs::write(&path, out).unwrap();
        println!("wrote {path}");
    }
}

/// Live heap bytes per object, each measured on a fresh loop and a fresh runtime, so that memory
/// freed late by earlier workloads does not count, and the growth of internal tables (slabs,
/// queues) does: that is part of what each object costs.
fn memory_rows() -> Vec<Row> {
    const N: usize = 10_000;
    const T: usize = 100_000;
    const C: usize = 1_000;
    let once = |f: &mut dyn FnMut() -> f64| f();
    let fresh = || (solo::EventLoop::new().unwrap(), tokio_rt());
    let (el, rt) = fresh();
    let (el, rt) = (&el, &rt);

    // Idle tasks: spawned, polled once, pending; handles kept in a Vec made beforehand.
    let solo_task = once(&mut || {
        let h = el.handle();
        let mut tasks = Vec::with_capacity(N);
        let before = live();
        for _ in 0..N {
            tasks.push(h.spawn(std::future::pending::<()>()));
        }
        el.stop();
        el.run_forever().unwrap();
        let per = (live() - before) as f64 / N as f64;
        for t in &tasks {
            t.cancel();
        }
        el.stop();
        el.run_forever().unwrap();
        per
    });
    let tokio_task = once(&mut || {
        rt.block_on(async {
            let mut tasks = Vec::with_capacity(N);
            let before = live();
            for _ in 0..N {
                tasks.push(tokio::spawn(std::future::pending::<()>()));
            }
            tokio::task::yield_now().await;
            let per = (live() - before) as f64 / N as f64;
            for t in &tasks {
                t.abort();
            }
            tokio::task::yield_now().await;
            per
        })
    });

    let (el, rt) = fresh();
    let (el, rt) = (&el, &rt);
    // Pending timers: a boxed sleep each, polled once (so registered).
    let solo_timer = once(&mut || {
        el.run_until_complete(async {
            let mut v = Vec::with_capacity(T);
            let before = live();
            for i in 0..T {
                v.push(Box::pin(solo::time::sleep(Duration::from_secs(
                    60 + i as u64,
                ))));
            }
            poll_all_once(&mut v).await;
            (live() - before) as f64 / T as f64
        })
        .unwrap()
    });
    let tokio_timer = once(&mut || {
        rt.block_on(async {
            let mut v = Vec::with_capacity(T);
            let before = live();
            for i in 0..T {
                v.push(Box::pin(tokio::time::sleep(Duration::from_secs(
                    60 + i as u64,
                ))));
            }
            poll_all_once(&mut v).await;
            (live() - before) as f64 / T as f64
        })
    });

    let (el, rt) = fresh();
    let (el, rt) = (&el, &rt);
    // Idle connections: accepted and registered on the server side, held.
    let solo_conn = once(&mut || {
        el.run_until_complete(async {
            let l = solo::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = l.local_addr().unwrap();
            let clients = std::thread::spawn(move || connect_many(addr, C));
            let mut held = Vec::with_capacity(C);
            let before = live();
            for _ in 0..C {
                held.push(l.accept().await.unwrap().0);
            }
            let per = (live() - before) as f64 / C as f64;
            drop((held, clients.join().unwrap()));
            per
        })
        .unwrap()
    });
    let tokio_conn = once(&mut || {
        rt.block_on(async {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let clients = std::thread::spawn(move || connect_many(addr, C));
            let mut held = Vec::with_capacity(C);
            let before = live();
            for _ in 0..C {
                held.push(l.accept().await.unwrap().0);
            }
            let per = (live() - before) as f64 / C as f64;
            drop((held, clients.join().unwrap()));
            per
        })
    });
    let row = |name: &str, s: f64, t: f64| Row {
        name: name.into(),
        solo: s,
        other: Some(t),
        unit: "bytes",
    };
    vec![
        row("memory_per_task", solo_task, tokio_task),
        row("memory_per_timer", solo_timer, tokio_timer),
        row("memory_per_connection", solo_conn, tokio_conn),
    ]
}

/// Opens `n` client connections (on a thread of its own, so the server can accept meanwhile;
/// its few allocations add about 4 bytes per connection of noise to the memory rows).
fn connect_many(addr: std::net::SocketAddr, n: usize) -> Vec<std::net::TcpStream> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(std::net::TcpStream::connect(addr).unwrap());
    }
    v
}

/// `epoll_wait` with a zero timeout on an empty epoll set.
fn floor_epoll_wait(n: usize) {
    // SAFETY: plain syscalls on an epoll fd we create and close; the event buffer is local.
    unsafe {
        let ep = libc::epoll_create1(0);
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
        for _ in 0..n {
            libc::epoll_wait(ep, evs.as_mut_ptr(), 8, 0);
        }
        libc::close(ep);
    }
}

/// A 1 KiB `write` and `read` on a loopback TCP connection, in one thread.
fn floor_loopback(n: usize) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut a = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (mut b, _) = l.accept().unwrap();
    a.set_nodelay(true).unwrap();
    let msg = [1u8; 1024];
    let mut buf = [0u8; 1024];
    for _ in 0..n {
        std::io::Write::write_all(&mut a, &msg).unwrap();
        std::io::Read::read_exact(&mut b, &mut buf).unwrap();
    }
}

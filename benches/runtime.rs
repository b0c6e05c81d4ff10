//! Criterion benches: one group per workload, each holding the solo version and tokio's
//! (current_thread, enable_all), plus smol's LocalExecutor where it fits and the raw floor for
//! `call_soon`.
//!
//!     cargo bench --bench runtime
//!     cargo bench --bench runtime -- spawn_many   # one group

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

mod common;
use common::*;

fn spawn(c: &mut Criterion) {
    let el = solo::EventLoop::new().unwrap();
    let rt = tokio_rt();
    let ex = async_executor::LocalExecutor::new();
    let mut g = c.benchmark_group("spawn_many");
    for n in [1_000usize, 10_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("solo", n), &n, |b, &n| {
            b.iter(|| solo_spawn_many(&el, n))
        });
        g.bench_with_input(BenchmarkId::new("tokio", n), &n, |b, &n| {
            b.iter(|| tokio_spawn_many(&rt, n))
        });
        g.bench_with_input(BenchmarkId::new("smol", n), &n, |b, &n| {
            b.iter(|| smol_spawn_many(&ex, n))
        });
    }
    g.finish();

    let mut g = c.benchmark_group("chained_spawn");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("solo", |b| b.iter(|| solo_chained_spawn(&el, 1_000)));
    g.bench_function("tokio", |b| b.iter(|| tokio_chained_spawn(&rt, 1_000)));
    g.finish();

    let mut g = c.benchmark_group("yield_many");
    g.throughput(Throughput::Elements(200_000));
    g.bench_function("solo", |b| b.iter(|| solo_yield_many(&el, 200, 1_000)));
    g.bench_function("tokio", |b| b.iter(|| tokio_yield_many(&rt, 200, 1_000)));
    g.finish();

    let mut g = c.benchmark_group("ping_pong");
    g.throughput(Throughput::Elements(1_000));
    g.bench_function("solo", |b| b.iter(|| solo_ping_pong(&el, 1_000)));
    g.bench_function("tokio", |b| b.iter(|| tokio_ping_pong(&rt, 1_000)));
    g.finish();
}

fn callbacks(c: &mut Criterion) {
    let el = solo::EventLoop::new().unwrap();
    let mut g = c.benchmark_group("call_soon");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("solo_chain", |b| {
        b.iter(|| solo_call_soon_chain(&el, 1_000_000))
    });
    g.bench_function("solo_batch", |b| {
        b.iter(|| solo_call_soon_batch(&el, 1_000_000))
    });
    g.bench_function("floor_vecdeque_boxed_fnonce", |b| {
        b.iter(|| floor_boxed_closures(1_000_000))
    });
    g.finish();
}

fn timers(c: &mut Criterion) {
    let el = solo::EventLoop::new().unwrap();
    let rt = tokio_rt();
    let mut g = c.benchmark_group("timers_fire");
    g.sample_size(10);
    g.throughput(Throughput::Elements(100_000));
    g.bench_function("solo", |b| b.iter(|| solo_timers_fire(&el, 100_000)));
    g.bench_function("tokio", |b| b.iter(|| tokio_timers_fire(&rt, 100_000)));
    g.finish();

    let mut g = c.benchmark_group("timeout");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("solo", |b| b.iter(|| solo_timeout(&el, 10_000)));
    g.bench_function("tokio", |b| b.iter(|| tokio_timeout(&rt, 10_000)));
    g.finish();

    let mut g = c.benchmark_group("pending_timers");
    g.sample_size(10);
    g.throughput(Throughput::Elements(1_000_000));
    g.bench_function("solo", |b| b.iter(|| solo_pending_timers(&el, 1_000_000)));
    g.bench_function("tokio", |b| b.iter(|| tokio_pending_timers(&rt, 1_000_000)));
    g.finish();
}

fn tcp(c: &mut Criterion) {
    let solo_addr = spawn_solo_echo(std::time::Duration::ZERO);
    let tokio_addr = spawn_tokio_echo();
    let mut g = c.benchmark_group("tcp_echo");
    g.sample_size(10);
    g.measurement_time(Duration::from_secs(5));
    for (conns, rounds) in [(1usize, 2_000usize), (10, 400), (100, 40)] {
        g.throughput(Throughput::Elements((conns * rounds) as u64));
        g.bench_with_input(BenchmarkId::new("solo", conns), &conns, |b, &n| {
            b.iter(|| echo_client(solo_addr, n, rounds))
        });
        g.bench_with_input(BenchmarkId::new("tokio", conns), &conns, |b, &n| {
            b.iter(|| echo_client(tokio_addr, n, rounds))
        });
    }
    g.finish();
}

#[allow(missing_docs)]
mod group {
    use super::*;
    criterion_group!(benches, spawn, callbacks, timers, tcp);
}
criterion_main!(group::benches);

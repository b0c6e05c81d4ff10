//! The program `run.sh` builds: see there.
use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

macro_rules! workloads {
    ($name:ident, $krate:ident) => {
        mod $name {
            use super::*;
            pub fn chain(el: &::$krate::EventLoop, n: usize) {
                fn step(h: &::$krate::Handle, left: Rc<Cell<usize>>) {
                    let k = left.get();
                    if k == 0 {
                        h.stop();
                        return;
                    }
                    left.set(k - 1);
                    let h2 = h.clone();
                    h.call_soon(move || step(&h2, left));
                }
                step(&el.handle(), Rc::new(Cell::new(n)));
                el.run_forever().unwrap();
            }
            pub fn spawn(el: &::$krate::EventLoop, n: usize) {
                let h = el.handle();
                el.run_until_complete(async move {
                    let hs: Vec<_> = (0..n).map(|_| h.spawn(async {})).collect();
                    for t in hs {
                        t.await.unwrap();
                    }
                })
                .unwrap();
            }
        }
    };
}
workloads!(without, nodebug);
workloads!(with, solo);

fn time(f: &mut dyn FnMut(), ops: usize) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_nanos() as f64 / ops as f64
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    const C: usize = 1_000_000;
    const S: usize = 10_000;
    let base = ::nodebug::EventLoop::new().unwrap();
    let off = ::solo::EventLoop::builder().debug(false).build().unwrap();
    let on = ::solo::EventLoop::builder().debug(true).build().unwrap();
    on.handle().set_on_slow(|_| {});
    let mut r: [Vec<f64>; 6] = Default::default();
    for round in 0..25 {
        let v = [
            time(&mut || without::chain(&base, C), C),
            time(&mut || with::chain(&off, C), C),
            time(&mut || with::chain(&on, C), C),
            time(&mut || without::spawn(&base, S), S),
            time(&mut || with::spawn(&off, S), S),
            time(&mut || with::spawn(&on, S), S),
        ];
        if round > 0 {
            for (acc, x) in r.iter_mut().zip(v) {
                acc.push(x);
            }
        }
    }
    let m: Vec<f64> = r.into_iter().map(median).collect();
    println!("workload          compiled out   debug off        debug on");
    for (name, i) in [("call_soon chain", 0), ("spawn + poll", 3)] {
        println!(
            "{name:<16} {:>9.1} ns {:>9.1} ns ({:+.1}%) {:>9.1} ns (+{:.0} ns per op)",
            m[i],
            m[i + 1],
            (m[i + 1] / m[i] - 1.0) * 100.0,
            m[i + 2],
            m[i + 2] - m[i + 1]
        );
    }
    drop(on); // prints the profile of the debug-mode loop
}

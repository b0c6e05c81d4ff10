//! Giving memory back after a burst.
//!
//! ```
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! for _ in 0..100_000 {
//!     h.call_soon(|| {}).cancel(); // a burst: the ready queue grows to 100,000 entries
//! }
//! h.stop();
//! el.run_forever().unwrap(); // runs the batch; the queue's memory is given back after a poll
//! ```
//!
//! Collections grow to their peak and, left alone, stay there: a loop that once queued a
//! million callbacks would hold 32 MB of empty ready queue forever. After each wait for I/O the
//! loop checks its queues, registries and indexes, and one that is mostly empty (under a quarter
//! of its capacity, and above [`KEEP`] entries) shrinks to twice what it holds. The factor
//! between the shrink threshold and the new capacity is the hysteresis that keeps a loop whose
//! load swings around a size from shrinking and growing again and again: after a shrink, the
//! collection must double before it reallocates, and lose three quarters of its entries before
//! it shrinks again, so the copying stays amortised O(1) per entry.
//!
//! A slab cannot move its entries (their keys are held elsewhere: task slots, reactor tokens),
//! so it is replaced only once it is empty.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::Hash;

use slab::Slab;

/// Capacity that is never given back: small collections are not worth a reallocation.
pub(crate) const KEEP: usize = 1024;

fn worth_it(len: usize, capacity: usize) -> bool {
    capacity > KEEP && len < capacity / 4
}

fn target(len: usize) -> usize {
    (len * 2).max(KEEP / 4)
}

pub(crate) fn vec<T>(v: &mut Vec<T>) {
    if worth_it(v.len(), v.capacity()) {
        v.shrink_to(target(v.len()));
    }
}

pub(crate) fn deque<T>(v: &mut VecDeque<T>) {
    if worth_it(v.len(), v.capacity()) {
        v.shrink_to(target(v.len()));
    }
}

pub(crate) fn map<K: Eq + Hash, V>(m: &mut HashMap<K, V>) {
    if worth_it(m.len(), m.capacity()) {
        m.shrink_to(target(m.len()));
    }
}

pub(crate) fn set<K: Eq + Hash>(s: &mut HashSet<K>) {
    if worth_it(s.len(), s.capacity()) {
        s.shrink_to(target(s.len()));
    }
}

/// Replaces an empty slab that grew large; see the module docs for why only an empty one.
pub(crate) fn slab<T>(s: &mut Slab<T>) {
    if s.is_empty() && s.capacity() > KEEP {
        *s = Slab::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shrinks_with_hysteresis() {
        let mut v: VecDeque<u32> = (0..100_000).collect();
        v.truncate(30_000);
        deque(&mut v);
        assert!(v.capacity() >= 100_000, "a quarter or more: kept");
        v.truncate(1_000);
        deque(&mut v);
        assert!(v.capacity() < 4_000, "shrunk to about twice the length");
        let cap = v.capacity();
        v.extend(0..(cap - v.len()) as u32);
        deque(&mut v);
        assert_eq!(v.capacity(), cap, "full again: no shrink, no thrash");
        let mut small: Vec<u8> = Vec::with_capacity(KEEP);
        vec(&mut small);
        assert_eq!(small.capacity(), KEEP, "small collections are left alone");
        let mut s: Slab<u8> = Slab::with_capacity(10 * KEEP);
        let k = s.insert(1);
        slab(&mut s);
        assert!(
            s.capacity() >= 10 * KEEP,
            "a slab with an entry keeps its keys"
        );
        s.remove(k);
        slab(&mut s);
        assert_eq!(s.capacity(), 0);
    }
}

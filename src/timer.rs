//! Timers: a hierarchical hashed timing wheel.
//!
//! # The idea
//!
//! A binary heap (asyncio's choice) costs O(log n) per insert and keeps cancelled entries around
//! until they reach the top, which is why asyncio had to add a rule that rebuilds the heap when
//! too many of its entries are cancelled. A timing wheel (Varghese & Lauck, used by the Linux
//! kernel and tokio) inserts and cancels in O(1) and frees a cancelled entry at once.
//!
//! Time is counted in *ticks* of 1 ms. The wheel has six levels of 64 slots each. Level 0 holds
//! timers due within the current 64 ms window, one slot per millisecond; level 1 one slot per 64
//! ms, and so on up to level 5, whose slots are 64⁵ ms (about 12.4 days) wide: together they span
//! 2³⁶ ms (about 2.2 years). A timer goes into the level of the highest base-64 digit in which its
//! tick differs from the wheel's current tick (`elapsed`), and into the slot named by that digit.
//!
//! When time reaches the start of a slot on a level above 0, the slot's timers *cascade*: each is
//! re-inserted relative to the new time and so lands on a lower level. When time reaches a level-0
//! slot, its timers fire. Each timer moves down at most five times in its life.
//!
//! Timers further away than the wheel spans are parked in the top level's furthest slot and
//! re-inserted when that slot comes round; the top level works as a ring.
//!
//! # Storage
//!
//! Entries live in a [`Slab`]; each slot is an intrusive doubly-linked list threaded through the
//! entries by slab index, and each level keeps a 64-bit mask of non-empty slots so the next
//! non-empty slot is found with one `trailing_zeros`. Cancelling unlinks the entry and removes it
//! from the slab, so a million scheduled-then-cancelled timers leave nothing behind.
//!
//! # Invariants
//!
//! * A timer never fires before its deadline: a deadline of `d` ns is placed at tick
//!   `ceil(d / 1 ms)` and fires only once the clock has reached that tick, so a timer fires at most
//!   1 ms after its deadline (plus however long the loop was busy).
//! * A timer whose deadline has already passed when it is inserted goes on the *due* list and fires
//!   on the next call to [`Wheel::expire`].
//! * Timers that fire in one call to [`Wheel::expire`] come out sorted by deadline, and timers
//!   with equal deadlines in the order they were inserted (by their sequence number).
//! * No level-`L` slot that contains `elapsed` is occupied: time only reaches a slot by processing
//!   it.

use slab::Slab;

/// One tick: 1 ms in nanoseconds.
pub(crate) const TICK_NS: u64 = 1_000_000;
const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// The span of the whole wheel, in ticks.
const MAX_TICKS: u64 = 1 << (SLOT_BITS as u64 * LEVELS as u64);
const NIL: u32 = u32::MAX;

/// Where an entry is: a wheel slot, the due list, or fired (out of every list, waiting to be
/// taken by the loop).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Place {
    Slot(u8, u8),
    Due,
    Fired,
}

/// Names one timer. The sequence number tells a live entry from a later one that reuses its slab
/// index, so a stale key never cancels somebody else's timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    index: u32,
    seq: u64,
}

#[derive(Debug)]
struct Entry<T> {
    deadline: u64,
    tick: u64,
    seq: u64,
    prev: u32,
    next: u32,
    place: Place,
    value: T,
}

#[derive(Clone, Copy, Debug)]
struct List {
    head: u32,
}

#[derive(Debug)]
struct Level {
    occupied: u64,
    slots: [List; SLOTS],
}

/// A timer that [`Wheel::expire`] found due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fired {
    /// The timer's deadline in loop nanoseconds.
    pub(crate) deadline: u64,
    pub(crate) key: TimerKey,
}

/// The timing wheel, generic over what a timer carries so it can be tested on its own.
#[derive(Debug)]
pub(crate) struct Wheel<T> {
    entries: Slab<Entry<T>>,
    levels: Box<[Level; LEVELS]>,
    due: List,
    /// The tick up to which the wheel has been processed.
    elapsed: u64,
    next_seq: u64,
}

#[inline]
fn ceil_tick(ns: u64) -> u64 {
    ns / TICK_NS + u64::from(ns % TICK_NS != 0)
}

/// The level for a timer at `tick` when the wheel stands at `elapsed` (`tick > elapsed`).
#[inline]
fn level_for(elapsed: u64, tick: u64) -> usize {
    let mut masked = (elapsed ^ tick) | (SLOTS as u64 - 1);
    if masked >= MAX_TICKS {
        masked = MAX_TICKS - 1;
    }
    let significant = 63 - masked.leading_zeros();
    (significant / SLOT_BITS) as usize
}

#[inline]
fn slot_for(tick: u64, level: usize) -> usize {
    ((tick >> (level as u32 * SLOT_BITS)) as usize) & (SLOTS - 1)
}

impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Wheel::new()
    }
}

impl<T> Wheel<T> {
    pub(crate) fn new() -> Wheel<T> {
        let level = || Level {
            occupied: 0,
            slots: [List { head: NIL }; SLOTS],
        };
        Wheel {
            entries: Slab::new(),
            levels: Box::new([level(), level(), level(), level(), level(), level()]),
            due: List { head: NIL },
            elapsed: 0,
            next_seq: 0,
        }
    }

    /// How many timers are pending or fired-but-not-taken.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Adds a timer with `deadline` (loop ns); `now` is the current loop time.
    pub(crate) fn insert(&mut self, deadline: u64, now: u64, value: T) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let tick = ceil_tick(deadline);
        let index = self.entries.insert(Entry {
            deadline,
            tick,
            seq,
            prev: NIL,
            next: NIL,
            place: Place::Due,
            value,
        });
        let index = u32::try_from(index).expect("more than 4 billion pending timers");
        if deadline <= now || tick <= self.elapsed {
            self.link(index, Place::Due);
        } else {
            self.place(index);
        }
        TimerKey { index, seq }
    }

    /// The value of a pending timer, if `key` still names one.
    pub(crate) fn get(&self, key: TimerKey) -> Option<&T> {
        match self.entries.get(key.index as usize) {
            Some(e) if e.seq == key.seq => Some(&e.value),
            _ => None,
        }
    }

    /// The value of a pending timer, mutably.
    pub(crate) fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        match self.entries.get_mut(key.index as usize) {
            Some(e) if e.seq == key.seq => Some(&mut e.value),
            _ => None,
        }
    }

    /// Removes a timer, pending or fired, and returns its value; `None` if it is already gone.
    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<T> {
        match self.entries.get(key.index as usize) {
            Some(e) if e.seq == key.seq => {}
            _ => return None,
        }
        self.unlink(key.index);
        Some(self.entries.remove(key.index as usize).value)
    }

    /// Removes a timer whose value passes `pred` (a fired timer that wakes a task, not one whose
    /// callback waits in the ready queue); `None`, leaving it in place, otherwise.
    pub(crate) fn remove_if(&mut self, key: TimerKey, pred: impl FnOnce(&T) -> bool) -> Option<T> {
        if !self.get(key).is_some_and(pred) {
            return None;
        }
        self.remove(key)
    }

    /// The loop time (ns) at which the wheel next needs attention, if any timer is pending.
    ///
    /// For a timer on level 0 that is its tick; for higher levels it is the start of the next
    /// occupied slot, when that slot cascades (so the loop may wake up without firing anything).
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        if self.entries.is_empty() {
            return None; // the common case of a loop with no timers, answered at once
        }
        if self.due.head != NIL {
            return Some(0);
        }
        self.next_expiration()
            .map(|(_, _, tick)| tick.saturating_mul(TICK_NS))
    }

    /// Moves every timer due at `now` (loop ns) out of the wheel and appends it to `fired`, sorted
    /// by deadline and then by insertion order. The entries stay in the slab (marked fired) until
    /// [`Wheel::remove`] takes them, so they can still be cancelled before they run.
    pub(crate) fn expire(&mut self, now: u64, fired: &mut Vec<Fired>) {
        let start = fired.len();
        // The due list: timers that were already late when inserted.
        let mut i = self.due.head;
        while i != NIL {
            let next = self.entries[i as usize].next;
            if self.entries[i as usize].deadline <= now {
                self.unlink(i);
                self.fire(i, fired);
            }
            i = next;
        }
        let now_tick = now / TICK_NS;
        while let Some((level, slot, tick)) = self.next_expiration() {
            if tick > now_tick {
                break;
            }
            // Take the whole slot, then move time to its start.
            let mut i = self.levels[level].slots[slot].head;
            self.levels[level].slots[slot].head = NIL;
            self.levels[level].occupied &= !(1u64 << slot);
            self.elapsed = tick;
            while i != NIL {
                let e = &mut self.entries[i as usize];
                let next = e.next;
                e.prev = NIL;
                e.next = NIL;
                if e.tick <= tick {
                    e.place = Place::Fired;
                    self.fire(i, fired);
                } else {
                    self.place(i);
                }
                i = next;
            }
        }
        if now_tick > self.elapsed {
            self.elapsed = now_tick;
        }
        let batch = &mut fired[start..];
        if batch.len() > 1 {
            let entries = &self.entries;
            batch.sort_unstable_by_key(|f| (f.deadline, entries[f.key.index as usize].seq));
        }
    }

    fn fire(&mut self, i: u32, fired: &mut Vec<Fired>) {
        let e = &mut self.entries[i as usize];
        e.place = Place::Fired;
        fired.push(Fired {
            deadline: e.deadline,
            key: TimerKey {
                index: i,
                seq: e.seq,
            },
        });
    }

    /// The earliest occupied slot: `(level, slot, tick at which it must be processed)`.
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        for (level, l) in self.levels.iter().enumerate() {
            if l.occupied == 0 {
                continue;
            }
            let shift = level as u32 * SLOT_BITS;
            let slot_range = 1u64 << shift;
            let level_range = slot_range << SLOT_BITS;
            let now_slot = (self.elapsed >> shift) as u32;
            let zeros = l
                .occupied
                .rotate_right(now_slot % SLOTS as u32)
                .trailing_zeros();
            let slot = ((zeros + now_slot) as usize) % SLOTS;
            let level_start = self.elapsed & !(level_range - 1);
            let mut tick = level_start + slot as u64 * slot_range;
            if tick <= self.elapsed {
                // Only the top level wraps around: this slot is in the next rotation.
                debug_assert_eq!(level, LEVELS - 1);
                tick += level_range;
            }
            return Some((level, slot, tick));
        }
        None
    }

    /// Links entry `i` (out of every list) into the wheel slot for its tick.
    fn place(&mut self, i: u32) {
        let tick = self.entries[i as usize].tick;
        debug_assert!(tick > self.elapsed);
        let placed = tick.min(self.elapsed + MAX_TICKS - 1);
        let level = level_for(self.elapsed, placed);
        let slot = slot_for(placed, level);
        self.link(i, Place::Slot(level as u8, slot as u8));
    }

    fn list_mut(&mut self, place: Place) -> &mut List {
        match place {
            Place::Slot(l, s) => &mut self.levels[l as usize].slots[s as usize],
            Place::Due => &mut self.due,
            Place::Fired => unreachable!("fired timers are in no list"),
        }
    }

    fn link(&mut self, i: u32, place: Place) {
        let list = self.list_mut(place);
        let old = list.head;
        list.head = i;
        if old != NIL {
            self.entries[old as usize].prev = i;
        }
        let e = &mut self.entries[i as usize];
        e.prev = NIL;
        e.next = old;
        e.place = place;
        if let Place::Slot(l, s) = place {
            self.levels[l as usize].occupied |= 1u64 << s;
        }
    }

    fn unlink(&mut self, i: u32) {
        let (prev, next, place) = {
            let e = &self.entries[i as usize];
            (e.prev, e.next, e.place)
        };
        if place == Place::Fired {
            return;
        }
        if prev != NIL {
            self.entries[prev as usize].next = next;
        } else {
            let list = self.list_mut(place);
            list.head = next;
            if next == NIL {
                if let Place::Slot(l, s) = place {
                    self.levels[l as usize].occupied &= !(1u64 << s);
                }
            }
        }
        if next != NIL {
            self.entries[next as usize].prev = prev;
        }
        let e = &mut self.entries[i as usize];
        e.prev = NIL;
        e.next = NIL;
        e.place = Place::Fired;
    }

    /// Empties the wheel, handing every value to `f` (used when the loop is dropped).
    pub(crate) fn drain(&mut self, mut f: impl FnMut(T)) {
        for level in self.levels.iter_mut() {
            level.occupied = 0;
            level.slots = [List { head: NIL }; SLOTS];
        }
        self.due.head = NIL;
        for e in self.entries.drain() {
            f(e.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn expire_values(w: &mut Wheel<u32>, now: u64) -> Vec<u32> {
        let mut fired = Vec::new();
        w.expire(now, &mut fired);
        fired.iter().map(|f| w.remove(f.key).unwrap()).collect()
    }

    #[test]
    fn fires_at_deadline_not_before() {
        let mut w = Wheel::new();
        w.insert(50 * TICK_NS, 0, 1u32);
        assert!(expire_values(&mut w, 49 * TICK_NS).is_empty());
        assert!(expire_values(&mut w, 50 * TICK_NS - 1).is_empty());
        assert_eq!(expire_values(&mut w, 50 * TICK_NS), vec![1]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn sub_millisecond_deadline_rounds_up() {
        let mut w = Wheel::new();
        w.insert(TICK_NS + 1, 0, 7u32);
        assert!(
            expire_values(&mut w, TICK_NS + 1).is_empty(),
            "fires on ticks"
        );
        assert_eq!(expire_values(&mut w, 2 * TICK_NS), vec![7]);
    }

    #[test]
    fn equal_deadlines_fire_in_insertion_order() {
        let mut w = Wheel::new();
        for v in 0..100u32 {
            w.insert(3_000 * TICK_NS, 0, v);
        }
        assert_eq!(
            expire_values(&mut w, 10_000 * TICK_NS),
            (0..100).collect::<Vec<_>>()
        );
    }

    #[test]
    fn past_deadline_is_due_immediately() {
        let mut w = Wheel::new();
        assert_eq!(w.next_deadline(), None);
        w.insert(5, 10, 1u32);
        assert_eq!(w.next_deadline(), Some(0));
        assert_eq!(expire_values(&mut w, 10), vec![1]);
    }

    #[test]
    fn cancel_frees_entry_and_stale_key_is_harmless() {
        let mut w = Wheel::new();
        let k = w.insert(100 * TICK_NS, 0, 1u32);
        assert_eq!(w.remove(k), Some(1));
        assert_eq!(w.remove(k), None, "cancelling twice is a no-op");
        let k2 = w.insert(100 * TICK_NS, 0, 2u32);
        assert_eq!(k.index, k2.index, "slab index reused");
        assert_eq!(
            w.remove(k),
            None,
            "a stale key does not cancel the new timer"
        );
        assert_eq!(w.len(), 1);
        assert!(w
            .next_deadline()
            .is_some_and(|d| d > 0 && d <= 100 * TICK_NS));
    }

    #[test]
    fn a_million_cancelled_timers_leave_nothing() {
        let mut w = Wheel::new();
        let keys: Vec<_> = (0..1_000_000u64)
            .map(|i| w.insert((i % 3_600_000) * TICK_NS + 1, 0, i as u32))
            .collect();
        for k in keys {
            w.remove(k).unwrap();
        }
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_deadline(), None);
        assert!(w.levels.iter().all(|l| l.occupied == 0));
    }

    #[test]
    fn far_future_timer_beyond_the_wheel() {
        let mut w = Wheel::new();
        let far = (MAX_TICKS * 3 + 12345) * TICK_NS;
        w.insert(far, 0, 9u32);
        let mut now = 0;
        // Step through the top-level rotations; the timer must not fire early.
        while now < far - TICK_NS {
            now = (now + MAX_TICKS / 7 * TICK_NS).min(far - TICK_NS);
            assert!(expire_values(&mut w, now).is_empty(), "early at {now}");
        }
        assert_eq!(expire_values(&mut w, far), vec![9]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        /// The wheel against a sorted map: same timers fire, in the same order, never early and
        /// never later than the tick after the deadline.
        #[test]
        fn matches_model(ops in proptest::collection::vec(
            prop_oneof![
                // insert at now + delta (ns), with deltas spread over several wheel levels
                (0u64..5, 0u64..(1u64 << 30)).prop_map(|(scale, d)| (0u8, d >> (scale * 6))),
                (0u64..1000).prop_map(|i| (1u8, i)),           // cancel the i-th live timer
                (0u64..(1u64 << 34)).prop_map(|d| (2u8, d >> (d % 40))), // advance time
            ], 1..300)) {
            let mut w = Wheel::new();
            let mut model: BTreeMap<(u64, u64), (TimerKey, u32, bool)> = BTreeMap::new();
            let mut now = 0u64;
            let mut next_val = 0u32;
            for (op, arg) in ops {
                match op {
                    0 => {
                        let deadline = now + arg;
                        let k = w.insert(deadline, now, next_val);
                        model.insert((deadline, k.seq), (k, next_val, deadline <= now));
                        next_val += 1;
                    }
                    1 => {
                        if !model.is_empty() {
                            let i = (arg as usize) % model.len();
                            let key = *model.keys().nth(i).unwrap();
                            let (k, v, _) = model.remove(&key).unwrap();
                            prop_assert_eq!(w.remove(k), Some(v));
                        }
                    }
                    _ => {
                        now += arg;
                        let got = expire_values(&mut w, now);
                        let now_tick = now / TICK_NS;
                        let want: Vec<(u64, u64)> = model.iter()
                            .filter(|(&(d, _), &(_, _, due))| (due && d <= now) || ceil_tick(d) <= now_tick)
                            .map(|(k, _)| *k).collect();
                        let want_vals: Vec<u32> = want.iter().map(|k| model.remove(k).unwrap().1).collect();
                        prop_assert_eq!(got, want_vals);
                        prop_assert!(model.keys().all(|&(d, _)| ceil_tick(d) > now_tick));
                    }
                }
            }
            prop_assert_eq!(w.len(), model.len());
        }
    }
}

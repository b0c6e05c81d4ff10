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
//! Timers further away than the wheel spans are parked in the top level's furthest slot (the one
//! before the slot that holds the current tick) and re-inserted when that slot comes round; the
//! top level works as a ring.
//!
//! # Deadlines outside loop time
//!
//! Loop time is a `u64` of nanoseconds since the loop's origin, so it ends about 584 years after
//! the origin and has nothing before it. A [`Deadline`] says what an `Instant` or a `Duration`
//! can say beyond that:
//!
//! * **Never**: `Duration::MAX`, or any deadline after [`LATEST`], the last tick loop time can
//!   reach (asyncio's `inf`). Such a timer keeps an entry, so its key cancels it and its value is
//!   dropped when it is cancelled or the wheel drained, but it is in no list:
//!   [`Wheel::next_deadline`] does not see it, so the loop never wakes for it and a manual clock
//!   never jumps to it, and it never fires, even on a clock that has run to its end.
//! * **Before the origin**: an `Instant` taken before the loop was created. It is past, so it goes
//!   on the due list like any late timer, at loop time 0; how long before the origin it was
//!   breaks the tie, so late timers still fire in the order of their real deadlines.
//!
//! # Storage
//!
//! Entries live in a [`Store`], a slab in fixed chunks that gives its memory back once it has
//! been mostly empty for a while (see there). Each slot of the wheel is an intrusive
//! doubly-linked list threaded through the entries by index; the first entry of a list names
//! the list in its `prev` link, so an entry needs no field saying where it is. Each level keeps
//! a 64-bit mask of non-empty slots so the next non-empty slot is found with one
//! `trailing_zeros`. Cancelling unlinks the entry and frees it at once, so a million
//! scheduled-then-cancelled timers leave nothing behind, and nothing needs purging later.
//! [`Wheel::expire`] also shrinks the buffer it fills when it was grown by a batch far larger
//! than the last one. An entry is 48 bytes with the loop's payload (a boxed callback or a
//! waker); ARCHITECTURE.md's "Timers" compares this with the alternatives that were measured.
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
//! * [`Wheel::next_deadline`] is at most [`LATEST`], and once the clock reaches it the next
//!   [`Wheel::expire`] processes at least one slot: a loop that sleeps (or a manual clock that
//!   jumps) to it always makes progress.

use std::collections::HashMap;
use std::mem;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU32, Ordering};

/// One tick: 1 ms in nanoseconds.
pub(crate) const TICK_NS: u64 = 1_000_000;
const LEVELS: usize = 6;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;
/// The lists: one per wheel slot (`level * SLOTS + slot`), then the due list.
const LISTS: usize = LEVELS * SLOTS + 1;
const DUE: u32 = (LEVELS * SLOTS) as u32;
/// The span of the whole wheel, in ticks.
const MAX_TICKS: u64 = 1 << (SLOT_BITS as u64 * LEVELS as u64);
/// The width of one slot of the top level, in ticks.
const TOP_SLOT_TICKS: u64 = MAX_TICKS >> SLOT_BITS;
const NIL: u32 = u32::MAX;
/// An entry's `prev` with this bit set names the list it heads (`prev & !HEAD`) instead of an
/// entry before it; entry indices stay below it.
const HEAD: u32 = 1 << 31;
/// `prev` of an entry that has fired (in no list, waiting to be taken by the loop).
const FIRED: u32 = u32::MAX;
/// `prev` of an entry that never fires (in no list).
const NEVER: u32 = u32::MAX - 1;
/// The last tick that loop time (a `u64` of nanoseconds) reaches.
const LAST_TICK: u64 = u64::MAX / TICK_NS;
/// The latest deadline (loop ns) that can fire: the start of the last tick. A later one would
/// round up past the end of loop time, so it means never.
pub(crate) const LATEST: u64 = LAST_TICK * TICK_NS;
/// The store and the buffer `expire` fills keep at least this many slots (48 KiB of the loop's
/// entries): below it, giving memory back is not worth a reallocation. (16 in unit tests, so
/// that the model test's few hundred timers exercise shrinking; tests/memory.rs checks the real
/// figure.)
#[cfg(not(test))]
const MIN_CAPACITY: usize = 1024;
#[cfg(test)]
const MIN_CAPACITY: usize = 16;
/// How long the store must have been mostly empty before it gives its memory back: 2 s of loop
/// time. Releasing a big store hands its memory back to the OS (glibc serves big blocks with
/// `mmap` and unmaps them when freed), and growing it again then pays a page fault every 4 KiB,
/// some 30 ns a timer: a workload that bursts to a million timers every second would pay that
/// on every burst (the `pending_timers` benchmark does). A burst that comes back sooner than this
/// finds its memory still there; jemalloc's decay is the same idea.
const RELEASE_AFTER_NS: u64 = 2_000_000_000;

/// A timer's deadline on the loop clock, including the two kinds loop time cannot hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Deadline {
    /// So many nanoseconds before the loop's origin (saturating): past, earlier than every `At`,
    /// and the larger the distance, the earlier.
    BeforeOrigin(u64),
    /// At this loop time; after [`LATEST`] it means `Never` (see [`Deadline::at`]).
    At(u64),
    /// Never fires.
    Never,
}

impl Deadline {
    /// Loop time `ns`, or `Never` after [`LATEST`].
    #[inline]
    pub(crate) fn at(ns: u64) -> Deadline {
        if ns <= LATEST {
            Deadline::At(ns)
        } else {
            Deadline::Never
        }
    }
}

impl From<u64> for Deadline {
    /// Loop time `ns` (after [`LATEST`]: never).
    #[inline]
    fn from(ns: u64) -> Deadline {
        Deadline::at(ns)
    }
}

/// Names one timer of one wheel. The sequence number tells a live entry from a later one that
/// reuses its slot index, so a stale key never cancels somebody else's timer; the wheel's number
/// tells a key of this wheel from one of another loop's (a `Sleep` may move between loops).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    wheel: NonZeroU32,
    index: u32,
    seq: u64,
}

/// One timer: 48 bytes with the loop's payload (24 for a `u32`), pinned by a test.
#[derive(Debug)]
struct Entry<T> {
    /// The timer's value; `None` while the slot is free.
    value: Option<T>,
    /// Loop ns; 0 for a deadline at or before the origin (how far before is kept aside, in
    /// `Wheel::before_origin`), `u64::MAX` for never. Its tick, `ceil_tick(deadline)`, is
    /// computed where needed rather than stored.
    deadline: u64,
    /// The timer's sequence number; [`FREE`] while the slot is free.
    seq: u64,
    /// The entry before it in its list; [`HEAD`]` | list` for the first of a list; [`FIRED`] or
    /// [`NEVER`] for an entry in no list. (A place of its own would cost 8 bytes a timer.)
    prev: u32,
    /// The next entry of its list; while the slot is free, the next free slot.
    next: u32,
}

/// The sequence number of a free slot: no timer has it (numbers start at 0 and count up).
const FREE: u64 = u64::MAX;

/// A timer that [`Wheel::expire`] found due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fired {
    /// The timer's deadline in loop nanoseconds (0 for one before the loop's origin).
    pub(crate) deadline: u64,
    pub(crate) key: TimerKey,
}

/// The timing wheel, generic over what a timer carries so it can be tested on its own.
#[derive(Debug)]
pub(crate) struct Wheel<T> {
    entries: Store<T>,
    /// The first entry of each list (slots level by level, then the due list), or `NIL`.
    heads: Box<[u32; LISTS]>,
    /// Per level, a bit for each non-empty slot.
    occupied: [u64; LEVELS],
    /// How long before the origin the deadline of each such timer was (ns, saturating), by
    /// entry index: the rare timers with deadline 0 look here, no other timer pays for it.
    before_origin: HashMap<u32, u64>,
    /// The tick up to which the wheel has been processed.
    elapsed: u64,
    next_seq: u64,
    id: NonZeroU32,
}

/// Numbers the wheels, so that keys of different loops never match.
static WHEELS: AtomicU32 = AtomicU32::new(1);

fn wheel_id() -> NonZeroU32 {
    loop {
        if let Some(id) = NonZeroU32::new(WHEELS.fetch_add(1, Ordering::Relaxed)) {
            return id;
        }
    }
}

#[inline]
fn ceil_tick(ns: u64) -> u64 {
    ns / TICK_NS + u64::from(ns % TICK_NS != 0)
}

/// The level for a timer at `tick` when the wheel stands at `elapsed` (`tick > elapsed`).
#[inline]
fn level_for(elapsed: u64, tick: u64) -> usize {
    let masked = ((elapsed ^ tick) | (SLOTS as u64 - 1)).min(MAX_TICKS - 1);
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
        Wheel {
            entries: Store::new(),
            heads: Box::new([NIL; LISTS]),
            occupied: [0; LEVELS],
            before_origin: HashMap::new(),
            elapsed: 0,
            next_seq: 0,
            id: wheel_id(),
        }
    }

    /// How many timers are pending (never-due ones included) or fired-but-not-taken.
    pub(crate) fn len(&self) -> usize {
        self.entries.len
    }

    /// Adds a timer with `deadline` (a [`Deadline`], or loop ns); `now` is the current loop time.
    #[inline]
    pub(crate) fn insert(&mut self, deadline: impl Into<Deadline>, now: u64, value: T) -> TimerKey {
        let seq = self.next_seq;
        self.next_seq += 1;
        let (deadline, before_origin) = match deadline.into() {
            Deadline::At(ns) if ns <= LATEST => (ns, 0),
            Deadline::BeforeOrigin(before) => (0, before),
            Deadline::At(_) | Deadline::Never => (u64::MAX, 0),
        };
        self.entries.tick(now);
        let index = self.entries.alloc();
        // Field by field, in place: no entry built on the stack and copied in.
        let e = self.entries.slot_mut(index);
        e.deadline = deadline;
        e.seq = seq;
        e.value = Some(value);
        if before_origin != 0 {
            self.before_origin.insert(index, before_origin);
        }
        if deadline == u64::MAX {
            // Never due: in no list.
            self.entries[index].prev = NEVER;
        } else {
            let tick = ceil_tick(deadline);
            if deadline <= now || tick <= self.elapsed {
                self.link(index, DUE);
            } else {
                self.place(index, tick);
            }
        }
        TimerKey {
            wheel: self.id,
            index,
            seq,
        }
    }

    /// The entry `key` names, if it is still there.
    #[inline(always)]
    fn entry(&self, key: TimerKey) -> Option<&Entry<T>> {
        match self.entries.get(key.index) {
            Some(e) if e.seq == key.seq && key.wheel == self.id => Some(e),
            _ => None,
        }
    }

    /// Whether `key` is one of this wheel's (pending, fired or gone).
    #[inline]
    pub(crate) fn owns(&self, key: TimerKey) -> bool {
        key.wheel == self.id
    }

    /// The value of a pending timer, if `key` still names one.
    pub(crate) fn get(&self, key: TimerKey) -> Option<&T> {
        self.entry(key).and_then(|e| e.value.as_ref())
    }

    /// The value of a pending timer, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, key: TimerKey) -> Option<&mut T> {
        self.entry(key)?;
        self.entries[key.index].value.as_mut()
    }

    /// Removes a timer, pending or fired, and returns its value; `None` if it is already gone.
    #[inline]
    pub(crate) fn remove(&mut self, key: TimerKey) -> Option<T> {
        let deadline = self.entry(key)?.deadline;
        self.unlink(key.index);
        if deadline == 0 && !self.before_origin.is_empty() {
            self.before_origin.remove(&key.index);
        }
        self.entries.remove(key.index)
    }

    /// Removes a timer whose value passes `pred` (a fired timer that wakes a task, not one whose
    /// callback waits in the ready queue); `None`, leaving it in place, otherwise.
    pub(crate) fn remove_if(&mut self, key: TimerKey, pred: impl FnOnce(&T) -> bool) -> Option<T> {
        if !self.get(key).is_some_and(pred) {
            return None;
        }
        self.remove(key)
    }

    /// The loop time (ns) at which the wheel next needs attention, if any timer can fire: at most
    /// [`LATEST`]; timers that never fire do not count.
    ///
    /// For a timer on level 0 that is its tick; for higher levels it is the start of the next
    /// occupied slot, when that slot cascades (so the loop may wake up without firing anything).
    #[inline]
    pub(crate) fn next_deadline(&self) -> Option<u64> {
        if self.entries.len == 0 {
            return None; // the common case of a loop with no timers, answered at once
        }
        if self.heads[DUE as usize] != NIL {
            return Some(0);
        }
        // No overflow: an occupied slot starts at or before the tick of an entry in it, and an
        // entry's tick is at most LAST_TICK.
        self.next_expiration().map(|(_, _, tick)| tick * TICK_NS)
    }

    /// Tells the wheel the loop time without expiring anything, so that a store that has been
    /// mostly empty long enough gives its memory back even if no timer comes (the loop calls it
    /// when it releases its other buffers).
    pub(crate) fn release_memory(&mut self, now: u64) {
        self.entries.tick(now);
    }

    /// Moves every timer due at `now` (loop ns) out of the wheel and appends it to `fired`, sorted
    /// by deadline and then by insertion order. The entries stay in the store (marked fired) until
    /// [`Wheel::remove`] takes them, so they can still be cancelled before they run.
    ///
    /// `fired` is the caller's reusable buffer. If it ends up holding less than a quarter of its
    /// capacity (an earlier burst of timers grew it), it is shrunk to twice what it holds: the
    /// burst that grew it paid as much, so there is no shrink-grow thrash.
    pub(crate) fn expire(&mut self, now: u64, fired: &mut Vec<Fired>) {
        let start = fired.len();
        // The due list: timers that were already late when inserted.
        let mut i = self.heads[DUE as usize];
        while i != NIL {
            let next = self.entries[i].next;
            if self.entries[i].deadline <= now {
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
            let list = level * SLOTS + slot;
            let mut i = mem::replace(&mut self.heads[list], NIL);
            self.occupied[level] &= !(1u64 << slot);
            self.elapsed = tick;
            // An entry is due at this tick if its deadline rounds up to it or earlier.
            let due_by = tick * TICK_NS;
            while i != NIL {
                let e = &self.entries[i];
                let (next, deadline) = (e.next, e.deadline);
                if deadline <= due_by {
                    self.fire(i, fired);
                } else {
                    self.place(i, ceil_tick(deadline));
                }
                i = next;
            }
        }
        if now_tick > self.elapsed {
            self.elapsed = now_tick;
        }
        self.entries.tick(now);
        if fired.len() < fired.capacity() / 4 && fired.capacity() > MIN_CAPACITY {
            fired.shrink_to((fired.len() * 2).max(MIN_CAPACITY));
        }
        let batch = &mut fired[start..];
        if batch.len() > 1 {
            let before = &self.before_origin;
            // Equal loop deadlines: the one further before the origin first, then by insertion.
            batch.sort_unstable_by_key(|f| {
                let b = if f.deadline == 0 {
                    before.get(&f.key.index).copied().unwrap_or(0)
                } else {
                    0
                };
                (f.deadline, u64::MAX - b, f.key.seq)
            });
        }
    }

    /// Marks entry `i` (out of every list) fired and hands out its key.
    #[inline]
    fn fire(&mut self, i: u32, fired: &mut Vec<Fired>) {
        let e = &mut self.entries[i];
        e.prev = FIRED;
        fired.push(Fired {
            deadline: e.deadline,
            key: TimerKey {
                wheel: self.id,
                index: i,
                seq: e.seq,
            },
        });
    }

    /// The earliest occupied slot: `(level, slot, tick at which it must be processed)`.
    #[inline]
    fn next_expiration(&self) -> Option<(usize, usize, u64)> {
        let level = self.occupied.iter().position(|&o| o != 0)?;
        let occupied = self.occupied[level];
        let shift = level as u32 * SLOT_BITS;
        let slot_range = 1u64 << shift;
        let level_range = slot_range << SLOT_BITS;
        let now_slot = (self.elapsed >> shift) as u32;
        let zeros = occupied
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
        Some((level, slot, tick))
    }

    /// Links entry `i` (out of every list) into the wheel slot for its tick,
    /// `ceil_tick(deadline)`.
    #[inline(always)]
    fn place(&mut self, i: u32, tick: u64) {
        debug_assert!(tick > self.elapsed && tick <= LAST_TICK);
        debug_assert_eq!(tick, ceil_tick(self.entries[i].deadline));
        // The top level is a ring, and its slot that holds `elapsed` comes round again only a
        // whole rotation later: a timer may not go there, or the scan would take it for the next
        // slot due and miss earlier ones. So the furthest a timer goes is the slot before it,
        // whose start (the parked timer's next look) is still before its tick.
        let furthest = (self.elapsed & !(TOP_SLOT_TICKS - 1)) + MAX_TICKS - 1;
        let placed = tick.min(furthest);
        let level = level_for(self.elapsed, placed);
        let slot = slot_for(placed, level);
        self.link(i, (level * SLOTS + slot) as u32);
    }

    /// Puts entry `i` (out of every list) at the head of `list`.
    #[inline(always)]
    fn link(&mut self, i: u32, list: u32) {
        let old = mem::replace(&mut self.heads[list as usize], i);
        if old != NIL {
            self.entries[old].prev = i;
        }
        let e = &mut self.entries[i];
        e.prev = HEAD | list;
        e.next = old;
        if list != DUE {
            self.occupied[list as usize / SLOTS] |= 1u64 << (list as usize % SLOTS);
        }
    }

    /// Takes entry `i` out of its list, if it is in one. Its own links are left as they were:
    /// the caller frees the entry or marks it fired or links it again, so they are not read.
    #[inline(always)]
    fn unlink(&mut self, i: u32) {
        let (prev, next) = {
            let e = &self.entries[i];
            (e.prev, e.next)
        };
        if prev >= NEVER {
            return; // fired or never due: in no list
        }
        if next != NIL {
            // The next one takes `prev` over: an entry, or (if `i` was first) the list's name.
            self.entries[next].prev = prev;
        }
        if prev & HEAD == 0 {
            self.entries[prev].next = next;
        } else {
            let list = prev & !HEAD;
            self.heads[list as usize] = next;
            if next == NIL && list != DUE {
                self.occupied[list as usize / SLOTS] &= !(1u64 << (list as usize % SLOTS));
            }
        }
    }

    /// Empties the wheel, handing every value to `f` (used when the loop is dropped), and
    /// releases the store's memory.
    pub(crate) fn drain(&mut self, mut f: impl FnMut(T)) {
        self.occupied = [0; LEVELS];
        self.heads.fill(NIL);
        self.before_origin = HashMap::new();
        for value in mem::take(&mut self.entries).into_values() {
            f(value);
        }
    }
}

mod store;

use store::Store;

#[cfg(test)]
mod tests;

//! The timer wheel's entry store: a slab whose keys stay valid and whose memory comes back.
//!
//! ```
//! // Through the public API: a million cancelled timers leave (almost) nothing behind.
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! for _ in 0..10_000 {
//!     h.call_later(std::time::Duration::from_secs(60), || {}).cancel();
//! }
//! ```
//!
//! See the parent module's "Storage" for the policy.

use std::ops::{Index, IndexMut};

use super::*;

/// Slots per chunk: 12 KiB of the loop's entries, what a loop with a timer holds at least. A
/// chunk is an array, so reaching a slot checks one bound (the chunk's), not two: some 35
/// instructions a pending timer less than chunks of varying length, by callgrind. (8 in unit
/// tests, so that their few timers span chunks.)
#[cfg(not(test))]
const CHUNK: usize = 256;
#[cfg(test)]
const CHUNK: usize = 8;

/// The wheel's entries: a slab (slots in chunks of [`CHUNK`], and a list of the free ones
/// to reuse) that gives its memory back when it becomes mostly empty.
///
/// **Chunks, not one vector.** A vector that doubles holds up to twice what it needs (a third
/// more than 100,000 timers on average) and copies everything at each doubling; chunks of a
/// fixed size are never moved, and what is allocated is what is used, to within one chunk.
/// Reaching a slot costs one more load (the chunk's address), which stays in cache.
///
/// **Entries never move.** A [`TimerKey`] held by a user (in a `CallbackHandle`, a `Sleep`)
/// names a slot index, so the store can only release free slots at its end. Compacting (moving
/// entries down) would need an indirection from key to slot, paid on every cancel, refresh and
/// fire, the hot paths; a plain slab would keep its end pinned, because it reuses the most
/// recently freed slot first and after a burst those are the high ones. Instead, once the store
/// is mostly empty it steers new entries away from its end, so the end drains as its timers fire
/// or are cancelled, and a later check releases it:
///
/// * A **check** runs after a removal when fewer than a quarter of the capacity is in use (and
///   the capacity is above [`MIN_CAPACITY`]), and either the store is empty or twice the live
///   entries (at least `MIN_CAPACITY`) were removed since the last check. It drops the free
///   slots at the end and rebuilds the free list (below). Its cost is O(twice the live entries),
///   paid by the removals since the last check, plus the slots it drops, paid by the insertions
///   that took them.
/// * The **release** comes once the store has stayed mostly empty for [`RELEASE_AFTER_NS`]
///   (2 s) of loop time, at the next insertion or expiry: a check, then the capacity shrinks to
///   twice what is in use (or to the end, if a live entry pins it higher) if that at least
///   halves it, a reallocation paid by the insertions that grew it. Shrinking needs use to stay
///   under a quarter of the capacity for the whole wait, growing back needs it to double: there
///   is no shrink-grow thrash, and a burst that recurs within the wait keeps its memory.
/// * While live entries sit above twice the live count, the check sets a **limit** there: the
///   free list is rebuilt from the free slots below it, lowest first, and a slot at or above it is
///   not reused when freed. New entries go low; the high end empties as its timers end.
/// * If new entries fill everything below the limit, it doubles (the free slots in the new range
///   join the list), paid for by the insertions that filled it; past the end, it is lifted.
#[derive(Debug)]
pub(super) struct Store<T> {
    /// The slots, in chunks of [`CHUNK`]: taken, or free (`seq` is [`FREE`], `value` is `None`). Freeing a slot writes
    /// those two fields and its link, and `Wheel::insert` fills a taken one field by field: no
    /// entry is moved whole through the stack, whose wide reads of narrow recent writes (a
    /// store-forwarding stall) cost the hot paths several nanoseconds.
    chunks: Vec<Box<[Entry<T>; CHUNK]>>,
    /// Slots in use (taken or free, the first ones); the slots past them are free and on no
    /// list, and the chunks that hold only such slots are kept until the release.
    slots: usize,
    /// The first free slot to reuse (the head of the list through `next`), or `NIL`.
    pub(super) free: u32,
    /// Taken slots.
    pub(super) len: usize,
    /// Slots at or above this index are not put on the free list (`usize::MAX`: no limit).
    pub(super) limit: usize,
    /// Removals since the last check.
    pub(super) removed: usize,
    /// The latest loop time the wheel was told (by an insertion or an expiry).
    pub(super) now: u64,
    /// Since when (loop ns) the store has been mostly empty, if it is: the release is due
    /// `RELEASE_AFTER_NS` later.
    pub(super) quiet_since: Option<u64>,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Store::new()
    }
}

impl<T> Store<T> {
    pub(super) fn new() -> Store<T> {
        Store {
            chunks: Vec::new(),
            slots: 0,
            free: NIL,
            len: 0,
            limit: usize::MAX,
            removed: 0,
            now: 0,
            quiet_since: None,
        }
    }

    /// Tells the store the loop time (at each insertion and expiry), and gives its memory back if
    /// it has been mostly empty long enough.
    #[inline]
    pub(super) fn tick(&mut self, now: u64) {
        self.now = now;
        if let Some(since) = self.quiet_since {
            if now.saturating_sub(since) >= RELEASE_AFTER_NS || self.len >= self.capacity() / 4 {
                self.settle(now);
            }
        }
    }

    /// Takes a free slot for a new entry (the first on the free list, or a new one at the end)
    /// and returns its index; the caller fills it in.
    #[inline(always)]
    pub(super) fn alloc(&mut self) -> u32 {
        while self.free == NIL && self.slots >= self.limit {
            self.raise_limit();
        }
        self.len += 1;
        if self.free != NIL {
            let i = self.free;
            let slot = self.slot(i);
            debug_assert_eq!(slot.seq, FREE, "a taken slot on the free list");
            self.free = slot.next;
            i
        } else {
            let i = self.slots;
            assert!(i < HEAD as usize, "more than 2 billion pending timers");
            if i == self.capacity() {
                self.grow();
            }
            self.slots += 1;
            i as u32
        }
    }

    /// Slot `i`, taken or free (a free slot's `seq` matches no key).
    #[inline(always)]
    pub(super) fn get(&self, i: u32) -> Option<&Entry<T>> {
        let chunk = self.chunks.get(i as usize / CHUNK)?;
        Some(&chunk[i as usize % CHUNK])
    }

    #[inline(always)]
    pub(super) fn slot(&self, i: u32) -> &Entry<T> {
        &self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    #[inline(always)]
    pub(super) fn slot_mut(&mut self, i: u32) -> &mut Entry<T> {
        &mut self.chunks[i as usize / CHUNK][i as usize % CHUNK]
    }

    /// Slots allocated, in use or not.
    pub(super) fn capacity(&self) -> usize {
        self.chunks.len() * CHUNK
    }

    /// Every slot in use, taken or free, in index order.
    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = &Entry<T>> {
        self.chunks.iter().flat_map(|c| c.iter()).take(self.slots)
    }

    /// Slots in use, taken or free.
    #[cfg(test)]
    pub(super) fn slots(&self) -> usize {
        self.slots
    }

    /// Adds a chunk of free slots.
    #[cold]
    #[inline(never)]
    fn grow(&mut self) {
        let free = || Entry {
            value: None,
            deadline: 0,
            seq: FREE,
            prev: NIL,
            next: NIL,
        };
        let chunk: Box<[Entry<T>]> = (0..CHUNK).map(|_| free()).collect();
        let Ok(chunk) = chunk.try_into() else {
            unreachable!("a chunk has CHUNK slots")
        };
        self.chunks.push(chunk);
    }

    /// The last slot in use, if it is free.
    fn last_is_free(&self) -> bool {
        self.slots > 0 && self.slot(self.slots as u32 - 1).seq == FREE
    }

    /// Frees slot `i`, which must be taken, and returns its value.
    #[inline(always)]
    pub(super) fn remove(&mut self, i: u32) -> Option<T> {
        let listed = (i as usize) < self.limit;
        let free = self.free;
        let slot = self.slot_mut(i);
        debug_assert_ne!(slot.seq, FREE, "removed a free slot");
        let value = slot.value.take();
        slot.seq = FREE;
        slot.next = if listed { free } else { NIL };
        if listed {
            self.free = i;
        }
        self.len -= 1;
        self.removed += 1;
        let capacity = self.capacity();
        if self.len < capacity / 4
            && capacity > MIN_CAPACITY
            && (self.len == 0 || self.removed >= (self.len * 2).max(MIN_CAPACITY))
        {
            self.tidy();
        }
        value
    }

    /// The check (see the type's docs): drop the free end, rebuild the free list lowest first
    /// below the new limit, and start the wait for the release.
    #[cold]
    #[inline(never)]
    pub(super) fn tidy(&mut self) {
        self.removed = 0;
        while self.last_is_free() {
            self.slots -= 1;
        }
        self.limit = if self.slots > self.target() {
            self.target()
        } else {
            usize::MAX
        };
        self.free = NIL;
        self.relink(0, self.slots.min(self.limit));
        self.quiet_since.get_or_insert(self.now);
    }

    /// Twice the live entries: what the capacity shrinks to, and where the limit goes.
    pub(super) fn target(&self) -> usize {
        (self.len * 2).max(MIN_CAPACITY)
    }

    /// Busy again: forget the release. Mostly empty for long enough: release, tidying first.
    #[cold]
    #[inline(never)]
    pub(super) fn settle(&mut self, now: u64) {
        let mostly_empty = |s: &Self| s.len < s.capacity() / 4 && s.capacity() > MIN_CAPACITY;
        if !mostly_empty(self) {
            self.quiet_since = None;
            return;
        }
        self.tidy();
        // Only if that at least halves it: the copies then add up to less than the capacity once
        // was, which the insertions that grew it paid for.
        let target = self.target();
        if self.capacity() / 2 >= target.max(self.slots) {
            // Whole chunks past both the slots in use and the target.
            let keep = target.max(self.slots).div_ceil(CHUNK);
            self.chunks.truncate(keep);
            self.chunks.shrink_to_fit();
        }
        // Still mostly empty (a live entry pins the end): try again after another wait.
        self.quiet_since = mostly_empty(self).then_some(now);
    }

    /// Everything below the limit is taken: double it, and list the free slots it takes in.
    #[cold]
    #[inline(never)]
    pub(super) fn raise_limit(&mut self) {
        let old = self.limit;
        let new = old.saturating_mul(2);
        self.limit = if new >= self.slots { usize::MAX } else { new };
        self.relink(old, self.slots.min(new));
    }

    /// Puts the free slots of `from..to` at the head of the free list, lowest first.
    pub(super) fn relink(&mut self, from: usize, to: usize) {
        let mut free = self.free;
        // Chunk by chunk, from the top: no index arithmetic per slot.
        let mut i = to;
        while i > from {
            let c = (i - 1) / CHUNK;
            let low = from.max(c * CHUNK);
            let chunk = &mut self.chunks[c][low - c * CHUNK..i - c * CHUNK];
            for (k, slot) in chunk.iter_mut().enumerate().rev() {
                if slot.seq == FREE {
                    slot.next = free;
                    free = (low + k) as u32;
                }
            }
            i = low;
        }
        self.free = free;
    }

    /// The timers' values, in slot order.
    pub(super) fn into_values(self) -> impl Iterator<Item = T> {
        self.chunks
            .into_iter()
            .flat_map(|c| c as Box<[Entry<T>]>)
            .filter_map(|e| e.value)
    }
}

impl<T> Index<u32> for Store<T> {
    type Output = Entry<T>;

    #[inline(always)]
    fn index(&self, i: u32) -> &Entry<T> {
        let e = self.slot(i);
        debug_assert_ne!(e.seq, FREE, "timer slot {i} is free");
        e
    }
}

impl<T> IndexMut<u32> for Store<T> {
    #[inline(always)]
    fn index_mut(&mut self, i: u32) -> &mut Entry<T> {
        let e = self.slot_mut(i);
        debug_assert_ne!(e.seq, FREE, "timer slot {i} is free");
        e
    }
}

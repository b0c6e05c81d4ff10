//! The ready queue: what phase 5 runs, in FIFO order, with tasks kept 8 bytes apiece.
//!
//! ```
//! use std::{cell::RefCell, rc::Rc};
//!
//! let el = solo::EventLoop::new().unwrap();
//! let h = el.handle();
//! let log = Rc::new(RefCell::new(Vec::new()));
//! let (a, b, c) = (log.clone(), log.clone(), log.clone());
//! h.call_soon(move || a.borrow_mut().push("callback 1"));
//! drop(h.spawn(async move { b.borrow_mut().push("task") }));
//! h.call_soon(move || c.borrow_mut().push("callback 2"));
//! h.stop();
//! el.run_forever().unwrap();
//! // Callbacks and tasks share one order: the order they were queued in.
//! assert_eq!(*log.borrow(), ["callback 1", "task", "callback 2"]);
//! ```
//!
//! A [`Runnable`] is 40 bytes, the size of its widest kind (a `call_soon` callback with its
//! closure inline). A task needs 8 of them (its pointer), and tasks are what a loop queues by
//! the thousand: a burst of 10,000 spawns grew a queue of (then 32-byte) `Runnable`s to 16,384
//! entries, more memory per task than the task itself, held until the loop next gives memory
//! back. So tasks wait in a queue of their own, of bare [`TaskRef`]s, and the main queue holds,
//! where they stand in the common order, *runs*: "the next `n` tasks of the task queue". A task
//! pushed right behind another task (or a run) lengthens that run instead of taking an entry,
//! so a burst of spawns or wakes costs 8 bytes per task and one entry. Both queues are FIFO and
//! a run is consumed from its front, so popping gives exactly the order of pushing, across
//! kinds.

use std::collections::VecDeque;

use super::callbacks::Runnable;
use crate::reclaim;
use crate::task::TaskRef;

/// An entry of the main queue.
enum Entry {
    /// Anything but a task.
    One(Runnable),
    /// The next `n` (≥ 1) tasks of the task queue.
    Tasks(usize),
}

/// The ready queue (see the module docs).
///
/// The order it gives is: `front_run` tasks, then `entries` (each run standing for that many
/// tasks), then `back_run` tasks. The two ends' runs are kept in counters rather than entries,
/// so that a burst of tasks touches no entry at all, and a callback pays one test at each end.
///
/// Invariant: `tasks.len()` is `front_run` plus the runs of `entries` plus `back_run`; `len` is
/// that plus the number of `One` entries.
pub(crate) struct ReadyQueue {
    entries: VecDeque<Entry>,
    tasks: VecDeque<TaskRef>,
    front_run: usize,
    back_run: usize,
    len: usize,
}

impl ReadyQueue {
    pub(crate) fn with_capacity(n: usize) -> ReadyQueue {
        ReadyQueue {
            entries: VecDeque::with_capacity(n),
            tasks: VecDeque::with_capacity(n),
            front_run: 0,
            back_run: 0,
            len: 0,
        }
    }

    /// Entries queued (each task counts as one).
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues `r` behind everything already queued.
    #[inline(always)]
    pub(crate) fn push_back(&mut self, r: Runnable) {
        self.len += 1;
        match r {
            Runnable::Task(t) => {
                self.tasks.push_back(t);
                self.back_run += 1;
            }
            r => {
                if self.back_run > 0 {
                    self.close_back_run();
                }
                self.entries.push_back(Entry::One(r));
            }
        }
    }

    /// Something other than a task comes after the tasks at the back: they become an entry.
    #[inline(never)]
    fn close_back_run(&mut self) {
        self.entries.push_back(Entry::Tasks(self.back_run));
        self.back_run = 0;
    }

    /// Takes the oldest entry.
    #[inline(always)]
    pub(crate) fn pop_front(&mut self) -> Option<Runnable> {
        let r = if self.front_run > 0 {
            self.front_run -= 1;
            self.pop_task()
        } else {
            match self.entries.pop_front() {
                Some(Entry::One(r)) => r,
                Some(Entry::Tasks(n)) => {
                    self.front_run = n - 1;
                    self.pop_task()
                }
                None if self.back_run > 0 => {
                    self.front_run = self.back_run - 1;
                    self.back_run = 0;
                    self.pop_task()
                }
                None => return None,
            }
        };
        self.len -= 1;
        Some(r)
    }

    #[inline(always)]
    fn pop_task(&mut self) -> Runnable {
        match self.tasks.pop_front() {
            Some(t) => Runnable::Task(t),
            None => unreachable!("the runs count the queued tasks"),
        }
    }

    /// Takes every entry, in order (the loop is closing).
    pub(crate) fn take_all(&mut self) -> Vec<Runnable> {
        let mut all = Vec::with_capacity(self.len);
        while let Some(r) = self.pop_front() {
            all.push(r);
        }
        all
    }

    /// Gives back what a burst left (see `reclaim.rs`).
    pub(crate) fn release_memory(&mut self) {
        reclaim::deque(&mut self.entries);
        reclaim::deque(&mut self.tasks);
    }
}

#[cfg(test)]
mod tests {
    use super::{Entry, ReadyQueue};
    use crate::event_loop::callbacks::Runnable;
    use crate::reactor::Dir;

    #[test]
    fn entries_stay_as_small_as_a_runnable() {
        assert_eq!(
            std::mem::size_of::<Entry>(),
            std::mem::size_of::<Runnable>()
        );
    }

    fn io(n: usize) -> Runnable {
        Runnable::Io(n, Dir::Read)
    }

    fn token(r: &Runnable) -> usize {
        match r {
            Runnable::Io(n, _) => *n,
            _ => panic!("not an Io entry"),
        }
    }

    #[test]
    fn keeps_order_and_length_across_kinds() {
        let mut q = ReadyQueue::with_capacity(0);
        assert!(q.is_empty() && q.pop_front().is_none());
        for i in 0..3 {
            q.push_back(io(i));
        }
        assert_eq!(q.len(), 3);
        assert_eq!(token(&q.pop_front().unwrap()), 0);
        q.push_back(io(3));
        let order: Vec<usize> = std::iter::from_fn(|| q.pop_front().map(|r| token(&r))).collect();
        assert_eq!(order, [1, 2, 3]);
        assert!(q.is_empty());
    }

    /// Tasks and callbacks queued in every pattern of runs (a task alone, runs of two and three
    /// tasks at the front, in the middle and at the back, a task woken while its run is being
    /// consumed) come out in the order they went in, each task polled where it stood.
    #[test]
    fn tasks_and_callbacks_run_in_queue_order_through_runs() {
        use std::cell::RefCell;
        use std::rc::Rc;

        let el = crate::EventLoop::new().unwrap();
        let h = el.handle();
        let log = Rc::new(RefCell::new(Vec::new()));
        let pattern = "TTcTcTTTcccTTT";
        for (i, kind) in pattern.chars().enumerate() {
            let log = log.clone();
            if kind == 'T' {
                drop(h.spawn(async move {
                    log.borrow_mut().push(format!("t{i}"));
                    crate::yield_now().await; // woken during the batch: queued behind it
                    log.borrow_mut().push(format!("t{i}'"));
                }));
            } else {
                h.call_soon(move || log.borrow_mut().push(format!("c{i}")));
            }
        }
        el.stop();
        el.run_forever().unwrap(); // one iteration: the first poll of each task
        let first: Vec<String> = pattern
            .chars()
            .enumerate()
            .map(|(i, k)| format!("{}{i}", if k == 'T' { 't' } else { 'c' }))
            .collect();
        assert_eq!(*log.borrow(), first);
        el.stop();
        el.run_forever().unwrap(); // the second polls, in the order of the yields
        let second: Vec<String> = pattern
            .chars()
            .enumerate()
            .filter(|(_, k)| *k == 'T')
            .map(|(i, _)| format!("t{i}'"))
            .collect();
        assert_eq!(log.borrow()[first.len()..], second[..]);
    }
}

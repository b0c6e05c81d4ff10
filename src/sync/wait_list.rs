//! The FIFO line every primitive of `solo::sync` keeps its waiters in: O(1) to join at the
//! back, to serve the front, and to leave from the middle (a cancelled waiter).
//!
//! ```
//! // Internal: what a waiting `acquire()` looks like from outside.
//! let sem = std::rc::Rc::new(solo::sync::Semaphore::new(0));
//! let el = solo::EventLoop::new().unwrap();
//! let s = sem.clone();
//! let waiter = el.handle().spawn(async move { drop(s.acquire().await) });
//! el.handle().call_soon(move || sem.add_permits(1)); // serves the line's front
//! el.run_until_complete(waiter).unwrap().unwrap();
//! ```
//!
//! A waiter is a node in a slab, linked into a doubly linked list by slab keys. Serving the
//! front *unlinks* the node but leaves it in the slab, with what it was given (a permit, an
//! item) in its state: only the waiter itself removes its node, when it is polled again or
//! dropped. So a key stays valid for exactly as long as its waiter holds it, and a waiter that
//! is dropped after being served finds what it was given and hands it back, instead of losing
//! it. Nothing here wakes anyone: the callers take the wakers out and wake them after their
//! `RefCell` borrow ends, since a waker may be someone else's code.

use std::task::Waker;

use slab::Slab;

const NIL: usize = usize::MAX;

pub(super) struct WaitList<S> {
    nodes: Slab<Node<S>>,
    head: usize,
    tail: usize,
}

struct Node<S> {
    prev: usize,
    next: usize,
    linked: bool,
    waker: Option<Waker>,
    state: S,
}

impl<S> WaitList<S> {
    pub(super) const fn new() -> WaitList<S> {
        WaitList {
            nodes: Slab::new(),
            head: NIL,
            tail: NIL,
        }
    }

    /// Whether nobody is in line (served waiters that have not come back do not count).
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.head == NIL
    }

    /// Joins the line at the back; returns the waiter's key.
    pub(super) fn push(&mut self, waker: &Waker, state: S) -> usize {
        let key = self.nodes.insert(Node {
            prev: self.tail,
            next: NIL,
            linked: true,
            waker: Some(waker.clone()),
            state,
        });
        match self.tail {
            NIL => self.head = key,
            t => self.nodes[t].next = key,
        }
        self.tail = key;
        key
    }

    /// The key of the waiter at the front of the line.
    #[inline]
    pub(super) fn front(&self) -> Option<usize> {
        (self.head != NIL).then_some(self.head)
    }

    /// Takes `key` out of the line (it is being served, or closed on); returns its waker, for
    /// the caller to wake once its borrow ends. The node stays until its waiter removes it.
    pub(super) fn unlink(&mut self, key: usize) -> Option<Waker> {
        let n = &mut self.nodes[key];
        if !n.linked {
            return None;
        }
        n.linked = false;
        let (prev, next) = (n.prev, n.next);
        let waker = n.waker.take();
        match prev {
            NIL => self.head = next,
            p => self.nodes[p].next = next,
        }
        match next {
            NIL => self.tail = prev,
            n => self.nodes[n].prev = prev,
        }
        waker
    }

    /// Whether `key` is still waiting in line (not served yet).
    #[inline]
    pub(super) fn is_linked(&self, key: usize) -> bool {
        self.nodes[key].linked
    }

    /// The waiter leaves: its node is unlinked if need be and freed; returns its state.
    pub(super) fn remove(&mut self, key: usize) -> S {
        drop(self.unlink(key));
        self.nodes.remove(key).state
    }

    pub(super) fn state(&self, key: usize) -> &S {
        &self.nodes[key].state
    }

    pub(super) fn state_mut(&mut self, key: usize) -> &mut S {
        &mut self.nodes[key].state
    }

    /// A waiter still in line was polled again: keeps the waker of its latest poll.
    pub(super) fn set_waker(&mut self, key: usize, waker: &Waker) {
        let n = &mut self.nodes[key];
        if n.linked && !n.waker.as_ref().is_some_and(|w| w.will_wake(waker)) {
            n.waker = Some(waker.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::WaitList;

    #[test]
    fn fifo_with_removal_from_the_middle_and_the_ends() {
        let w = &futures::task::noop_waker();
        let mut l = WaitList::new();
        let keys: Vec<usize> = (0..5).map(|i| l.push(w, i)).collect();
        assert_eq!(l.remove(keys[2]), 2); // middle
        assert_eq!(l.remove(keys[0]), 0); // front
        assert_eq!(l.remove(keys[4]), 4); // back
        let mut order = Vec::new();
        while let Some(k) = l.front() {
            assert!(l.unlink(k).is_some());
            assert!(!l.is_linked(k));
            order.push(*l.state(k));
            // Served, not yet gone: still readable, no longer in line.
            assert_eq!(l.remove(k), order[order.len() - 1]);
        }
        assert_eq!(order, [1, 3]);
        assert!(l.is_empty());
        // Keys are reused, the line is sound after emptying.
        let a = l.push(w, 7);
        let b = l.push(w, 8);
        assert_eq!(l.front(), Some(a));
        l.remove(a);
        assert_eq!(l.front(), Some(b));
        assert!(l.unlink(b).is_some());
        assert!(l.unlink(b).is_none(), "a second unlink is a no-op");
        *l.state_mut(b) += 1;
        assert_eq!(l.remove(b), 9);
        assert!(l.is_empty());
    }
}

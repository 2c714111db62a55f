//! A worker's timers: deadlines of the fibers that live on it and wait in
//! `sleep` or `park_timeout`. The worker fires the due ones on its rounds
//! and sleeps no longer than until the next one.
//!
//! Cancelling is lazy: an entry carries the fiber's park sequence number
//! from when it was armed, and a fiber bumps that number when its timed
//! park returns, so an entry that fires late wakes nobody.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

#[derive(Debug)]
struct Entry<T> {
    deadline: Instant,
    /// Tie-breaker, so equal deadlines fire in the order they were armed.
    order: u64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.deadline, self.order) == (other.deadline, other.order)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.deadline, self.order).cmp(&(other.deadline, other.order))
    }
}

#[derive(Debug)]
pub(crate) struct Timers<T> {
    heap: BinaryHeap<Reverse<Entry<T>>>,
    order: u64,
}

impl<T> Timers<T> {
    pub(crate) fn new() -> Timers<T> {
        Timers {
            heap: BinaryHeap::new(),
            order: 0,
        }
    }

    /// Arms a timer for `item` at `deadline`, tagged with `seq`.
    pub(crate) fn insert(&mut self, deadline: Instant, seq: u64, item: T) {
        self.order += 1;
        self.heap.push(Reverse(Entry {
            deadline,
            order: self.order,
            seq,
            item,
        }));
    }

    /// The earliest deadline, if any.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.deadline)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// Removes and returns one timer due at `now`, with its tag.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(u64, T)> {
        if self.next_deadline()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| (e.seq, e.item))
    }

    /// Removes every timer (shutdown).
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }
}

//! A worker's ready queue: its own started fibers that may run, oldest
//! first. Only the worker's thread touches it.
//!
//! A ring buffer whose capacity is a power of two, with one operation the
//! general-purpose `VecDeque` lacks: [`ReadyQueue::rotate`], which takes
//! the front and files another task at the back in one step, with no
//! capacity check (the length does not change). That is what a fiber
//! that yields to the next one does, on every `yield_now`.
//!
//! The methods take `&self`: the worker's fibers reach the queue through
//! the worker's thread-local while the worker's loop is suspended in a
//! switch, so no `&mut` to the worker can exist. Interior mutability
//! without a `RefCell` flag is sound because no method runs code it does
//! not own while it holds the buffer: it moves tasks in and out of slots
//! but never drops one (a task's drop could run any destructor, which
//! could push to this queue again).

use std::cell::{Cell, UnsafeCell};

/// The capacity of a new queue (grows by doubling).
const INITIAL_CAPACITY: usize = 64;

pub(crate) struct ReadyQueue<T> {
    /// `slots.len()` is a power of two; the queued tasks are the `len`
    /// slots from `head`, wrapping, and every other slot is `None`.
    slots: UnsafeCell<Vec<Option<T>>>,
    head: Cell<usize>,
    len: Cell<usize>,
}

impl<T> ReadyQueue<T> {
    pub(crate) fn new() -> ReadyQueue<T> {
        ReadyQueue {
            slots: UnsafeCell::new(
                std::iter::repeat_with(|| None)
                    .take(INITIAL_CAPACITY)
                    .collect(),
            ),
            head: Cell::new(0),
            len: Cell::new(0),
        }
    }

    /// The buffer's slots and the mask that wraps an index into them, read
    /// once per operation (a store to a slot could otherwise make the
    /// compiler read them again).
    #[inline]
    fn ring(&self) -> Ring<T> {
        // SAFETY: the queue is not Sync, so only this thread gets here, and
        // the reference ends at once (`grow` is the only writer).
        let slots = unsafe { &mut *self.slots.get() };
        Ring {
            slots: slots.as_mut_ptr(),
            mask: slots.len() - 1,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len.get() == 0
    }

    /// Files `task` last.
    #[inline]
    pub(crate) fn push_back(&self, task: T) {
        let len = self.len.get();
        let mut ring = self.ring();
        if len > ring.mask {
            ring = self.grow();
        }
        ring.fill(self.head.get() + len, task);
        self.len.set(len + 1);
    }

    /// Files `task` first.
    pub(crate) fn push_front(&self, task: T) {
        let len = self.len.get();
        let mut ring = self.ring();
        if len > ring.mask {
            ring = self.grow();
        }
        let head = self.head.get().wrapping_sub(1) & ring.mask;
        ring.fill(head, task);
        self.head.set(head);
        self.len.set(len + 1);
    }

    /// The oldest task.
    #[inline]
    pub(crate) fn pop_front(&self) -> Option<T> {
        let len = self.len.get();
        if len == 0 {
            return None;
        }
        let ring = self.ring();
        let head = self.head.get();
        let task = ring.empty(head);
        self.head.set((head + 1) & ring.mask);
        self.len.set(len - 1);
        Some(task)
    }

    /// Takes the oldest task and files `task` last, in one step; if the
    /// queue is empty, gives `task` back.
    #[inline(always)]
    pub(crate) fn rotate(&self, task: T) -> Result<T, T> {
        let len = self.len.get();
        if len == 0 {
            return Err(task);
        }
        let ring = self.ring();
        let head = self.head.get();
        let front = ring.empty(head);
        // The back slot: `head` itself when the queue is full, which the
        // line above just emptied.
        ring.fill(head + len, task);
        self.head.set((head + 1) & ring.mask);
        Ok(front)
    }

    /// Takes every task, oldest first.
    pub(crate) fn take_all(&self) -> Vec<T> {
        let mut all = Vec::with_capacity(self.len.get());
        while let Some(task) = self.pop_front() {
            all.push(task);
        }
        all
    }

    /// Doubles the capacity, keeping the order; returns the new ring.
    #[cold]
    fn grow(&self) -> Ring<T> {
        let old = self.ring();
        let len = self.len.get();
        let mut bigger: Vec<Option<T>> = Vec::with_capacity((old.mask + 1) * 2);
        for i in 0..len {
            bigger.push(Some(old.empty(self.head.get() + i)));
        }
        bigger.resize_with((old.mask + 1) * 2, || None);
        // SAFETY: as in `ring`; the old buffer holds only `None`s now, so
        // dropping it runs no code of a task's.
        unsafe { *self.slots.get() = bigger };
        self.head.set(0);
        self.ring()
    }
}

/// A queue's buffer for one operation: valid until the queue next grows,
/// which no operation does after taking it (`grow` returns a fresh one).
struct Ring<T> {
    slots: *mut Option<T>,
    /// The capacity (a power of two) less one.
    mask: usize,
}

impl<T> Ring<T> {
    /// Puts `task` in the free slot at `index` (wrapped).
    #[inline(always)]
    fn fill(&self, index: usize, task: T) {
        // SAFETY: the masked index is within the buffer (its length is a
        // power of two); writing over the slot's `None` drops nothing.
        unsafe { self.slots.add(index & self.mask).write(Some(task)) };
    }

    /// Takes the task out of the queued slot at `index` (wrapped).
    #[inline(always)]
    fn empty(&self, index: usize) -> T {
        // SAFETY: the masked index is within the buffer; its slot holds a
        // task (the caller's invariant), which `take` moves out.
        let slot = unsafe { &mut *self.slots.add(index & self.mask) };
        debug_assert!(slot.is_some(), "a queued slot holds a task");
        // SAFETY: the caller's invariant: a queued slot is `Some` (no
        // panic path here, so a caller holding a task needs no landing
        // pad to drop it).
        unsafe { slot.take().unwrap_unchecked() }
    }
}

/// For `Inbox::drain_into`: files each task last.
impl<T> Extend<T> for &ReadyQueue<T> {
    fn extend<I: IntoIterator<Item = T>>(&mut self, tasks: I) {
        for task in tasks {
            self.push_back(task);
        }
    }
}

impl<T> Drop for ReadyQueue<T> {
    fn drop(&mut self) {
        // Drops the tasks outside any method (see the module doc).
        drop(self.take_all());
    }
}

impl<T> std::fmt::Debug for ReadyQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadyQueue")
            .field("len", &self.len.get())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(q: &ReadyQueue<u32>) -> Vec<u32> {
        q.take_all()
    }

    #[test]
    fn keeps_fifo_order_across_growth_and_wrap() {
        let q = ReadyQueue::new();
        // Wrap the head first, then grow past the initial capacity.
        for i in 0..10 {
            q.push_back(i);
        }
        for i in 0..10 {
            assert_eq!(q.pop_front(), Some(i));
        }
        for i in 0..(INITIAL_CAPACITY as u32 * 3 + 5) {
            q.push_back(i);
        }
        let all = drain(&q);
        assert_eq!(
            all,
            (0..(INITIAL_CAPACITY as u32 * 3 + 5)).collect::<Vec<_>>()
        );
        assert!(q.is_empty());
        assert_eq!(q.pop_front(), None);
    }

    #[test]
    fn push_front_goes_first() {
        let q = ReadyQueue::new();
        q.push_back(2);
        q.push_front(1);
        q.push_front(0);
        q.push_back(3);
        assert_eq!(drain(&q), vec![0, 1, 2, 3]);
    }

    #[test]
    fn rotate_takes_the_front_and_files_at_the_back() {
        let q = ReadyQueue::new();
        assert_eq!(q.rotate(7), Err(7));
        for i in 0..3 {
            q.push_back(i);
        }
        assert_eq!(q.rotate(10), Ok(0));
        assert_eq!(q.rotate(11), Ok(1));
        assert_eq!(drain(&q), vec![2, 10, 11]);
    }

    #[test]
    fn rotate_on_a_full_queue_reuses_the_emptied_slot() {
        let q = ReadyQueue::new();
        for i in 0..INITIAL_CAPACITY as u32 {
            q.push_back(i);
        }
        assert_eq!(q.rotate(100), Ok(0));
        let mut expected: Vec<u32> = (1..INITIAL_CAPACITY as u32).collect();
        expected.push(100);
        assert_eq!(drain(&q), expected);
    }

    #[test]
    fn dropping_the_queue_drops_its_tasks() {
        let counted = std::rc::Rc::new(());
        let q = ReadyQueue::new();
        for _ in 0..100 {
            q.push_back(counted.clone());
        }
        assert_eq!(std::rc::Rc::strong_count(&counted), 101);
        drop(q);
        assert_eq!(std::rc::Rc::strong_count(&counted), 1);
    }
}

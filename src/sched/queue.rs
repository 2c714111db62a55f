//! Run queues: the only file that names crossbeam-deque.
//!
//! - [`LocalQueue`]: a worker's own deque of tasks that hold no frames (not
//!   started, or between runs). LIFO for its owner, so fork-join work runs
//!   depth-first and few fibers are alive at once; [`Stealer`]s take the
//!   oldest from the other end.
//! - A thief runs what it stole oldest first, in spawn order, as Go's and
//!   tokio's thieves do ([`Stealer::steal_batch_and_pop`]). crossbeam's own
//!   batch steal from a LIFO deque keeps the victim's order instead, newest
//!   first, so fibers spawned in a row started on the thief in runs of 32
//!   backwards: their stacks, carved in the order fibers start, then lay
//!   in a zigzag along the row, and a ring of fibers that crossed them ran
//!   20% to 40% slower per hop on the thief than on the victim.
//! - [`Injector`]: the global FIFO for work from outside the workers.
//!
//! Under `--cfg loom` crossbeam-deque (whose atomics loom cannot see) is
//! replaced by a `Mutex<VecDeque>` with the same operations, so models
//! check the scheduler's use of the queues, not crossbeam itself.

#[cfg(not(loom))]
mod imp {
    use crossbeam_deque::{
        Injector as CbInjector, Steal, Stealer as CbStealer, Worker as CbWorker,
    };

    /// At most this many tasks are taken by one steal from a worker (the
    /// one returned and the rest moved), as crossbeam's batch steals.
    const STEAL_BATCH: usize = 32;

    /// Repeats a steal while crossbeam asks for a retry (a concurrent
    /// operation moved the ends under us), as crossbeam's `find_task` does.
    fn retry<T>(mut attempt: impl FnMut() -> Steal<T>) -> Option<T> {
        loop {
            match attempt() {
                Steal::Success(task) => return Some(task),
                Steal::Empty => return None,
                Steal::Retry => std::hint::spin_loop(),
            }
        }
    }

    /// A worker's own deque: push and pop at one end, steal at the other.
    #[derive(Debug)]
    pub(crate) struct LocalQueue<T>(CbWorker<T>);

    /// A handle that steals the oldest tasks of one [`LocalQueue`].
    #[derive(Debug)]
    pub(crate) struct Stealer<T>(CbStealer<T>);

    impl<T> Clone for Stealer<T> {
        fn clone(&self) -> Self {
            Stealer(self.0.clone())
        }
    }

    impl<T> LocalQueue<T> {
        pub(crate) fn new() -> LocalQueue<T> {
            LocalQueue(CbWorker::new_lifo())
        }

        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer(self.0.stealer())
        }

        #[inline]
        pub(crate) fn push(&self, task: T) {
            self.0.push(task);
        }

        /// The newest task.
        #[inline]
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.pop()
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }

    impl<T> Stealer<T> {
        /// The oldest task.
        pub(crate) fn steal(&self) -> Option<T> {
            retry(|| self.0.steal())
        }

        /// Takes about half the tasks (at most [`STEAL_BATCH`]), oldest
        /// first: returns the oldest and moves the others into `dest` so
        /// that its owner pops them in the order they were pushed here.
        ///
        /// One at a time, under one epoch pin: a batch steal from a LIFO
        /// deque costs a CAS per task in crossbeam too, and this was no
        /// slower (a microbenchmark, uncontended: about 20 ns a task,
        /// crossbeam's batch steal about 27).
        pub(crate) fn steal_batch_and_pop(&self, dest: &LocalQueue<T>) -> Option<T> {
            let _pin = crossbeam_epoch::pin();
            let oldest = self.steal()?;
            let mut batch: [Option<T>; STEAL_BATCH - 1] = [const { None }; STEAL_BATCH - 1];
            let want = (self.0.len() / 2).min(batch.len());
            let mut taken = 0;
            while taken < want
                && let Some(task) = self.steal()
            {
                batch[taken] = Some(task);
                taken += 1;
            }
            // The owner's end is LIFO: the next oldest goes on top.
            for task in batch[..taken].iter_mut().rev().filter_map(Option::take) {
                dest.push(task);
            }
            Some(oldest)
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }

    /// The global queue, FIFO.
    #[derive(Debug)]
    pub(crate) struct Injector<T>(CbInjector<T>);

    impl<T> Injector<T> {
        pub(crate) fn new() -> Injector<T> {
            Injector(CbInjector::new())
        }

        pub(crate) fn push(&self, task: T) {
            self.0.push(task);
        }

        pub(crate) fn steal(&self) -> Option<T> {
            retry(|| self.0.steal())
        }

        /// Moves a batch into `dest` and returns one task of it.
        pub(crate) fn steal_batch_and_pop(&self, dest: &LocalQueue<T>) -> Option<T> {
            retry(|| self.0.steal_batch_and_pop(&dest.0))
        }

        pub(crate) fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }
}

#[cfg(loom)]
mod imp {
    use std::collections::VecDeque;

    use ::loom::sync::Arc;

    use crate::loom::sync::Mutex;

    /// The loom stand-in: the owner's end is the back.
    #[derive(Debug)]
    pub(crate) struct LocalQueue<T>(Arc<Mutex<VecDeque<T>>>);

    #[derive(Debug)]
    pub(crate) struct Stealer<T>(Arc<Mutex<VecDeque<T>>>);

    impl<T> Clone for Stealer<T> {
        fn clone(&self) -> Self {
            Stealer(self.0.clone())
        }
    }

    impl<T> LocalQueue<T> {
        pub(crate) fn new() -> LocalQueue<T> {
            LocalQueue(Arc::new(Mutex::new(VecDeque::new())))
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer(self.0.clone())
        }
        pub(crate) fn push(&self, task: T) {
            self.0.lock().push_back(task);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.lock().pop_back()
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().is_empty()
        }
    }

    impl<T> Stealer<T> {
        pub(crate) fn steal(&self) -> Option<T> {
            self.0.lock().pop_front()
        }
        /// As the real one: the oldest returned, the next ones moved so
        /// that `dest`'s owner pops them oldest first.
        pub(crate) fn steal_batch_and_pop(&self, dest: &LocalQueue<T>) -> Option<T> {
            let mut src = self.0.lock();
            let first = src.pop_front()?;
            let batch = src.len() / 2;
            let moved: Vec<T> = src.drain(..batch).collect();
            drop(src);
            let mut dest = dest.0.lock();
            for task in moved.into_iter().rev() {
                dest.push_back(task);
            }
            Some(first)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().is_empty()
        }
    }

    #[derive(Debug)]
    pub(crate) struct Injector<T>(Mutex<VecDeque<T>>);

    impl<T> Injector<T> {
        pub(crate) fn new() -> Injector<T> {
            Injector(Mutex::new(VecDeque::new()))
        }
        pub(crate) fn push(&self, task: T) {
            self.0.lock().push_back(task);
        }
        pub(crate) fn steal(&self) -> Option<T> {
            self.0.lock().pop_front()
        }
        pub(crate) fn steal_batch_and_pop(&self, _dest: &LocalQueue<T>) -> Option<T> {
            self.steal()
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().is_empty()
        }
    }
}

pub(crate) use imp::{Injector, LocalQueue, Stealer};

#[cfg(all(test, not(loom)))]
mod tests {
    use super::LocalQueue;

    #[test]
    fn a_thief_runs_a_stolen_batch_oldest_first() {
        let victim = LocalQueue::new();
        for n in 0..100 {
            victim.push(n);
        }
        let thief = LocalQueue::new();
        let first = victim.stealer().steal_batch_and_pop(&thief);
        assert_eq!(first, Some(0), "the oldest task runs first");
        let mut rest = Vec::new();
        while let Some(n) = thief.pop() {
            rest.push(n);
        }
        let expected: Vec<i32> = (1..=rest.len() as i32).collect();
        assert_eq!(rest, expected, "then the next oldest, in spawn order");
        assert!(
            (20..32).contains(&rest.len()),
            "about half of what is left, at most 31: took {}",
            rest.len()
        );
        // The victim keeps the rest, its own order untouched.
        assert_eq!(victim.pop(), Some(99));
        assert_eq!(victim.stealer().steal(), Some(rest.len() as i32 + 1));
    }

    #[test]
    fn a_steal_from_an_empty_or_single_task_queue() {
        let victim = LocalQueue::<u8>::new();
        let thief = LocalQueue::new();
        assert_eq!(victim.stealer().steal_batch_and_pop(&thief), None);
        victim.push(7);
        assert_eq!(victim.stealer().steal_batch_and_pop(&thief), Some(7));
        assert!(thief.is_empty() && victim.is_empty());
    }
}

//! Run queues: the only file that names crossbeam-deque.
//!
//! - [`LocalQueue`]: a worker's own deque of tasks that hold no frames (not
//!   started, or between runs). LIFO for its owner, so fork-join work runs
//!   depth-first and few fibers are alive at once; [`Stealer`]s take the
//!   oldest from the other end.
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

        /// Moves about half the tasks into `dest` and returns one of them.
        pub(crate) fn steal_batch_and_pop(&self, dest: &LocalQueue<T>) -> Option<T> {
            retry(|| self.0.steal_batch_and_pop(&dest.0))
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
        pub(crate) fn steal_batch_and_pop(&self, dest: &LocalQueue<T>) -> Option<T> {
            let mut src = self.0.lock();
            let first = src.pop_front()?;
            let batch = src.len() / 2;
            let moved: Vec<T> = src.drain(..batch).collect();
            drop(src);
            let mut dest = dest.0.lock();
            for task in moved {
                dest.push_front(task);
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

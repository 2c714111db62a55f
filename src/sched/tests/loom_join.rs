//! Model (c): a fiber's completion racing its joiner, or the handle's drop.

use ::loom::cell::UnsafeCell;
use ::loom::sync::Arc;
use ::loom::sync::atomic::{AtomicUsize, Ordering};
use ::loom::thread;

use crate::fiber::join::{JoinState, Wakeable};

/// A joiner that is a (loom) thread, as `JoinHandle::join` from a plain
/// thread is.
struct ThreadWaker(thread::Thread);

impl Wakeable for ThreadWaker {
    fn wake(self) {
        self.0.unpark();
    }
}

/// The result, counting its drops.
struct Output(Arc<AtomicUsize>);

impl Drop for Output {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// What `Spawned` holds: the handshake and the result slot.
struct Task<W = ThreadWaker> {
    join: JoinState<W>,
    result: UnsafeCell<Option<Output>>,
}

// SAFETY: the result slot is handed over by the join handshake (that is
// what the model checks).
unsafe impl<W: Send> Sync for Task<W> {}

/// `Spawned::complete`: write the result, then publish it. The planted bug
/// publishes first.
fn finish<W: Wakeable>(task: &Task<W>, drops: &Arc<AtomicUsize>, publish_first: bool) {
    let write = || {
        task.result.with_mut(|slot| {
            // SAFETY: the finisher writes once; loom checks the hand-off.
            unsafe { *slot = Some(Output(drops.clone())) }
        })
    };
    if publish_first {
        task.join.complete();
        write();
    } else {
        write();
        task.join.complete();
    }
}

/// `JoinHandle::join` from a thread.
fn join(task: &Task) -> Output {
    if !task.join.is_complete() && task.join.register(ThreadWaker(thread::current())) {
        while !task.join.is_complete() {
            thread::park();
        }
    }
    // SAFETY: complete, and this is the only take.
    task.result
        .with_mut(|slot| unsafe { (*slot).take() })
        .expect("a result")
}

fn join_model(joins: bool, publish_first: bool) {
    ::loom::model(move || {
        let drops = Arc::new(AtomicUsize::new(0));
        let task = Arc::new(Task {
            join: JoinState::new(),
            result: UnsafeCell::new(None),
        });
        let finisher = {
            let (task, drops) = (task.clone(), drops.clone());
            thread::spawn(move || finish(&task, &drops, publish_first))
        };
        if joins {
            let output = join(&task);
            drop(output);
            assert_eq!(
                drops.load(Ordering::Relaxed),
                1,
                "the joiner got the result"
            );
        } else {
            drop(task);
        }
        finisher.join().unwrap();
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "the result is dropped exactly once"
        );
    });
}

/// (c) Completion racing a joiner: the joiner always wakes and gets the
/// result, which is dropped exactly once.
#[test]
fn loom_join_races_completion() {
    join_model(true, false);
}

/// (c) Completion racing the handle's drop (detach): the result is still
/// dropped exactly once, by whoever lets go of the task last.
#[test]
fn loom_detach_races_completion() {
    join_model(false, false);
}

/// A joiner's waiter that counts its drops (a wake consumes it, so a
/// woken waiter counts too).
struct CountedWaker(thread::Thread, Arc<AtomicUsize>);

impl Wakeable for CountedWaker {
    fn wake(self) {
        self.0.unpark();
    }
}

impl Drop for CountedWaker {
    fn drop(&mut self) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

/// (c) A joiner that registers twice (an async joiner polled again with a
/// new waker: the second registration takes the boxed waiter back out of
/// the word and replaces it) racing completion: the joiner still wakes and
/// gets the result, and each waiter is dropped exactly once.
#[test]
fn loom_join_reregister_races_completion() {
    ::loom::model(|| {
        let drops = Arc::new(AtomicUsize::new(0));
        let waiters = Arc::new(AtomicUsize::new(0));
        let task = Arc::new(Task::<CountedWaker> {
            join: JoinState::new(),
            result: UnsafeCell::new(None),
        });
        let finisher = {
            let (task, drops) = (task.clone(), drops.clone());
            thread::spawn(move || finish(&task, &drops, false))
        };
        let mut made = 1;
        let mut wait = task
            .join
            .register(CountedWaker(thread::current(), waiters.clone()));
        if wait {
            made += 1;
            wait = task
                .join
                .register(CountedWaker(thread::current(), waiters.clone()));
        }
        if wait {
            while !task.join.is_complete() {
                thread::park();
            }
        }
        assert!(task.join.is_complete(), "the joiner saw the result");
        // SAFETY: complete, and this is the only take.
        let output = task.result.with_mut(|slot| unsafe { (*slot).take() });
        assert!(output.is_some(), "a result");
        drop(output);
        finisher.join().unwrap();
        drop(task);
        assert_eq!(
            waiters.load(Ordering::Relaxed),
            made,
            "every waiter is dropped exactly once"
        );
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "the result is dropped once"
        );
    });
}

/// The planted bug (publish COMPLETE before writing the result) lets the
/// joiner read the slot while it is being written: loom reports it.
#[test]
fn loom_join_mutation_publish_before_write_is_caught() {
    if crate::loom::mutation::is_mutant_run() {
        join_model(true, true);
    } else {
        crate::loom::mutation::expect_rejected(
            "sched::tests::loom_join::loom_join_mutation_publish_before_write_is_caught",
            "join_publish_before_write",
            &["Causality violation"],
        );
    }
}

//! The body of a spawned fiber: a closure, run once, and its result slot.

use std::cell::UnsafeCell;
use std::mem;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::join::{JoinState, JoinTarget, TAKEN_TWICE};
use super::task::{Body, BodyEnd, Outcome, TaskCell};
use crate::error::JoinError;

/// A closure `F` returning `T`.
///
/// `stage` holds the closure until the task's claimant takes it (to run
/// it, or to drop it if the task never runs), then the result, which the
/// claimant writes before `join.complete()` and the handle takes after
/// seeing it complete. One slot for both: a task never holds a closure and
/// a result at once, and the slot is as large as the larger of the two,
/// not their sum.
pub(crate) struct Spawned<F, T> {
    stage: UnsafeCell<Stage<F, T>>,
    join: JoinState,
}

/// Where a spawned closure is in its life.
enum Stage<F, T> {
    /// Not run yet.
    Pending(F),
    /// Taken by the claimant: running, or dropped unrun, no result yet.
    Running,
    /// The value the closure returned.
    Returned(T),
    /// Why there is no value. Boxed: failures are rare, and every task
    /// carries the slot's size.
    Failed(Box<JoinError>),
    /// The handle took the result.
    Taken,
}

// SAFETY: `stage` is touched by one thread at a time, as the type's
// documentation says; F and T are Send, so they may be touched from any
// thread.
unsafe impl<F: Send, T: Send> Sync for Spawned<F, T> {}

impl<F, T> Spawned<F, T> {
    pub(crate) fn new(closure: F) -> Spawned<F, T> {
        Spawned {
            stage: UnsafeCell::new(Stage::Pending(closure)),
            join: JoinState::new(),
        }
    }

    /// Replaces the stage, for the claimant, and returns the old one.
    ///
    /// # Safety
    ///
    /// The caller is the task's claimant, before `join.complete()`.
    unsafe fn replace(&self, next: Stage<F, T>) -> Stage<F, T> {
        // SAFETY: only the claimant touches the stage before `complete`
        // publishes it (the caller's contract); the reference ends here.
        unsafe { mem::replace(&mut *self.stage.get(), next) }
    }

    /// Records why there is no result and tells the joiner. What the stage
    /// held (a closure that never ran, or a value returned before a
    /// fiber-local's destructor panicked) is user code's to drop: a panic
    /// there must not unwind into the scheduler.
    fn fail(&self, err: JoinError) {
        // SAFETY: `complete`, our only caller, runs on the claimant, once,
        // before it publishes.
        let old = unsafe { self.replace(Stage::Failed(Box::new(err))) };
        let _ = catch_unwind(AssertUnwindSafe(|| drop(old)));
        self.join.complete();
    }
}

impl<F, T> Drop for Spawned<F, T> {
    /// The result (a value or a panic payload) and a closure that never
    /// ran are user values, and their `Drop` may panic. The last reference
    /// to a task is often a worker's (the handle was dropped: a detached
    /// fiber), and a panic must never unwind a worker's loop: that kills
    /// the worker and strands every fiber that lives on it. So the panic
    /// is contained here, as tokio does for a task's output; the default
    /// hook has already reported it. Its payload is leaked, since dropping
    /// it could panic again.
    fn drop(&mut self) {
        let stage = mem::replace(self.stage.get_mut(), Stage::Taken);
        if matches!(stage, Stage::Taken | Stage::Running) {
            // Joined (the common case), or nothing left: no user code runs.
            return;
        }
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(stage))) {
            mem::forget(payload);
        }
    }
}

impl<F, T> Body for Spawned<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(&self, _task: &TaskCell<dyn Body>) -> BodyEnd {
        // SAFETY: the claimant runs the body, once, before `complete`.
        let Stage::Pending(closure) = (unsafe { self.replace(Stage::Running) }) else {
            unreachable!("a spawned fiber's closure runs once");
        };
        let value = closure();
        // SAFETY: only the claimant writes, before `complete` publishes;
        // the stage is `Running` (set above, and nobody else writes it),
        // which owns nothing, so overwriting it without a drop leaks
        // nothing.
        unsafe { self.stage.get().write(Stage::Returned(value)) };
        BodyEnd::Exit
    }

    fn complete_returned(&self) {
        // `run` wrote the value.
        self.join.complete();
    }

    fn complete(&self, outcome: Outcome) {
        match outcome {
            Outcome::Returned => self.join.complete(),
            Outcome::Panicked(payload) => self.fail(JoinError::panic(payload)),
            // The closure never ran (or its fiber was unwound before it
            // returned, and it is gone already): `fail` drops it, if any.
            Outcome::Cancelled => self.fail(JoinError::cancelled()),
            Outcome::NoStack(err) => self.fail(JoinError::no_stack(err)),
        }
    }
}

impl<F, T> JoinTarget<T> for Spawned<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn join_state(&self) -> &JoinState {
        &self.join
    }

    unsafe fn take_result(&self) -> Result<T, JoinError> {
        // SAFETY: the caller saw COMPLETE (Acquire), which the writer set
        // after writing (Release), and is the handle, the only taker.
        let stage = unsafe { mem::replace(&mut *self.stage.get(), Stage::Taken) };
        match stage {
            Stage::Returned(value) => Ok(value),
            Stage::Failed(err) => Err(*err),
            Stage::Taken => panic!("{TAKEN_TWICE}"),
            Stage::Pending(_) | Stage::Running => {
                unreachable!("a complete fiber left its result")
            }
        }
    }
}

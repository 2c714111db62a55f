//! The body of a spawned fiber: a closure, run once, and its result slot.

use std::cell::UnsafeCell;
use std::panic::{AssertUnwindSafe, catch_unwind};

use super::join::{JoinState, JoinTarget};
use super::task::{Body, BodyEnd, Outcome, TaskCell};
use crate::error::JoinError;

/// A closure `F` returning `T`.
///
/// `closure` is taken by the task's claimant (to run it, or to drop it if
/// the task never runs); `result` is written by the claimant before
/// `join.complete()` and read by the handle after seeing it complete.
pub(crate) struct Spawned<F, T> {
    closure: UnsafeCell<Option<F>>,
    result: UnsafeCell<Option<Result<T, JoinError>>>,
    join: JoinState,
}

// SAFETY: `closure` and `result` are touched by one thread at a time, as
// the type's documentation says; F and T are Send, so they may be touched
// from any thread.
unsafe impl<F: Send, T: Send> Sync for Spawned<F, T> {}

impl<F, T> Spawned<F, T> {
    pub(crate) fn new(closure: F) -> Spawned<F, T> {
        Spawned {
            closure: UnsafeCell::new(Some(closure)),
            result: UnsafeCell::new(None),
            join: JoinState::new(),
        }
    }

    /// Writes the result and tells the joiner.
    fn finish(&self, result: Result<T, JoinError>) {
        // SAFETY: only the claimant writes, before `complete` publishes.
        unsafe { *self.result.get() = Some(result) };
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
        let result = self.result.get_mut().take();
        let closure = self.closure.get_mut().take();
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop((result, closure)))) {
            std::mem::forget(payload);
        }
    }
}

impl<F, T> Body for Spawned<F, T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    fn run(&self, _task: &TaskCell<dyn Body>) -> BodyEnd {
        // SAFETY: the claimant runs the body, once.
        let closure = unsafe { (*self.closure.get()).take() };
        let closure = closure.expect("a spawned fiber's closure runs once");
        let value = closure();
        // SAFETY: only the claimant writes, before `complete` publishes.
        unsafe { *self.result.get() = Some(Ok(value)) };
        BodyEnd::Exit
    }

    fn complete(&self, outcome: Outcome) {
        match outcome {
            Outcome::Returned => self.join.complete(),
            Outcome::Panicked(payload) => self.finish(Err(JoinError::panic(payload))),
            Outcome::Cancelled | Outcome::NoStack(_) => {
                // The closure never ran (or its fiber was unwound before it
                // returned, and it is gone already). Dropping it runs user
                // code: a panic there must not unwind into the scheduler.
                // SAFETY: the claimant is the only one touching it.
                let closure = unsafe { (*self.closure.get()).take() };
                let _ = catch_unwind(AssertUnwindSafe(|| drop(closure)));
                let err = match outcome {
                    Outcome::NoStack(err) => JoinError::no_stack(err),
                    _ => JoinError::cancelled(),
                };
                self.finish(Err(err));
            }
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
        // after writing (Release), and takes it once.
        let result = unsafe { (*self.result.get()).take() };
        result.expect("a complete fiber left its result")
    }
}

//! Shutdown, on each worker's own thread: every started fiber that lives
//! here is unwound (its destructors run) and every unstarted task queued
//! here is completed as cancelled; see `sched/mod.rs`, "Shutdown".

use super::Worker;
use crate::fiber::state::Claim;
use crate::fiber::task::{FiberContext, Outcome, TaskRef, take_woken_count};
use crate::fiber::task_ref::TaskArc;
use crate::stack_pool::Hoard;

impl Worker {
    /// Shutdown, on this worker's thread: unwind every started fiber that
    /// lives here and cancel every unstarted task queued here, until
    /// nothing is left (unwinding may wake or spawn more).
    pub(super) fn shutdown(&self) {
        // The unwound fibers' stacks go back to the pool in one batch at
        // the end, not 16 at a time (see `stack_pool::cache`).
        let _hoard = Hoard::new();
        self.timers.borrow_mut().clear();
        loop {
            let started = self.registered();
            for task in &started {
                task.header.state.cancel();
            }
            for task in started {
                if task.header.state.transition_to_running_from_parked() == Claim::Run {
                    // SAFETY: we moved it out of PARKED just now; `task`
                    // (the registry's clone) keeps it alive.
                    drop(unsafe { take_woken_count(&task) });
                    self.unwind(task);
                }
            }
            // Pinned fibers queued at home are claimed for us already.
            let mut claimed: Vec<TaskRef> = Vec::new();
            let mut queued: Vec<TaskRef> = Vec::new();
            if self.pin { &mut claimed } else { &mut queued }.extend(self.lifo.take());
            claimed.extend(self.ready.take_all());
            self.me.inbox.drain_into(&mut claimed);
            while let Some(task) = self.local.pop() {
                queued.push(task);
            }
            // Any worker drains the injector: under the migration opt-in it
            // may hold started fibers woken from outside.
            while let Some(task) = self.shared.injector.steal() {
                queued.push(task);
            }
            if queued.is_empty() && claimed.is_empty() {
                if self.registry_is_empty() {
                    return;
                }
                // A waker moved one of ours out of PARKED and has not
                // pushed it to the inbox yet: let it finish.
                std::thread::yield_now();
                continue;
            }
            for task in claimed {
                task.header.state.cancel();
                self.unwind(task);
            }
            for task in queued {
                task.header.state.cancel();
                if task.header.state.transition_to_running(self.pin) == Claim::Skip {
                    continue;
                }
                // SAFETY: we hold the claim.
                if unsafe { task.header.fiber_mut() }.exists() {
                    self.unwind(task);
                } else {
                    self.cancel_unstarted_claimed(task);
                }
            }
        }
    }

    /// Unwinds the fiber of a claimed, started task on this thread: its
    /// destructors run, and its body reports `Cancelled`.
    fn unwind(&self, task: TaskRef) {
        // SAFETY: we hold the claim.
        let fiber = std::mem::replace(unsafe { task.header.fiber_mut() }, FiberContext::none());
        self.current.set(Some(TaskArc::as_ptr(&task)));
        drop(fiber);
        self.current.set(None);
        self.forget_started(&task);
        task.header.state.transition_to_complete();
    }

    /// Completes a claimed task that has no fiber as cancelled, on this
    /// thread, with the task as `current` while it completes (as `unwind`
    /// has it): code its completion runs, such as an actor's `stopped`
    /// hook, then sees a cancelled task, so a blocking call in it gives up
    /// at once. Without it, such a call blocked the worker thread itself:
    /// a hook that asked another actor waited for a reply that only this
    /// worker, busy in the hook, would ever have produced (by cancelling
    /// that actor, queued here), and the runtime's drop hung.
    fn cancel_unstarted_claimed(&self, task: TaskRef) {
        let outer = self.current.replace(Some(TaskArc::as_ptr(&task)));
        task.body.complete(Outcome::Cancelled);
        self.current.set(outer);
        task.header.state.transition_to_complete();
    }
}

//! An actor as the scheduler sees it: a task whose body handles its
//! mailbox in batches and then returns to idle, giving its stack back.
//!
//! A message to an idle actor wakes its task (IDLE to SCHEDULED), which
//! any worker may take: the body runs on a fresh fiber with a pooled
//! stack and handles up to [`BATCH`] envelopes. If more wait, it yields
//! (the work already queued on its worker runs first: one busy actor
//! cannot starve the others) and handles the next batch, on the same
//! fiber; once the mailbox is empty it returns [`BodyEnd::Idle`], and the
//! task is IDLE, holding no stack and sitting in no queue. A handler may
//! block (park, sleep, a socket read, `ask` another actor): only then,
//! while it works through a long mailbox, or while a fiber of its worker
//! keeps asking it (below, in `run`), does the actor keep a stack.
//!
//! The actor's state is touched only by the task's claimant (the fiber
//! running its body), like a spawned fiber's closure.

use std::cell::UnsafeCell;
use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use super::context::Context;
use super::link::{ActorRef, Control, StopReason};
use super::mailbox::{Envelope, IfNone, Kill, Mailbox, Signal};
use super::{Actor, ActorId, registry};
use crate::fiber::task::{Body, BodyEnd, Outcome, TaskCell, TaskRef};
use crate::sched::Shared;

/// How many envelopes an actor handles before it gives the others a turn.
pub(crate) const BATCH: usize = 64;

/// The actor's state and where it is in its life.
pub(crate) enum Life<A> {
    /// Not started: `started` has not run yet.
    New(A),
    /// Running (or between runs).
    Running(A),
    /// Stopped: the state was dropped after `stopped` ran.
    Stopped,
}

/// Claimant-only state.
pub(crate) struct Slot<A> {
    pub(crate) life: Life<A>,
}

/// The body of an actor's task.
pub(crate) struct ActorCell<A: Actor> {
    pub(crate) mailbox: Mailbox<A::Msg>,
    slot: UnsafeCell<Slot<A>>,
    /// The runtime the actor runs on (to queue it when a message arrives
    /// while it is idle).
    runtime: Arc<Shared>,
}

// SAFETY: `slot` is only touched by the task's claimant (one thread at a
// time, the hand-offs ordered by the task's state word); A is Send.
unsafe impl<A: Actor> Sync for ActorCell<A> {}

impl<A: Actor> ActorCell<A> {
    pub(crate) fn new(actor: A, capacity: u32, runtime: Arc<Shared>) -> ActorCell<A> {
        ActorCell {
            mailbox: Mailbox::new(capacity),
            slot: UnsafeCell::new(Slot {
                life: Life::New(actor),
            }),
            runtime,
        }
    }

    /// The claimant's state.
    ///
    /// # Safety
    ///
    /// The caller is the task's claimant, and holds no other reference to
    /// the slot.
    #[allow(
        clippy::mut_from_ref,
        reason = "exclusive to the claimant, as documented"
    )]
    unsafe fn slot(&self) -> &mut Slot<A> {
        // SAFETY: the caller's contract.
        unsafe { &mut *self.slot.get() }
    }
}

impl<A: Actor> Body for ActorCell<A> {
    fn run(&self, task: &TaskCell<dyn Body>) -> BodyEnd {
        // SAFETY: we run on the task's fiber, its claimant.
        let slot = unsafe { self.slot() };
        let mut ctx = Context::new(self, self.mailbox.trap_exit());
        // The state moves to `Running` before `started` runs, so that a
        // panic there leaves it in the slot for the `stopped` hook (an
        // unwinding `started` would otherwise drop it with its frame).
        let first_run = matches!(slot.life, Life::New(_));
        if first_run && let Life::New(actor) = std::mem::replace(&mut slot.life, Life::Stopped) {
            slot.life = Life::Running(actor);
        }
        let Life::Running(actor) = &mut slot.life else {
            return BodyEnd::Exit;
        };
        if first_run {
            actor.started(&mut ctx);
        }
        if let Some(reason) = ctx.take_stop() {
            self.mailbox.set_trap_exit(ctx.trap_exit());
            stop(self, slot, reason, VecDeque::new());
            return BodyEnd::Exit;
        }
        // One batch buffer for the whole run, swapped with the mailbox's
        // (`Mailbox::take_batch`).
        let mut batch = VecDeque::new();
        loop {
            if let Some(reason) = self.mailbox.take_batch(&mut batch, BATCH) {
                stop(self, slot, reason, batch);
                return BodyEnd::Exit;
            }
            while let Some(envelope) = batch.pop_front() {
                // A kill that came while an earlier envelope was handled drops
                // the rest of the batch too: those messages were queued when
                // the kill came, and a killed actor handles nothing more.
                if let Some(reason) = self.mailbox.killed() {
                    batch.push_front(envelope);
                    self.mailbox.set_trap_exit(ctx.trap_exit());
                    stop(self, slot, reason, batch);
                    return BodyEnd::Exit;
                }
                let verdict = match envelope {
                    Envelope::Message(msg) => {
                        actor.handle(msg, &mut ctx);
                        None
                    }
                    Envelope::Signal(Signal::Stop) => Some(StopReason::Normal),
                    Envelope::Signal(Signal::Exit(notice)) => {
                        let (from, reason) = *notice;
                        if !self.remove_link(from) {
                            // Unlinked since the exit was sent (a supervisor
                            // replacing a child that failed meanwhile): as in
                            // Erlang, an unlink leaves no trace, so ignore it.
                            None
                        } else if ctx.trap_exit() {
                            actor.linked_exit(from, &reason, &mut ctx);
                            None
                        } else if reason.is_abnormal() {
                            Some(StopReason::Linked(from))
                        } else {
                            None
                        }
                    }
                    Envelope::Signal(Signal::Down(notice)) => {
                        let (from, reason) = *notice;
                        actor.down(from, &reason, &mut ctx);
                        None
                    }
                };
                if let Some(reason) = verdict.or_else(|| ctx.take_stop()) {
                    // What is left of the batch goes with the mailbox.
                    self.mailbox.set_trap_exit(ctx.trap_exit());
                    stop(self, slot, reason, batch);
                    return BodyEnd::Exit;
                }
            }
            self.mailbox.set_trap_exit(ctx.trap_exit());
            // Look at the mailbox itself, not only at the batch: a full
            // batch may have left more behind, and a message that arrived
            // while a hook or handler was blocked (a socket read, a sleep,
            // an ask) woke the *fiber* parked there, and that park consumed
            // the wake. Nothing waits: go idle, giving the stack back. A
            // message pushed after this look finds the task RUNNING and
            // leaves a token, which the worker's move to idle turns into a
            // reschedule.
            //
            // But if a reply to an `ask` woke the asker here, it runs next:
            // let it run first, then look again. An asker that asks again
            // finds the actor on the same fiber, as two fibers talking over
            // channels would, instead of waking a fresh one each time (a
            // stack taken and given back, a fiber started and ended: the
            // comparison runner's actor_ask went from 400 to 240 ns). One
            // look that finds nothing ends it. The look that ends it also
            // frees the mailbox's spare buffer (an idle actor keeps none),
            // and is taken after the token that a message pushed while the
            // actor ran left, which is stale once the look has seen that
            // message (`State::look_before_idle`).
            let idle_look = || {
                let state = &task.header.state;
                state.look_before_idle(|| self.mailbox.has_work(IfNone::DropBuffer))
            };
            let asker_runs_next = crate::fiber::current::woken_waits();
            let work = if asker_runs_next {
                self.mailbox.has_work(IfNone::KeepBuffer)
            } else {
                idle_look()
            };
            if !work {
                if !(asker_runs_next && crate::fiber::current::yield_to_woken() && idle_look()) {
                    return BodyEnd::Idle;
                }
                continue;
            }
            // More waits: yield, so that the work already queued on this
            // worker (actors this one woke, say) runs before the next batch;
            // then go on, on the same fiber and stack. (Going idle with a
            // token instead put the task back on top of the worker's LIFO
            // deque, ahead of everything it had woken, which then waited for
            // the worker's periodic fairness pass: about 60 batches.)
            crate::yield_now();
        }
    }

    fn complete(&self, outcome: Outcome) {
        let reason = match outcome {
            // `run` already went through `stop`.
            Outcome::Returned => return,
            Outcome::Panicked(payload) => StopReason::from_panic(payload.as_ref()),
            Outcome::Cancelled => StopReason::Shutdown,
            Outcome::NoStack(err) => StopReason::NoStack(err.to_string()),
        };
        // SAFETY: `complete` runs on the claimant (the fiber, after its
        // body, or the worker that could not start it).
        let slot = unsafe { self.slot() };
        stop(self, slot, reason, VecDeque::new());
    }

    fn schedule_idle(&self, task: TaskRef) {
        self.runtime.schedule_woken(task);
    }
}

/// The task cell whose body is `cell`. Every `ActorCell` is the body of
/// a `TaskArc<ActorCell<A>>` (only `actor::Builder::spawn` makes
/// them).
pub(super) fn cell_task_ptr<A: Actor>(cell: &ActorCell<A>) -> *const TaskCell<ActorCell<A>> {
    let offset = std::mem::offset_of!(TaskCell<ActorCell<A>>, body);
    (cell as *const ActorCell<A>)
        .cast::<u8>()
        .wrapping_sub(offset)
        .cast()
}

/// The stop sequence, on the claimant: the mailbox closed (sends fail,
/// `is_alive` is false, parked senders get their messages back), the
/// `stopped` hook, the state dropped, what was left queued (and `rest`,
/// the unhandled part of the current batch) dropped, then links and
/// monitors told, names unregistered, and last joiners woken (a `join`
/// returns only once all of this is done).
///
/// The mailbox closes first so that an asker whose `Reply` goes with the
/// queue, the state or the hook sees the actor stopped (`Stopped`, not
/// `NoReply`); joiners, links and monitors hear of the stop only once it
/// is complete.
fn stop<A: Actor>(
    cell: &ActorCell<A>,
    slot: &mut Slot<A>,
    reason: StopReason,
    rest: VecDeque<Envelope<A::Msg>>,
) {
    let (left, senders) = {
        let mut inner = cell.mailbox.lock();
        if inner.closed {
            return;
        }
        inner.closed = true;
        (
            std::mem::take(&mut inner.queue),
            inner.drain_waiting_senders(),
        )
    };
    for fiber in senders {
        fiber.unpark();
    }
    let actor = match std::mem::replace(&mut slot.life, Life::Stopped) {
        Life::New(actor) | Life::Running(actor) => Some(actor),
        Life::Stopped => None,
    };
    if let Some(mut actor) = actor {
        let mut ctx = Context::new(cell, cell.mailbox.trap_exit());
        // A hook that panics does not stop the sequence (the reason stays
        // the one that stopped the actor).
        let _ = catch_unwind(AssertUnwindSafe(|| actor.stopped(&reason, &mut ctx)));
        let _ = catch_unwind(AssertUnwindSafe(|| drop(actor)));
    }
    let _ = catch_unwind(AssertUnwindSafe(|| drop((rest, left))));
    let (links, monitors, names) = cell.mailbox.lock().record_stop(&reason);
    let id = cell.id();
    // The linked actors keep their side of the link until they handle the
    // exit: an exit that finds no link was unlinked on the way, and is
    // ignored (see `run`).
    for linked in links.into_values() {
        linked.signal(Signal::Exit(Box::new((id, reason.clone()))));
    }
    for watcher in monitors {
        watcher.signal(Signal::Down(Box::new((id, reason.clone()))));
    }
    registry::forget(id, &names);
    // Joiners last, and only now: `join` returns once the stop is over
    // (the names released, links and monitors told), not as soon as the
    // reason is known. Joins that came meanwhile waited; take them too.
    let joiners = cell.mailbox.lock().finish_stop(&reason);
    for fiber in joiners {
        fiber.unpark();
    }
}

impl<A: Actor> Control for ActorCell<A> {
    fn id(&self) -> ActorId {
        ActorId(cell_header_id(self))
    }

    fn deliver(&self, signal: Signal) -> bool {
        self.mailbox.push_signal(signal)
    }

    fn add_link(&self, other: ActorRef) -> Result<(), StopReason> {
        let mut inner = self.mailbox.lock();
        if let Some(reason) = inner.stop_reason() {
            return Err(reason);
        }
        let relations = inner.relations.get_or_insert_with(Default::default);
        relations.links.entry(other.id()).or_insert(other);
        Ok(())
    }

    fn remove_link(&self, id: ActorId) -> bool {
        let mut inner = self.mailbox.lock();
        let Some(relations) = inner.relations.as_mut() else {
            return false;
        };
        relations.links.remove(&id).is_some()
    }

    fn mark_killed(&self, kill: Kill) -> bool {
        self.mailbox.kill(kill)
    }

    fn add_joiner(&self, fiber: crate::fiber::Fiber) -> Option<StopReason> {
        let mut inner = self.mailbox.lock();
        if inner.stop_finished() {
            return inner.stop_reason();
        }
        let relations = inner.relations.get_or_insert_with(Default::default);
        relations.joiners.push(fiber);
        None
    }

    fn stop_finished(&self) -> Option<StopReason> {
        let inner = self.mailbox.lock();
        if inner.stop_finished() {
            inner.stop_reason()
        } else {
            None
        }
    }

    fn add_monitor(&self, watcher: ActorRef) -> Result<(), StopReason> {
        let mut inner = self.mailbox.lock();
        if let Some(reason) = inner.stop_reason() {
            return Err(reason);
        }
        let relations = inner.relations.get_or_insert_with(Default::default);
        relations.monitors.push(watcher);
        Ok(())
    }
}

/// The task id of the cell's task (its actor id).
fn cell_header_id<A: Actor>(cell: &ActorCell<A>) -> u64 {
    // SAFETY: the cell is borrowed, so its task is alive; the header's id
    // is immutable.
    unsafe { (*cell_task_ptr(cell)).header.id.as_u64() }
}

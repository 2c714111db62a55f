//! What an actor's hooks get besides the message: its own address, and
//! the ways to stop, link, monitor and trap exits.

use std::fmt;
use std::mem::ManuallyDrop;

use super::cell::ActorCell;
use super::link::{ActorRef, Control, StopReason};
use super::mailbox::Signal;
use super::{Actor, ActorId, Addr};
use crate::fiber::task_ref::{TaskArc, erase_task};

/// The context of an actor's hook (`started`, `handle`, `stopped`, ...).
pub struct Context<A: Actor> {
    /// The actor's task, uncounted: see [`Context::new`].
    me: ManuallyDrop<TaskArc<ActorCell<A>>>,
    stop: Option<StopReason>,
    trap_exit: bool,
}

impl<A: Actor> Context<A> {
    /// The context of the actor whose body is `cell`, for its claimant
    /// (a run, or the stop sequence). It holds the task without a count of
    /// its own: a context lives in the claimant's frame and is only lent
    /// to the hooks (`&mut`, and nobody outside the crate can make one),
    /// while the claimant's reference keeps the task alive. A count taken
    /// and dropped on every run cost two locked instructions a message
    /// along a chain of actors.
    pub(crate) fn new(cell: &ActorCell<A>, trap_exit: bool) -> Context<A> {
        // SAFETY: `cell` is the body of a live task (every `ActorCell`
        // is, see `cell_task_ptr`); the reference made here is never
        // dropped, so it takes no count and gives none back, and it is
        // used only while the claimant's reference lives (above).
        let me = ManuallyDrop::new(unsafe { TaskArc::from_raw(super::cell::cell_task_ptr(cell)) });
        Context {
            me,
            stop: None,
            trap_exit,
        }
    }

    /// This actor's address (to hand to others, or to send to itself).
    pub fn addr(&self) -> Addr<A> {
        Addr::from_cell(TaskArc::clone(&self.me))
    }

    /// This actor's id.
    pub fn id(&self) -> ActorId {
        self.me.body.id()
    }

    /// Stops the actor (reason [`StopReason::Normal`]) once the current
    /// hook returns: messages still queued are dropped, `stopped` runs.
    pub fn stop(&mut self) {
        self.stop.get_or_insert(StopReason::Normal);
    }

    /// Stops the actor with `reason` once the current hook returns (the
    /// supervisor's way to stop with [`StopReason::Supervisor`]).
    pub(crate) fn stop_with(&mut self, reason: StopReason) {
        self.stop = Some(reason);
    }

    pub(crate) fn take_stop(&mut self) -> Option<StopReason> {
        self.stop.take()
    }

    /// Whether exit signals from linked actors arrive as calls to
    /// [`Actor::linked_exit`] instead of stopping this actor.
    pub fn trap_exit(&self) -> bool {
        self.trap_exit
    }

    /// Sets [`trap_exit`](Self::trap_exit).
    pub fn set_trap_exit(&mut self, trap: bool) {
        self.trap_exit = trap;
    }

    fn me_ref(&self) -> ActorRef {
        ActorRef(erase_task!(TaskArc::clone(&self.me) => dyn Control))
    }

    /// Links this actor with `other`, both ways: when either stops
    /// abnormally (anything but [`StopReason::Normal`]), the other stops
    /// with [`StopReason::Linked`], unless it traps exits (then its
    /// [`Actor::linked_exit`] is called). Linking to an actor that has
    /// already stopped delivers its exit at once.
    pub fn link<B: Actor>(&mut self, other: &Addr<B>) {
        self.link_ref(other.erased());
    }

    pub(crate) fn link_ref(&mut self, other: ActorRef) {
        match other.0.body.add_link(self.me_ref()) {
            Ok(()) => {
                let _ = self.me.body.add_link(other);
            }
            Err(reason) => {
                // Keep our side, which the exit's handling consumes.
                let id = other.id();
                let _ = self.me.body.add_link(other);
                self.me_ref().signal(Signal::Exit(Box::new((id, reason))));
            }
        }
    }

    /// Undoes [`link`](Self::link), both ways. From then on no exit of
    /// `other` reaches this actor through the link, not even one already
    /// sent.
    pub fn unlink<B: Actor>(&mut self, other: &Addr<B>) {
        self.unlink_ref(&other.erased());
    }

    pub(crate) fn unlink_ref(&mut self, other: &ActorRef) {
        other.0.body.remove_link(self.id());
        self.me.body.remove_link(other.id());
    }

    /// Watches `other`: when it stops (for any reason), this actor's
    /// [`Actor::down`] is called with its id and reason. Watching an actor
    /// that has already stopped delivers the notice at once.
    pub fn monitor<B: Actor>(&mut self, other: &Addr<B>) {
        let other = other.erased();
        if let Err(reason) = other.0.body.add_monitor(self.me_ref()) {
            self.me_ref()
                .signal(Signal::Down(Box::new((other.id(), reason))));
        }
    }
}

impl<A: Actor> fmt::Debug for Context<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("id", &self.id())
            .field("trap_exit", &self.trap_exit)
            .finish_non_exhaustive()
    }
}

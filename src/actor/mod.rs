//! Actors on fibers: plain blocking code that handles one message at a
//! time, and costs no stack while it waits for the next.
//!
//! ```
//! use weft::actor::{self, Actor, Context};
//!
//! struct Greeter {
//!     greeted: u32,
//! }
//!
//! impl Actor for Greeter {
//!     type Msg = String;
//!
//!     fn handle(&mut self, name: String, ctx: &mut Context<Self>) {
//!         println!("hello, {name}");
//!         self.greeted += 1;
//!         if self.greeted == 2 {
//!             ctx.stop();
//!         }
//!     }
//! }
//!
//! weft::run(|| {
//!     let greeter = actor::spawn(Greeter { greeted: 0 });
//!     greeter.send("Ada".to_owned()).unwrap();
//!     greeter.send("Grace".to_owned()).unwrap();
//!     greeter.join();
//! });
//! ```
//!
//! # How an actor runs
//!
//! An actor is a task of the scheduler. While its mailbox is empty it is
//! *idle*: it holds no stack and sits in no queue, so it costs its task
//! header, its mailbox and its state (see the README for the figure). A
//! message wakes it; any worker may then take it, give it a pooled stack,
//! and run it for a batch of up to 64 messages; if more wait, it yields
//! to the other work queued on that worker before the next batch, and
//! once its mailbox is empty it gives the stack back. A handler may block
//! as any fiber does (socket I/O, `sleep`, waiting for another actor):
//! only then does the actor keep its stack while it waits.
//!
//! Messages from one sender to one actor are handled in the order sent.
//!
//! # Failure
//!
//! A panic in a handler (or in `started`) stops that actor with
//! [`StopReason::Panicked`] (its `stopped` hook runs); the worker goes
//! on. Links and monitors carry stops to other actors, as in Erlang (see
//! [`Context::link`], [`Context::monitor`]), and a [`Supervisor`] restarts
//! failed children.
//!
//! # Runtime shutdown
//!
//! Dropping the runtime unwinds the actors that are running or blocked in
//! a handler at that moment; they stop with [`StopReason::Shutdown`] and
//! their `stopped` hook runs. Idle actors are *not* visited: the runtime
//! keeps no list of them (that is what keeps an idle actor small), so their
//! `stopped` hook does not run, and their state is dropped when the last
//! [`Addr`] is. Stop actors explicitly ([`Addr::stop`], then
//! [`Addr::join`]) before dropping the runtime when their hooks must run.
//! A message sent to an actor of a runtime that has shut down stops it
//! with [`StopReason::Shutdown`] (its hook runs on the sender's thread).

mod addr;
mod cell;
mod context;
mod error;
mod link;
mod mailbox;
mod registry;
mod supervisor;

use std::fmt;

pub use self::addr::{Addr, Reply};
use self::cell::ActorCell;
pub use self::context::Context;
pub use self::error::{AskError, SendError, TrySendError};
pub use self::link::StopReason;
pub use self::registry::{RegisterError, register, unregister, whereis};
pub use self::supervisor::{
    ChildSpec, Restart, Strategy, Supervisor, SupervisorActor, SupervisorRef,
};
use crate::fiber::state::State;
use crate::fiber::task::{Body, Header};
use crate::fiber::task_ref::{TaskArc, erase_task};
use crate::runtime::Handle;

/// An actor: state plus a handler for its messages. Every hook gets the
/// actor's [`Context`].
pub trait Actor: Send + Sized + 'static {
    /// What the actor's mailbox carries.
    type Msg: Send + 'static;

    /// Runs once, before the first message.
    fn started(&mut self, ctx: &mut Context<Self>) {
        let _ = ctx;
    }

    /// Handles one message. May block (parks the actor's fiber).
    fn handle(&mut self, msg: Self::Msg, ctx: &mut Context<Self>);

    /// Runs once, when the actor stops, whatever the reason (see the
    /// module doc for runtime shutdown). The mailbox is closed by then
    /// (sends to the actor fail); messages still queued are dropped after
    /// it.
    fn stopped(&mut self, reason: &StopReason, ctx: &mut Context<Self>) {
        let _ = (reason, ctx);
    }

    /// A linked actor stopped, and this one traps exits
    /// ([`Context::set_trap_exit`]). Without trapping, an abnormal exit of
    /// a linked actor stops this one instead.
    fn linked_exit(&mut self, from: ActorId, reason: &StopReason, ctx: &mut Context<Self>) {
        let _ = (from, reason, ctx);
    }

    /// A monitored actor ([`Context::monitor`]) stopped.
    fn down(&mut self, from: ActorId, reason: &StopReason, ctx: &mut Context<Self>) {
        let _ = (from, reason, ctx);
    }
}

/// An actor's id, unique in the process (actors and fibers share one
/// numbering).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId(pub(crate) u64);

impl ActorId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({})", self.0)
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Configures an actor before spawning it.
///
/// ```
/// use weft::actor::{self, Actor, Context};
///
/// struct Sink;
/// impl Actor for Sink {
///     type Msg = ();
///     fn handle(&mut self, (): (), _: &mut Context<Self>) {}
/// }
///
/// weft::run(|| {
///     let sink = actor::Builder::new().name("sink").mailbox_capacity(8).spawn(Sink);
///     assert_eq!(sink.name(), Some("sink"));
///     sink.stop();
///     sink.join();
/// });
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    capacity: u32,
}

impl Builder {
    /// An unnamed actor with an unbounded mailbox.
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Names the actor (shown by `Addr`'s `Debug`, and in stack overflow
    /// reports).
    pub fn name(mut self, name: impl Into<String>) -> Builder {
        self.name = Some(name.into());
        self
    }

    /// Bounds the mailbox to `capacity` messages (at least 1): `send`
    /// parks the sender while it is full, `try_send` refuses.
    pub fn mailbox_capacity(mut self, capacity: usize) -> Builder {
        self.capacity = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX);
        self
    }

    /// Spawns the actor on the current runtime; it starts (its `started`
    /// hook runs) on some worker soon after.
    ///
    /// # Panics
    ///
    /// Off a runtime, as [`weft::spawn`](crate::spawn) does.
    pub fn spawn<A: Actor>(self, actor: A) -> Addr<A> {
        self.spawn_on(&Handle::current(), actor)
    }

    /// Spawns the actor on `handle`'s runtime, from any thread.
    pub fn spawn_on<A: Actor>(self, handle: &Handle, actor: A) -> Addr<A> {
        let shared = handle.shared().clone();
        let name = self.name.map(String::into_boxed_str);
        // One thread-local lookup serves both the block pool and the queue.
        let cell = crate::sched::worker::with_current(|current| {
            let (cell, twin) = TaskArc::new_twice(
                current,
                || Header::new(State::new_scheduled(), name, None),
                || ActorCell::new(actor, self.capacity, shared.clone()),
            );
            shared.spawn_from(current, erase_task!(twin => dyn Body));
            cell
        });
        Addr::from_cell(cell)
    }
}

/// Spawns an actor with the defaults (unnamed, unbounded mailbox) on the
/// current runtime.
///
/// # Panics
///
/// Off a runtime, as [`weft::spawn`](crate::spawn) does.
pub fn spawn<A: Actor>(actor: A) -> Addr<A> {
    Builder::new().spawn(actor)
}

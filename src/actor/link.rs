//! Why actors stop, and who hears of it: links (both ways: an abnormal
//! stop of one stops the other, unless it traps exits) and monitors (one
//! way: a notice with the reason), as in Erlang.
//!
//! Each side of a link is kept by its own actor. A stopping actor sends an
//! exit signal to each actor linked to it; the receiver drops its side of
//! the link when it handles the signal, and ignores a signal whose link it
//! no longer has: an unlink, as in Erlang, means no exit from that link
//! has any effect afterwards, even one already on its way.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use super::ActorId;
use super::mailbox::{Kill, Signal};
use crate::fiber::Fiber;
use crate::fiber::task::Body;
use crate::fiber::task_ref::TaskArc;

/// Why an actor stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// It stopped itself (`Context::stop`), or was asked to by
    /// [`Addr::stop`](super::Addr::stop). Links do not propagate it.
    Normal,
    /// [`Addr::kill`](super::Addr::kill) stopped it before its queued
    /// messages.
    Killed,
    /// A handler (or a hook) panicked, with this message.
    Panicked(String),
    /// An actor it was linked to stopped abnormally.
    Linked(ActorId),
    /// Its supervisor gave up (too many restarts) or stopped it.
    Supervisor,
    /// Its runtime shut down while it was running or waiting in a handler.
    Shutdown,
    /// It could not run: no stack could be had for it.
    NoStack(String),
}

impl StopReason {
    /// Whether links should propagate it: everything but `Normal`.
    pub fn is_abnormal(&self) -> bool {
        !matches!(self, StopReason::Normal)
    }

    pub(crate) fn from_panic(payload: &(dyn std::any::Any + Send)) -> StopReason {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
        StopReason::Panicked(message)
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Normal => f.write_str("stopped normally"),
            StopReason::Killed => f.write_str("killed"),
            StopReason::Panicked(message) => write!(f, "panicked: {message}"),
            StopReason::Linked(id) => write!(f, "linked actor {id} stopped abnormally"),
            StopReason::Supervisor => f.write_str("stopped by its supervisor"),
            StopReason::Shutdown => f.write_str("its runtime shut down"),
            StopReason::NoStack(err) => write!(f, "could not start: {err}"),
        }
    }
}

/// What any actor can do, whatever its message type: links and monitors
/// hold these.
pub(crate) trait Control: Body {
    fn id(&self) -> ActorId;
    /// Delivers a system signal; false if the actor has stopped.
    fn deliver(&self, signal: Signal) -> bool;
    /// Adds `other` to this actor's links, unless it has stopped (then
    /// returns its stop reason).
    fn add_link(&self, other: ActorRef) -> Result<(), StopReason>;
    /// Removes `id` from this actor's links; whether it was there.
    fn remove_link(&self, id: ActorId) -> bool;
    /// Adds `watcher` to those told when this actor stops, unless it has
    /// stopped (then returns its stop reason).
    fn add_monitor(&self, watcher: ActorRef) -> Result<(), StopReason>;
    /// Marks the actor killed; false if it has stopped or was killed
    /// already.
    fn mark_killed(&self, kill: Kill) -> bool;
    /// Adds `fiber` to those woken when the actor stops, unless it has
    /// stopped (then returns its stop reason).
    fn add_joiner(&self, fiber: Fiber) -> Option<StopReason>;
    /// Why the actor stopped, once its stop is over (what `add_joiner`
    /// would return).
    fn stop_finished(&self) -> Option<StopReason>;
}

/// A type-erased reference to an actor.
#[derive(Clone)]
pub(crate) struct ActorRef(pub(crate) TaskArc<dyn Control>);

impl ActorRef {
    pub(crate) fn id(&self) -> ActorId {
        self.0.body.id()
    }

    /// Delivers a signal and wakes the actor to handle it.
    pub(crate) fn signal(&self, signal: Signal) {
        if self.0.body.deliver(signal) {
            self.wake();
        }
    }

    fn wake(&self) {
        crate::sched::wake_by(&*self.0);
    }

    /// `Addr::kill`, or (`Kill::BySupervisor`) a supervisor stopping its
    /// child.
    pub(crate) fn kill(&self, kill: Kill) {
        if self.0.body.mark_killed(kill) {
            self.wake();
        }
    }

    /// `Addr::join`. A fiber being cancelled cannot wait (see
    /// [`wait_stop`](Self::wait_stop)); it gets [`StopReason::Shutdown`],
    /// as the `Addr::join` doc says.
    pub(crate) fn join(&self) -> StopReason {
        self.wait_stop(None).unwrap_or(StopReason::Shutdown)
    }

    /// [`join`](Self::join), for at most `timeout`; `None` if the actor
    /// is still stopping then, or as `wait_stop` says.
    pub(crate) fn join_timeout(&self, timeout: Duration) -> Option<StopReason> {
        self.wait_stop(Instant::now().checked_add(timeout))
    }

    /// Waits until the actor's stop is over (its names released, links and
    /// monitors told) and returns why; `None` once `deadline` has passed,
    /// or at once if the caller is a fiber being cancelled (its runtime
    /// shuts down: its parks return at once, so waiting would spin). The
    /// caller is registered as a joiner once, however often it wakes.
    fn wait_stop(&self, deadline: Option<Instant>) -> Option<StopReason> {
        if let Some(reason) = self.0.body.add_joiner(crate::fiber::current()) {
            return Some(reason);
        }
        loop {
            if crate::fiber::current::is_cancelled() {
                return self.0.body.stop_finished();
            }
            match deadline {
                None => crate::fiber::park(),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    crate::fiber::park_timeout(left);
                }
            }
            if let Some(reason) = self.0.body.stop_finished() {
                return Some(reason);
            }
        }
    }
}

impl fmt::Debug for ActorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorRef({})", self.id())
    }
}

/// Who is told when an actor stops; kept in its mailbox, made on first use.
#[derive(Debug, Default)]
pub(crate) struct Relations {
    /// Linked actors, told with an exit signal, both ways; by id, so that
    /// linking and unlinking cost the same however many links an actor has
    /// (a supervisor links to each of its children).
    pub(crate) links: HashMap<ActorId, ActorRef>,
    /// Watchers: told with a down notice.
    pub(crate) monitors: Vec<ActorRef>,
    /// Names this actor is registered under.
    pub(crate) names: Vec<String>,
    /// Fibers (or threads) waiting in `Addr::join`.
    pub(crate) joiners: Vec<Fiber>,
    /// Set when the actor stops, for late links and monitors.
    pub(crate) stopped: Option<StopReason>,
    /// Set when the stop is over (names released, links and monitors
    /// told): from then on `join` returns at once.
    pub(crate) finished: bool,
}

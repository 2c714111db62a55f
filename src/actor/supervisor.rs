//! Supervisors: actors that start children, watch them, and restart them
//! when they fail, as Erlang/OTP supervisors do.
//!
//! A supervisor links to each child and traps exits. When a child stops,
//! its [`Restart`] policy says whether to restart it, and the
//! [`Strategy`] says which children restart with it. If more than
//! `max_restarts` restarts happen within `within`, the supervisor gives
//! up: it stops its children and stops itself with
//! [`StopReason::Supervisor`], which its own links (its supervisor) see.
//! A supervisor that stops for any reason stops its children first, in
//! reverse start order; a child the supervisor stops (then, or to restart
//! it with others) stops before handling anything else, with
//! [`StopReason::Supervisor`].

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::link::{ActorRef, StopReason};
use super::mailbox::Kill;
use super::{Actor, ActorId, Addr, Context};

/// Which children restart when one stops and must be restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// Only that child.
    OneForOne,
    /// Every child: the others are stopped, then all start again in order.
    OneForAll,
    /// That child and the ones started after it.
    RestForOne,
}

/// Whether a child is restarted when it stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Permanent,
    /// Only after an abnormal stop.
    Transient,
    /// Never.
    Temporary,
}

/// A started child: its reference, and its `Addr<A>` for lookups.
struct Child {
    actor: ActorRef,
    addr: Box<dyn Any + Send + Sync>,
}

type Starter = Box<dyn FnMut() -> Child + Send>;

/// How long a supervisor waits for a child it stops, unless its spec says
/// otherwise: Erlang's default for a worker.
const DEFAULT_SHUTDOWN: Duration = Duration::from_secs(5);

/// How to start (and restart) one child.
pub struct ChildSpec {
    name: String,
    restart: Restart,
    shutdown: Duration,
    start: Starter,
}

impl ChildSpec {
    /// A permanent child named `name`, started by `start` (which spawns the
    /// actor, e.g. `|| actor::spawn(Worker::new())`).
    pub fn new<A: Actor>(
        name: impl Into<String>,
        mut start: impl FnMut() -> Addr<A> + Send + 'static,
    ) -> ChildSpec {
        ChildSpec {
            name: name.into(),
            restart: Restart::Permanent,
            shutdown: DEFAULT_SHUTDOWN,
            start: Box::new(move || {
                let addr = start();
                Child {
                    actor: addr.erased(),
                    addr: Box::new(addr),
                }
            }),
        }
    }

    /// Sets the restart policy.
    pub fn restart(mut self, restart: Restart) -> ChildSpec {
        self.restart = restart;
        self
    }

    /// How long the supervisor waits for this child to stop when it stops
    /// it (to restart it with others, or because the supervisor stops):
    /// Erlang's `shutdown`, 5 seconds by default; `Duration::MAX` waits for
    /// good.
    ///
    /// Erlang then kills the child outright. A fiber cannot be: it is not
    /// preempted, and a handler that never returns (one that loops, or
    /// waits for something that never comes) keeps it running. So a child
    /// still running after `timeout` is left to stop by itself once its
    /// handler returns (it handles nothing else: it was killed), the
    /// supervisor says so on stderr, and goes on: it restarts the child
    /// alongside, or stops. Without the timeout a stuck child would hang its
    /// supervisor, and every supervisor above it.
    pub fn shutdown(mut self, timeout: Duration) -> ChildSpec {
        self.shutdown = timeout;
        self
    }
}

impl fmt::Debug for ChildSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChildSpec")
            .field("name", &self.name)
            .field("restart", &self.restart)
            .field("shutdown", &self.shutdown)
            .finish_non_exhaustive()
    }
}

/// The children as others may look them up.
type Directory = Arc<Mutex<Vec<(String, Option<ActorRef>, Option<Arc<dyn Any + Send + Sync>>)>>>;

/// A supervisor, before it is spawned.
///
/// ```
/// use std::time::Duration;
/// use weft::actor::{self, Actor, ChildSpec, Context, Strategy, Supervisor};
///
/// struct Flaky;
/// impl Actor for Flaky {
///     type Msg = bool;
///     fn handle(&mut self, fail: bool, _: &mut Context<Self>) {
///         assert!(!fail, "asked to fail");
///     }
/// }
///
/// weft::run(|| {
///     let sup = Supervisor::new(Strategy::OneForOne)
///         .intensity(3, Duration::from_secs(5))
///         .child(ChildSpec::new("flaky", || actor::spawn(Flaky)))
///         .spawn();
///     let first = sup.child::<Flaky>("flaky").unwrap();
///     first.send(true).unwrap(); // it panics ...
///     first.join();
///     // ... and is restarted.
///     let second = loop {
///         match sup.child::<Flaky>("flaky") {
///             Some(c) if c != first => break c,
///             _ => weft::yield_now(),
///         }
///     };
///     assert!(second.is_alive());
///     sup.stop();
///     sup.join();
/// });
/// ```
pub struct Supervisor {
    strategy: Strategy,
    max_restarts: usize,
    within: Duration,
    specs: Vec<ChildSpec>,
}

impl Supervisor {
    /// A supervisor with no children, allowing 3 restarts in 5 seconds.
    pub fn new(strategy: Strategy) -> Supervisor {
        Supervisor {
            strategy,
            max_restarts: 3,
            within: Duration::from_secs(5),
            specs: Vec::new(),
        }
    }

    /// At most `max_restarts` restarts within `within`; one more and the
    /// supervisor stops.
    pub fn intensity(mut self, max_restarts: usize, within: Duration) -> Supervisor {
        self.max_restarts = max_restarts;
        self.within = within;
        self
    }

    /// Adds a child (children start in the order added).
    pub fn child(mut self, spec: ChildSpec) -> Supervisor {
        self.specs.push(spec);
        self
    }

    /// Spawns the supervisor on the current runtime and waits until it has
    /// started its children (as Erlang's `start_link` does): when this
    /// returns, [`SupervisorRef::child`] finds every child.
    ///
    /// # Panics
    ///
    /// Off a runtime, as [`actor::spawn`](super::spawn) does.
    pub fn spawn(self) -> SupervisorRef {
        let (started_tx, started_rx) = crate::chan::oneshot();
        let directory: Directory = Arc::new(Mutex::new(
            self.specs
                .iter()
                .map(|s| (s.name.clone(), None, None))
                .collect(),
        ));
        let actor = SupervisorActor {
            strategy: self.strategy,
            max_restarts: self.max_restarts,
            within: self.within,
            specs: self.specs,
            children: Vec::new(),
            restarts: VecDeque::new(),
            directory: directory.clone(),
            started: Some(started_tx),
        };
        let addr = super::Builder::new().name("supervisor").spawn(actor);
        // An error means it stopped while starting (a child's start
        // panicked): the caller sees that through `join`.
        let _ = started_rx.recv();
        SupervisorRef { addr, directory }
    }
}

impl fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervisor")
            .field("strategy", &self.strategy)
            .field("children", &self.specs)
            .finish_non_exhaustive()
    }
}

/// A running supervisor.
#[derive(Clone)]
pub struct SupervisorRef {
    addr: Addr<SupervisorActor>,
    directory: Directory,
}

impl SupervisorRef {
    /// The current incarnation of child `name`, if it runs and is an `A`.
    pub fn child<A: Actor>(&self, name: &str) -> Option<Addr<A>> {
        let directory = self.directory.lock().unwrap_or_else(|e| e.into_inner());
        let (_, _, addr) = directory.iter().find(|(n, _, _)| n == name)?;
        addr.as_ref()?.downcast_ref::<Addr<A>>().cloned()
    }

    /// The supervisor's own address (to link it to its parent, say).
    pub fn addr(&self) -> &Addr<SupervisorActor> {
        &self.addr
    }

    /// Stops the supervisor, which stops its children first.
    pub fn stop(&self) {
        self.addr.stop();
    }

    /// Waits until the supervisor has stopped.
    pub fn join(&self) -> StopReason {
        self.addr.join()
    }
}

impl fmt::Debug for SupervisorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SupervisorRef").field(&self.addr).finish()
    }
}

/// The supervisor as an actor.
pub struct SupervisorActor {
    strategy: Strategy,
    max_restarts: usize,
    within: Duration,
    specs: Vec<ChildSpec>,
    /// Running children, by spec index.
    children: Vec<Option<ActorRef>>,
    /// When recent restarts happened.
    restarts: VecDeque<Instant>,
    directory: Directory,
    /// Told when the children have started.
    started: Option<crate::chan::oneshot::Sender<()>>,
}

impl fmt::Debug for SupervisorActor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupervisorActor")
            .field("strategy", &self.strategy)
            .finish_non_exhaustive()
    }
}

impl SupervisorActor {
    fn start_child(&mut self, index: usize, ctx: &mut Context<Self>) {
        let child = (self.specs[index].start)();
        ctx.link_ref(child.actor.clone());
        let mut directory = self.directory.lock().unwrap_or_else(|e| e.into_inner());
        directory[index].1 = Some(child.actor.clone());
        directory[index].2 = Some(Arc::from(child.addr));
        drop(directory);
        if self.children.len() <= index {
            self.children.resize(index + 1, None);
        }
        self.children[index] = Some(child.actor);
    }

    /// Stops child `index` (unlinked first, so its exit is not taken for a
    /// failure) and waits for it, for at most its spec's shutdown timeout
    /// (see [`ChildSpec::shutdown`]). The child stops before handling
    /// anything else, with [`StopReason::Supervisor`].
    fn stop_child(&mut self, index: usize, ctx: &mut Context<Self>) {
        if let Some(child) = self.children.get_mut(index).and_then(Option::take) {
            ctx.unlink_ref(&child);
            child.kill(Kill::BySupervisor);
            let spec = &self.specs[index];
            if child.join_timeout(spec.shutdown).is_none() {
                eprintln!(
                    "weft: supervisor child '{}' ({}) did not stop within {:?}; left to stop when its handler returns",
                    spec.name,
                    child.id(),
                    spec.shutdown,
                );
            }
        }
        let mut directory = self.directory.lock().unwrap_or_else(|e| e.into_inner());
        directory[index].1 = None;
        directory[index].2 = None;
    }

    /// Records a restart; false if that exceeds the intensity.
    fn allow_restart(&mut self) -> bool {
        let now = Instant::now();
        while self
            .restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > self.within)
        {
            self.restarts.pop_front();
        }
        self.restarts.push_back(now);
        self.restarts.len() <= self.max_restarts
    }

    fn index_of(&self, id: ActorId) -> Option<usize> {
        self.children
            .iter()
            .position(|c| c.as_ref().is_some_and(|c| c.id() == id))
    }
}

impl Actor for SupervisorActor {
    /// A supervisor takes no messages of its own.
    type Msg = ();

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_trap_exit(true);
        for index in 0..self.specs.len() {
            self.start_child(index, ctx);
        }
        if let Some(started) = self.started.take() {
            let _ = started.send(());
        }
    }

    fn handle(&mut self, (): (), _: &mut Context<Self>) {}

    fn linked_exit(&mut self, from: ActorId, reason: &StopReason, ctx: &mut Context<Self>) {
        let Some(index) = self.index_of(from) else {
            // Not a child (our parent, say): an abnormal exit stops us, as
            // it would stop an actor that does not trap exits.
            if reason.is_abnormal() {
                ctx.stop_with(StopReason::Linked(from));
            }
            return;
        };
        self.children[index] = None;
        let restart = match self.specs[index].restart {
            Restart::Permanent => true,
            Restart::Transient => reason.is_abnormal(),
            Restart::Temporary => false,
        };
        if !restart {
            let mut directory = self.directory.lock().unwrap_or_else(|e| e.into_inner());
            directory[index].1 = None;
            directory[index].2 = None;
            return;
        }
        if !self.allow_restart() {
            // Too many restarts: give up. Our links (a parent supervisor)
            // see an abnormal stop.
            ctx.stop_with(StopReason::Supervisor);
            return;
        }
        let affected: Vec<usize> = match self.strategy {
            Strategy::OneForOne => vec![index],
            Strategy::OneForAll => (0..self.specs.len()).collect(),
            Strategy::RestForOne => (index..self.specs.len()).collect(),
        };
        for &i in affected.iter().rev() {
            self.stop_child(i, ctx);
        }
        for &i in &affected {
            self.start_child(i, ctx);
        }
    }

    fn stopped(&mut self, _: &StopReason, ctx: &mut Context<Self>) {
        for index in (0..self.children.len()).rev() {
            self.stop_child(index, ctx);
        }
    }
}

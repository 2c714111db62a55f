//! Helpers for the `actor_*` tests: a probe actor that records its hooks
//! and runs closures sent to it, messages that make it panic quietly, a
//! gate that holds an actor inside a handler, and runtimes of a given
//! size.
//!
//! Use from a test file with `mod actor_util;` beside `mod support;`
//! (the quiet panics use `support::QUIET`). Every test also runs under
//! `support::bounded` (the hang guard).

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each actor_* test file uses its own subset"
)]

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use weft::Runtime;
use weft::actor::{Actor, ActorId, Addr, Context, StopReason};
use weft::chan;

use crate::support::QUIET;

/// A runtime with `workers` workers.
pub fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("a runtime")
}

/// What a [`Probe`] saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Started,
    Num(u64),
    Stopped(StopReason),
    LinkedExit(ActorId, StopReason),
    Down(ActorId, StopReason),
}

/// A shared, ordered record of [`Event`]s.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<Vec<Event>>>);

impl Log {
    pub fn new() -> Log {
        Log::default()
    }

    pub fn push(&self, event: Event) {
        self.lock().push(event);
    }

    pub fn lock(&self) -> MutexGuard<'_, Vec<Event>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn events(&self) -> Vec<Event> {
        self.lock().clone()
    }

    /// The numbers handled, in order.
    pub fn nums(&self) -> Vec<u64> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                Event::Num(n) => Some(*n),
                _ => None,
            })
            .collect()
    }

    /// The reasons the `stopped` hook saw (once, if all is well).
    pub fn stops(&self) -> Vec<StopReason> {
        self.lock()
            .iter()
            .filter_map(|e| match e {
                Event::Stopped(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    pub fn count(&self, pred: impl Fn(&Event) -> bool) -> usize {
        self.lock().iter().filter(|e| pred(e)).count()
    }

    /// Polls (every millisecond, up to 20 s: a hang guard) until `pred`
    /// holds for the events. Sleeps with `weft::sleep`, so a fiber that
    /// waits does not hold up its worker.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&[Event]) -> bool) {
        let start = Instant::now();
        loop {
            if pred(&self.lock()) {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "gave up waiting for {what}; events: {:?}",
                self.events()
            );
            weft::sleep(Duration::from_millis(1));
        }
    }

    /// Waits until the `stopped` hook has run.
    pub fn wait_stopped(&self) {
        self.wait_for("the stopped hook", |e| {
            e.iter().any(|e| matches!(e, Event::Stopped(_)))
        });
    }
}

/// A closure run inside the probe's handler.
pub type Job = Box<dyn FnOnce(&mut Probe, &mut Context<Probe>) + Send>;

/// What a [`Probe`] takes.
pub enum Msg {
    /// Recorded as [`Event::Num`].
    Num(u64),
    /// Run in the handler.
    Do(Job),
}

/// An actor that records its hooks in a [`Log`] and runs [`Msg::Do`]
/// closures; `trap` sets `trap_exit` in `started`.
pub struct Probe {
    pub log: Log,
    pub trap: bool,
}

impl Probe {
    pub fn new(log: &Log) -> Probe {
        Probe {
            log: log.clone(),
            trap: false,
        }
    }

    pub fn trapping(log: &Log) -> Probe {
        Probe {
            log: log.clone(),
            trap: true,
        }
    }
}

impl Actor for Probe {
    type Msg = Msg;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_trap_exit(self.trap);
        self.log.push(Event::Started);
    }

    fn handle(&mut self, msg: Msg, ctx: &mut Context<Self>) {
        match msg {
            Msg::Num(n) => self.log.push(Event::Num(n)),
            Msg::Do(job) => job(self, ctx),
        }
    }

    fn stopped(&mut self, reason: &StopReason, _: &mut Context<Self>) {
        self.log.push(Event::Stopped(reason.clone()));
    }

    fn linked_exit(&mut self, from: ActorId, reason: &StopReason, _: &mut Context<Self>) {
        self.log.push(Event::LinkedExit(from, reason.clone()));
    }

    fn down(&mut self, from: ActorId, reason: &StopReason, _: &mut Context<Self>) {
        self.log.push(Event::Down(from, reason.clone()));
    }
}

/// Wraps a closure as a [`Msg::Do`].
pub fn job(f: impl FnOnce(&mut Probe, &mut Context<Probe>) + Send + 'static) -> Msg {
    Msg::Do(Box::new(f))
}

/// The reason an actor stops with after a panic with `QUIET` + `message`
/// (as [`panic_msg`] makes the probe panic).
pub fn panicked(message: &str) -> StopReason {
    StopReason::Panicked(format!("{QUIET}{message}"))
}

/// A message that makes the probe panic with `QUIET` + `message`.
pub fn panic_msg(message: &'static str) -> Msg {
    job(move |_, _| panic!("{QUIET}{message}"))
}

/// Holds an actor inside a handler until opened: send [`Gate::msg`],
/// [`wait_entered`](Gate::wait_entered), then [`open`](Gate::open).
pub struct Gate {
    entered: chan::Receiver<()>,
    release: chan::Sender<()>,
    parts: Option<(chan::Sender<()>, chan::Receiver<()>)>,
}

impl Gate {
    pub fn new() -> Gate {
        let (entered_tx, entered_rx) = chan::unbounded();
        let (release_tx, release_rx) = chan::unbounded();
        Gate {
            entered: entered_rx,
            release: release_tx,
            parts: Some((entered_tx, release_rx)),
        }
    }

    /// The message that blocks the probe (once).
    pub fn msg(&mut self) -> Msg {
        let (entered, release) = self.parts.take().expect("one gate message");
        job(move |_, _| {
            let _ = entered.send(());
            let _ = release.recv();
        })
    }

    /// Waits until the actor is inside the gate's handler.
    pub fn wait_entered(&self) {
        self.entered.recv().expect("the actor entered the gate");
    }

    /// Lets the actor out.
    pub fn open(&self) {
        let _ = self.release.send(());
    }
}

impl Default for Gate {
    fn default() -> Gate {
        Gate::new()
    }
}

/// Waits until `cond` holds, polling every millisecond with `weft::sleep`
/// (which parks a fiber and sleeps a plain thread); panics with `what`
/// after 20 s (a hang guard, not a timing assertion). Unlike
/// `support::wait_until`, a fiber that waits here does not block its
/// worker.
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "gave up after 20 s waiting for: {what}"
        );
        weft::sleep(Duration::from_millis(1));
    }
}

/// Sends `msg` and panics if the actor has stopped.
pub fn send<A: Actor>(addr: &Addr<A>, msg: A::Msg) {
    if addr.send(msg).is_err() {
        panic!("{addr} has stopped");
    }
}

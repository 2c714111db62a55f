//! Dropping the runtime with live actors, in each state (the module doc of
//! `weft::actor`, "Runtime shutdown"):
//!
//! - running (a handler that yields in a loop) or blocked in a handler
//!   (a channel receive, a sleep, a socket read, an ask, a join): unwound;
//!   the handler's locals are dropped, the `stopped` hook runs once with
//!   `StopReason::Shutdown`, the state is dropped, joiners are told;
//! - queued to run (a message arrived; or spawned and not yet started):
//!   stopped the same way, on the worker, without running (a spawned actor
//!   that never started gets its `stopped` hook without `started`);
//! - idle: not visited. The runtime keeps no list of idle actors (that is
//!   what keeps them small), so their hook does not run at the drop; their
//!   state is dropped with the last `Addr`. A message or `stop` sent to
//!   one afterwards stops it with `Shutdown`, and its hook runs then, on
//!   the sender's thread.
//!
//! Thousands of actors in all these states at once are dropped here too;
//! shutdowns that reach other actors (hooks that message them, a
//! supervisor and its child) or outlive the runtime (an `Addr` kept past
//! the drop) are tested in `actor_shutdown_interplay.rs`.
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use std::io::Read;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use actor_util::{Event, Log, Msg, Probe, job, runtime};
use support::{Counter, DropToken};
use weft::actor::{self, Actor, Addr, Context, Reply, StopReason};
use weft::runtime::Handle;

/// A probe whose state counts its drop.
struct Held {
    probe: Probe,
    _state: DropToken,
}

impl Actor for Held {
    type Msg = Msg;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.probe.log.push(Event::Started);
        let _ = ctx;
    }
    fn handle(&mut self, msg: Msg, _: &mut Context<Self>) {
        match msg {
            Msg::Num(n) => self.probe.log.push(Event::Num(n)),
            Msg::Do(_) => unreachable!("Held takes numbers only"),
        }
    }
    fn stopped(&mut self, reason: &StopReason, _: &mut Context<Self>) {
        self.probe.log.push(Event::Stopped(reason.clone()));
    }
}

/// Blocks until a spawn through `handle` is cancelled on the spot, i.e.
/// until the runtime's drop has begun.
fn wait_for_shutdown_to_begin(handle: &Handle) {
    support::wait_until(Duration::from_secs(30), "the drop to begin", || {
        handle.spawn(|| ()).is_finished()
    });
}

/// How each blocked actor waits in its handler.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blocked {
    Yielding,
    Channel,
    Sleep,
    Socket,
    Ask,
    Join,
}

const ALL: [Blocked; 6] = [
    Blocked::Yielding,
    Blocked::Channel,
    Blocked::Sleep,
    Blocked::Socket,
    Blocked::Ask,
    Blocked::Join,
];

/// What a blocked handler waits on; kept alive by the test until after
/// the drop, so nothing but the shutdown can end the wait.
struct Props {
    rx: weft::chan::Receiver<()>,
    _tx: weft::chan::Sender<()>,
    socket: weft::net::TcpStream,
    _peer: weft::net::TcpStream,
    silent: Addr<Silent>,
    _listener: weft::net::TcpListener,
}

/// Keeps every reply it is asked for, and never stops by itself.
struct Silent(Vec<Reply<()>>);

impl Actor for Silent {
    type Msg = Reply<()>;
    fn handle(&mut self, r: Reply<()>, _: &mut Context<Self>) {
        self.0.push(r);
    }
}

fn props() -> Props {
    let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = weft::spawn(move || weft::net::TcpStream::connect(addr).unwrap());
    let (socket, _) = listener.accept().unwrap();
    let (tx, rx) = weft::chan::unbounded();
    Props {
        rx,
        _tx: tx,
        socket,
        _peer: client.join().unwrap(),
        silent: actor::spawn(Silent(Vec::new())),
        _listener: listener,
    }
}

/// A message that blocks the probe the `how` way; the handler's frame
/// holds `frame` (a drop token) while it waits.
fn blocking_msg(how: Blocked, props: &Props, frame: DropToken, entered: mpsc::Sender<()>) -> Msg {
    let rx = props.rx.clone();
    let mut socket = props.socket.try_clone().unwrap();
    let silent = props.silent.clone();
    job(move |_, _| {
        let _frame = frame;
        let _ = entered.send(());
        match how {
            Blocked::Yielding => loop {
                weft::yield_now();
            },
            Blocked::Channel => {
                let _ = rx.recv();
            }
            Blocked::Sleep => weft::sleep(Duration::from_secs(3600)),
            Blocked::Socket => {
                let _ = socket.read(&mut [0u8; 8]);
            }
            Blocked::Ask => {
                let _ = silent.ask(|r| r);
            }
            Blocked::Join => {
                silent.join();
            }
        }
        // Only the shutdown gets here (the waits above return at once
        // when the fiber is cancelled, or unwind it).
    })
}

/// Actors running or blocked in a handler when the runtime is dropped are
/// unwound: each handler's locals are dropped, each `stopped` hook runs
/// once with `Shutdown`, each state is dropped, a thread in `join` is told.
#[test]
fn actors_running_or_blocked_in_a_handler_are_stopped_with_shutdown() {
    support::bounded(|| {
        for workers in [1, 2] {
            let rt = runtime(workers);
            let frames = Counter::new();
            let (entered_tx, entered_rx) = mpsc::channel();
            let (props, actors) = {
                let frames = frames.clone();
                rt.block_on(move || {
                    let props = props();
                    let actors: Vec<(Blocked, Log, Addr<Probe>)> = ALL
                        .iter()
                        .map(|&how| {
                            let log = Log::new();
                            let addr = actor::spawn(Probe::new(&log));
                            actor_util::send(
                                &addr,
                                blocking_msg(how, &props, frames.token(), entered_tx.clone()),
                            );
                            (how, log, addr)
                        })
                        .collect();
                    (props, actors)
                })
            };
            for _ in ALL {
                entered_rx.recv().unwrap();
            }
            let joiner = {
                let addr = actors[1].2.clone();
                std::thread::spawn(move || addr.join())
            };
            std::thread::sleep(Duration::from_millis(10));
            let start = Instant::now();
            drop(rt);
            let took = start.elapsed();
            println!("{workers} worker(s): dropped the runtime with 6 blocked actors in {took:?}");
            assert_eq!(joiner.join().unwrap(), StopReason::Shutdown);
            assert_eq!(frames.get(), ALL.len(), "every handler's frame was unwound");
            for (how, log, addr) in &actors {
                assert_eq!(log.stops(), [StopReason::Shutdown], "{how:?}");
                assert_eq!(addr.join(), StopReason::Shutdown, "{how:?}");
                assert!(!addr.is_alive());
            }
            drop(props);
        }
    });
}

/// Actors queued to run when the runtime is dropped (a message woke them,
/// or they were just spawned) are stopped with `Shutdown` on the worker
/// without handling anything; one that never started gets `stopped`
/// without `started`.
#[test]
fn queued_actors_are_stopped_with_shutdown_without_running() {
    support::bounded(|| {
        const K: usize = 100;
        let rt = runtime(1);
        let handle = rt.handle().clone();
        let states = Counter::new();
        // Started and idle.
        let woken: Vec<(Log, Addr<Held>)> = {
            let states = states.clone();
            rt.block_on(move || {
                let v: Vec<_> = (0..K)
                    .map(|_| {
                        let log = Log::new();
                        let addr = actor::spawn(Held {
                            probe: Probe::new(&log),
                            _state: states.token(),
                        });
                        (log, addr)
                    })
                    .collect();
                for (log, _) in &v {
                    log.wait_for("started", |e| e == [Event::Started]);
                }
                v
            })
        };
        // On the only worker: wake the idle ones and spawn new ones, then
        // hold the worker (a blocking sleep) until the drop has begun.
        let (ready_tx, ready_rx) = mpsc::channel();
        let fresh_logs: Vec<Log> = (0..K).map(|_| Log::new()).collect();
        {
            let woken: Vec<Addr<Held>> = woken.iter().map(|(_, a)| a.clone()).collect();
            let fresh_logs = fresh_logs.clone();
            let states = states.clone();
            let handle2 = handle.clone();
            rt.spawn(move || {
                for a in &woken {
                    a.send(Msg::Num(1)).ok().unwrap();
                }
                let fresh: Vec<Addr<Held>> = fresh_logs
                    .iter()
                    .map(|log| {
                        actor::spawn(Held {
                            probe: Probe::new(log),
                            _state: states.token(),
                        })
                    })
                    .collect();
                ready_tx.send(fresh).unwrap();
                wait_for_shutdown_to_begin(&handle2);
            });
        }
        let fresh = ready_rx.recv().unwrap();
        drop(rt);
        for (log, addr) in &woken {
            assert_eq!(
                log.events(),
                [Event::Started, Event::Stopped(StopReason::Shutdown)],
                "a woken actor stops without handling its message"
            );
            assert_eq!(addr.join(), StopReason::Shutdown);
        }
        for (log, addr) in fresh_logs.iter().zip(&fresh) {
            assert_eq!(
                log.events(),
                [Event::Stopped(StopReason::Shutdown)],
                "a spawned actor that never ran gets stopped, not started"
            );
            assert_eq!(addr.join(), StopReason::Shutdown);
        }
        assert_eq!(states.get(), 2 * K, "every state was dropped");
        println!("{K} woken and {K} fresh actors queued at the drop: all stopped with Shutdown");
    });
}

/// Idle actors are not visited by the drop: no hook, state kept until the
/// last `Addr` goes. A `stop` or a message sent afterwards stops the actor
/// with `Shutdown` on the spot, running its hook on the sender's thread.
#[test]
fn idle_actors_are_not_visited_by_the_drop() {
    support::bounded(|| {
        let rt = runtime(2);
        let states = Counter::new();
        let make = |log: &Log| Held {
            probe: Probe::new(log),
            _state: states.token(),
        };
        let logs: Vec<Log> = (0..4).map(|_| Log::new()).collect();
        let addrs: Vec<Addr<Held>> = logs
            .iter()
            .map(|log| actor::Builder::new().spawn_on(rt.handle(), make(log)))
            .collect();
        for (log, addr) in logs.iter().zip(&addrs) {
            assert!(addr.send(Msg::Num(7)).is_ok());
            log.wait_for("the message", |e| e.contains(&Event::Num(7)));
        }
        // Let the last runs end (back to idle).
        std::thread::sleep(Duration::from_millis(20));
        drop(rt);
        for log in &logs {
            assert_eq!(
                log.stops(),
                [],
                "an idle actor's hook does not run at the drop"
            );
        }
        assert_eq!(states.get(), 0, "its state lives on with its Addr");
        for addr in &addrs {
            assert!(addr.is_alive(), "not visited: it does not know");
        }
        let mut addrs = addrs.into_iter();

        // stop: the hook runs at once, here, and join returns.
        let a = addrs.next().unwrap();
        a.stop();
        assert_eq!(logs[0].stops(), [StopReason::Shutdown]);
        assert_eq!(a.join(), StopReason::Shutdown);
        assert_eq!(states.get(), 1);

        // A message: accepted, dropped unhandled, the actor stops.
        let b = addrs.next().unwrap();
        assert!(b.send(Msg::Num(8)).is_ok(), "the mailbox was still open");
        assert_eq!(logs[1].stops(), [StopReason::Shutdown]);
        assert!(!logs[1].nums().contains(&8));
        assert!(b.send(Msg::Num(9)).is_err(), "now it is closed");
        assert_eq!(states.get(), 2);

        // kill, and from another thread.
        let c = addrs.next().unwrap();
        std::thread::spawn(move || c.kill()).join().unwrap();
        assert_eq!(logs[2].stops(), [StopReason::Shutdown]);

        // Dropping the last Addr drops the state, without the hook.
        let d = addrs.next().unwrap();
        drop(d);
        assert_eq!(states.get(), 4);
        assert_eq!(logs[3].stops(), []);
    });
}

/// 10,000 actors (2,000 in debug) in every state at once, dropped five
/// times over: every hook that must run runs once, every state is dropped
/// once, and the drop is prompt.
#[test]
fn mixed_states_many_times() {
    let _heavy = support::heavy();
    support::bounded(|| {
        let per_state = support::scaled(400, 2_000);
        for round in 0..5 {
            let rt = runtime(2);
            let states = Counter::new();
            let blocked_logs: Vec<Log> = (0..per_state).map(|_| Log::new()).collect();
            let idle_logs: Vec<Log> = (0..per_state).map(|_| Log::new()).collect();
            let (tx, rx) = weft::chan::unbounded::<()>();
            let (blocked, idle) = {
                let (blocked_logs, idle_logs, states) =
                    (blocked_logs.clone(), idle_logs.clone(), states.clone());
                rt.block_on(move || {
                    let spawn = |log: &Log| {
                        let t = states.token();
                        let a = actor::spawn(Probe::new(log));
                        actor_util::send(&a, job(move |_, _| drop(t)));
                        a
                    };
                    let blocked: Vec<Addr<Probe>> = blocked_logs
                        .iter()
                        .enumerate()
                        .map(|(i, log)| {
                            let a = spawn(log);
                            let rx = rx.clone();
                            actor_util::send(
                                &a,
                                job(move |_, _| {
                                    if i % 2 == 0 {
                                        let _ = rx.recv();
                                    } else {
                                        weft::sleep(Duration::from_secs(3600));
                                    }
                                }),
                            );
                            a
                        })
                        .collect();
                    let idle: Vec<Addr<Probe>> = idle_logs.iter().map(spawn).collect();
                    for log in &idle_logs {
                        log.wait_for("started", |e| e == [Event::Started]);
                    }
                    // And every first message handled (it drops the state
                    // token): an actor still busy with it at the drop is
                    // not idle, and is stopped like a blocked one.
                    actor_util::wait_until("the first messages", || states.get() == 2 * per_state);
                    (blocked, idle)
                })
            };
            // The state tokens were dropped by the first message; use the
            // hook counts instead.
            let start = Instant::now();
            drop(rt);
            let took = start.elapsed();
            let stopped_blocked = blocked_logs
                .iter()
                .filter(|l| l.stops() == [StopReason::Shutdown])
                .count();
            let stopped_idle = idle_logs.iter().filter(|l| !l.stops().is_empty()).count();
            println!(
                "round {round}: dropped with {per_state} blocked and {per_state} idle actors in {took:?}: \
                 {stopped_blocked} blocked stopped with Shutdown, {stopped_idle} idle hooks ran"
            );
            assert_eq!(stopped_blocked, per_state);
            assert_eq!(stopped_idle, 0);
            assert_eq!(states.get(), 2 * per_state);
            for a in &blocked {
                assert_eq!(a.join(), StopReason::Shutdown);
            }
            for a in &idle {
                assert!(a.is_alive());
                a.stop();
                assert_eq!(a.join(), StopReason::Shutdown);
            }
            assert!(
                idle_logs
                    .iter()
                    .all(|l| l.stops() == [StopReason::Shutdown])
            );
            drop(tx);
        }
    });
}

//! The actor API's lifecycle, one behaviour at a time: `stop` against
//! `kill` and `ctx.stop`, the hooks' reasons, `Addr`'s traits, `join` from
//! a fiber and from a plain thread, and per-sender order.
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use std::cell::Cell;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actor_util::{Event, Gate, Log, Msg, Probe, job, runtime, send};
use support::{Counter, DropToken};
use weft::actor::{self, Actor, Context, Reply, StopReason};

// ---------------------------------------------------------------------------
// send / try_send
// ---------------------------------------------------------------------------

/// `stop` handles what was sent before it; messages sent after it (still
/// accepted until the actor reaches the stop) are dropped.
#[test]
fn stop_handles_the_messages_sent_before_it() {
    support::bounded(|| {
        let rt = runtime(2);
        let log = Log::new();
        let drops = Counter::new();
        let addr = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
        let mut gate = Gate::new();
        send(&addr, gate.msg());
        gate.wait_entered();
        for i in 1..=100 {
            send(&addr, Msg::Num(i));
        }
        addr.stop();
        for _ in 0..10 {
            let token = drops.token();
            send(&addr, job(move |_, _| drop(token)));
        }
        gate.open();
        assert_eq!(addr.join(), StopReason::Normal);
        assert_eq!(log.nums(), (1..=100).collect::<Vec<_>>());
        assert_eq!(drops.get(), 10, "the later messages were dropped, not run");
        assert_eq!(log.stops(), [StopReason::Normal]);
        assert_eq!(log.count(|e| *e == Event::Started), 1, "started ran once");
        assert!(!addr.is_alive());
    });
}

/// `kill` stops the actor before it handles anything else, even messages
/// it had already taken from its mailbox into its current batch.
#[test]
fn kill_drops_the_queued_messages() {
    support::bounded(|| {
        let rt = runtime(2);
        let log = Log::new();
        let addr = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
        let mut gate = Gate::new();
        // The gate first, then 100 messages behind it in the same batch.
        let drops = Counter::new();
        send(&addr, gate.msg());
        gate.wait_entered();
        for i in 1..=100 {
            send(&addr, Msg::Num(i));
        }
        let tokens: Vec<DropToken> = (0..5).map(|_| drops.token()).collect();
        for token in tokens {
            send(&addr, job(move |_, _| drop(token)));
        }
        addr.kill();
        gate.open();
        assert_eq!(addr.join(), StopReason::Killed);
        assert_eq!(
            log.nums(),
            Vec::<u64>::new(),
            "nothing after the kill is handled"
        );
        assert_eq!(drops.get(), 5, "queued messages are dropped");
        assert_eq!(log.stops(), [StopReason::Killed]);
    });
}

/// The same when the messages were already in the actor's batch: the
/// handler that blocks is one of several taken together.
#[test]
fn kill_drops_messages_already_taken_into_the_batch() {
    support::bounded(|| {
        let rt = runtime(2);
        let log = Log::new();
        let addr = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
        let mut gate = Gate::new();
        // Hold the actor first so that all of these queue up together.
        let mut first = Gate::new();
        send(&addr, first.msg());
        first.wait_entered();
        send(&addr, gate.msg());
        for i in 1..=20 {
            send(&addr, Msg::Num(i));
        }
        first.open();
        gate.wait_entered();
        addr.kill();
        gate.open();
        assert_eq!(addr.join(), StopReason::Killed);
        assert_eq!(
            log.nums(),
            Vec::<u64>::new(),
            "messages queued before the kill are dropped, wherever they sit"
        );
    });
}

#[test]
fn stop_and_kill_of_an_idle_actor_and_repeated_stops_run_the_hook_once() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let log = Log::new();
            let addr = actor::spawn(Probe::new(&log));
            addr.stop();
            addr.stop();
            addr.kill();
            let reason = addr.join();
            assert!(
                reason == StopReason::Normal || reason == StopReason::Killed,
                "{reason:?}"
            );
            addr.stop();
            addr.kill();
            assert_eq!(
                addr.join(),
                reason,
                "join after the stop gives the same reason"
            );
            assert_eq!(log.stops(), [reason]);

            let log = Log::new();
            let addr = actor::spawn(Probe::new(&log));
            send(&addr, Msg::Num(1));
            actor_util::wait_until("the message", || log.nums() == [1]);
            addr.kill();
            assert_eq!(addr.join(), StopReason::Killed);
            assert_eq!(log.stops(), [StopReason::Killed]);
        });
    });
}

#[test]
fn ctx_stop_drops_the_rest_and_runs_the_hook() {
    support::bounded(|| {
        let rt = runtime(1);
        rt.block_on(|| {
            let log = Log::new();
            let drops = Counter::new();
            let addr = actor::spawn(Probe::new(&log));
            let mut gate = Gate::new();
            send(&addr, gate.msg());
            gate.wait_entered();
            send(&addr, Msg::Num(1));
            send(&addr, job(|_, ctx| ctx.stop()));
            send(&addr, Msg::Num(2));
            let token = drops.token();
            send(&addr, job(move |_, _| drop(token)));
            gate.open();
            assert_eq!(addr.join(), StopReason::Normal);
            assert_eq!(log.nums(), [1]);
            assert_eq!(drops.get(), 1);
            assert_eq!(log.stops(), [StopReason::Normal]);
        });
    });
}

struct StopsInStarted(Log);

impl Actor for StopsInStarted {
    type Msg = u64;
    fn started(&mut self, ctx: &mut Context<Self>) {
        self.0.push(Event::Started);
        ctx.stop();
    }
    fn handle(&mut self, n: u64, _: &mut Context<Self>) {
        self.0.push(Event::Num(n));
    }
    fn stopped(&mut self, reason: &StopReason, _: &mut Context<Self>) {
        self.0.push(Event::Stopped(reason.clone()));
    }
}

#[test]
fn ctx_stop_in_started_stops_before_any_message() {
    support::bounded(|| {
        let rt = runtime(2);
        let log = Log::new();
        let addr = actor::Builder::new().spawn_on(rt.handle(), StopsInStarted(log.clone()));
        let _ = addr.send(1);
        assert_eq!(addr.join(), StopReason::Normal);
        assert_eq!(
            log.events(),
            [Event::Started, Event::Stopped(StopReason::Normal)]
        );
    });
}

// ---------------------------------------------------------------------------
// Addr
// ---------------------------------------------------------------------------

fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}

#[test]
fn addr_is_comparable_hashable_and_printable() {
    assert_send_sync_clone::<actor::Addr<Probe>>();
    support::bounded(|| {
        let rt = runtime(1);
        rt.block_on(|| {
            let log = Log::new();
            let a = actor::spawn(Probe::new(&log));
            let b = actor::Builder::new().name("bee").spawn(Probe::new(&log));
            let a2 = a.clone();
            assert_eq!(a, a2);
            assert_ne!(a, b);
            assert_eq!(a.id(), a2.id());
            assert_ne!(a.id(), b.id());
            // Addr hashes its id, which never changes; clippy sees only the
            // interior mutability of the task behind the Arc.
            #[allow(clippy::mutable_key_type, reason = "Addr hashes its immutable id")]
            let set: HashSet<_> = [a.clone(), a2.clone(), b.clone()].into_iter().collect();
            assert_eq!(set.len(), 2);
            assert_eq!(a.name(), None);
            assert_eq!(b.name(), Some("bee"));
            let (ida, idb) = (a.id().as_u64(), b.id().as_u64());
            assert_eq!(format!("{a:?}"), format!("Addr(#{ida})"));
            assert_eq!(format!("{b:?}"), format!("Addr(#{idb} 'bee')"));
            assert_eq!(format!("{a}"), format!("actor #{ida}"));
            assert_eq!(format!("{b}"), format!("actor #{idb} 'bee'"));
            assert_eq!(format!("{}", a.id()), format!("#{ida}"));
            assert_eq!(format!("{:?}", a.id()), format!("ActorId({ida})"));
            // A clone sent to another thread is the same actor.
            let from_thread = {
                let a = a.clone();
                std::thread::spawn(move || a).join().unwrap()
            };
            assert_eq!(from_thread, a);
            for addr in [a, b] {
                addr.stop();
                addr.join();
            }
            println!(
                "Addr is {} bytes",
                std::mem::size_of::<actor::Addr<Probe>>()
            );
            assert_eq!(
                std::mem::size_of::<actor::Addr<Probe>>(),
                std::mem::size_of::<usize>(),
                "one pointer"
            );
        });
    });
}

// ---------------------------------------------------------------------------
// join
// ---------------------------------------------------------------------------

/// With one worker, a fiber that joins an actor must park, not block the
/// worker: the actor runs on that same worker.
#[test]
fn join_from_a_fiber_on_one_worker_parks() {
    support::bounded(|| {
        let rt = runtime(1);
        let reason = rt.block_on(|| {
            let log = Log::new();
            let addr = actor::spawn(Probe::new(&log));
            let stopper = {
                let addr = addr.clone();
                weft::spawn(move || {
                    weft::sleep(Duration::from_millis(10));
                    send(&addr, Msg::Num(1));
                    send(&addr, job(|_, ctx| ctx.stop()));
                })
            };
            let reason = addr.join();
            stopper.join().unwrap();
            assert_eq!(log.nums(), [1]);
            reason
        });
        assert_eq!(reason, StopReason::Normal);
    });
}

#[test]
fn join_from_plain_threads_and_fibers_at_once() {
    support::bounded(|| {
        let rt = runtime(2);
        let log = Log::new();
        let addr = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let addr = addr.clone();
                std::thread::spawn(move || addr.join())
            })
            .collect();
        let fibers: Vec<_> = (0..4)
            .map(|_| {
                let addr = addr.clone();
                rt.spawn(move || addr.join())
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        addr.kill();
        for t in threads {
            assert_eq!(t.join().unwrap(), StopReason::Killed);
        }
        for f in fibers {
            assert_eq!(f.join().unwrap(), StopReason::Killed);
        }
        assert_eq!(addr.join(), StopReason::Killed);
    });
}

// ---------------------------------------------------------------------------
// order
// ---------------------------------------------------------------------------

/// Four fibers and two threads send 20,000 numbers each (tagged with the
/// sender) to one actor, unbounded and then bounded to 16: each sender's
/// messages are handled in the order sent, and all of them are handled.
#[test]
fn messages_from_one_sender_are_handled_in_order() {
    support::bounded(|| {
        const EACH: u64 = 20_000;
        const SENDERS: u64 = 6;
        let rt = runtime(2);
        for capacity in [None, Some(16)] {
            let log = Log::new();
            let mut builder = actor::Builder::new();
            if let Some(c) = capacity {
                builder = builder.mailbox_capacity(c);
            }
            let addr = builder.spawn_on(rt.handle(), Probe::new(&log));
            let mut fibers = Vec::new();
            let mut threads = Vec::new();
            for s in 0..SENDERS {
                let addr = addr.clone();
                let body = move || {
                    for i in 0..EACH {
                        send(&addr, Msg::Num(s << 32 | i));
                        if i % 1000 == 0 {
                            weft::yield_now();
                        }
                    }
                };
                if s < 4 {
                    fibers.push(rt.spawn(body));
                } else {
                    threads.push(std::thread::spawn(body));
                }
            }
            fibers.into_iter().for_each(|f| f.join().unwrap());
            threads.into_iter().for_each(|t| t.join().unwrap());
            addr.stop();
            addr.join();
            let nums = log.nums();
            assert_eq!(nums.len() as u64, SENDERS * EACH);
            let mut next = [0u64; SENDERS as usize];
            for n in nums {
                let (s, i) = ((n >> 32) as usize, n & 0xffff_ffff);
                assert_eq!(i, next[s], "sender {s} out of order ({capacity:?})");
                next[s] += 1;
            }
            println!(
                "capacity {capacity:?}: {} messages, each sender in order",
                SENDERS * EACH
            );
        }
    });
}

// ---------------------------------------------------------------------------
// activations: when an actor keeps its fiber
// ---------------------------------------------------------------------------

/// Counts the asks one activation (one fiber) of [`Tally`] answered.
struct Activation {
    asks: Cell<u64>,
}

impl Drop for Activation {
    fn drop(&mut self) {
        ACTIVATIONS_ENDED.fetch_add(1, Ordering::SeqCst);
    }
}

static ACTIVATIONS_ENDED: AtomicUsize = AtomicUsize::new(0);

weft::fiber_local! {
    static ACTIVATION: Activation = Activation { asks: Cell::new(0) };
}

/// Answers each ask with how many asks its current fiber has answered.
struct Tally;

impl Actor for Tally {
    type Msg = Reply<u64>;
    fn handle(&mut self, reply: Reply<u64>, _: &mut Context<Self>) {
        let asks = ACTIVATION.with(|a| {
            a.asks.set(a.asks.get() + 1);
            a.asks.get()
        });
        reply.send(asks);
    }
}

/// A message wakes an idle actor onto the sender's worker without waking
/// the other one, on the bet that the sender switches out soon. A sender
/// that holds its worker instead (here it blocks the thread, never
/// parking) does not keep the actor waiting: the stall monitor wakes the
/// sleeping worker, which steals the actor and runs it.
#[test]
fn a_woken_actor_runs_while_its_sender_holds_the_worker() {
    support::bounded(|| {
        let rt = runtime(2);
        let log = Log::new();
        let addr = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
        rt.block_on(move || {
            let first = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&first);
            send(&addr, job(move |_, _| flag.store(true, Ordering::SeqCst)));
            while !first.load(Ordering::SeqCst) {
                weft::sleep(Duration::from_millis(1));
            }
            // The actor goes idle, and the other worker to sleep.
            weft::sleep(Duration::from_millis(50));
            let handled = Arc::new(AtomicBool::new(false));
            let flag = Arc::clone(&handled);
            send(&addr, job(move |_, _| flag.store(true, Ordering::SeqCst)));
            support::wait_until(
                Duration::from_secs(20),
                "the woken actor to run while its sender blocks the worker",
                || handled.load(Ordering::SeqCst),
            );
        });
    });
}

/// A fiber that keeps asking an actor on its worker finds the actor on the
/// fiber that answered it last, not on a fresh one per ask; once the asks
/// stop, the actor goes idle (its fiber ends, dropping its fiber-locals),
/// and the next ask starts a new fiber.
#[test]
fn an_actor_asked_again_and_again_keeps_its_fiber_until_the_asks_stop() {
    support::bounded(|| {
        let rt = runtime(1);
        rt.block_on(|| {
            let tally = actor::spawn(Tally);
            let answers: Vec<u64> = (0..200).map(|_| tally.ask(|r| r).unwrap()).collect();
            let expected: Vec<u64> = (1..=200).collect();
            assert_eq!(answers, expected, "one fiber answered every ask");
            // Nothing asks now: the actor's next look at its mailbox finds
            // it empty, and it goes idle.
            let deadline = Instant::now() + Duration::from_secs(10);
            while ACTIVATIONS_ENDED.load(Ordering::SeqCst) == 0 {
                assert!(Instant::now() < deadline, "the actor never went idle");
                weft::sleep(Duration::from_millis(1));
            }
            assert_eq!(ACTIVATIONS_ENDED.load(Ordering::SeqCst), 1);
            assert_eq!(tally.ask(|r| r), Ok(1), "a new fiber after idling");
            tally.stop();
            tally.join();
        });
    });
}

/// How many [`Starter`] runs are alive at once, and the most there were.
static STARTERS_LIVE: AtomicUsize = AtomicUsize::new(0);
static STARTERS_MOST: AtomicUsize = AtomicUsize::new(0);
static STARTERS_STARTED: AtomicUsize = AtomicUsize::new(0);

/// Alive from a [`Starter`]'s `started` until its fiber ends.
struct StarterRun;

impl StarterRun {
    fn new() -> StarterRun {
        let live = STARTERS_LIVE.fetch_add(1, Ordering::SeqCst) + 1;
        STARTERS_MOST.fetch_max(live, Ordering::SeqCst);
        STARTERS_STARTED.fetch_add(1, Ordering::SeqCst);
        StarterRun
    }
}

impl Drop for StarterRun {
    fn drop(&mut self) {
        STARTERS_LIVE.fetch_sub(1, Ordering::SeqCst);
    }
}

weft::fiber_local! {
    static STARTER_RUN: StarterRun = StarterRun::new();
}

struct Starter;

impl Actor for Starter {
    type Msg = ();
    fn started(&mut self, _: &mut Context<Self>) {
        STARTER_RUN.with(|_| ());
    }
    fn handle(&mut self, (): (), _: &mut Context<Self>) {}
}

/// Answers every ask with 0.
struct Answers;

impl Actor for Answers {
    type Msg = Reply<u64>;
    fn handle(&mut self, reply: Reply<u64>, _: &mut Context<Self>) {
        reply.send(0);
    }
}

/// An actor that answered an ask yields to the asker only when the yield
/// goes straight to it. With unstarted actors waiting on the worker, a
/// yield runs them first, and each would find the asker still waiting and
/// yield in turn, every one keeping its fiber (and stack): here each
/// starts, finds nothing, and goes idle before the next starts.
#[test]
fn answering_an_ask_does_not_keep_fibers_while_unstarted_actors_wait() {
    support::bounded(|| {
        let rt = runtime(1);
        rt.block_on(|| {
            let answers = actor::spawn(Answers);
            assert_eq!(answers.ask(|r| r), Ok(0));
            // Unstarted, in the worker's deque, under the ask's actor.
            let starters: Vec<_> = (0..100).map(|_| actor::spawn(Starter)).collect();
            assert_eq!(answers.ask(|r| r), Ok(0));
            let deadline = Instant::now() + Duration::from_secs(10);
            while STARTERS_STARTED.load(Ordering::SeqCst) < starters.len()
                || STARTERS_LIVE.load(Ordering::SeqCst) > 0
            {
                assert!(
                    Instant::now() < deadline,
                    "the starters never all went idle"
                );
                weft::sleep(Duration::from_millis(1));
            }
            let most = STARTERS_MOST.load(Ordering::SeqCst);
            assert_eq!(most, 1, "{most} starters held their fibers at once");
            for starter in &starters {
                starter.stop();
            }
            answers.stop();
        });
    });
}

//! The actor API, one behaviour at a time: `send` and `try_send` on
//! unbounded and bounded mailboxes (and the parking `send`), `ask` and
//! `ask_timeout` with each of their errors, `stop` against `kill`, the
//! hooks' reasons, `Addr`'s traits, `join` from a fiber and from a plain
//! thread, and per-sender order.
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use std::time::{Duration, Instant};

use actor_util::{Event, Gate, Log, Msg, Probe, job, runtime, send};
use support::{Counter, DropToken};
use weft::actor::{self, Actor, AskError, Context, Reply, StopReason};

/// Regression: a message that arrives while a handler is blocked (here
/// on a channel, in `sleep`, in `started`) woke the parked fiber, whose
/// park consumed that wake; the actor then went idle with the message
/// still in its mailbox, and never handled it.
#[test]
fn a_message_arriving_while_a_handler_blocks_is_handled_after_it() {
    support::bounded(|| {
        let rt = runtime(2);
        for round in 0..50u64 {
            let log = Log::new();
            let addr = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
            let mut gate = Gate::new();
            send(&addr, gate.msg());
            gate.wait_entered();
            send(&addr, Msg::Num(round));
            gate.open();
            send(&addr, job(|_, _| weft::sleep(Duration::from_millis(1))));
            std::thread::sleep(Duration::from_micros(200));
            send(&addr, Msg::Num(round + 1));
            log.wait_for("both messages", |e| {
                e.iter().filter(|e| matches!(e, Event::Num(_))).count() == 2
            });
            addr.stop();
            assert_eq!(addr.join(), StopReason::Normal);
            assert_eq!(log.nums(), [round, round + 1]);
        }
    });
}

struct SleepsInStarted(Log);

impl Actor for SleepsInStarted {
    type Msg = u64;
    fn started(&mut self, _: &mut Context<Self>) {
        weft::sleep(Duration::from_millis(20));
    }
    fn handle(&mut self, n: u64, _: &mut Context<Self>) {
        self.0.push(Event::Num(n));
    }
}

#[test]
fn a_message_arriving_while_started_blocks_is_handled() {
    support::bounded(|| {
        let rt = runtime(2);
        let log = Log::new();
        let addr = actor::Builder::new().spawn_on(rt.handle(), SleepsInStarted(log.clone()));
        std::thread::sleep(Duration::from_millis(5));
        addr.send(7).unwrap();
        log.wait_for("the message", |e| e == [Event::Num(7)]);
        addr.stop();
        addr.join();
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

// ---------------------------------------------------------------------------
// ask
// ---------------------------------------------------------------------------

enum Calc {
    Double(u64, Reply<u64>),
    Ignore(Reply<u64>),
    Slow(Duration, Reply<u64>),
    Keep(Reply<u64>),
    KeptLen(Reply<usize>),
    PanicWith(Reply<u64>),
    Stop,
}

struct Calculator {
    kept: Vec<Reply<u64>>,
}

impl Actor for Calculator {
    type Msg = Calc;
    fn handle(&mut self, msg: Calc, ctx: &mut Context<Self>) {
        match msg {
            Calc::Double(n, reply) => reply.send(n * 2),
            Calc::Ignore(reply) => drop(reply),
            Calc::Slow(d, reply) => {
                weft::sleep(d);
                reply.send(1);
            }
            Calc::Keep(reply) => self.kept.push(reply),
            Calc::KeptLen(reply) => reply.send(self.kept.len()),
            Calc::PanicWith(_reply) => panic!("{}asked to panic", support::QUIET),
            Calc::Stop => ctx.stop(),
        }
    }
}

fn calculator() -> Calculator {
    Calculator { kept: Vec::new() }
}

#[test]
fn ask_returns_the_reply_from_a_fiber_and_from_a_thread() {
    support::bounded(|| {
        let rt = runtime(2);
        let addr = actor::Builder::new().spawn_on(rt.handle(), calculator());
        assert_eq!(addr.ask(|r| Calc::Double(21, r)), Ok(42));
        let from_fiber = {
            let addr = addr.clone();
            rt.block_on(move || {
                (0..1000)
                    .map(|i| addr.ask(|r| Calc::Double(i, r)).unwrap())
                    .sum::<u64>()
            })
        };
        assert_eq!(from_fiber, 999 * 1000);
        assert_eq!(
            addr.ask_timeout(|r| Calc::Double(5, r), Duration::from_secs(10)),
            Ok(10)
        );
        addr.stop();
        addr.join();
    });
}

#[test]
fn ask_timeout_gives_timeout_and_the_late_reply_is_dropped() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let addr = actor::spawn(calculator());
            let start = Instant::now();
            let got = addr.ask_timeout(
                |r| Calc::Slow(Duration::from_millis(200), r),
                Duration::from_millis(20),
            );
            println!(
                "ask_timeout(20 ms) against a 200 ms handler gave {got:?} after {:?}",
                start.elapsed()
            );
            assert_eq!(got, Err(AskError::Timeout));
            // The late reply goes nowhere, quietly; the actor goes on.
            assert_eq!(addr.ask(|r| Calc::Double(1, r)), Ok(2));
            addr.stop();
            assert_eq!(addr.join(), StopReason::Normal);
        });
    });
}

#[test]
fn ask_gives_no_reply_when_the_actor_drops_the_reply() {
    support::bounded(|| {
        let rt = runtime(2);
        let addr = actor::Builder::new().spawn_on(rt.handle(), calculator());
        assert_eq!(addr.ask(Calc::Ignore), Err(AskError::NoReply));
        assert_eq!(
            addr.ask_timeout(Calc::Ignore, Duration::from_secs(10)),
            Err(AskError::NoReply)
        );
        assert!(addr.is_alive(), "dropping a reply does not stop the actor");
        addr.stop();
        addr.join();
    });
}

#[test]
fn ask_gives_stopped_for_a_stopped_actor_and_for_queued_asks() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let addr = actor::spawn(calculator());
            // A reply kept in the actor's state, dropped when it stops.
            let keeper = {
                let addr = addr.clone();
                weft::spawn(move || addr.ask(Calc::Keep))
            };
            while addr.ask(Calc::KeptLen) != Ok(1) {
                weft::yield_now();
            }
            // Queued behind the stop: dropped with the mailbox.
            send(&addr, Calc::Stop);
            let queued = {
                let addr = addr.clone();
                weft::spawn(move || addr.ask(|r| Calc::Double(1, r)))
            };
            assert_eq!(addr.join(), StopReason::Normal);
            let queued = queued.join().unwrap();
            assert!(
                queued == Err(AskError::Stopped) || queued == Ok(2),
                "an ask that made it in before the stop is answered, else Stopped: {queued:?}"
            );
            assert_eq!(keeper.join().unwrap(), Err(AskError::Stopped));
            assert_eq!(addr.ask(|r| Calc::Double(1, r)), Err(AskError::Stopped));
            assert_eq!(
                addr.ask_timeout(|r| Calc::Double(1, r), Duration::from_secs(1)),
                Err(AskError::Stopped)
            );
        });
    });
}

/// Asks queued behind a stop are all told `Stopped`, never `NoReply`.
#[test]
fn asks_queued_behind_a_stop_get_stopped() {
    support::bounded(|| {
        let rt = runtime(2);
        let addr = actor::Builder::new().spawn_on(rt.handle(), calculator());
        let (tx, rx) = weft::chan::unbounded();
        let mut askers = Vec::new();
        // Hold the actor in a slow handler, queue stop, then asks.
        let slow = {
            let addr = addr.clone();
            std::thread::spawn(move || addr.ask(|r| Calc::Slow(Duration::from_millis(100), r)))
        };
        std::thread::sleep(Duration::from_millis(20));
        addr.stop();
        for _ in 0..20 {
            let (addr, tx) = (addr.clone(), tx.clone());
            askers.push(std::thread::spawn(move || {
                tx.send(addr.ask(|r| Calc::Double(1, r))).unwrap();
            }));
        }
        drop(tx);
        assert_eq!(slow.join().unwrap(), Ok(1));
        assert_eq!(addr.join(), StopReason::Normal);
        askers.into_iter().for_each(|t| t.join().unwrap());
        let answers: Vec<_> = rx.iter().collect();
        assert_eq!(answers.len(), 20);
        assert!(
            answers.iter().all(|a| *a == Err(AskError::Stopped)),
            "{answers:?}"
        );
    });
}

/// A handler that panics with the `Reply` in hand: the actor stopped
/// before answering, so the asker must see `Stopped` (not `NoReply`),
/// however the asker's wake-up races the actor's stop. Asked from a plain
/// thread on 2 workers, 200 times.
#[test]
fn ask_to_a_handler_that_panics_gives_stopped() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        let mut no_reply = 0;
        for _ in 0..200 {
            let addr = actor::Builder::new().spawn_on(rt.handle(), calculator());
            match addr.ask(Calc::PanicWith) {
                Err(AskError::Stopped) => {}
                Err(AskError::NoReply) => no_reply += 1,
                other => panic!("unexpected {other:?}"),
            }
            assert!(matches!(addr.join(), StopReason::Panicked(_)));
        }
        println!("asks answered NoReply by a panicking handler: {no_reply} of 200");
        assert_eq!(no_reply, 0, "a panicking actor stopped before answering");
    });
}

//! The actor API, one behaviour at a time: `send` and `try_send` on
//! unbounded and bounded mailboxes (and the parking `send`), and `ask` and
//! `ask_timeout` with each of their errors (the lifecycle is in
//! `actor_lifecycle.rs`).
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use actor_util::{Event, Gate, Log, Msg, Probe, job, runtime, send};
use weft::actor::{self, Actor, AskError, Context, Reply, SendError, StopReason, TrySendError};

// ---------------------------------------------------------------------------
// send / try_send
// ---------------------------------------------------------------------------

#[test]
fn unbounded_send_never_blocks_while_the_actor_is_busy() {
    support::bounded(|| {
        const N: u64 = 100_000;
        let rt = runtime(2);
        let log = Log::new();
        // Spawned from a plain thread, through the handle.
        let addr = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
        let mut gate = Gate::new();
        send(&addr, gate.msg());
        gate.wait_entered();
        let start = Instant::now();
        for i in 0..N {
            addr.send(Msg::Num(i)).expect("unbounded send");
        }
        println!(
            "{N} sends to a busy actor's unbounded mailbox from a thread in {:?}",
            start.elapsed()
        );
        assert!(log.nums().is_empty(), "nothing handled while it is held");
        gate.open();
        addr.stop();
        assert_eq!(addr.join(), StopReason::Normal);
        assert_eq!(log.nums(), (0..N).collect::<Vec<_>>());
        assert_eq!(log.stops(), [StopReason::Normal]);
    });
}

#[test]
fn try_send_on_a_full_bounded_mailbox_gives_the_message_back() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let log = Log::new();
            let addr = actor::Builder::new()
                .mailbox_capacity(4)
                .spawn(Probe::new(&log));
            let mut gate = Gate::new();
            send(&addr, gate.msg());
            gate.wait_entered();
            for i in 0..4 {
                addr.try_send(Msg::Num(i)).expect("room for 4");
            }
            match addr.try_send(Msg::Num(99)) {
                Err(TrySendError::Full(Msg::Num(99))) => {}
                Err(TrySendError::Full(_)) => panic!("Full with another message"),
                Err(TrySendError::Stopped(_)) => panic!("Stopped, not Full"),
                Ok(()) => panic!("a fifth message fit in a mailbox of 4"),
            }
            // Signals are not messages: stop is never refused.
            addr.stop();
            gate.open();
            assert_eq!(addr.join(), StopReason::Normal);
            assert_eq!(log.nums(), [0, 1, 2, 3]);
            match addr.try_send(Msg::Num(7)) {
                Err(TrySendError::Stopped(Msg::Num(7))) => {}
                _ => panic!("try_send to a stopped actor must give Stopped with the message"),
            }
            match addr.send(Msg::Num(8)) {
                Err(SendError(Msg::Num(8))) => {}
                _ => panic!("send to a stopped actor must give the message back"),
            }
        });
    });
}

#[test]
fn unbounded_try_send_is_never_full() {
    support::bounded(|| {
        let rt = runtime(1);
        rt.block_on(|| {
            let log = Log::new();
            let addr = actor::spawn(Probe::new(&log));
            let mut gate = Gate::new();
            send(&addr, gate.msg());
            gate.wait_entered();
            for i in 0..10_000 {
                assert!(addr.try_send(Msg::Num(i)).is_ok());
            }
            gate.open();
            addr.stop();
            addr.join();
            assert_eq!(log.nums().len(), 10_000);
        });
    });
}

/// A fiber and a plain thread each send 50 messages into a mailbox of 2
/// held shut: both park at the bound, and every message arrives, in each
/// sender's order, once the actor runs again.
#[test]
fn send_parks_on_a_full_bounded_mailbox_until_there_is_room() {
    support::bounded(|| {
        const EACH: u64 = 50;
        let rt = runtime(2);
        let log = Log::new();
        let addr = actor::Builder::new()
            .mailbox_capacity(2)
            .spawn_on(rt.handle(), Probe::new(&log));
        let mut gate = Gate::new();
        send(&addr, gate.msg());
        gate.wait_entered();
        let sent = Arc::new(AtomicUsize::new(0));
        let fiber_sender = {
            let (addr, sent) = (addr.clone(), sent.clone());
            rt.spawn(move || {
                for i in 0..EACH {
                    send(&addr, Msg::Num(i));
                    sent.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        let thread_sender = {
            let (addr, sent) = (addr.clone(), sent.clone());
            std::thread::spawn(move || {
                for i in 0..EACH {
                    send(&addr, Msg::Num(1000 + i));
                    sent.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        support::wait_until(Duration::from_secs(10), "two sends to fit", || {
            sent.load(Ordering::SeqCst) >= 2
        });
        std::thread::sleep(Duration::from_millis(50));
        let while_held = sent.load(Ordering::SeqCst);
        println!("sends completed while the mailbox of 2 was held full: {while_held}");
        assert_eq!(while_held, 2, "the senders park at the bound");
        gate.open();
        fiber_sender.join().unwrap();
        thread_sender.join().unwrap();
        addr.stop();
        assert_eq!(addr.join(), StopReason::Normal);
        let nums = log.nums();
        assert_eq!(nums.len(), 2 * EACH as usize);
        let from_fiber: Vec<u64> = nums.iter().copied().filter(|&n| n < 1000).collect();
        let from_thread: Vec<u64> = nums.iter().copied().filter(|&n| n >= 1000).collect();
        assert_eq!(from_fiber, (0..EACH).collect::<Vec<_>>());
        assert_eq!(from_thread, (1000..1000 + EACH).collect::<Vec<_>>());
    });
}

/// A sender parked on a full mailbox gets its message back when the actor
/// stops instead of making room.
#[test]
fn a_sender_parked_on_a_full_mailbox_is_released_when_the_actor_stops() {
    support::bounded(|| {
        let rt = runtime(2);
        let log = Log::new();
        let addr = actor::Builder::new()
            .mailbox_capacity(1)
            .spawn_on(rt.handle(), Probe::new(&log));
        let mut gate = Gate::new();
        send(&addr, gate.msg());
        gate.wait_entered();
        send(&addr, Msg::Num(1));
        let sender = {
            let addr = addr.clone();
            rt.spawn(move || addr.send(Msg::Num(2)))
        };
        std::thread::sleep(Duration::from_millis(20));
        addr.kill();
        gate.open();
        assert_eq!(addr.join(), StopReason::Killed);
        match sender.join().unwrap() {
            Err(SendError(Msg::Num(2))) => {}
            Err(_) => panic!("another message came back"),
            Ok(()) => panic!("the send succeeded into a killed actor"),
        }
        assert!(log.nums().is_empty());
    });
}

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

// ---------------------------------------------------------------------------
// stop, kill, hooks
// ---------------------------------------------------------------------------

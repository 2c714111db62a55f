//! The actor API, one behaviour at a time: `send` and `try_send` on
//! unbounded and bounded mailboxes (and the parking `send`), `ask` and
//! `ask_timeout` with each of their errors, `stop` against `kill`, the
//! hooks' reasons, `Addr`'s traits, `join` from a fiber and from a plain
//! thread, and per-sender order.
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use std::time::Duration;

use actor_util::{Event, Gate, Log, Msg, Probe, job, runtime, send};
use support::{Counter, DropToken};
use weft::actor::{self, Actor, Context, StopReason};

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

//! Misuse of the actor API (TESTING.md 8): spawning off a runtime or
//! after it has shut down, `block_on` inside a handler, and the waits an
//! actor can never finish on itself (asking itself, joining itself,
//! waiting for room in its own full mailbox), which must fail loudly, not
//! hang.
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use std::time::Duration;

use actor_util::{Event, Log, Msg, Probe, job, runtime, send};
use weft::actor::{self, AskError, StopReason, TrySendError};

#[test]
fn spawning_an_actor_off_a_runtime_panics_with_how_to_start_one() {
    let log = Log::new();
    let err = std::panic::catch_unwind(|| actor::spawn(Probe::new(&log))).unwrap_err();
    let message = support::panic_message(err.as_ref())
        .unwrap_or_default()
        .to_owned();
    println!("actor::spawn off a runtime: {message}");
    assert!(message.contains("weft::run"), "{message}");
    assert!(log.events().is_empty(), "the actor never ran");
}

/// Through a handle kept after the drop: the actor is stopped with
/// `Shutdown` at once (its `stopped` hook runs, `started` does not), and
/// sends to it fail.
#[test]
fn spawning_an_actor_after_the_runtime_dropped_stops_it_at_once() {
    support::bounded(|| {
        let rt = runtime(1);
        let handle = rt.handle().clone();
        drop(rt);
        let log = Log::new();
        let addr = actor::Builder::new().spawn_on(&handle, Probe::new(&log));
        assert_eq!(addr.join(), StopReason::Shutdown);
        assert_eq!(log.events(), [Event::Stopped(StopReason::Shutdown)]);
        assert!(addr.send(Msg::Num(1)).is_err());
        assert!(!addr.is_alive());
    });
}

#[test]
fn block_on_inside_a_handler_stops_the_actor_with_the_reason() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(1);
        let log = Log::new();
        let addr = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
        send(
            &addr,
            job(|_, _| {
                let inner = weft::Runtime::builder().workers(1).build().unwrap();
                inner.block_on(|| ());
            }),
        );
        let reason = addr.join();
        println!("block_on in a handler: {reason}");
        match reason {
            StopReason::Panicked(m) => {
                assert!(m.contains("Cannot block_on inside a weft fiber"), "{m}")
            }
            other => panic!("expected a panic, got {other:?}"),
        }
        // The worker is fine.
        assert_eq!(rt.block_on(|| 2 + 2), 4);
    });
}

/// An actor that asks itself would wait forever: the request queues
/// behind the very handler that waits for the answer. It panics instead
/// (the actor stops with that reason). `ask_timeout` just times out.
#[test]
fn an_actor_asking_itself_panics_instead_of_hanging() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(1);
        let log = Log::new();
        let addr = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
        send(
            &addr,
            job(|_, ctx| {
                let me = ctx.addr();
                let got = me.ask_timeout(|r| job(move |_, _| r.send(1)), Duration::from_millis(5));
                assert_eq!(got, Err(AskError::Timeout));
                let _ = me.ask(|r| job(move |_, _| r.send(2)));
            }),
        );
        let reason = addr.join();
        println!("an actor asking itself: {reason}");
        match reason {
            StopReason::Panicked(m) => assert!(m.contains("cannot ask itself"), "{m}"),
            other => panic!("expected a panic, got {other:?}"),
        }
    });
}

#[test]
fn an_actor_joining_itself_panics_instead_of_hanging() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(1);
        let log = Log::new();
        let addr = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
        send(
            &addr,
            job(|_, ctx| {
                ctx.addr().join();
            }),
        );
        let reason = addr.join();
        println!("an actor joining itself: {reason}");
        match reason {
            StopReason::Panicked(m) => assert!(m.contains("cannot join itself"), "{m}"),
            other => panic!("expected a panic, got {other:?}"),
        }
    });
}

/// Waiting for room in one's own full mailbox: only this actor could make
/// room. `try_send` says `Full`; `send` panics instead of parking forever.
#[test]
fn an_actor_sending_to_its_own_full_mailbox_panics_instead_of_hanging() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(1);
        let log = Log::new();
        let addr = actor::Builder::new()
            .mailbox_capacity(2)
            .spawn_on(rt.handle(), Probe::new(&log));
        send(
            &addr,
            job(|_, ctx| {
                let me = ctx.addr();
                for i in 0..2 {
                    assert!(me.try_send(Msg::Num(i)).is_ok());
                }
                assert!(matches!(
                    me.try_send(Msg::Num(2)),
                    Err(TrySendError::Full(_))
                ));
                let _ = me.send(Msg::Num(3));
            }),
        );
        let reason = addr.join();
        println!("an actor sending to its own full mailbox: {reason}");
        match reason {
            StopReason::Panicked(m) => assert!(m.contains("its own full mailbox"), "{m}"),
            other => panic!("expected a panic, got {other:?}"),
        }
    });
}

/// A bounded mailbox of 0 is documented as 1.
#[test]
fn a_mailbox_capacity_of_zero_means_one() {
    support::bounded(|| {
        let rt = runtime(1);
        let log = Log::new();
        let addr = actor::Builder::new()
            .mailbox_capacity(0)
            .spawn_on(rt.handle(), Probe::new(&log));
        let mut gate = actor_util::Gate::new();
        send(&addr, gate.msg());
        gate.wait_entered();
        assert!(addr.try_send(Msg::Num(1)).is_ok());
        assert!(matches!(
            addr.try_send(Msg::Num(2)),
            Err(TrySendError::Full(_))
        ));
        gate.open();
        addr.stop();
        addr.join();
        assert_eq!(log.nums(), [1]);
    });
}

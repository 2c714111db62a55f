//! Misuse of the actor API (TESTING.md 8): spawning off a runtime or
//! after it has shut down, `block_on` inside a handler, and the waits an
//! actor can never finish on itself (asking itself, joining itself,
//! waiting for room in its own full mailbox), which must fail loudly, not
//! hang.
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use actor_util::{Event, Log, Msg, Probe, job, runtime, send};
use weft::actor::{self, StopReason, TrySendError};

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

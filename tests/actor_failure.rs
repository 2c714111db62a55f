//! Failure: a panic (in a handler, in `started`, in the `stopped` hook,
//! with any payload) stops its actor, never a worker, and becomes the
//! actor's `StopReason::Panicked` with the message. How a stop travels
//! to other actors, along links and monitors, is tested in
//! `actor_links.rs`.
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use std::time::Duration;

use actor_util::{Event, Log, Msg, Probe, job, panic_msg, panicked, runtime, send};
use support::QUIET;
use weft::actor::{self, Actor, Addr, Context, StopReason};

/// Worker threads of this process named `<prefix><index>`.
fn threads_named(prefix: &str) -> usize {
    support::thread_names()
        .iter()
        .filter(|n| {
            n.strip_prefix(prefix)
                .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
        })
        .count()
}

/// 2,000 actors panic in their handlers while 10 others answer asks:
/// every panicking actor stops with `Panicked` and its message (its hook
/// saw the same), the workers survive, the others never notice.
#[test]
fn a_panic_stops_only_its_actor_and_never_a_worker() {
    support::quiet_panics();
    let _heavy = support::heavy();
    support::bounded(|| {
        const PANICKERS: usize = 2_000;
        let rt = weft::Runtime::builder()
            .workers(2)
            .thread_name("panicky")
            .build()
            .unwrap();
        // A thread names itself once it runs: wait for both.
        support::wait_until(Duration::from_secs(10), "two named workers", || {
            threads_named("panicky-") == 2
        });
        let workers_before = threads_named("panicky-");
        rt.block_on(|| {
            let good: Vec<(Log, Addr<Probe>)> = (0..10)
                .map(|_| {
                    let log = Log::new();
                    let addr = actor::spawn(Probe::new(&log));
                    (log, addr)
                })
                .collect();
            let bad: Vec<(Log, Addr<Probe>)> = (0..PANICKERS)
                .map(|_| {
                    let log = Log::new();
                    let addr = actor::spawn(Probe::new(&log));
                    (log, addr)
                })
                .collect();
            for (i, (_, addr)) in bad.iter().enumerate() {
                send(addr, panic_msg("handler failed"));
                if i % 100 == 0 {
                    for (_, g) in &good {
                        send(g, Msg::Num(i as u64));
                    }
                }
            }
            for (log, addr) in &bad {
                assert_eq!(addr.join(), panicked("handler failed"));
                assert_eq!(log.stops(), [panicked("handler failed")]);
                assert!(!addr.is_alive());
                assert!(addr.send(Msg::Num(0)).is_err());
            }
            for (log, addr) in &good {
                let alive = addr.ask(|r| job(move |_, _| r.send(true)));
                assert_eq!(alive, Ok(true));
                assert_eq!(
                    log.nums(),
                    (0..PANICKERS as u64).step_by(100).collect::<Vec<_>>()
                );
                addr.stop();
                assert_eq!(addr.join(), StopReason::Normal);
            }
        });
        let workers_after = threads_named("panicky-");
        println!(
            "{PANICKERS} actors panicked; worker threads before {workers_before}, after {workers_after}"
        );
        assert_eq!(workers_before, 2);
        assert_eq!(workers_after, 2, "no worker died");
    });
}

struct PanicsInStarted(Log);

impl Actor for PanicsInStarted {
    type Msg = u64;
    fn started(&mut self, _: &mut Context<Self>) {
        self.0.push(Event::Started);
        panic!("{QUIET}started failed");
    }
    fn handle(&mut self, n: u64, _: &mut Context<Self>) {
        self.0.push(Event::Num(n));
    }
    fn stopped(&mut self, reason: &StopReason, _: &mut Context<Self>) {
        self.0.push(Event::Stopped(reason.clone()));
    }
}

/// The module doc: "A panic in a handler (or in `started`) stops that
/// actor with `Panicked` (its `stopped` hook runs)".
#[test]
fn a_panic_in_started_stops_the_actor_and_runs_its_stopped_hook() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        let log = Log::new();
        let addr = actor::Builder::new().spawn_on(rt.handle(), PanicsInStarted(log.clone()));
        let _ = addr.send(1);
        assert_eq!(addr.join(), panicked("started failed"));
        assert_eq!(
            log.events(),
            [Event::Started, Event::Stopped(panicked("started failed"))]
        );
    });
}

struct PanicsInStopped(
    Log,
    #[allow(dead_code, reason = "counts its drop")] support::DropToken,
);

impl Actor for PanicsInStopped {
    type Msg = ();
    fn handle(&mut self, (): (), _: &mut Context<Self>) {
        panic!("{QUIET}first");
    }
    fn stopped(&mut self, reason: &StopReason, _: &mut Context<Self>) {
        self.0.push(Event::Stopped(reason.clone()));
        panic!("{QUIET}second, in the hook");
    }
}

/// A hook that panics does not change the reason, and the state is
/// still dropped (once).
#[test]
fn a_panic_in_the_stopped_hook_keeps_the_first_reason() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(1);
        let log = Log::new();
        let drops = support::Counter::new();
        let addr = actor::Builder::new()
            .spawn_on(rt.handle(), PanicsInStopped(log.clone(), drops.token()));
        addr.send(()).unwrap();
        assert_eq!(addr.join(), panicked("first"));
        assert_eq!(log.stops(), [panicked("first")]);
        assert_eq!(drops.get(), 1, "the state was dropped once");
        // The worker goes on.
        assert_eq!(rt.block_on(|| 1 + 1), 2);
    });
}

#[test]
fn panic_payloads_become_messages() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(1);
        rt.block_on(|| {
            let log = Log::new();
            let a = actor::spawn(Probe::new(&log));
            send(&a, job(|_, _| panic!("{}formatted {}", QUIET, 42)));
            assert_eq!(a.join(), panicked("formatted 42"));

            let b = actor::spawn(Probe::new(&log));
            send(&b, job(|_, _| std::panic::panic_any(17u32)));
            let reason = b.join();
            assert_eq!(
                reason,
                StopReason::Panicked("a panic with a non-string payload".to_owned())
            );
            assert!(reason.is_abnormal());
            assert_eq!(
                reason.to_string(),
                "panicked: a panic with a non-string payload"
            );
        });
    });
}

//! The name registry: register, whereis (with the right and the wrong
//! type), unregister, `Taken`, `Stopped`, release when the actor stops,
//! and racing registrations.
//!
//! The registry is one per process and the tests of this file run in
//! parallel, so each test uses names of its own.
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use actor_util::{Log, Probe, runtime};
use weft::actor::{self, Actor, Context, RegisterError, StopReason};

struct Other;

impl Actor for Other {
    type Msg = ();
    fn handle(&mut self, (): (), _: &mut Context<Self>) {}
}

#[test]
fn register_whereis_unregister() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let log = Log::new();
            let a = actor::spawn(Probe::new(&log));
            let b = actor::spawn(Probe::new(&log));
            assert_eq!(actor::register("reg-basic", &a), Ok(()));
            assert_eq!(actor::whereis::<Probe>("reg-basic"), Some(a.clone()));
            assert_eq!(
                actor::register("reg-basic", &a),
                Ok(()),
                "again, same actor: fine"
            );
            assert_eq!(
                actor::register("reg-basic", &b),
                Err(RegisterError::Taken(a.id())),
                "another live actor has it"
            );
            assert_eq!(
                actor::whereis::<Other>("reg-basic"),
                None,
                "the wrong type finds nothing"
            );
            assert_eq!(actor::whereis::<Probe>("reg-nobody"), None);
            // Several names for one actor.
            assert_eq!(actor::register("reg-basic-2", &a), Ok(()));
            assert_eq!(actor::whereis::<Probe>("reg-basic-2"), Some(a.clone()));
            assert!(actor::unregister("reg-basic"));
            assert!(!actor::unregister("reg-basic"), "only once");
            assert_eq!(actor::whereis::<Probe>("reg-basic"), None);
            assert_eq!(actor::whereis::<Probe>("reg-basic-2"), Some(a.clone()));
            // Now b may have it.
            assert_eq!(actor::register("reg-basic", &b), Ok(()));
            assert_eq!(actor::whereis::<Probe>("reg-basic"), Some(b.clone()));
            let err = actor::register("reg-basic", &a).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!("the name is registered to actor {}", b.id())
            );
            for x in [a, b] {
                x.stop();
                x.join();
            }
        });
    });
}

#[test]
fn names_are_released_when_the_actor_stops() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let log = Log::new();
            // Each way to stop releases every name of the actor, before
            // join returns.
            for (i, how) in ["stop", "kill", "panic", "ctx.stop"]
                .into_iter()
                .enumerate()
            {
                let a = actor::spawn(Probe::new(&log));
                let (n1, n2) = (format!("reg-release-{i}-a"), format!("reg-release-{i}-b"));
                actor::register(n1.clone(), &a).unwrap();
                actor::register(n2.clone(), &a).unwrap();
                match how {
                    "stop" => a.stop(),
                    "kill" => a.kill(),
                    "panic" => actor_util::send(
                        &a,
                        actor_util::job(|_, _| panic!("{}registered and failed", support::QUIET)),
                    ),
                    _ => actor_util::send(&a, actor_util::job(|_, ctx| ctx.stop())),
                }
                a.join();
                assert_eq!(actor::whereis::<Probe>(&n1), None, "{how}");
                assert_eq!(actor::whereis::<Probe>(&n2), None, "{how}");
                // The name is free for another actor.
                let b = actor::spawn(Probe::new(&log));
                assert_eq!(actor::register(n1.clone(), &b), Ok(()));
                b.stop();
                b.join();
                assert_eq!(actor::whereis::<Probe>(&n1), None);
            }
        });
    });
}

#[test]
fn registering_a_stopped_actor_fails_and_leaves_no_name() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let log = Log::new();
            let a = actor::spawn(Probe::new(&log));
            a.stop();
            assert_eq!(a.join(), StopReason::Normal);
            assert_eq!(actor::register("reg-dead", &a), Err(RegisterError::Stopped));
            assert_eq!(actor::whereis::<Probe>("reg-dead"), None);
            assert_eq!(RegisterError::Stopped.to_string(), "the actor has stopped");
        });
    });
}

/// Unregistering a name and giving it to another actor: the first actor's
/// stop must not release the second one's registration.
#[test]
fn a_stop_releases_only_its_own_registration() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let log = Log::new();
            let a = actor::spawn(Probe::new(&log));
            let b = actor::spawn(Probe::new(&log));
            actor::register("reg-moved", &a).unwrap();
            assert!(actor::unregister("reg-moved"));
            actor::register("reg-moved", &b).unwrap();
            a.stop();
            a.join();
            assert_eq!(actor::whereis::<Probe>("reg-moved"), Some(b.clone()));
            b.stop();
            b.join();
            assert_eq!(actor::whereis::<Probe>("reg-moved"), None);
        });
    });
}

/// 8 threads race to register 100 names, each for its own actor: exactly
/// one wins each name, and `whereis` finds the winner.
#[test]
fn racing_registrations_have_one_winner() {
    support::bounded(|| {
        let rt = runtime(2);
        let log = Log::new();
        let actors: Vec<_> = (0..8)
            .map(|_| actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log)))
            .collect();
        let wins = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for a in &actors {
                let wins = wins.clone();
                s.spawn(move || {
                    for i in 0..100 {
                        match actor::register(format!("reg-race-{i}"), a) {
                            Ok(()) => {
                                wins.fetch_add(1, Ordering::SeqCst);
                            }
                            Err(RegisterError::Taken(_)) => {}
                            Err(e) => panic!("{e}"),
                        }
                    }
                });
            }
        });
        assert_eq!(wins.load(Ordering::SeqCst), 100);
        for i in 0..100 {
            let found = actor::whereis::<Probe>(&format!("reg-race-{i}")).expect("registered");
            assert!(actors.contains(&found));
        }
        for a in &actors {
            a.stop();
            a.join();
        }
        for i in 0..100 {
            assert_eq!(actor::whereis::<Probe>(&format!("reg-race-{i}")), None);
        }
    });
}

/// An actor stopping while another thread registers it: whichever wins,
/// no name outlives the actor.
#[test]
fn register_racing_a_stop_leaves_no_stale_name() {
    support::bounded(|| {
        let rt = runtime(2);
        let log = Log::new();
        let mut stopped_first = 0;
        for i in 0..1000 {
            let a = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
            let name = format!("reg-stop-race-{i}");
            let stopper = {
                let a = a.clone();
                std::thread::spawn(move || {
                    a.kill();
                    a.join()
                })
            };
            if actor::register(name.clone(), &a) == Err(RegisterError::Stopped) {
                stopped_first += 1;
            }
            stopper.join().unwrap();
            assert_eq!(actor::whereis::<Probe>(&name), None, "round {i}");
        }
        println!("register lost the race to the stop {stopped_first} times of 1000");
    });
}

/// Regression: `join` returned as soon as the stop reason was recorded,
/// before the stop had released the actor's names (and told its links
/// and monitors), so a name could still be found after `join`. Here the
/// actor has 5,000 links (2,000 in debug), which widen that window, and
/// a thread joins it right after it stops taking messages.
#[test]
fn join_returns_after_the_names_are_released() {
    support::bounded(|| {
        let rt = runtime(2);
        let mut found_after_join = 0;
        let rounds = support::scaled(10, 20);
        let links = support::scaled(2_000, 5_000);
        for round in 0..rounds {
            let log = Log::new();
            let hub = actor::Builder::new().spawn_on(rt.handle(), Probe::trapping(&log));
            let name = format!("reg-join-{round}");
            actor::register(name.clone(), &hub).unwrap();
            let spokes: Vec<_> = (0..links)
                .map(|_| actor::Builder::new().spawn_on(rt.handle(), Probe::trapping(&Log::new())))
                .collect();
            let linked = spokes.clone();
            hub.ask(move |r| {
                actor_util::job(move |_, ctx| {
                    for s in &linked {
                        ctx.link(s);
                    }
                    r.send(());
                })
            })
            .unwrap();
            hub.kill();
            while hub.is_alive() {
                std::hint::spin_loop();
            }
            hub.join();
            if actor::whereis::<Probe>(&name).is_some() {
                found_after_join += 1;
            }
            for s in spokes {
                s.stop();
                s.join();
            }
        }
        println!("a name was still registered after join in {found_after_join} of {rounds} rounds");
        assert_eq!(found_after_join, 0);
    });
}

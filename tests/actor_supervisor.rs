//! Supervisors: which children each strategy restarts (compared by
//! `Addr` before and after), restart policies, the restart intensity
//! (N restarts allowed, the next one within the window stops the
//! supervisor with `StopReason::Supervisor`, and its children), repeated
//! panics, nested supervisors, and children failing at the same time.
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use actor_util::{Log, Msg, Probe, job, runtime, send};
use support::QUIET;
use weft::actor::{
    self, Addr, ChildSpec, Restart, StopReason, Strategy, Supervisor, SupervisorRef,
};

/// Child names in the order their start functions ran.
#[derive(Clone, Default)]
struct Starts(Arc<Mutex<Vec<&'static str>>>);

impl Starts {
    fn take(&self) -> Vec<&'static str> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

/// A probe child named `name`, recording its starts and (in `logs`) the
/// log of each incarnation.
fn spec(
    name: &'static str,
    starts: &Starts,
    logs: &Arc<Mutex<Vec<(&'static str, Log)>>>,
) -> ChildSpec {
    let (starts, logs) = (starts.clone(), logs.clone());
    ChildSpec::new(name, move || {
        starts.0.lock().unwrap().push(name);
        let log = Log::new();
        logs.lock().unwrap().push((name, log.clone()));
        actor::spawn(Probe::new(&log))
    })
}

fn child(sup: &SupervisorRef, name: &str) -> Addr<Probe> {
    sup.child::<Probe>(name)
        .unwrap_or_else(|| panic!("child {name} is running"))
}

/// Waits until child `name` is a new incarnation (not `old`); fails at
/// once, with its reason, if the supervisor stops meanwhile.
fn restarted(sup: &SupervisorRef, name: &str, old: &Addr<Probe>) -> Addr<Probe> {
    let mut found = None;
    actor_util::wait_until("the restart", || {
        assert!(
            sup.addr().is_alive(),
            "the supervisor stopped ({:?}) instead of restarting {name}",
            sup.join()
        );
        found = sup
            .child::<Probe>(name)
            .filter(|c| c != old && c.is_alive());
        found.is_some()
    });
    found.unwrap()
}

fn panic_msg() -> Msg {
    job(|_, _| panic!("{QUIET}child failed"))
}

fn failed() -> StopReason {
    StopReason::Panicked(format!("{QUIET}child failed"))
}

/// Three children a, b, c; b panics. Which are new afterwards, which are
/// the same, in what order they were stopped and started, and why the old
/// incarnations stopped.
#[test]
fn each_strategy_restarts_the_right_children() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            for strategy in [
                Strategy::OneForOne,
                Strategy::OneForAll,
                Strategy::RestForOne,
            ] {
                let starts = Starts::default();
                let logs = Arc::new(Mutex::new(Vec::new()));
                let sup = Supervisor::new(strategy)
                    .intensity(10, Duration::from_secs(10))
                    .child(spec("a", &starts, &logs))
                    .child(spec("b", &starts, &logs))
                    .child(spec("c", &starts, &logs))
                    .spawn();
                assert_eq!(starts.take(), ["a", "b", "c"], "started in order");
                let before: Vec<Addr<Probe>> =
                    ["a", "b", "c"].iter().map(|n| child(&sup, n)).collect();
                send(&before[1], panic_msg());
                assert_eq!(before[1].join(), failed());
                let b = restarted(&sup, "b", &before[1]);
                // Let the whole restart finish (c is the last to start).
                let c = match strategy {
                    Strategy::OneForOne => child(&sup, "c"),
                    _ => restarted(&sup, "c", &before[2]),
                };
                let a = child(&sup, "a");
                let after = [a, b, c];
                let same: Vec<bool> = before.iter().zip(&after).map(|(x, y)| x == y).collect();
                let restarted_order = starts.take();
                println!(
                    "{strategy:?}: kept {same:?} (a, b, c); started again: {restarted_order:?}"
                );
                match strategy {
                    Strategy::OneForOne => {
                        assert_eq!(same, [true, false, true]);
                        assert_eq!(restarted_order, ["b"]);
                    }
                    Strategy::OneForAll => {
                        assert_eq!(same, [false, false, false]);
                        assert_eq!(restarted_order, ["a", "b", "c"]);
                    }
                    Strategy::RestForOne => {
                        assert_eq!(same, [true, false, false]);
                        assert_eq!(restarted_order, ["b", "c"]);
                    }
                }
                // The old incarnations the supervisor stopped are dead, and
                // their hooks saw why.
                for (old, new) in before.iter().zip(&after) {
                    if old != new {
                        assert!(!old.is_alive());
                    }
                    assert!(new.is_alive());
                }
                for (i, old) in before.iter().enumerate() {
                    if i != 1 && old != &after[i] {
                        let reason = old.join();
                        assert_eq!(
                            reason,
                            StopReason::Supervisor,
                            "a child stopped by its supervisor stops with Supervisor"
                        );
                    }
                }
                sup.stop();
                assert_eq!(sup.join(), StopReason::Normal);
                for c in &after {
                    assert!(!c.is_alive(), "a stopped supervisor stops its children");
                }
            }
        });
    });
}

/// Permanent children restart after any stop, transient ones only after
/// an abnormal one, temporary ones never.
#[test]
fn restart_policies() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let starts = Starts::default();
            let logs = Arc::new(Mutex::new(Vec::new()));
            let sup = Supervisor::new(Strategy::OneForOne)
                .intensity(10, Duration::from_secs(10))
                .child(spec("perm", &starts, &logs))
                .child(spec("trans", &starts, &logs).restart(Restart::Transient))
                .child(spec("temp", &starts, &logs).restart(Restart::Temporary))
                .spawn();
            starts.take();
            // Normal stops: only the permanent child comes back.
            let perm = child(&sup, "perm");
            let trans = child(&sup, "trans");
            let temp = child(&sup, "temp");
            perm.stop();
            trans.stop();
            temp.stop();
            let perm2 = restarted(&sup, "perm", &perm);
            actor_util::wait_until("trans and temp gone", || {
                sup.child::<Probe>("trans").is_none() && sup.child::<Probe>("temp").is_none()
            });
            assert_eq!(starts.take(), ["perm"]);
            assert!(perm2.is_alive());
            // An abnormal stop of the permanent child restarts it again.
            send(&perm2, panic_msg());
            let perm3 = restarted(&sup, "perm", &perm2);
            assert_eq!(starts.take(), ["perm"]);
            sup.stop();
            sup.join();
            assert!(!perm3.is_alive());

            // A transient child that panics is restarted; a temporary one is not.
            let sup = Supervisor::new(Strategy::OneForOne)
                .child(spec("trans", &starts, &logs).restart(Restart::Transient))
                .child(spec("temp", &starts, &logs).restart(Restart::Temporary))
                .spawn();
            starts.take();
            let trans = child(&sup, "trans");
            let temp = child(&sup, "temp");
            send(&temp, panic_msg());
            temp.join();
            send(&trans, panic_msg());
            restarted(&sup, "trans", &trans);
            actor_util::wait_until("temp gone", || sup.child::<Probe>("temp").is_none());
            assert_eq!(starts.take(), ["trans"]);
            sup.stop();
            sup.join();
        });
    });
}

/// `intensity(3, 10 s)`: three restarts are allowed; the fourth failure
/// within the window stops the supervisor with `Supervisor`, and every
/// child with it.
#[test]
fn the_restart_intensity_stops_the_supervisor() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            const MAX: usize = 3;
            let starts = Starts::default();
            let logs = Arc::new(Mutex::new(Vec::new()));
            let sup = Supervisor::new(Strategy::OneForOne)
                .intensity(MAX, Duration::from_secs(10))
                .child(spec("flaky", &starts, &logs))
                .child(spec("steady", &starts, &logs))
                .spawn();
            let steady = child(&sup, "steady");
            let mut flaky = child(&sup, "flaky");
            for restart in 1..=MAX {
                send(&flaky, panic_msg());
                flaky = restarted(&sup, "flaky", &flaky);
                assert!(
                    sup.addr().is_alive(),
                    "restart {restart} of {MAX} is allowed"
                );
            }
            assert_eq!(
                starts.take(),
                ["flaky", "steady", "flaky", "flaky", "flaky"]
            );
            send(&flaky, panic_msg());
            let reason = sup.join();
            println!(
                "after {} failures within the window the supervisor stopped: {reason:?}",
                MAX + 1
            );
            assert_eq!(reason, StopReason::Supervisor);
            assert_eq!(flaky.join(), failed());
            assert_eq!(steady.join(), StopReason::Supervisor);
            assert!(starts.take().is_empty(), "no restart past the limit");
            assert!(sup.child::<Probe>("flaky").is_none());
            assert!(sup.child::<Probe>("steady").is_none());
        });
    });
}

/// A child stuck in a handler does not hang the supervisor that stops it:
/// after the child's shutdown timeout the supervisor goes on (it stops);
/// the child, killed, stops by itself once its handler returns, without
/// handling the message queued behind it.
#[test]
fn a_stuck_child_does_not_hang_its_supervisor() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let starts = Starts::default();
            let logs = Arc::new(Mutex::new(Vec::new()));
            let sup = Supervisor::new(Strategy::OneForOne)
                .child(spec("stuck", &starts, &logs).shutdown(Duration::from_millis(50)))
                .child(spec("prompt", &starts, &logs))
                .spawn();
            let stuck = child(&sup, "stuck");
            let prompt = child(&sup, "prompt");
            let mut gate = actor_util::Gate::new();
            send(&stuck, gate.msg());
            gate.wait_entered();
            send(&stuck, Msg::Num(1));
            sup.stop();
            assert_eq!(sup.join(), StopReason::Normal);
            assert_eq!(prompt.join(), StopReason::Supervisor);
            assert!(stuck.is_alive(), "still in its handler");
            gate.open();
            assert_eq!(stuck.join(), StopReason::Supervisor);
            let (_, log) = logs.lock().unwrap().remove(0);
            assert!(log.nums().is_empty(), "a killed child handles nothing more");
        });
    });
}

/// Restarts that fall out of the window do not count: with
/// `intensity(1, 50 ms)`, failures 200 ms apart are restarted forever.
#[test]
fn restarts_outside_the_window_do_not_count() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let starts = Starts::default();
            let logs = Arc::new(Mutex::new(Vec::new()));
            let sup = Supervisor::new(Strategy::OneForOne)
                .intensity(1, Duration::from_millis(50))
                .child(spec("slow-flaky", &starts, &logs))
                .spawn();
            let mut c = child(&sup, "slow-flaky");
            for _ in 0..5 {
                weft::sleep(Duration::from_millis(200));
                send(&c, panic_msg());
                c = restarted(&sup, "slow-flaky", &c);
            }
            assert_eq!(starts.take().len(), 6);
            assert!(sup.addr().is_alive());
            sup.stop();
            assert_eq!(sup.join(), StopReason::Normal);
        });
    });
}

/// Repeated panics: 500 failures under `intensity(500, 60 s)` give exactly
/// 500 restarts; the 501st failure stops the supervisor.
#[test]
fn repeated_panics_are_restarted_up_to_the_limit() {
    support::quiet_panics();
    support::bounded(|| {
        let n = support::scaled(200, 500);
        let rt = runtime(2);
        rt.block_on(move || {
            let starts = Starts::default();
            let logs = Arc::new(Mutex::new(Vec::new()));
            let sup = Supervisor::new(Strategy::OneForOne)
                .intensity(n, Duration::from_secs(60))
                .child(spec("phoenix", &starts, &logs))
                .spawn();
            let mut c = child(&sup, "phoenix");
            for _ in 0..n {
                send(&c, panic_msg());
                c = restarted(&sup, "phoenix", &c);
            }
            assert_eq!(starts.take().len(), n + 1);
            send(&c, panic_msg());
            assert_eq!(sup.join(), StopReason::Supervisor);
            println!("{n} restarts allowed, the next failure stopped the supervisor");
            let all = logs.lock().unwrap();
            assert_eq!(all.len(), n + 1);
            for (_, log) in all.iter() {
                assert_eq!(
                    log.stops(),
                    [failed()],
                    "each incarnation stopped once, by its panic"
                );
            }
        });
    });
}

/// A supervisor as the child of another: when the inner one gives up, the
/// outer one sees an abnormal stop (`Supervisor`) and restarts it, with
/// fresh children.
#[test]
fn a_supervisor_that_gives_up_is_restarted_by_its_parent() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let starts = Starts::default();
            let logs = Arc::new(Mutex::new(Vec::new()));
            let inner_refs: Arc<Mutex<Vec<SupervisorRef>>> = Arc::default();
            let inner_spec = {
                let (starts, logs, inner_refs) = (starts.clone(), logs.clone(), inner_refs.clone());
                ChildSpec::new("inner", move || {
                    let inner = Supervisor::new(Strategy::OneForOne)
                        .intensity(0, Duration::from_secs(10))
                        .child(spec("leaf", &starts, &logs))
                        .spawn();
                    let addr = inner.addr().clone();
                    inner_refs.lock().unwrap().push(inner);
                    addr
                })
            };
            let outer = Supervisor::new(Strategy::OneForOne)
                .intensity(5, Duration::from_secs(10))
                .child(inner_spec)
                .spawn();
            let first_inner = inner_refs.lock().unwrap()[0].clone();
            let leaf = child(&first_inner, "leaf");
            send(&leaf, panic_msg());
            assert_eq!(first_inner.join(), StopReason::Supervisor);
            actor_util::wait_until("a second inner supervisor", || {
                inner_refs.lock().unwrap().len() == 2
            });
            let second_inner = inner_refs.lock().unwrap()[1].clone();
            let leaf2 = child(&second_inner, "leaf");
            assert_ne!(leaf, leaf2);
            assert!(leaf2.is_alive());
            assert_eq!(starts.take(), ["leaf", "leaf"]);
            outer.stop();
            assert_eq!(outer.join(), StopReason::Normal);
            assert!(!second_inner.addr().is_alive());
            assert!(!leaf2.is_alive());
        });
    });
}

/// Two children of a one-for-all supervisor fail together: the first
/// failure restarts both; the second one's exit, already on its way, is
/// from a child the supervisor has since unlinked and replaced, and must
/// be ignored, not taken for the exit of some other linked actor (its
/// parent), which would stop the supervisor.
///
/// On one worker the order is fixed: both children wait in a handler;
/// the test releases both and joins; both panic, and only then does the
/// supervisor run, with both exits queued.
#[test]
fn children_failing_together_do_not_stop_a_one_for_all_supervisor() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(1);
        rt.block_on(|| {
            for round in 0..20 {
                let starts = Starts::default();
                let logs = Arc::new(Mutex::new(Vec::new()));
                let sup = Supervisor::new(Strategy::OneForAll)
                    .intensity(100, Duration::from_secs(10))
                    .child(spec("x", &starts, &logs))
                    .child(spec("y", &starts, &logs))
                    .spawn();
                let x = child(&sup, "x");
                let y = child(&sup, "y");
                let (go_tx, go_rx) = weft::chan::unbounded::<()>();
                for c in [&x, &y] {
                    let go = go_rx.clone();
                    send(
                        c,
                        job(move |_, _| {
                            let _ = go.recv();
                            panic!("{QUIET}child failed");
                        }),
                    );
                }
                // Both are inside the handler once this answers... on one
                // worker, after the test fiber parks; so just release them.
                weft::sleep(Duration::from_millis(2));
                go_tx.send(()).unwrap();
                go_tx.send(()).unwrap();
                x.join();
                y.join();
                let x2 = restarted(&sup, "x", &x);
                let y2 = restarted(&sup, "y", &y);
                // Let the supervisor handle whatever it still has queued.
                weft::sleep(Duration::from_millis(5));
                assert!(
                    sup.addr().is_alive(),
                    "round {round}: the supervisor stopped ({:?})",
                    sup.join()
                );
                assert_eq!(sup.child::<Probe>("x").as_ref(), Some(&x2));
                assert_eq!(sup.child::<Probe>("y").as_ref(), Some(&y2));
                assert!(x2.is_alive() && y2.is_alive());
                sup.stop();
                assert_eq!(sup.join(), StopReason::Normal);
            }
        });
    });
}

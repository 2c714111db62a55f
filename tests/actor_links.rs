//! Links and monitors: an abnormal stop travels both ways along a link
//! (or arrives as `linked_exit` when the other side traps exits), a
//! normal one does not, and `unlink` undoes a link, even for an exit
//! already queued; a monitor delivers one `Down` notice with the reason,
//! one way only. Each also against an actor that has already stopped,
//! and with a thousand watchers and links on one actor. The panics that
//! start most of these stops are tested in `actor_failure.rs`.
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use std::time::Duration;

use actor_util::{Event, Log, Probe, job, panic_msg, panicked, runtime, send};
use weft::actor::{self, ActorId, Addr, StopReason};

// ---------------------------------------------------------------------------
// links
// ---------------------------------------------------------------------------

/// Spawns a probe recording into a fresh log.
fn probe() -> (Log, Addr<Probe>) {
    let log = Log::new();
    let addr = actor::spawn(Probe::new(&log));
    (log, addr)
}

fn trapping_probe() -> (Log, Addr<Probe>) {
    let log = Log::new();
    let addr = actor::spawn(Probe::trapping(&log));
    (log, addr)
}

/// Makes `from` link itself to `to`, and waits until it has.
fn link(from: &Addr<Probe>, to: &Addr<Probe>) {
    let to = to.clone();
    from.ask(move |r| {
        job(move |_, ctx| {
            ctx.link(&to);
            r.send(());
        })
    })
    .expect("the linking actor is alive");
}

fn monitor(watcher: &Addr<Probe>, watched: &Addr<Probe>) {
    let watched = watched.clone();
    watcher
        .ask(move |r| {
            job(move |_, ctx| {
                ctx.monitor(&watched);
                r.send(());
            })
        })
        .expect("the watcher is alive");
}

/// An abnormal stop travels both ways along a link: whichever side
/// panics, the other stops with `Linked(<its id>)`.
#[test]
fn an_abnormal_stop_stops_the_linked_actor_both_ways() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            for panicking_side in ["linker", "linked"] {
                let (log_a, a) = probe();
                let (log_b, b) = probe();
                link(&a, &b);
                let (dies, dies_log, other, other_log) = if panicking_side == "linker" {
                    (&a, &log_a, &b, &log_b)
                } else {
                    (&b, &log_b, &a, &log_a)
                };
                send(dies, panic_msg("boom"));
                assert_eq!(dies.join(), panicked("boom"));
                assert_eq!(other.join(), StopReason::Linked(dies.id()));
                assert_eq!(dies_log.stops(), [panicked("boom")]);
                assert_eq!(other_log.stops(), [StopReason::Linked(dies.id())]);
                println!(
                    "{panicking_side} panicked: the other stopped with {}",
                    other.join()
                );
            }
        });
    });
}

#[test]
fn kill_and_linked_stops_propagate_along_a_chain() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let (_, a) = probe();
            let (_, b) = probe();
            let (_, c) = probe();
            link(&a, &b);
            link(&b, &c);
            c.kill();
            assert_eq!(c.join(), StopReason::Killed);
            assert_eq!(b.join(), StopReason::Linked(c.id()));
            assert_eq!(a.join(), StopReason::Linked(b.id()));
        });
    });
}

#[test]
fn a_normal_stop_does_not_stop_the_linked_actor() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let (log_a, a) = probe();
            let (_, b) = probe();
            link(&a, &b);
            send(&b, job(|_, ctx| ctx.stop()));
            assert_eq!(b.join(), StopReason::Normal);
            // a handles a message sent after b's exit reached it.
            assert_eq!(a.ask(|r| job(move |_, _| r.send(7))), Ok(7));
            assert!(a.is_alive());
            assert!(log_a.stops().is_empty());
            // And the other way: a stops normally, a fresh link partner stays.
            let (_, c) = probe();
            link(&a, &c);
            a.stop();
            assert_eq!(a.join(), StopReason::Normal);
            assert_eq!(c.ask(|r| job(move |_, _| r.send(8))), Ok(8));
            c.stop();
            c.join();
        });
    });
}

/// A trapping actor gets `linked_exit` with the reason (for normal stops
/// too, as Erlang's trapping processes do) and goes on.
#[test]
fn trap_exit_turns_the_exit_into_a_linked_exit_call() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let (log_a, a) = trapping_probe();
            let (_, b) = probe();
            let (_, c) = probe();
            link(&a, &b);
            link(&a, &c);
            send(&b, panic_msg("trapped"));
            assert_eq!(b.join(), panicked("trapped"));
            c.stop();
            assert_eq!(c.join(), StopReason::Normal);
            log_a.wait_for("two linked exits", |e| {
                e.iter()
                    .filter(|e| matches!(e, Event::LinkedExit(..)))
                    .count()
                    == 2
            });
            let exits: Vec<Event> = log_a
                .events()
                .into_iter()
                .filter(|e| matches!(e, Event::LinkedExit(..)))
                .collect();
            assert!(exits.contains(&Event::LinkedExit(b.id(), panicked("trapped"))));
            assert!(exits.contains(&Event::LinkedExit(c.id(), StopReason::Normal)));
            assert!(a.is_alive());
            assert!(log_a.stops().is_empty());
            // Trapping can be turned off again: then an abnormal exit stops it.
            send(&a, job(|_, ctx| ctx.set_trap_exit(false)));
            let (_, d) = probe();
            link(&a, &d);
            d.kill();
            assert_eq!(a.join(), StopReason::Linked(d.id()));
        });
    });
}

/// Linking to an actor that has already stopped delivers its exit at once:
/// an abnormal one stops the linker (or reaches `linked_exit` when it
/// traps); a normal one does nothing.
#[test]
fn linking_to_a_stopped_actor_delivers_its_exit_at_once() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let (_, dead) = probe();
            send(&dead, panic_msg("long gone"));
            dead.join();

            let (_, a) = probe();
            let dead2 = dead.clone();
            send(&a, job(move |_, ctx| ctx.link(&dead2)));
            assert_eq!(a.join(), StopReason::Linked(dead.id()));

            let (log_t, t) = trapping_probe();
            link(&t, &dead);
            log_t.wait_for("the linked exit", |e| {
                e.contains(&Event::LinkedExit(dead.id(), panicked("long gone")))
            });
            assert!(t.is_alive());

            let (_, normal) = probe();
            normal.stop();
            normal.join();
            let (log_b, b) = probe();
            link(&b, &normal);
            assert_eq!(b.ask(|r| job(move |_, _| r.send(1))), Ok(1));
            assert!(b.is_alive(), "a normal exit does not stop the linker");
            assert!(log_b.stops().is_empty());
            for x in [t, b] {
                x.stop();
                x.join();
            }
        });
    });
}

#[test]
fn unlink_undoes_the_link_both_ways() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let (_, a) = probe();
            let (_, b) = probe();
            link(&a, &b);
            let b2 = b.clone();
            a.ask(move |r| {
                job(move |_, ctx| {
                    ctx.unlink(&b2);
                    r.send(());
                })
            })
            .unwrap();
            send(&b, panic_msg("alone"));
            b.join();
            assert_eq!(a.ask(|r| job(move |_, _| r.send(2))), Ok(2));
            // And from the other side.
            let (_, c) = probe();
            link(&a, &c);
            let a2 = a.clone();
            c.ask(move |r| {
                job(move |_, ctx| {
                    ctx.unlink(&a2);
                    r.send(());
                })
            })
            .unwrap();
            send(&c, panic_msg("alone too"));
            c.join();
            assert_eq!(a.ask(|r| job(move |_, _| r.send(3))), Ok(3));
            a.stop();
            assert_eq!(a.join(), StopReason::Normal);
        });
    });
}

/// Regression: an exit signal already queued when the receiver unlinks
/// must have no effect (Erlang's unlink guarantee). Here a waits, in a
/// handler, until b has died, then unlinks b; b's exit sits in a's
/// mailbox behind that handler. It used to stop a with `Linked`.
#[test]
fn an_exit_already_queued_is_ignored_after_unlink() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            for trap in [false, true] {
                let log_a = Log::new();
                let a = actor::spawn(if trap {
                    Probe::trapping(&log_a)
                } else {
                    Probe::new(&log_a)
                });
                let (_, b) = probe();
                link(&a, &b);
                let b2 = b.clone();
                send(
                    &a,
                    job(move |_, ctx| {
                        send(&b2, panic_msg("gone before the unlink"));
                        b2.join();
                        ctx.unlink(&b2);
                    }),
                );
                assert_eq!(b.join(), panicked("gone before the unlink"));
                assert_eq!(a.ask(|r| job(move |_, _| r.send(1))), Ok(1));
                assert!(a.is_alive(), "trap {trap}: the queued exit stopped a");
                assert!(
                    log_a
                        .events()
                        .iter()
                        .all(|e| !matches!(e, Event::LinkedExit(..))),
                    "trap {trap}: the queued exit reached linked_exit"
                );
                a.stop();
                assert_eq!(a.join(), StopReason::Normal);
            }
        });
    });
}

// ---------------------------------------------------------------------------
// monitors
// ---------------------------------------------------------------------------

fn downs(log: &Log) -> Vec<(ActorId, StopReason)> {
    log.events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Down(id, reason) => Some((id, reason)),
            _ => None,
        })
        .collect()
}

/// A watcher gets one `Down` with the reason for each way to stop, and
/// never stops because of it.
#[test]
fn monitors_get_down_with_the_reason() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let (log_w, w) = probe();
            let (_, normal) = probe();
            let (_, panics) = probe();
            let (_, killed) = probe();
            let (_, stops_itself) = probe();
            for x in [&normal, &panics, &killed, &stops_itself] {
                monitor(&w, x);
            }
            normal.stop();
            send(&panics, panic_msg("down"));
            killed.kill();
            send(&stops_itself, job(|_, ctx| ctx.stop()));
            log_w.wait_for("four downs", |e| {
                e.iter().filter(|e| matches!(e, Event::Down(..))).count() == 4
            });
            let mut got = downs(&log_w);
            got.sort_by_key(|(id, _)| *id);
            let mut want = vec![
                (normal.id(), StopReason::Normal),
                (panics.id(), panicked("down")),
                (killed.id(), StopReason::Killed),
                (stops_itself.id(), StopReason::Normal),
            ];
            want.sort_by_key(|(id, _)| *id);
            assert_eq!(got, want);
            assert!(w.is_alive());
            assert!(log_w.stops().is_empty());
            w.stop();
            w.join();
        });
    });
}

#[test]
fn monitoring_a_stopped_actor_delivers_down_at_once() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let (_, dead) = probe();
            send(&dead, panic_msg("before the monitor"));
            dead.join();
            let (log_w, w) = probe();
            monitor(&w, &dead);
            log_w.wait_for("the down", |e| {
                !e.is_empty() && e.iter().any(|e| matches!(e, Event::Down(..)))
            });
            assert_eq!(downs(&log_w), [(dead.id(), panicked("before the monitor"))]);
            w.stop();
            w.join();
        });
    });
}

/// A monitor is one way: the watcher's own stop does not touch the watched
/// actor, and the watched one is not told.
#[test]
fn a_monitor_is_one_way() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let (_, w) = probe();
            let (log_x, x) = probe();
            monitor(&w, &x);
            send(&w, panic_msg("watcher fails"));
            w.join();
            assert_eq!(x.ask(|r| job(move |_, _| r.send(5))), Ok(5));
            assert!(
                log_x
                    .events()
                    .iter()
                    .all(|e| !matches!(e, Event::Down(..) | Event::LinkedExit(..)))
            );
            x.stop();
            assert_eq!(x.join(), StopReason::Normal);
        });
    });
}

/// Many watchers and linked actors at once, on 2 workers: each of 1,000
/// watchers sees exactly one `Down` from the one actor that panics, and
/// each of 1,000 linked actors stops with `Linked`.
#[test]
fn a_thousand_watchers_and_a_thousand_links() {
    support::quiet_panics();
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let (_, target) = trapping_probe();
            let watchers: Vec<_> = (0..1000).map(|_| probe()).collect();
            let linked: Vec<_> = (0..1000).map(|_| probe()).collect();
            for (_, w) in &watchers {
                monitor(w, &target);
            }
            for (_, l) in &linked {
                link(l, &target);
            }
            // The target traps, so it hears nothing it must stop for; now it panics.
            send(&target, panic_msg("hub down"));
            assert_eq!(target.join(), panicked("hub down"));
            for (_, l) in &linked {
                assert_eq!(l.join(), StopReason::Linked(target.id()));
            }
            for (log, w) in &watchers {
                log.wait_for("the down", |e| {
                    e.iter().any(|e| matches!(e, Event::Down(..)))
                });
                assert_eq!(downs(log), [(target.id(), panicked("hub down"))]);
                w.stop();
                w.join();
            }
        });
        std::thread::sleep(Duration::from_millis(1));
    });
}

//! Dropping the runtime when a shutdown reaches past one actor (the
//! module doc of `weft::actor`, "Runtime shutdown"): `stopped` hooks
//! that send to, ask and stop other actors while the drop runs; a
//! supervisor whose stop waits for a child blocked in a handler; and an
//! `Addr` that outlives its runtime, which must not keep the runtime's
//! stacks. How the drop treats each actor by its state is tested in
//! `actor_shutdown.rs`.
//!
//! Every test runs under the hang guard (`support::bounded`), or in a
//! child process with the same time limit.

mod actor_util;
mod support;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use actor_util::{Event, Log, Msg, Probe, job, runtime};
use weft::actor::{self, Actor, Addr, Context, StopReason};

/// A `stopped` hook that runs during the shutdown and sends to, asks and
/// stops other actors (idle ones, so each is stopped on the spot, and
/// blocked ones): no deadlock, no panic, every hook once.
#[test]
fn hooks_that_message_other_actors_during_the_shutdown() {
    support::bounded(|| {
        struct Chatty {
            log: Log,
            peers: Vec<Addr<Probe>>,
        }
        impl Actor for Chatty {
            type Msg = weft::chan::Receiver<()>;
            fn handle(&mut self, rx: weft::chan::Receiver<()>, _: &mut Context<Self>) {
                let _ = rx.recv();
            }
            fn stopped(&mut self, reason: &StopReason, _: &mut Context<Self>) {
                self.log.push(Event::Stopped(reason.clone()));
                for p in &self.peers {
                    let _ = p.send(Msg::Num(1));
                    let _ = p.ask(|r| job(move |_, _| r.send(())));
                    p.stop();
                }
            }
        }
        for round in 0..20 {
            let rt = runtime(2);
            let (tx, rx) = weft::chan::unbounded::<()>();
            let peer_logs: Vec<Log> = (0..10).map(|_| Log::new()).collect();
            let chatty_logs: Vec<Log> = (0..10).map(|_| Log::new()).collect();
            let chatty: Vec<Addr<Chatty>> = {
                let peer_logs = peer_logs.clone();
                let chatty_logs = chatty_logs.clone();
                rt.block_on(move || {
                    let peers: Vec<Addr<Probe>> = peer_logs
                        .iter()
                        .map(|l| actor::spawn(Probe::new(l)))
                        .collect();
                    chatty_logs
                        .iter()
                        .map(|log| {
                            let c = actor::spawn(Chatty {
                                log: log.clone(),
                                peers: peers.clone(),
                            });
                            c.send(rx.clone()).ok().unwrap();
                            c
                        })
                        .collect()
                })
            };
            std::thread::sleep(Duration::from_millis(2));
            drop(rt);
            for (log, c) in chatty_logs.iter().zip(&chatty) {
                assert_eq!(log.stops().len(), 1, "round {round}");
                assert_eq!(c.join(), log.stops()[0]);
            }
            for log in &peer_logs {
                assert_eq!(log.stops(), [StopReason::Shutdown], "round {round}");
            }
            drop(tx);
        }
    });
}

/// A supervisor whose stop is waiting (in its `stopped` hook) for a child
/// blocked in a handler when the runtime is dropped: the drop does not
/// hang, the child stops with `Shutdown`, the supervisor's stop completes
/// (its join returns, its registered name is released).
#[test]
fn a_supervisor_stopping_its_blocked_child_at_the_drop() {
    support::bounded(|| {
        use weft::actor::{ChildSpec, Strategy, Supervisor};
        let rt = runtime(2);
        let child_log = Log::new();
        let (entered_tx, entered_rx) = mpsc::channel();
        let (sup, child, _tx) = {
            let child_log = child_log.clone();
            rt.block_on(move || {
                let sup = Supervisor::new(Strategy::OneForOne)
                    .child(ChildSpec::new("stuck", move || {
                        actor::spawn(Probe::new(&child_log))
                    }))
                    .spawn();
                actor::register("shutdown-sup", sup.addr()).unwrap();
                let child = sup.child::<Probe>("stuck").unwrap();
                let (tx, rx) = weft::chan::unbounded::<()>();
                actor_util::send(
                    &child,
                    job(move |_, _| {
                        let _ = entered_tx.send(());
                        let _ = rx.recv();
                    }),
                );
                (sup, child, tx)
            })
        };
        entered_rx.recv().unwrap();
        // The supervisor's stop waits in its hook for the stuck child.
        sup.stop();
        std::thread::sleep(Duration::from_millis(20));
        assert!(child.is_alive(), "the child is stuck in its handler");
        let start = Instant::now();
        drop(rt);
        println!(
            "dropped with a supervisor waiting for a stuck child in {:?}",
            start.elapsed()
        );
        assert_eq!(child.join(), StopReason::Shutdown);
        assert_eq!(child_log.stops(), [StopReason::Shutdown]);
        let reason = sup.join();
        println!("the supervisor stopped with {reason:?}");
        assert_eq!(reason, StopReason::Normal, "its stop was already under way");
        assert!(actor::whereis::<weft::actor::SupervisorActor>("shutdown-sup").is_none());
    });
}

/// Parks a fiber of `rt` that holds `guard` (whose drop is under test)
/// until the runtime's drop unwinds it, then drops the runtime.
fn drop_with_a_parked_fiber_holding<G: Send + 'static>(rt: weft::Runtime, guard: G) {
    let (parked_tx, parked_rx) = mpsc::channel();
    rt.block_on(move || {
        let (tx, rx) = weft::chan::bounded::<()>(1);
        weft::spawn(move || {
            let _guard = guard;
            let _sender_kept = tx;
            let _ = parked_tx.send(());
            // Parks until the shutdown unwinds it: nothing is sent, and
            // the channel stays open.
            let _ = rx.recv();
        });
    });
    parked_rx.recv().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    drop(rt);
}

/// A fiber unwound by the shutdown whose destructor joins an idle actor
/// of the same runtime (which the shutdown does not visit, so it never
/// stops): the join cannot wait (the fiber's parks return at once) and
/// gives up with `StopReason::Shutdown`, instead of spinning (and adding
/// itself as a joiner on each turn) until the drop hangs.
#[test]
fn a_cancelled_fiber_joining_an_idle_actor_does_not_hang_the_drop() {
    support::bounded(|| {
        struct Idle;
        impl Actor for Idle {
            type Msg = ();
            fn handle(&mut self, (): (), _: &mut Context<Self>) {}
        }
        struct JoinOnDrop(Addr<Idle>, mpsc::Sender<StopReason>);
        impl Drop for JoinOnDrop {
            fn drop(&mut self) {
                let _ = self.1.send(self.0.join());
            }
        }
        let rt = runtime(2);
        let (joined_tx, joined_rx) = mpsc::channel();
        let idle = rt.block_on(|| actor::spawn(Idle));
        drop_with_a_parked_fiber_holding(rt, JoinOnDrop(idle.clone(), joined_tx));
        assert_eq!(joined_rx.recv().unwrap(), StopReason::Shutdown);
        assert!(
            idle.is_alive(),
            "an idle actor is not visited by the shutdown"
        );
    });
}

/// A fiber unwound by the shutdown whose destructor sends to a full
/// bounded mailbox (of an actor stuck in a handler on another runtime, so
/// no room comes): the send cannot wait and returns the message, instead
/// of spinning (and queueing itself as a waiting sender on each turn).
#[test]
fn a_cancelled_fiber_sending_to_a_full_mailbox_gets_its_message_back() {
    support::bounded(|| {
        struct Stuck;
        impl Actor for Stuck {
            type Msg = Option<weft::chan::Receiver<()>>;
            fn handle(&mut self, rx: Self::Msg, _: &mut Context<Self>) {
                if let Some(rx) = rx {
                    let _ = rx.recv();
                }
            }
        }
        struct SendOnDrop(Addr<Stuck>, mpsc::Sender<bool>);
        impl Drop for SendOnDrop {
            fn drop(&mut self) {
                let _ = self.1.send(self.0.send(None).is_err());
            }
        }
        let other = runtime(1);
        let (release, stuck_rx) = weft::chan::bounded::<()>(1);
        let stuck = actor::Builder::new()
            .mailbox_capacity(1)
            .spawn_on(other.handle(), Stuck);
        stuck.send(Some(stuck_rx)).unwrap();
        support::wait_until(
            Duration::from_secs(10),
            "the handler took the message",
            || stuck.try_send(None).is_ok(),
        );
        // Now the handler is stuck and the mailbox holds one message: full.
        let (refused_tx, refused_rx) = mpsc::channel();
        drop_with_a_parked_fiber_holding(runtime(2), SendOnDrop(stuck.clone(), refused_tx));
        assert!(refused_rx.recv().unwrap(), "the send gave the message back");
        release.send(()).unwrap();
        stuck.stop();
        stuck.join();
        drop(other);
    });
}

/// An `Addr` that outlives its runtime (kept by the program, or by the
/// process-wide name registry, which keeps the `Addr` of every registered
/// actor that never stops) must not keep the runtime's stacks: after the
/// drop, 4,000 stacks' worth of RSS must be gone whether or not an `Addr`
/// is still held. Runs in a child process (RSS).
///
/// A regression test: each actor holds its runtime's shared state (to
/// queue itself when a message arrives), and the runtime's drop used to
/// leave its stack pool (with every stack it had cached) to that shared
/// state's destructor, which waits for the last `Addr`. The drop now
/// trims the pools itself (`Shared::trim_pools`).
#[test]
fn an_addr_that_outlives_the_runtime_does_not_keep_its_stacks() {
    if !support::is_child() {
        support::run_child_test(
            "an_addr_that_outlives_the_runtime_does_not_keep_its_stacks",
            &[],
        );
        return;
    }
    fn rss_kib() -> i64 {
        (support::rss_bytes() / 1024) as i64
    }
    struct Idle;
    impl Actor for Idle {
        type Msg = ();
        fn handle(&mut self, (): (), _: &mut Context<Self>) {}
    }
    let baseline = rss_kib();
    let (addr, busy) = {
        let rt = runtime(2);
        let addr = actor::Builder::new().spawn_on(rt.handle(), Idle);
        actor::register("outlives-its-runtime", &addr).unwrap();
        // 4,000 fibers parked at once: 4,000 stacks touched, then pooled.
        rt.block_on(|| {
            let parked: Vec<_> = (0..4_000)
                .map(|_| weft::spawn(|| weft::sleep(Duration::from_millis(50))))
                .collect();
            for p in parked {
                p.join().unwrap();
            }
        });
        assert!(addr.send(()).is_ok());
        std::thread::sleep(Duration::from_millis(20));
        (addr, rss_kib())
    };
    let kept = rss_kib();
    actor::unregister("outlives-its-runtime");
    drop(addr);
    let gone = rss_kib();
    println!(
        "RSS: baseline {baseline} KiB, runtime busy {busy} KiB, after the drop with an Addr \
         kept {kept} KiB, after the Addr went {gone} KiB"
    );
    assert!(
        kept - gone < 1024,
        "an Addr kept after the runtime's drop holds {} KiB of the runtime's memory",
        kept - gone
    );
}

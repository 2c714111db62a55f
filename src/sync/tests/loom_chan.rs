//! The channel's send/recv/close handshake, driven through the public API
//! (the real `Chan` code on loom's primitives; loom threads park where
//! fibers would). Every model counts drops: each value is dropped exactly
//! once, whoever ends up with it.

use std::time::Duration;

use ::loom::sync::Arc;
use ::loom::sync::atomic::{AtomicUsize, Ordering};
use ::loom::thread;

use crate::chan::{RecvError, RecvTimeoutError, bounded};
use crate::loom::mutation;

/// A value that counts its drops.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn drops() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

/// A rendezvous: the send and the receive meet in either order; the
/// receiver waiting first is handed the value through its packet.
fn rendezvous_model() {
    ::loom::model(|| {
        let dropped = drops();
        let (tx, rx) = bounded(0);
        let sender = {
            let dropped = dropped.clone();
            thread::spawn(move || tx.send(Counted(dropped)).map_err(drop).unwrap())
        };
        let value = rx.recv().expect("the sender sends");
        drop(value);
        sender.join().unwrap();
        assert_eq!(dropped.load(Ordering::Relaxed), 1, "handed over once");
    });
}

#[test]
fn loom_chan_rendezvous_hands_over_once() {
    rendezvous_model();
}

/// The planted bug (a waiter that takes SELECTED for done, not waiting
/// for READY) reads its packet while the sender is writing it, or leaves
/// while the sender is still waking it (the context's drop check).
#[test]
fn loom_chan_mutation_read_before_ready_is_caught() {
    if mutation::is_mutant_run() {
        rendezvous_model();
    } else {
        mutation::expect_rejected(
            "sync::tests::loom_chan::loom_chan_mutation_read_before_ready_is_caught",
            "waiter_trusts_selected_before_ready",
            &["Causality violation", "vanished while selected"],
        );
    }
}

/// The last sender goes while the receiver waits: it drains the value,
/// then learns of the disconnection; it never hangs.
fn close_model() {
    ::loom::model(|| {
        let dropped = drops();
        let (tx, rx) = bounded(1);
        let sender = {
            let dropped = dropped.clone();
            thread::spawn(move || {
                tx.send(Counted(dropped)).map_err(drop).unwrap();
                drop(tx);
            })
        };
        assert!(rx.recv().is_ok());
        assert_eq!(rx.recv().map(drop), Err(RecvError));
        sender.join().unwrap();
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_chan_close_wakes_the_receiver() {
    close_model();
}

/// The planted bug (the last sender disconnects without waking waiting
/// receivers) leaves the receiver parked: loom reports the deadlock.
#[test]
fn loom_chan_mutation_close_forgets_receivers_is_caught() {
    if mutation::is_mutant_run() {
        close_model();
    } else {
        mutation::expect_rejected(
            "sync::tests::loom_chan::loom_chan_mutation_close_forgets_receivers_is_caught",
            "chan_close_forgets_receivers",
            &["deadlock"],
        );
    }
}

/// The last receiver goes while a sender waits on a full channel: the
/// sender gets its value back, the queued one is dropped by the close.
#[test]
fn loom_chan_drop_receiver_wakes_the_sender() {
    ::loom::model(|| {
        let dropped = drops();
        let (tx, rx) = bounded(1);
        tx.send(Counted(dropped.clone())).map_err(drop).unwrap();
        let sender = {
            let dropped = dropped.clone();
            thread::spawn(move || {
                let back = tx.send(Counted(dropped)).expect_err("nobody receives");
                drop(back.into_inner());
            })
        };
        drop(rx);
        sender.join().unwrap();
        assert_eq!(
            dropped.load(Ordering::Relaxed),
            2,
            "each value dropped once"
        );
    });
}

/// A receive that times out while a value arrives: either the receiver
/// got it, or it stayed in the channel; never both, never neither.
fn timeout_model() {
    ::loom::model(|| {
        let dropped = drops();
        let (tx, rx) = bounded(1);
        let sender = {
            let dropped = dropped.clone();
            thread::spawn(move || tx.send(Counted(dropped)).map_err(drop).unwrap())
        };
        // A deadline that has passed: the receive registers, then aborts,
        // racing the sender's hand-off.
        let got = match rx.recv_timeout(Duration::ZERO) {
            Ok(value) => {
                drop(value);
                1
            }
            Err(RecvTimeoutError::Timeout) => 0,
            Err(RecvTimeoutError::Disconnected) => panic!("the sender was alive"),
        };
        sender.join().unwrap();
        let left = rx.try_iter().map(drop).count();
        assert_eq!(got + left, 1, "the value was received exactly once");
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
    });
}

#[test]
fn loom_chan_timeout_races_a_send() {
    timeout_model();
}

/// The planted bug (a blocking receive gives up outside the channel's
/// lock, while a sender selects its context with a plain store) lets both
/// win: the value is handed to a receive that reports a timeout (or the
/// abort overwrites the selection, which the debug checks see).
#[test]
fn loom_chan_mutation_abort_skips_the_lock_is_caught() {
    if mutation::is_mutant_run() {
        timeout_model();
    } else {
        mutation::expect_rejected(
            "sync::tests::loom_chan::loom_chan_mutation_abort_skips_the_lock_is_caught",
            "chan_abort_skips_the_lock",
            &[
                "received exactly once",
                "vanished while selected",
                "that is not selected",
                "Causality violation",
            ],
        );
    }
}

/// `select!` over two channels fed by two threads: exactly one branch
/// fires; the other value is still there for a plain receive.
#[test]
fn loom_chan_select_takes_exactly_one() {
    ::loom::model(|| {
        let (tx1, rx1) = bounded::<u32>(1);
        let (tx2, rx2) = bounded::<u32>(1);
        let a = thread::spawn(move || tx1.send(1).unwrap());
        let b = thread::spawn(move || tx2.send(2).unwrap());
        let first = crate::select! {
            recv(rx1) -> v => v.unwrap(),
            recv(rx2) -> v => v.unwrap(),
        };
        let second = if first == 1 { rx2.recv() } else { rx1.recv() }.unwrap();
        assert_eq!(first + second, 3);
        a.join().unwrap();
        b.join().unwrap();
        assert!(rx1.try_recv().is_err() && rx2.try_recv().is_err());
    });
}

/// `select!` on rendezvous channels: its registration races a sender that
/// waits (so registering sees it and starts over) and a send branch that
/// waits for a receiver. Each value moves exactly once.
#[test]
fn loom_chan_select_meets_waiting_senders_and_receivers() {
    ::loom::model(|| {
        let (tx1, rx1) = bounded::<u32>(0);
        let (tx2, rx2) = bounded::<u32>(0);
        let sender = thread::spawn(move || tx1.send(1).unwrap());
        let receiver = thread::spawn(move || rx2.recv().unwrap());
        let mut got = 0;
        let mut sent = false;
        while got == 0 || !sent {
            if got == 0 && !sent {
                crate::select! {
                    recv(rx1) -> v => got = v.unwrap(),
                    send(tx2, 2) -> r => { r.unwrap(); sent = true; },
                }
            } else if got == 0 {
                got = rx1.recv().unwrap();
            } else {
                tx2.send(2).unwrap();
                sent = true;
            }
        }
        assert_eq!(got, 1);
        sender.join().unwrap();
        assert_eq!(receiver.join().unwrap(), 2);
    });
}

/// A waker that records whether it was woken.
fn flag_waker() -> (std::task::Waker, Arc<AtomicUsize>) {
    struct Flag(Arc<AtomicUsize>);
    impl std::task::Wake for Flag {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, Ordering::Release);
        }
    }
    let woken = Arc::new(AtomicUsize::new(0));
    let waker = std::task::Waker::from(std::sync::Arc::new(Flag(woken.clone())));
    (waker, woken)
}

/// An async receive re-polled with a new waker while a sender hands it a
/// value: the re-poll sees the value, or the new waker is woken (never
/// only the old one: a lost wake-up for a future that moved tasks).
fn async_repoll_model() {
    ::loom::model(|| {
        use std::future::Future;
        use std::task::{Context as TaskContext, Poll};
        let (tx, rx) = bounded::<u32>(0);
        let mut recv = Box::pin(rx.recv_async());
        let (first, _) = flag_waker();
        let (second, woken) = flag_waker();
        assert!(
            recv.as_mut()
                .poll(&mut TaskContext::from_waker(&first))
                .is_pending()
        );
        let sender = thread::spawn(move || tx.send(7).unwrap());
        if recv
            .as_mut()
            .poll(&mut TaskContext::from_waker(&second))
            .is_pending()
        {
            sender.join().unwrap();
            assert_eq!(
                woken.load(Ordering::Acquire),
                1,
                "the re-poll's waker was not woken: lost wake-up"
            );
            let got = recv.as_mut().poll(&mut TaskContext::from_waker(&second));
            assert_eq!(got, Poll::Ready(Ok(7)));
        } else {
            sender.join().unwrap();
        }
    });
}

#[test]
fn loom_chan_async_repoll_races_a_send() {
    async_repoll_model();
}

/// The planted bug (the selector takes the waker before it sets READY, as
/// weft did up to 0adb1e5) wakes only the waker the re-poll replaced.
#[test]
fn loom_chan_mutation_waker_taken_before_ready_is_caught() {
    if mutation::is_mutant_run() {
        async_repoll_model();
    } else {
        mutation::expect_rejected(
            "sync::tests::loom_chan::loom_chan_mutation_waker_taken_before_ready_is_caught",
            "selector_takes_waker_before_ready",
            &["lost wake-up"],
        );
    }
}

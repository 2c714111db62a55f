//! Channels: the behaviour of each operation, from fibers and threads;
//! disconnection and drops (TESTING.md 8: misuse and lifecycle).

mod sync_util;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sync_util::{Counted, count, counter, runtime, watchdog};
use weft::chan::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError, bounded,
    oneshot, unbounded,
};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn unbounded_keeps_order_and_never_waits() {
    let _w = watchdog("unbounded_keeps_order_and_never_waits", LIMIT);
    let (tx, rx) = unbounded();
    for i in 0..10_000 {
        tx.send(i).unwrap();
    }
    assert_eq!(tx.len(), 10_000);
    assert_eq!(rx.capacity(), None);
    assert!(rx.iter().take(10_000).eq(0..10_000));
    assert!(rx.is_empty());
}

#[test]
fn bounded_try_send_reports_full_then_disconnected() {
    let _w = watchdog("bounded_try_send_reports_full_then_disconnected", LIMIT);
    let (tx, rx) = bounded(2);
    tx.try_send(1).unwrap();
    tx.try_send(2).unwrap();
    assert_eq!(tx.try_send(3), Err(TrySendError::Full(3)));
    assert_eq!(rx.try_recv(), Ok(1));
    tx.try_send(3).unwrap();
    drop(rx);
    assert_eq!(tx.try_send(4), Err(TrySendError::Disconnected(4)));
    assert!(tx.is_disconnected());
}

#[test]
fn try_recv_reports_empty_then_disconnected_after_draining() {
    let _w = watchdog(
        "try_recv_reports_empty_then_disconnected_after_draining",
        LIMIT,
    );
    let (tx, rx) = bounded(4);
    assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    tx.send(1).unwrap();
    drop(tx);
    assert!(rx.is_disconnected());
    assert_eq!(rx.try_recv(), Ok(1), "queued values survive the disconnect");
    assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    assert_eq!(rx.recv(), Err(RecvError));
}

#[test]
fn rendezvous_send_returns_only_once_received() {
    let _w = watchdog("rendezvous_send_returns_only_once_received", LIMIT);
    let rt = runtime(2);
    rt.block_on(|| {
        let (tx, rx) = bounded(0);
        assert_eq!(
            tx.try_send(1),
            Err(TrySendError::Full(1)),
            "no receiver waits"
        );
        let received = Arc::new(AtomicUsize::new(0));
        let r = received.clone();
        let receiver = weft::spawn(move || {
            weft::sleep(Duration::from_millis(20));
            for v in rx.iter() {
                r.store(v, Ordering::SeqCst);
            }
        });
        for v in 1..=5 {
            tx.send(v).unwrap();
            // The value was taken (the receiver may not have stored it yet,
            // but it is no longer in the channel).
            assert!(tx.is_empty());
        }
        drop(tx);
        receiver.join().unwrap();
        assert_eq!(received.load(Ordering::SeqCst), 5);
    });
}

#[test]
fn send_on_a_full_channel_parks_the_fiber_not_the_worker() {
    let _w = watchdog(
        "send_on_a_full_channel_parks_the_fiber_not_the_worker",
        LIMIT,
    );
    // One worker: a blocking send that blocked the thread would deadlock.
    let rt = runtime(1);
    let got = rt.block_on(|| {
        let (tx, rx) = bounded(1);
        let sender = weft::spawn(move || {
            for i in 0..100 {
                tx.send(i).unwrap();
            }
        });
        let got: Vec<i32> = rx.iter().collect();
        sender.join().unwrap();
        got
    });
    assert!(got.into_iter().eq(0..100));
}

#[test]
fn recv_timeout_and_send_timeout_time_out() {
    let _w = watchdog("recv_timeout_and_send_timeout_time_out", LIMIT);
    let rt = runtime(2);
    rt.block_on(|| {
        let (tx, rx) = bounded::<u8>(0);
        let start = Instant::now();
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(30)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(start.elapsed() >= Duration::from_millis(30));
        let start = Instant::now();
        assert_eq!(
            tx.send_timeout(7, Duration::from_millis(30)),
            Err(SendTimeoutError::Timeout(7))
        );
        assert!(start.elapsed() >= Duration::from_millis(30));
        // The timed-out waiters left nothing behind: a later pair meets.
        let r = weft::spawn(move || rx.recv_timeout(Duration::from_secs(5)));
        tx.send(9).unwrap();
        assert_eq!(r.join().unwrap(), Ok(9));
    });
}

#[test]
fn recv_timeout_returns_a_value_that_arrives_in_time() {
    let _w = watchdog("recv_timeout_returns_a_value_that_arrives_in_time", LIMIT);
    let (tx, rx) = bounded(0);
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        tx.send("late but in time").unwrap();
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)),
        Ok("late but in time")
    );
    t.join().unwrap();
}

#[test]
fn dropping_the_last_sender_wakes_blocked_receivers_with_an_error() {
    let _w = watchdog(
        "dropping_the_last_sender_wakes_blocked_receivers_with_an_error",
        LIMIT,
    );
    let rt = runtime(2);
    let (tx, rx) = bounded::<u32>(0);
    // Fibers and a thread block in recv.
    let fibers: Vec<_> = (0..10)
        .map(|_| {
            let rx = rx.clone();
            rt.spawn(move || rx.recv())
        })
        .collect();
    let thread = {
        let rx = rx.clone();
        std::thread::spawn(move || rx.recv())
    };
    std::thread::sleep(Duration::from_millis(50));
    let tx2 = tx.clone();
    drop(tx);
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !fibers.iter().any(|f| f.is_finished()),
        "one sender is left"
    );
    drop(tx2);
    for f in fibers {
        assert_eq!(f.join().unwrap(), Err(RecvError));
    }
    assert_eq!(thread.join().unwrap(), Err(RecvError));
}

#[test]
fn dropping_the_last_receiver_wakes_blocked_senders_with_their_values() {
    let _w = watchdog(
        "dropping_the_last_receiver_wakes_blocked_senders_with_their_values",
        LIMIT,
    );
    let rt = runtime(2);
    let drops = counter();
    let (tx, rx) = bounded(1);
    tx.send(Counted::new(0, &drops)).unwrap();
    let fibers: Vec<_> = (1..=5)
        .map(|i| {
            let (tx, drops) = (tx.clone(), drops.clone());
            rt.spawn(move || match tx.send(Counted::new(i, &drops)) {
                Err(SendError(back)) => back.id,
                Ok(()) => panic!("nobody received"),
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(count(&drops), 0);
    drop(rx);
    let mut back: Vec<usize> = fibers.into_iter().map(|f| f.join().unwrap()).collect();
    back.sort_unstable();
    assert_eq!(back, [1, 2, 3, 4, 5], "each sender got its own value back");
    assert_eq!(count(&drops), 6, "the queued value and the 5 returned ones");
}

#[test]
fn values_left_in_a_dropped_channel_are_dropped_exactly_once() {
    let _w = watchdog(
        "values_left_in_a_dropped_channel_are_dropped_exactly_once",
        LIMIT,
    );
    for cap in [None, Some(0), Some(1), Some(64)] {
        let drops = counter();
        let (tx, rx) = match cap {
            None => unbounded(),
            Some(n) => bounded(n),
        };
        let mut sent = 0;
        for i in 0..100 {
            if tx.try_send(Counted::new(i, &drops)).is_ok() {
                sent += 1;
            }
        }
        let failed = 100 - sent;
        assert_eq!(count(&drops), failed, "failed sends drop their value");
        // Receive some, then drop the ends in both orders.
        let taken = rx.try_iter().take(sent / 2).count();
        assert_eq!(count(&drops), failed + taken);
        if cap == Some(1) {
            drop(tx);
            drop(rx);
        } else {
            drop(rx);
            assert_eq!(count(&drops), 100, "the last receiver drops what is left");
            drop(tx);
        }
        assert_eq!(
            count(&drops),
            100,
            "{cap:?}: each value dropped exactly once"
        );
    }
}

#[test]
fn waiting_senders_and_receivers_are_served_in_order() {
    let _w = watchdog("waiting_senders_and_receivers_are_served_in_order", LIMIT);
    let rt = runtime(1);
    rt.block_on(|| {
        let (tx, rx) = bounded(0);
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (started_tx, started_rx) = unbounded();
        let receivers: Vec<_> = (0..5)
            .map(|i| {
                let (rx, order, started) = (rx.clone(), order.clone(), started_tx.clone());
                let h = weft::spawn(move || {
                    started.send(()).unwrap();
                    let v: i32 = rx.recv().unwrap();
                    order.lock().unwrap().push((i, v));
                });
                // One worker: once it said so, it runs on into its recv and
                // parks there before we run again.
                started_rx.recv().unwrap();
                h
            })
            .collect();
        for v in 0..5 {
            tx.send(v * 10).unwrap();
        }
        receivers.into_iter().for_each(|h| h.join().unwrap());
        let order = order.lock().unwrap().clone();
        let mut by_receiver = order.clone();
        by_receiver.sort_unstable();
        assert_eq!(
            by_receiver,
            [(0, 0), (1, 10), (2, 20), (3, 30), (4, 40)],
            "the first to wait gets the first value"
        );
    });
}

#[test]
fn clones_share_the_channel() {
    let _w = watchdog("clones_share_the_channel", LIMIT);
    let (tx, rx) = bounded::<u8>(3);
    let (tx2, rx2) = (tx.clone(), rx.clone());
    assert!(tx.same_channel(&tx2) && rx.same_channel(&rx2));
    assert_eq!(tx.capacity(), Some(3));
    tx2.send(1).unwrap();
    assert_eq!(rx.len(), 1);
    assert_eq!(rx2.recv(), Ok(1));
    drop((tx, rx2));
    tx2.send(2).unwrap();
    assert_eq!(rx.recv(), Ok(2));
    assert!(format!("{tx2:?}").contains("Sender"));
}

#[test]
fn iterators_end_on_disconnect() {
    let _w = watchdog("iterators_end_on_disconnect", LIMIT);
    let (tx, rx) = unbounded();
    for i in 0..3 {
        tx.send(i).unwrap();
    }
    assert_eq!(rx.try_iter().collect::<Vec<_>>(), [0, 1, 2]);
    tx.send(3).unwrap();
    drop(tx);
    assert_eq!((&rx).into_iter().collect::<Vec<_>>(), [3]);
    assert_eq!(rx.into_iter().count(), 0);
}

#[test]
fn oneshot_delivers_once_or_reports_the_dropped_sender() {
    let _w = watchdog("oneshot_delivers_once_or_reports_the_dropped_sender", LIMIT);
    let rt = runtime(2);
    rt.block_on(|| {
        let (tx, rx) = oneshot();
        weft::spawn(move || tx.send(String::from("reply")).unwrap());
        assert_eq!(rx.recv().as_deref(), Ok("reply"));

        let (tx, rx) = oneshot::<u8>();
        weft::spawn(move || {
            weft::sleep(Duration::from_millis(10));
            drop(tx);
        });
        assert_eq!(rx.recv(), Err(RecvError));

        let (tx, rx) = oneshot::<u8>();
        assert!(rx.recv_timeout(Duration::from_millis(5)).is_err());
        drop(rx);
        assert!(tx.is_closed());
        assert_eq!(tx.send(1), Err(1));
    });
}

#[test]
fn channel_ops_work_from_plain_threads_while_a_runtime_runs() {
    let _w = watchdog(
        "channel_ops_work_from_plain_threads_while_a_runtime_runs",
        LIMIT,
    );
    let rt = runtime(2);
    let (to_fiber, from_thread) = bounded::<u64>(0);
    let (to_thread, from_fiber) = bounded::<u64>(0);
    let fiber = rt.spawn(move || {
        for v in from_thread.iter() {
            to_thread.send(v * 2).unwrap();
        }
    });
    for v in 0..1000 {
        to_fiber.send(v).unwrap();
        assert_eq!(from_fiber.recv(), Ok(v * 2));
    }
    drop(to_fiber);
    fiber.join().unwrap();
}

//! `select!`: readiness, waiting, timeouts, defaults, sends, fairness, and
//! a stress over 8 channels with random closes.

mod sync_util;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sync_util::{Counted, count, counter, runtime, scale, watchdog};
use weft::chan::{Receiver, RecvError, bounded, unbounded};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn select_takes_a_ready_branch_without_waiting() {
    let _w = watchdog("select_takes_a_ready_branch_without_waiting", LIMIT);
    let (tx1, rx1) = unbounded::<u8>();
    let (_tx2, rx2) = unbounded::<u8>();
    tx1.send(1).unwrap();
    let got = weft::select! {
        recv(rx1) -> v => v,
        recv(rx2) -> v => v.map(|v| v + 100),
    };
    assert_eq!(got, Ok(1));
}

#[test]
fn select_waits_for_the_first_value_from_a_fiber() {
    let _w = watchdog("select_waits_for_the_first_value_from_a_fiber", LIMIT);
    let rt = runtime(2);
    rt.block_on(|| {
        let (tx1, rx1) = bounded::<&str>(0);
        let (tx2, rx2) = bounded::<&str>(0);
        let sender = weft::spawn(move || {
            weft::sleep(Duration::from_millis(20));
            tx2.send("two").unwrap();
            drop(tx1);
        });
        let got = weft::select! {
            recv(rx1) -> v => ("one", v),
            recv(rx2) -> v => ("two", v),
        };
        assert_eq!(got, ("two", Ok("two")));
        sender.join().unwrap();
    });
}

#[test]
fn select_sees_disconnection_as_ready() {
    let _w = watchdog("select_sees_disconnection_as_ready", LIMIT);
    let (tx, rx) = bounded::<u8>(0);
    let (_keep, never) = bounded::<u8>(0);
    drop(tx);
    let got = weft::select! {
        recv(never) -> _v => unreachable!(),
        recv(rx) -> v => v,
    };
    assert_eq!(got, Err(RecvError));
}

#[test]
fn select_timeout_and_default() {
    let _w = watchdog("select_timeout_and_default", LIMIT);
    let (_tx, rx) = bounded::<u8>(0);
    let start = Instant::now();
    let timed_out = weft::select! {
        recv(rx) -> _v => false,
        timeout(Duration::from_millis(30)) => true,
    };
    assert!(timed_out && start.elapsed() >= Duration::from_millis(30));
    let start = Instant::now();
    let defaulted = weft::select! {
        recv(rx) -> _v => false,
        default => true,
    };
    assert!(defaulted && start.elapsed() < Duration::from_secs(1));
    // Only a timeout: a sleep.
    let slept = weft::select! { timeout(Duration::from_millis(5)) => 1 };
    assert_eq!(slept, 1);
}

#[test]
fn select_send_branches_deliver_or_drop_their_values() {
    let _w = watchdog("select_send_branches_deliver_or_drop_their_values", LIMIT);
    let drops = counter();
    let (tx1, rx1) = bounded(1);
    let (tx2, rx2) = bounded(0);
    // tx1 has room, tx2 has no receiver: the send to tx1 happens, the value
    // meant for tx2 is dropped when the select ends.
    let which = weft::select! {
        send(tx1, Counted::new(1, &drops)) -> res => { res.unwrap(); 1 },
        send(tx2, Counted::new(2, &drops)) -> res => { res.unwrap(); 2 },
    };
    assert_eq!(which, 1);
    assert_eq!(count(&drops), 1, "the unsent value is dropped");
    assert_eq!(rx1.try_recv().unwrap().id, 1);
    // A send to a disconnected channel is ready, with the value back.
    drop(rx2);
    let back = weft::select! {
        send(tx2, Counted::new(3, &drops)) -> res => res.unwrap_err().into_inner().id,
    };
    assert_eq!(back, 3);
    assert_eq!(count(&drops), 3);
}

#[test]
fn select_send_waits_for_a_receiver() {
    let _w = watchdog("select_send_waits_for_a_receiver", LIMIT);
    let rt = runtime(2);
    rt.block_on(|| {
        let (tx, rx) = bounded::<u32>(0);
        let (_tx_idle, rx_idle) = bounded::<u32>(0);
        let receiver = weft::spawn(move || {
            weft::sleep(Duration::from_millis(20));
            rx.recv().unwrap()
        });
        let sent = weft::select! {
            send(tx, 42) -> res => res.is_ok(),
            recv(rx_idle) -> _v => false,
        };
        assert!(sent);
        assert_eq!(receiver.join().unwrap(), 42);
    });
}

#[test]
fn select_with_send_and_recv_on_one_rendezvous_channel_does_not_spin() {
    let _w = watchdog(
        "select_with_send_and_recv_on_one_rendezvous_channel_does_not_spin",
        LIMIT,
    );
    // Our own send must not count as a sender ready for our own receive.
    let (tx, rx) = bounded::<u8>(0);
    let got = weft::select! {
        send(tx, 1) -> _r => "sent",
        recv(rx) -> _v => "received",
        timeout(Duration::from_millis(20)) => "timeout",
    };
    assert_eq!(got, "timeout");
}

#[test]
fn select_is_fair_among_ready_branches() {
    let _w = watchdog("select_is_fair_among_ready_branches", LIMIT);
    let (tx1, rx1) = unbounded();
    let (tx2, rx2) = unbounded();
    let n = 10_000;
    for i in 0..n {
        tx1.send(i).unwrap();
        tx2.send(i).unwrap();
    }
    let mut firsts = 0;
    for _ in 0..n {
        weft::select! {
            recv(rx1) -> _v => firsts += 1,
            recv(rx2) -> _v => {},
        }
    }
    let share = f64::from(firsts) / f64::from(n);
    println!("first branch chosen {firsts} of {n} times ({share:.3})");
    assert!((0.4..0.6).contains(&share), "unfair: {share}");
}

#[test]
fn select_over_8_channels_with_random_closes_counts_exactly() {
    let _w = watchdog(
        "select_over_8_channels_with_random_closes_counts_exactly",
        LIMIT,
    );
    let rounds = scale(20, 4);
    let rt = runtime(2);
    let mut seed = 0x2545_f491_u64;
    for round in 0..rounds {
        // Each channel gets a random count of values, then its sender
        // closes; some close at once with nothing sent.
        let counts: Vec<usize> = (0..8)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                if seed.is_multiple_of(5) {
                    0
                } else {
                    (seed % 5000) as usize
                }
            })
            .collect();
        let expected: usize = counts.iter().sum();
        let caps: Vec<usize> = (0..8).map(|i| [0, 1, 16][(i + round) % 3]).collect();
        let (txs, rxs): (Vec<_>, Vec<_>) = caps.iter().map(|&cap| bounded::<usize>(cap)).unzip();
        let producers: Vec<_> = txs
            .into_iter()
            .zip(counts.clone())
            .enumerate()
            .map(|(i, (tx, n))| {
                rt.spawn(move || {
                    for v in 0..n {
                        tx.send(i * 1_000_000 + v).unwrap();
                    }
                })
            })
            .collect();
        // Two fiber consumers and one thread consumer select over all 8.
        let consume = move |rxs: Vec<Receiver<usize>>| -> HashMap<usize, Vec<usize>> {
            let mut rxs = rxs;
            let mut got: HashMap<usize, Vec<usize>> = HashMap::new();
            let mut closed = [false; 8];
            // A closed channel is swapped for one that is never ready.
            let mut parked_senders = Vec::new();
            while closed.iter().any(|c| !c) {
                let (i, v) = weft::select! {
                    recv(rxs[0]) -> v => (0, v),
                    recv(rxs[1]) -> v => (1, v),
                    recv(rxs[2]) -> v => (2, v),
                    recv(rxs[3]) -> v => (3, v),
                    recv(rxs[4]) -> v => (4, v),
                    recv(rxs[5]) -> v => (5, v),
                    recv(rxs[6]) -> v => (6, v),
                    recv(rxs[7]) -> v => (7, v),
                };
                match v {
                    Ok(v) => got.entry(i).or_default().push(v),
                    Err(RecvError) => {
                        assert!(!closed[i], "a channel closed twice");
                        closed[i] = true;
                        let (tx, never) = bounded(0);
                        parked_senders.push(tx);
                        rxs[i] = never;
                    }
                }
            }
            got
        };
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let rxs = rxs.clone();
                rt.spawn(move || consume(rxs))
            })
            .collect();
        let thread = std::thread::spawn(move || consume(rxs));
        producers.into_iter().for_each(|p| p.join().unwrap());
        let mut all: HashMap<usize, Vec<usize>> = HashMap::new();
        let results = consumers
            .into_iter()
            .map(|c| c.join().unwrap())
            .chain([thread.join().unwrap()]);
        for got in results {
            for (i, vs) in got {
                all.entry(i).or_default().extend(vs);
            }
        }
        let total: usize = all.values().map(Vec::len).sum();
        assert_eq!(total, expected, "round {round}: every value exactly once");
        for (i, n) in counts.iter().enumerate() {
            let mut vs = all.remove(&i).unwrap_or_default();
            vs.sort_unstable();
            assert!(
                vs.iter().copied().eq((0..*n).map(|v| i * 1_000_000 + v)),
                "round {round}, channel {i}: lost or duplicated values"
            );
        }
    }
}

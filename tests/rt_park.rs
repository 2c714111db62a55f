//! park/unpark, park_timeout and sleep, on fibers and (where weft
//! promises std's behaviour) on plain threads.
//!
//! `park` may return spuriously, so every wait is a loop on a condition.
//! Durations are only ever lower bounds weft promises (a sleep never ends
//! early) or generous hang guards, never speed requirements.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, mpsc};
use std::time::{Duration, Instant};

use weft::fiber::{self, Fiber};
use weft::{Runtime, spawn, yield_now};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("a runtime")
}

/// The token tests, written once for fibers and threads: `fiber::park`
/// and friends behave the same on both.
fn token_semantics(label: &str) {
    // An unpark before park: park consumes the token and returns at once.
    fiber::current().unpark();
    let start = Instant::now();
    fiber::park();
    let first = start.elapsed();

    // Two unparks leave one token, not two: the first park returns at
    // once, the second waits its whole timeout (nobody else unparks us).
    let me = fiber::current();
    me.unpark();
    me.unpark();
    let start = Instant::now();
    fiber::park();
    let consumed = start.elapsed();
    let timeout = Duration::from_millis(100);
    let start = Instant::now();
    fiber::park_timeout(timeout);
    let second = start.elapsed();
    println!(
        "{label}: park after unpark {first:?}; after two unparks: {consumed:?}, then park_timeout(100 ms) {second:?}"
    );
    assert!(
        second >= timeout,
        "{label}: tokens accumulated: the second park returned after {second:?}"
    );
    assert!(
        first < Duration::from_secs(10) && consumed < Duration::from_secs(10),
        "{label}: a park with a token waiting blocked"
    );
}

#[test]
fn unpark_tokens_on_a_fiber() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| token_semantics("fiber"));
        // And on a one-worker runtime, where no other worker could help.
        runtime(1).block_on(|| token_semantics("fiber, 1 worker"));
    });
}

#[test]
fn unpark_tokens_on_a_plain_thread() {
    support::bounded(|| token_semantics("thread"));
}

#[test]
fn park_timeout_times_out_when_nobody_unparks() {
    support::bounded(|| {
        let rt = runtime(2);
        for ms in [0u64, 1, 15, 50] {
            let timeout = Duration::from_millis(ms);
            let took = rt.block_on(move || {
                let start = Instant::now();
                fiber::park_timeout(timeout);
                start.elapsed()
            });
            assert!(
                took >= timeout,
                "park_timeout({timeout:?}) returned after {took:?}"
            );
            assert!(
                took < timeout + Duration::from_secs(10),
                "park_timeout hung: {took:?}"
            );
        }
        // Off a fiber: std::thread::park_timeout.
        let start = Instant::now();
        fiber::park_timeout(Duration::from_millis(20));
        assert!(start.elapsed() >= Duration::from_millis(20));
    });
}

#[test]
fn park_timeout_is_cut_short_by_unpark() {
    support::bounded(|| {
        let rt = runtime(2);
        let (tx, rx) = mpsc::channel::<Fiber>();
        let done = Arc::new(AtomicBool::new(false));
        let waiter = {
            let done = done.clone();
            rt.spawn(move || {
                tx.send(fiber::current()).unwrap();
                let start = Instant::now();
                while !done.load(Ordering::Acquire) {
                    fiber::park_timeout(Duration::from_secs(30));
                }
                start.elapsed()
            })
        };
        let f = rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(10));
        done.store(true, Ordering::Release);
        f.unpark();
        let took = waiter.join().unwrap();
        println!("park_timeout(30 s) returned {took:?} after its start, on unpark");
        assert!(took < Duration::from_secs(20), "the unpark did not wake it");
    });
}

/// Two parties hand a turn back and forth `rounds` times with park/unpark.
/// `a_on`/`b_on` start a party on a fiber or a thread. The parties find
/// each other through `OnceLock`s polled with `yield_now` (a std channel
/// would block a worker thread, and with one worker, deadlock it).
fn ping_pong(
    a_on: impl FnOnce(Box<dyn FnOnce() + Send>),
    b_on: impl FnOnce(Box<dyn FnOnce() + Send>),
    rounds: u64,
) {
    let turn = Arc::new(AtomicU64::new(0));
    let slots: Arc<[OnceLock<Fiber>; 2]> = Arc::new([OnceLock::new(), OnceLock::new()]);
    let (done_tx, done_rx) = mpsc::channel::<u64>();
    let party = |me: u64, done: mpsc::Sender<u64>| {
        let turn = turn.clone();
        let slots = slots.clone();
        Box::new(move || {
            slots[me as usize].set(fiber::current()).unwrap();
            let other = loop {
                if let Some(other) = slots[1 - me as usize].get() {
                    break other.clone();
                }
                yield_now();
            };
            let mut parks = 0u64;
            for round in 0..rounds {
                let mine = 2 * round + me;
                while turn.load(Ordering::Acquire) != mine {
                    fiber::park();
                    parks += 1;
                }
                turn.store(mine + 1, Ordering::Release);
                other.unpark();
            }
            done.send(parks).unwrap();
        }) as Box<dyn FnOnce() + Send>
    };
    a_on(party(0, done_tx.clone()));
    b_on(party(1, done_tx));
    let parks: u64 = done_rx.iter().take(2).sum();
    assert_eq!(turn.load(Ordering::SeqCst), 2 * rounds);
    println!("{rounds} rounds of ping-pong, {parks} parks");
}

#[test]
fn ping_pong_between_fibers_and_threads() {
    support::bounded(|| {
        let rounds = support::scaled(5_000, 20_000) as u64;
        for workers in [1, 2] {
            let rt = runtime(workers);
            let h1 = rt.handle().clone();
            let h2 = rt.handle().clone();
            ping_pong(
                move |f| drop(h1.spawn(f)),
                move |f| drop(h2.spawn(f)),
                rounds,
            );
        }
        // A fiber and a plain thread.
        let rt = runtime(2);
        let h = rt.handle().clone();
        ping_pong(
            move |f| drop(h.spawn(f)),
            |f| drop(std::thread::spawn(f)),
            rounds / 5,
        );
    });
}

/// A fiber woken from another thread while another fiber of its worker
/// yields in a loop must still run: with one worker, the spinner waits for
/// exactly that fiber. (This hung before the inbox was drained into a
/// non-empty ready queue.)
#[test]
fn a_fiber_woken_from_outside_runs_while_another_spins_on_yield() {
    support::bounded(|| {
        let rt = runtime(1);
        // Woken by a blocking-pool thread.
        let spins = rt.block_on(|| {
            let waiter = spawn(|| weft::blocking(|| 5));
            let mut spins = 0u64;
            while !waiter.is_finished() {
                yield_now();
                spins += 1;
            }
            assert_eq!(waiter.join().unwrap(), 5);
            spins
        });
        println!("blocking job: the spinner yielded {spins} times");

        // Woken by a plain thread's unpark.
        let (tx, rx) = mpsc::channel::<Fiber>();
        let go = Arc::new(AtomicBool::new(false));
        let unparker = {
            let go = go.clone();
            std::thread::spawn(move || {
                let f = rx.recv().unwrap();
                std::thread::sleep(Duration::from_millis(5));
                go.store(true, Ordering::Release);
                f.unpark();
            })
        };
        rt.block_on(move || {
            let waiter = spawn(move || {
                tx.send(fiber::current()).unwrap();
                while !go.load(Ordering::Acquire) {
                    fiber::park();
                }
            });
            while !waiter.is_finished() {
                yield_now();
            }
            waiter.join().unwrap();
        });
        unparker.join().unwrap();
    });
}

#[test]
fn unpark_from_everywhere() {
    support::bounded(|| {
        let rt = runtime(2);
        // Parked fibers unparked by: another fiber, a plain thread, a
        // blocking-pool thread, and themselves via a clone of current().
        let n = 64usize;
        let flags: Arc<Vec<AtomicBool>> =
            Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let flags = flags.clone();
                rt.spawn(move || {
                    while !flags[i].load(Ordering::Acquire) {
                        fiber::park();
                    }
                    i
                })
            })
            .collect();
        let fibers: Vec<Fiber> = handles.iter().map(|h| h.fiber()).collect();
        let release = move |i: usize, flags: &[AtomicBool], fibers: &[Fiber]| {
            flags[i].store(true, Ordering::Release);
            fibers[i].unpark();
        };
        let fibers = Arc::new(fibers);
        let (f1, fl1) = (fibers.clone(), flags.clone());
        rt.spawn(move || (0..n).step_by(4).for_each(|i| release(i, &fl1, &f1)))
            .join()
            .unwrap();
        let (f2, fl2) = (fibers.clone(), flags.clone());
        std::thread::spawn(move || (1..n).step_by(4).for_each(|i| release(i, &fl2, &f2)))
            .join()
            .unwrap();
        let (f3, fl3) = (fibers.clone(), flags.clone());
        rt.block_on(move || {
            weft::blocking(move || (2..n).step_by(4).for_each(|i| release(i, &fl3, &f3)))
        });
        let (f4, fl4) = (fibers.clone(), flags.clone());
        rt.block_on(move || (3..n).step_by(4).for_each(|i| release(i, &fl4, &f4)));
        let got: Vec<usize> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        assert_eq!(got, (0..n).collect::<Vec<_>>());
        // Unparking finished fibers is harmless.
        for f in fibers.iter() {
            f.unpark();
        }
        assert_eq!(rt.block_on(|| 1), 1);
    });
}

#[test]
fn many_fibers_sleep_and_none_wakes_early() {
    support::bounded(|| {
        let rt = runtime(2);
        let n = 1_000u64;
        let early = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let woke = rt.block_on({
            let early = early.clone();
            move || {
                let hs: Vec<_> = (0..n)
                    .map(|i| {
                        let early = early.clone();
                        spawn(move || {
                            // 1..=50 ms, in a scattered order.
                            let d = Duration::from_millis(1 + (i * 37) % 50);
                            let t = Instant::now();
                            weft::sleep(d);
                            if t.elapsed() < d {
                                early.fetch_add(1, Ordering::SeqCst);
                            }
                            1u64
                        })
                    })
                    .collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            }
        });
        println!(
            "{n} fibers slept 1..=50 ms each; all woke after {:?}",
            start.elapsed()
        );
        assert_eq!(woke, n);
        assert_eq!(
            early.load(Ordering::SeqCst),
            0,
            "fibers woke before their duration"
        );
    });
}

#[test]
fn sleep_is_not_cut_short_by_unpark() {
    support::bounded(|| {
        let rt = runtime(2);
        let (tx, rx) = mpsc::channel::<Fiber>();
        let sleeper = rt.spawn(move || {
            tx.send(fiber::current()).unwrap();
            let start = Instant::now();
            weft::sleep(Duration::from_millis(100));
            start.elapsed()
        });
        let f = rx.recv().unwrap();
        for _ in 0..20 {
            f.unpark();
            std::thread::sleep(Duration::from_millis(1));
        }
        let slept = sleeper.join().unwrap();
        assert!(slept >= Duration::from_millis(100), "slept only {slept:?}");

        // sleep(0) returns; so does a sleep on a plain thread.
        rt.block_on(|| weft::sleep(Duration::ZERO));
        let start = Instant::now();
        weft::sleep(Duration::from_millis(10));
        assert!(start.elapsed() >= Duration::from_millis(10));
    });
}

/// Many wakes of one running fiber leave a single token; nothing breaks
/// when wakes race with its parks.
#[test]
fn wakes_racing_with_parks() {
    support::bounded(|| {
        let rt = runtime(2);
        let rounds = support::scaled(2_000, 20_000) as u64;
        let counter = Arc::new(AtomicU64::new(0));
        let target = {
            let counter = counter.clone();
            rt.spawn(move || {
                // Waits for each increment the waker makes.
                let mut seen = 0;
                while seen < rounds {
                    let now = counter.load(Ordering::Acquire);
                    if now == seen {
                        fiber::park();
                    } else {
                        seen = now;
                    }
                }
                seen
            })
        };
        let f = target.fiber();
        let wakers: Vec<_> = (0..2)
            .map(|w| {
                let f = f.clone();
                let counter = counter.clone();
                std::thread::spawn(move || {
                    if w == 0 {
                        for _ in 0..rounds {
                            counter.fetch_add(1, Ordering::AcqRel);
                            f.unpark();
                        }
                    } else {
                        // Extra, spurious wakes.
                        for _ in 0..rounds {
                            f.unpark();
                            std::hint::spin_loop();
                        }
                    }
                })
            })
            .collect();
        for w in wakers {
            w.join().unwrap();
        }
        assert_eq!(target.join().unwrap(), rounds);
    });
}

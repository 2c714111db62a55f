//! Stress with exact counts: a million fibers spawned and joined, skynet
//! with a million leaves, 100,000 fibers parking, unparking and sleeping
//! at random, a token ring on more workers than cores, 10,000 panics
//! among working fibers, and a runtime dropped with 100,000 parked
//! fibers. The stack budget (`max_stacks`) has its own file,
//! `rt_stack_budget.rs`.
//!
//! Each test holds `support::heavy()` (they each want both cores, and
//! some hold tens of thousands of stacks: the mapping budget is per
//! process) and runs under the hang guard. Timings are printed, never
//! asserted.
//!
//! In the mprotect guard fallback (`WEFT_STACK_GUARD=mprotect`, which CI
//! also runs) a live stack costs two of the kernel's ~65,530 mappings,
//! so at most ~32,000 fibers can be parked at once; the tests that park
//! 100,000 scale down to 20,000 there and say so.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use support::{Counter, QUIET, Rng};
use weft::fiber::{self, Fiber};
use weft::stack_pool::{GuardMode, StackPool};
use weft::{JoinHandle, Runtime, spawn};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("a runtime")
}

/// `wanted` fibers parked at once, or 20,000 in the mprotect fallback.
fn parkable(wanted: usize) -> usize {
    let mprotect = StackPool::new().expect("a default pool").guard_mode() == GuardMode::Mprotect;
    let n = support::live_stack_limit(wanted, 20_000, mprotect);
    if n < wanted {
        println!(
            "mprotect guard mode: {n} parked fibers instead of {wanted} (each stack costs 2 mappings)"
        );
    }
    n
}

fn rss_mib() -> usize {
    support::rss_bytes() >> 20
}

#[test]
fn a_million_fibers_spawned_and_joined() {
    let _heavy = support::heavy();
    support::bounded(|| {
        const N: u64 = 1_000_000;
        let rt = runtime(2);
        let start = Instant::now();
        let sum = rt.block_on(|| {
            let handles: Vec<JoinHandle<u64>> = (0..N).map(|i| spawn(move || i)).collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        println!(
            "1,000,000 fibers spawned and joined in {:?}",
            start.elapsed()
        );
        assert_eq!(sum, N * (N - 1) / 2);

        // And from outside: four plain threads, 250,000 each, through a Handle.
        let start = Instant::now();
        let sum: u64 = std::thread::scope(|s| {
            let threads: Vec<_> = (0..4u64)
                .map(|t| {
                    let handle = rt.handle().clone();
                    s.spawn(move || {
                        let hs: Vec<_> = (t * N / 4..(t + 1) * N / 4)
                            .map(|i| handle.spawn(move || i))
                            .collect();
                        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        println!(
            "1,000,000 fibers spawned from 4 threads and joined in {:?}",
            start.elapsed()
        );
        assert_eq!(sum, N * (N - 1) / 2);
    });
}

fn skynet(num: u64, size: u64, fibers: &Arc<AtomicU64>) -> u64 {
    fibers.fetch_add(1, Ordering::Relaxed);
    if size == 1 {
        return num;
    }
    let step = size / 10;
    let children: Vec<_> = (0..10)
        .map(|i| {
            let fibers = fibers.clone();
            spawn(move || skynet(num + i * step, step, &fibers))
        })
        .collect();
    children.into_iter().map(|h| h.join().unwrap()).sum()
}

#[test]
fn skynet_with_a_million_leaves() {
    let _heavy = support::heavy();
    support::bounded(|| {
        let rt = runtime(2);
        let fibers = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let sum = rt.block_on({
            let fibers = fibers.clone();
            move || skynet(0, 1_000_000, &fibers)
        });
        println!(
            "skynet: {} fibers, leaves 0..999,999, sum {sum} in {:?}",
            fibers.load(Ordering::SeqCst),
            start.elapsed()
        );
        assert_eq!(sum, 499_999_500_000);
        assert_eq!(fibers.load(Ordering::SeqCst), 1_111_111);
    });
}

/// 100,000 fibers: most park until a flag of theirs is set and they are
/// unparked, by fibers and plain threads in a random order, with spurious
/// unparks thrown in (some arrive before the fiber has even started: the
/// token must not be lost); some wait with park_timeout instead; some
/// sleep random short times (never waking early). Every fiber finishes.
#[test]
fn a_hundred_thousand_fibers_park_unpark_and_sleep_at_random() {
    let _heavy = support::heavy();
    support::bounded(|| {
        let n = parkable(100_000);
        let seed = Rng::seed();
        println!("seed {seed} (replay with WEFT_TEST_SEED={seed})");
        let rt = Runtime::builder()
            .workers(2)
            .stack_size(64 * 1024)
            .build()
            .unwrap();
        let flags: Arc<Vec<AtomicBool>> =
            Arc::new((0..n).map(|_| AtomicBool::new(false)).collect());
        let early = Arc::new(AtomicUsize::new(0));
        let parks = Arc::new(AtomicU64::new(0));
        let fibers: Arc<OnceLock<Vec<Fiber>>> = Arc::new(OnceLock::new());
        let mut rng = Rng::new(seed);
        let start = Instant::now();

        // Kinds: 0 park, 1 park_timeout, 2 sleep.
        let kinds: Vec<u8> = (0..n)
            .map(|_| match rng.below(10) {
                0..=5 => 0,
                6 | 7 => 1,
                _ => 2,
            })
            .collect();
        let body = |i: usize, kind: u8, nap: u64| {
            let (flags, early, parks) = (flags.clone(), early.clone(), parks.clone());
            move || -> u64 {
                match kind {
                    0 => {
                        while !flags[i].load(Ordering::Acquire) {
                            fiber::park();
                            parks.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    1 => {
                        while !flags[i].load(Ordering::Acquire) {
                            fiber::park_timeout(Duration::from_millis(1 + nap % 20));
                            parks.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    _ => {
                        let d = Duration::from_micros(nap % 10_000);
                        let t = Instant::now();
                        weft::sleep(d);
                        if t.elapsed() < d {
                            early.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                }
                1
            }
        };
        // Half spawned from outside (the injector), half by a fiber (its
        // worker's deque, stolen from there).
        let half = n / 2;
        let mut handles: Vec<JoinHandle<u64>> = (0..half)
            .map(|i| rt.spawn(body(i, kinds[i], rng.next_u64())))
            .collect();
        let naps: Vec<u64> = (half..n).map(|_| rng.next_u64()).collect();
        let bodies: Vec<_> = (half..n)
            .map(|i| body(i, kinds[i], naps[i - half]))
            .collect();
        handles.extend(rt.block_on(move || bodies.into_iter().map(spawn).collect::<Vec<_>>()));
        fibers
            .set(handles.iter().map(JoinHandle::fiber).collect())
            .unwrap();

        // Release every fiber that waits for a flag, in a random order,
        // split between 16 unparking fibers and 4 plain threads; each also
        // unparks random fibers for no reason.
        let mut order: Vec<usize> = (0..n).filter(|&i| kinds[i] != 2).collect();
        rng.shuffle(&mut order);
        let chunks: Vec<Vec<usize>> = order
            .chunks(order.len().div_ceil(20))
            .map(<[usize]>::to_vec)
            .collect();
        let release = |chunk: Vec<usize>, seed: u64, on_fiber: bool| {
            let (flags, fibers) = (flags.clone(), fibers.clone());
            move || {
                let fibers = fibers.get().expect("published before the unparkers start");
                let mut rng = Rng::new(seed);
                for (k, i) in chunk.into_iter().enumerate() {
                    flags[i].store(true, Ordering::Release);
                    fibers[i].unpark();
                    let spurious = rng.below(fibers.len() as u64) as usize;
                    fibers[spurious].unpark();
                    if k % 64 == 0 {
                        if on_fiber {
                            match rng.below(3) {
                                0 => weft::yield_now(),
                                1 => weft::sleep(Duration::from_micros(rng.below(500))),
                                _ => {}
                            }
                        } else {
                            std::thread::yield_now();
                        }
                    }
                }
            }
        };
        let mut chunks = chunks.into_iter();
        let unparkers: Vec<JoinHandle<()>> = chunks
            .by_ref()
            .take(16)
            .map(|c| rt.spawn(release(c, rng.next_u64(), true)))
            .collect();
        let threads: Vec<_> = chunks
            .map(|c| std::thread::spawn(release(c, rng.next_u64(), false)))
            .collect();
        let peak_rss = rss_mib();
        let finished: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        for u in unparkers {
            u.join().unwrap();
        }
        for t in threads {
            t.join().unwrap();
        }
        println!(
            "{n} fibers ({} park, {} park_timeout, {} sleep) all finished in {:?}; {} parks; RSS {} MiB while running",
            kinds.iter().filter(|&&k| k == 0).count(),
            kinds.iter().filter(|&&k| k == 1).count(),
            kinds.iter().filter(|&&k| k == 2).count(),
            start.elapsed(),
            parks.load(Ordering::SeqCst),
            peak_rss
        );
        assert_eq!(finished, n as u64, "every fiber finished");
        assert_eq!(early.load(Ordering::SeqCst), 0, "no sleep ended early");
    });
}

/// More workers than cores (3, 8 and 16 on this 2-core machine): a token
/// passed around a ring of 64 fibers (1,000 laps; 300 in debug builds),
/// each pass an unpark and a park, across workers where neighbours landed
/// on different ones (through the home worker's inbox and its parker);
/// then fork-join skynets. Exact counts; no lost wake-up.
#[test]
fn a_token_ring_on_more_workers_than_cores() {
    let _heavy = support::heavy();
    support::bounded(|| {
        for workers in [3, 8, 16] {
            let rt = runtime(workers);
            let start = Instant::now();
            let (n, laps) = (64usize, support::scaled(300, 1_000) as u64);
            let turn = Arc::new(AtomicU64::new(0));
            let ring: Arc<OnceLock<Vec<Fiber>>> = Arc::new(OnceLock::new());
            let handles: Vec<JoinHandle<u64>> = (0..n)
                .map(|me| {
                    let (turn, ring) = (turn.clone(), ring.clone());
                    rt.spawn(move || {
                        let ring = loop {
                            if let Some(ring) = ring.get() {
                                break ring;
                            }
                            weft::yield_now();
                        };
                        let mut passes = 0;
                        for lap in 0..laps {
                            let mine = lap * n as u64 + me as u64;
                            while turn.load(Ordering::Acquire) != mine {
                                fiber::park();
                            }
                            turn.store(mine + 1, Ordering::Release);
                            ring[(me + 1) % n].unpark();
                            passes += 1;
                        }
                        passes
                    })
                })
                .collect();
            ring.set(handles.iter().map(JoinHandle::fiber).collect())
                .unwrap();
            let passes: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
            let ring_took = start.elapsed();
            let fibers = Arc::new(AtomicU64::new(0));
            for _ in 0..10 {
                let fibers = fibers.clone();
                assert_eq!(rt.block_on(move || skynet(0, 10_000, &fibers)), 49_995_000);
            }
            println!(
                "{workers} workers: {passes} token passes in {ring_took:?}, then 10 skynets of {} fibers",
                fibers.load(Ordering::SeqCst) / 10
            );
            assert_eq!(passes, n as u64 * laps);
            assert_eq!(turn.load(Ordering::SeqCst), n as u64 * laps);
            assert_eq!(fibers.load(Ordering::SeqCst), 10 * 11_111);
        }
    });
}

/// 10,000 fibers panic while 10,000 others work (yield, sleep, compute):
/// every panic reaches its joiner with its own payload, every other result
/// is right, and both workers are alive and running fibers afterwards.
#[test]
fn ten_thousand_panics_among_working_fibers() {
    let _heavy = support::heavy();
    support::bounded(|| {
        support::quiet_panics();
        const N: u64 = 10_000;
        let rt = Runtime::builder()
            .workers(2)
            .thread_name("panics")
            .build()
            .unwrap();
        let start = Instant::now();
        let handles: Vec<_> = (0..2 * N)
            .map(|i| {
                rt.spawn(move || -> u64 {
                    if i % 2 == 0 {
                        if i % 6 == 0 {
                            weft::yield_now();
                        }
                        panic!("{QUIET}fiber {i}");
                    }
                    match i % 5 {
                        0 => weft::yield_now(),
                        1 => weft::sleep(Duration::from_micros(100)),
                        _ => {}
                    }
                    (0..i % 100).sum::<u64>() + i
                })
            })
            .collect();
        let (mut panics, mut values) = (0, 0);
        for (i, h) in (0u64..).zip(handles) {
            match h.join() {
                Ok(v) => {
                    assert_eq!(i % 2, 1, "fiber {i} should have panicked");
                    assert_eq!(v, (0..i % 100).sum::<u64>() + i);
                    values += 1;
                }
                Err(e) => {
                    assert_eq!(i % 2, 0, "fiber {i} should not have panicked: {e:?}");
                    assert!(e.is_panic());
                    let expected = format!("{QUIET}fiber {i}");
                    assert_eq!(
                        support::panic_message(e.into_panic().as_ref()),
                        Some(expected.as_str())
                    );
                    panics += 1;
                }
            }
        }
        println!(
            "{panics} panics and {values} values joined in {:?}",
            start.elapsed()
        );
        assert_eq!((panics, values), (N, N));
        let workers = support::thread_names()
            .into_iter()
            // Workers are "panics-<index>" (beside "panics-blocking" and
            // "panics-monitor").
            .filter(|n| {
                n.strip_prefix("panics-")
                    .is_some_and(|i| i.parse::<usize>().is_ok())
            })
            .count();
        assert_eq!(workers, 2, "both worker threads are alive");
        let sum = rt.block_on(|| {
            let hs: Vec<_> = (0..1_000u64).map(|i| spawn(move || i)).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        assert_eq!(sum, 499_500, "the runtime still runs new fibers");
    });
}

/// A runtime dropped with 100,000 parked fibers, each holding values
/// whose destructors are counted: exactly 100,000 destructor runs by the
/// time the drop returns, and every joiner (plain threads blocked in
/// join, and the test afterwards) sees is_cancelled.
#[test]
fn drop_a_runtime_with_a_hundred_thousand_parked_fibers() {
    let _heavy = support::heavy();
    support::bounded(|| {
        let n = parkable(100_000);
        let rt = Runtime::builder()
            .workers(2)
            .stack_size(64 * 1024)
            .build()
            .unwrap();
        let drops = Counter::new();
        let started = Arc::new(AtomicUsize::new(0));
        let rss_before = rss_mib();
        let start = Instant::now();
        let mut handles: Vec<JoinHandle<()>> = (0..n)
            .map(|i| {
                let (token, started) = (drops.token(), started.clone());
                let payload = vec![i as u8; 32];
                rt.spawn(move || {
                    let _held = (token, payload);
                    started.fetch_add(1, Ordering::SeqCst);
                    match i % 3 {
                        0 => loop {
                            fiber::park();
                        },
                        1 => weft::sleep(Duration::from_secs(3600)),
                        _ => loop {
                            fiber::park_timeout(Duration::from_secs(3600));
                        },
                    }
                })
            })
            .collect();
        support::wait_until(Duration::from_secs(50), "every fiber to park", || {
            started.load(Ordering::SeqCst) == n
        });
        let parked_in = start.elapsed();
        let rss_parked = rss_mib();
        // 8 plain threads, each blocked joining 100 of the handles.
        let joiners: Vec<_> = (0..8)
            .map(|_| {
                let mine: Vec<_> = handles.drain(..100).collect();
                std::thread::spawn(move || {
                    mine.into_iter()
                        .map(|h| h.join())
                        .filter(|r| r.as_ref().is_err_and(weft::JoinError::is_cancelled))
                        .count()
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(drops.get(), 0, "nothing dropped before the drop");
        let drop_start = Instant::now();
        drop(rt);
        let drop_took = drop_start.elapsed();
        let dropped = drops.get();
        println!(
            "{n} fibers parked in {parked_in:?} (RSS {rss_before} -> {rss_parked} MiB); runtime dropped in {drop_took:?}, {dropped} destructor runs"
        );
        assert_eq!(
            dropped, n,
            "exactly one destructor run per fiber when the drop returns"
        );
        let by_threads: usize = joiners.into_iter().map(|j| j.join().unwrap()).sum();
        assert_eq!(
            by_threads, 800,
            "every plain-thread joiner saw is_cancelled"
        );
        let rest = handles.len();
        let cancelled = handles
            .into_iter()
            .map(JoinHandle::join)
            .filter(|r| r.as_ref().is_err_and(weft::JoinError::is_cancelled))
            .count();
        assert_eq!(cancelled, rest);
        assert_eq!(drops.get(), n, "and no second run");
    });
}

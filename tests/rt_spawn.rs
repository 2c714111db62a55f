//! Spawning and joining fibers: values, handles from plain threads, joins
//! from fibers and threads (TESTING.md 8.4), `is_finished`, names and ids,
//! stack sizes, and yield fairness on one worker.
//!
//! Every test runs under a hang guard (`support::bounded`): a lost wake-up
//! fails the test in seconds instead of stalling CI.

mod support;

use std::collections::HashSet;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use weft::fiber::{self, FiberId};
use weft::{Runtime, spawn, yield_now};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("a runtime")
}

#[test]
fn spawn_and_join_return_the_value() {
    support::bounded(|| {
        assert_eq!(weft::run(|| spawn(|| 6 * 7).join().unwrap()), 42);
        let rt = runtime(2);
        // block_on runs a main fiber each time; the runtime stays usable.
        for round in 0..10u64 {
            let got = rt.block_on(move || {
                let hs: Vec<_> = (0..100u64).map(|i| spawn(move || i * round)).collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            });
            assert_eq!(got, 4950 * round);
        }
        // Values that own heap memory come out intact.
        let s = rt.block_on(|| spawn(|| "x".repeat(1000)).join().unwrap());
        assert_eq!(s.len(), 1000);
    });
}

#[test]
fn handle_spawn_from_several_plain_threads() {
    support::bounded(|| {
        let rt = runtime(2);
        const THREADS: u64 = 4;
        const PER_THREAD: u64 = 2_500;
        let total: u64 = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..THREADS)
                .map(|t| {
                    let handle = rt.handle().clone();
                    let rt = &rt;
                    scope.spawn(move || {
                        // Half through a cloned Handle, half through &Runtime.
                        let hs: Vec<_> = (0..PER_THREAD)
                            .map(|i| {
                                let n = t * PER_THREAD + i;
                                if i % 2 == 0 {
                                    handle.spawn(move || n)
                                } else {
                                    rt.spawn(move || n)
                                }
                            })
                            .collect();
                        hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).sum()
        });
        let n = THREADS * PER_THREAD;
        assert_eq!(total, n * (n - 1) / 2);
    });
}

#[test]
fn join_from_a_fiber_and_from_a_plain_thread() {
    support::bounded(|| {
        let rt = runtime(2);
        // From a fiber: the joiner parks until the joined fiber finishes.
        let from_fiber = rt.block_on(|| {
            let slow = spawn(|| {
                weft::sleep(Duration::from_millis(20));
                "slow"
            });
            let fast = spawn(|| "fast");
            (fast.join().unwrap(), slow.join().unwrap())
        });
        assert_eq!(from_fiber, ("fast", "slow"));

        // From plain threads: each blocks on its own handle.
        let handles: Vec<_> = (0..8u32)
            .map(|i| {
                rt.spawn(move || {
                    weft::sleep(Duration::from_millis(u64::from(i)));
                    i * 3
                })
            })
            .collect();
        let joined: Vec<u32> = handles
            .into_iter()
            .map(|h| std::thread::spawn(move || h.join().unwrap()))
            .map(|t| t.join().unwrap())
            .collect();
        assert_eq!(joined, (0..8).map(|i| i * 3).collect::<Vec<_>>());

        // A handle made inside a fiber, joined by a plain thread.
        let inner = rt.block_on(|| spawn(|| 11));
        assert_eq!(inner.join().unwrap(), 11);
    });
}

/// TESTING.md 8.4: with one worker, a fiber that joins another fiber of
/// the same worker must park, not block the thread, or the joined fiber
/// could never run.
#[test]
fn join_on_the_only_worker_does_not_block_it() {
    support::bounded(|| {
        let rt = runtime(1);
        let got = rt.block_on(|| {
            let child = spawn(|| {
                for _ in 0..10 {
                    yield_now();
                }
                weft::sleep(Duration::from_millis(5));
                5
            });
            child.join().unwrap()
        });
        assert_eq!(got, 5);

        // A chain of 1,000 fibers, each joining the one it spawned, all on
        // the one worker: 1,000 parked joiners at the deepest point.
        fn chain(depth: u32) -> u32 {
            if depth == 0 {
                return 0;
            }
            spawn(move || chain(depth - 1)).join().unwrap() + 1
        }
        assert_eq!(rt.block_on(|| chain(1_000)), 1_000);

        // The joined fiber needs the joiner to be parked to make progress:
        // it waits for a flag the joiner's sibling sets.
        let flag = Arc::new(AtomicBool::new(false));
        let got = rt.block_on(move || {
            let f = flag.clone();
            let waiter = spawn(move || {
                while !f.load(Ordering::Acquire) {
                    yield_now();
                }
                "saw the flag"
            });
            let setter = spawn(move || flag.store(true, Ordering::Release));
            let got = waiter.join().unwrap();
            setter.join().unwrap();
            got
        });
        assert_eq!(got, "saw the flag");
    });
}

/// A fiber of one runtime spawns onto another through its handle and
/// joins there: the other runtime's worker wakes the joiner, which lives
/// on the first runtime (a wake that crosses runtimes).
#[test]
fn spawn_and_join_across_runtimes() {
    support::bounded(|| {
        let a = Runtime::builder()
            .workers(1)
            .thread_name("rt-a")
            .build()
            .unwrap();
        let b = Runtime::builder()
            .workers(2)
            .thread_name("rt-b")
            .build()
            .unwrap();
        let b_handle = b.handle().clone();
        let sum = a.block_on(move || {
            let hs: Vec<_> = (0..200u64)
                .map(|i| {
                    b_handle.spawn(move || {
                        if i % 3 == 0 {
                            weft::sleep(Duration::from_millis(1));
                        }
                        (i, std::thread::current().name().map(str::to_owned))
                    })
                })
                .collect();
            hs.into_iter()
                .map(|h| {
                    let (i, name) = h.join().unwrap();
                    assert!(name.is_some_and(|n| n.starts_with("rt-b-")), "ran on b");
                    assert_eq!(std::thread::current().name(), Some("rt-a-0"), "joined on a");
                    i
                })
                .sum::<u64>()
        });
        assert_eq!(sum, 19_900);
    });
}

#[test]
fn is_finished_and_fiber_unpark_through_the_handle() {
    support::bounded(|| {
        let rt = runtime(2);
        let go = Arc::new(AtomicBool::new(false));
        let handle = {
            let go = go.clone();
            rt.spawn(move || {
                while !go.load(Ordering::Acquire) {
                    fiber::park();
                }
                "released"
            })
        };
        // It stays parked: not finished, however long we look.
        for _ in 0..20 {
            assert!(!handle.is_finished());
            std::thread::sleep(Duration::from_millis(1));
        }
        go.store(true, Ordering::Release);
        handle.fiber().unpark();
        support::wait_until(Duration::from_secs(30), "is_finished", || {
            handle.is_finished()
        });
        assert!(handle.is_finished(), "stays finished");
        assert_eq!(handle.join().unwrap(), "released");

        // Inside a fiber, polling is_finished with yield_now.
        let spins = rt.block_on(|| {
            let other = spawn(|| weft::sleep(Duration::from_millis(10)));
            let mut spins = 0u64;
            while !other.is_finished() {
                spins += 1;
                yield_now();
            }
            other.join().unwrap();
            spins
        });
        println!("is_finished polled {spins} times over a 10 ms sleep");
    });
}

#[test]
fn detached_fibers_still_run() {
    support::bounded(|| {
        let rt = runtime(2);
        let ran = Arc::new(AtomicUsize::new(0));
        for _ in 0..1_000 {
            let ran = ran.clone();
            drop(rt.spawn(move || {
                yield_now();
                ran.fetch_add(1, Ordering::SeqCst);
            }));
        }
        rt.block_on({
            let ran = ran.clone();
            move || {
                for _ in 0..100 {
                    let ran = ran.clone();
                    drop(spawn(move || ran.fetch_add(1, Ordering::SeqCst)));
                }
            }
        });
        support::wait_until(Duration::from_secs(30), "1,100 detached fibers", || {
            ran.load(Ordering::SeqCst) == 1_100
        });
    });
}

#[test]
fn names_and_ids() {
    support::bounded(|| {
        let rt = runtime(2);
        rt.block_on(|| {
            let named = fiber::Builder::new()
                .name("parser-7")
                .spawn(|| {
                    let me = fiber::current();
                    (me.name().map(str::to_owned), me.id())
                })
                .unwrap();
            let from_handle = named.fiber();
            assert_eq!(from_handle.name(), Some("parser-7"));
            let handle_id = from_handle.id();
            let (name, id) = named.join().unwrap();
            assert_eq!(name.as_deref(), Some("parser-7"));
            assert_eq!(id, handle_id, "current() and the handle name one fiber");

            let unnamed = spawn(|| fiber::current().name().map(str::to_owned));
            assert_eq!(unnamed.fiber().name(), None);
            assert_eq!(unnamed.join().unwrap(), None);

            // current() twice in one fiber: equal handles, same id.
            assert_eq!(fiber::current(), fiber::current());
            assert_eq!(fiber::current().id(), fiber::current().id());
        });

        // Ids are unique across fibers (and differ from a thread's).
        let ids: Vec<FiberId> = rt.block_on(|| {
            let hs: Vec<_> = (0..1_000)
                .map(|_| spawn(|| fiber::current().id()))
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).collect()
        });
        let unique: HashSet<FiberId> = ids.iter().copied().collect();
        assert_eq!(unique.len(), 1_000, "1,000 fibers, 1,000 ids");
        assert!(ids.iter().all(|id| id.as_u64() != 0));
        let thread_id = fiber::current().id();
        assert!(!unique.contains(&thread_id));
        assert_eq!(fiber::current().id(), thread_id, "stable on a thread");
        let other_thread = std::thread::spawn(|| fiber::current().id()).join().unwrap();
        assert_ne!(other_thread, thread_id);
        assert!(format!("{thread_id:?}").starts_with("FiberId("));
    });
}

/// Stack sizes: a 64 KiB fiber runs; a recursion that needs more than a
/// mebibyte runs on a 4 MiB stack.
#[test]
fn stack_sizes() {
    support::bounded(|| {
        let rt = runtime(2);
        let small = rt.block_on(|| {
            fiber::Builder::new()
                .stack_size(64 * 1024)
                .spawn(|| {
                    let buf = [7u8; 8 * 1024];
                    black_box(&buf).iter().map(|&b| u32::from(b)).sum::<u32>()
                })
                .unwrap()
                .join()
                .unwrap()
        });
        assert_eq!(small, 7 * 8 * 1024);

        /// Recurses `depth` times with a 4 KiB frame; returns the lowest
        /// address one of its frames reached.
        #[inline(never)]
        fn deep(depth: u32) -> usize {
            let mut buf = [0u8; 4096];
            buf[0] = depth as u8;
            let here = black_box(&buf).as_ptr() as usize;
            if depth == 0 {
                return here;
            }
            let lowest = deep(depth - 1);
            black_box(&mut buf)[1] = 1;
            lowest.min(here)
        }
        let used = rt.block_on(|| {
            fiber::Builder::new()
                .name("deep")
                .stack_size(4 * 1024 * 1024)
                .spawn(|| {
                    let marker = 0u8;
                    let top = black_box(&marker) as *const u8 as usize;
                    top - deep(300)
                })
                .unwrap()
                .join()
                .unwrap()
        });
        println!(
            "the 4 MiB fiber's recursion used {} KiB of stack",
            used / 1024
        );
        assert!(
            used > 1024 * 1024,
            "the recursion should need more than 1 MiB (used {used} bytes)"
        );
    });
}

#[test]
fn builder_spawn_on_from_a_plain_thread() {
    support::bounded(|| {
        let rt = runtime(2);
        let h = fiber::Builder::new()
            .name("from-outside")
            .spawn_on(rt.handle(), || fiber::current().name().map(str::to_owned))
            .unwrap();
        assert_eq!(h.join().unwrap().as_deref(), Some("from-outside"));
        // fiber::Builder::spawn inside a fiber needs no handle.
        let v = rt.block_on(|| fiber::Builder::new().spawn(|| 3).unwrap().join().unwrap());
        assert_eq!(v, 3);
    });
}

/// Two fibers that yield in a loop on a one-worker runtime take turns:
/// once both have started, neither runs twice in a row.
#[test]
fn yield_now_interleaves_two_fibers_on_one_worker() {
    support::bounded(|| {
        let rt = runtime(1);
        let log = Arc::new(Mutex::new(Vec::new()));
        let seq = rt.block_on({
            let log = log.clone();
            move || {
                let hs: Vec<_> = ['a', 'b']
                    .into_iter()
                    .map(|me| {
                        let log = log.clone();
                        spawn(move || {
                            for _ in 0..200 {
                                log.lock().unwrap().push(me);
                                yield_now();
                            }
                        })
                    })
                    .collect();
                for h in hs {
                    h.join().unwrap();
                }
                log.lock().unwrap().clone()
            }
        });
        assert_eq!(seq.len(), 400);
        let s: String = seq.iter().collect();
        let first_switch = seq.iter().position(|&c| c != seq[0]).expect("both ran");
        println!(
            "first fiber ran {first_switch} turns alone before the second started; then: {}...",
            &s[first_switch..(first_switch + 20).min(s.len())]
        );
        // From the moment both have started until one is done, they alternate.
        let both = &seq[first_switch - 1..];
        let last_a = both.iter().rposition(|&c| c == 'a').unwrap();
        let last_b = both.iter().rposition(|&c| c == 'b').unwrap();
        let shared_part = &both[..=last_a.min(last_b)];
        for (i, pair) in shared_part.windows(2).enumerate() {
            assert_ne!(
                pair[0], pair[1],
                "ran twice in a row at {i} of the shared part: {s}"
            );
        }
    });
}

/// A fiber spawned onto the worker of a fiber that then yields in a loop
/// runs at the first yield: after a yield the worker looks at its
/// unstarted work before its started fibers (`src/sched/worker.rs`), so
/// `yield_now` lets everything else run. Starvation here would hang the
/// `yield_now` doc example on a one-worker runtime.
#[test]
fn yield_now_lets_a_newly_spawned_fiber_run() {
    support::bounded(|| {
        let rt = runtime(1);
        let yields = rt.block_on(|| {
            let started = Arc::new(AtomicBool::new(false));
            let s = started.clone();
            let child = spawn(move || s.store(true, Ordering::Release));
            let mut yields = 0;
            while !started.load(Ordering::Acquire) {
                yield_now();
                yields += 1;
            }
            child.join().unwrap();
            yields
        });
        println!("the spawned fiber started after {yields} yields of its spawner");
        assert_eq!(
            yields, 1,
            "the spawned fiber runs at its spawner's first yield"
        );
    });
}

/// A task spawned from a plain thread (into the injector) starts within
/// one fairness round while two fibers keep yielding to each other on the
/// only worker: a yield looks at its own worker's deque only, and the
/// loop takes the injector's oldest task once in 61 rounds (tokio's
/// global queue interval, Go's too). Counts the yields made after the
/// spawn returned until the task ran; each fiber may see the flags one
/// yield late.
#[test]
fn a_task_spawned_from_a_thread_starts_within_one_fairness_round_of_yields() {
    const FAIRNESS_INTERVAL: usize = 61;
    support::bounded(|| {
        let rt = runtime(1);
        let handle = rt.handle();
        let injected = Arc::new(AtomicBool::new(false));
        let ran = Arc::new(AtomicBool::new(false));
        let late_yields = Arc::new(AtomicUsize::new(0));
        let yielders: Vec<_> = (0..2)
            .map(|_| {
                let (injected, ran, late) = (injected.clone(), ran.clone(), late_yields.clone());
                handle.spawn(move || {
                    while !ran.load(Ordering::Acquire) {
                        let after_spawn = injected.load(Ordering::Acquire);
                        yield_now();
                        if after_spawn {
                            late.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        // Let both yielders start and settle into handing off to each other.
        std::thread::sleep(Duration::from_millis(20));
        let task = handle.spawn({
            let ran = ran.clone();
            move || ran.store(true, Ordering::Release)
        });
        injected.store(true, Ordering::Release);
        task.join().unwrap();
        for y in yielders {
            y.join().unwrap();
        }
        let late = late_yields.load(Ordering::Relaxed);
        println!("the injected task started after {late} yields");
        assert!(
            late <= FAIRNESS_INTERVAL + 2,
            "{late} yields ran after the spawn before the injected task started"
        );
    });
}

/// The oldest unstarted fiber of a worker's deque still runs while its
/// worker keeps spawning newer ones: the deque is LIFO for its owner, so
/// only the owner's occasional look at its oldest task (one fairness round
/// in 16, `Worker::steal_own_oldest`) starts it on a one-worker runtime.
#[test]
fn the_oldest_unstarted_fiber_runs_while_newer_ones_keep_coming() {
    support::bounded(|| {
        let rt = runtime(1);
        let newer = rt.block_on(|| {
            let started = Arc::new(AtomicBool::new(false));
            let s = started.clone();
            let oldest = spawn(move || s.store(true, Ordering::Release));
            let mut newer = 0u64;
            while !started.load(Ordering::Acquire) {
                // Each yield starts the newest task first: this one.
                drop(spawn(|| {}));
                newer += 1;
                yield_now();
            }
            oldest.join().unwrap();
            newer
        });
        println!("the oldest fiber started after {newer} newer ones");
        assert!(newer >= 1, "it waited behind at least one newer fiber");
    });
}

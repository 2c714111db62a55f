//! Dropping a runtime (TESTING.md 8.5, 8.12): unstarted fibers are
//! cancelled without running, parked and runnable fibers are unwound on
//! their worker (every destructor runs exactly once, joiners see
//! `is_cancelled`), the drop returns promptly, and the threads go away,
//! also when a fiber drops its own runtime or a runtime is one of many.
//! Code that reaches into a runtime during or after its drop (destructors
//! run by the unwind, handles kept past it: 8.2, 8.6) is tested in
//! `rt_shutdown_reentry.rs`.
//!
//! The tests that count threads run in a child process, so that other
//! tests' threads cannot disturb the count.

mod rt_util;
mod support;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rt_util::{PROMPT, assert_cancelled, runtime, timed_drop};
use support::{Counter, DropToken};
use weft::fiber::{self, Fiber};
use weft::runtime::Handle;
use weft::{JoinHandle, Runtime, spawn, yield_now};

/// Blocks until a spawn through `handle` is cancelled on the spot, i.e.
/// until the runtime's drop has begun. (Before that, the spawned probe
/// cannot finish at once: the tests that use this keep every worker busy.)
fn wait_for_shutdown_to_begin(handle: &Handle) {
    support::wait_until(
        Duration::from_secs(30),
        "the runtime's drop to begin",
        || {
            let probe = handle.spawn(|| ());
            probe.is_finished()
        },
    );
}

/// Fibers that never started are cancelled: their closures are dropped
/// exactly once and never run, and their joiners see `is_cancelled`.
#[test]
fn drop_cancels_unstarted_fibers() {
    support::bounded(|| {
        let rt = runtime(1);
        let handle = rt.handle().clone();
        // Keep the only worker busy (blocked, not parked) until the drop
        // has begun, so that nothing queued behind it can start.
        let blocking_started = Arc::new(AtomicBool::new(false));
        let release = Arc::new(AtomicBool::new(false));
        let blocker = {
            let (started, release) = (blocking_started.clone(), release.clone());
            rt.spawn(move || {
                started.store(true, Ordering::Release);
                while !release.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(1));
                }
            })
        };
        support::wait_until(Duration::from_secs(30), "the blocker to start", || {
            blocking_started.load(Ordering::Acquire)
        });
        let ran = Counter::new();
        let drops = Counter::new();
        let queued: Vec<JoinHandle<()>> = (0..100)
            .map(|_| {
                let (ran, token) = (ran.clone(), drops.token());
                rt.spawn(move || {
                    let _token = token;
                    ran.add(1);
                })
            })
            .collect();
        let releaser = std::thread::spawn(move || {
            wait_for_shutdown_to_begin(&handle);
            release.store(true, Ordering::Release);
        });
        let took = timed_drop(rt);
        releaser.join().unwrap();
        println!("drop with 100 unstarted fibers behind a blocked worker: {took:?}");
        assert_eq!(ran.get(), 0, "an unstarted fiber ran after the drop began");
        assert_eq!(drops.get(), 100, "each closure dropped exactly once");
        for h in queued {
            assert_cancelled(h.join(), "an unstarted fiber");
        }
        blocker.join().unwrap();
    });
}

/// TESTING.md 8.5: a runtime dropped while fibers wait in every way a
/// fiber can wait: `park` forever, `sleep` for an hour and for
/// `Duration::MAX`, `park_timeout` of an hour, and `join` of a fiber that
/// never finishes. Joiners are fibers
/// of the same runtime, fibers of another runtime, and plain threads. The
/// drop returns promptly, each fiber's values are dropped exactly once,
/// every joiner sees `is_cancelled`, and the thread count comes back.
#[test]
fn drop_with_fibers_parked_every_way() {
    if !support::is_child() {
        return support::run_child_test("drop_with_fibers_parked_every_way", &[]);
    }
    support::bounded(|| {
        let baseline = support::thread_count();
        let rt = Runtime::builder().workers(2).build().unwrap();
        let other = runtime(1);
        const EACH: usize = 250;
        let drops = Counter::new();
        let started = Arc::new(AtomicUsize::new(0));
        let start = |f: Box<dyn FnOnce() + Send>| {
            let (token, started) = (drops.token(), started.clone());
            rt.spawn(move || {
                let _token = token;
                started.fetch_add(1, Ordering::SeqCst);
                f();
            })
        };
        let mut waiting: Vec<JoinHandle<()>> = Vec::new();
        let mut never_finishing = Vec::new();
        for _ in 0..EACH {
            waiting.push(start(Box::new(|| {
                loop {
                    fiber::park();
                }
            })));
            waiting.push(start(Box::new(|| weft::sleep(Duration::from_secs(3600)))));
            // Longer than the clock can count: until cancelled.
            waiting.push(start(Box::new(|| weft::sleep(Duration::MAX))));
            waiting.push(start(Box::new(|| {
                loop {
                    fiber::park_timeout(Duration::from_secs(3600));
                }
            })));
            let forever = start(Box::new(|| {
                loop {
                    fiber::park();
                }
            }));
            never_finishing.push(forever.fiber());
            waiting.push(start(Box::new(move || {
                let r = forever.join();
                unreachable!("the join of a never-finishing fiber returned {r:?}");
            })));
        }
        let total = 6 * EACH;
        support::wait_until(Duration::from_secs(30), "every fiber to start", || {
            started.load(Ordering::SeqCst) == total
        });
        // Joiners elsewhere: the first 10 handles by plain threads, the
        // next 10 by fibers of another runtime.
        let mut handles = waiting.into_iter();
        let thread_joiners: Vec<_> = handles
            .by_ref()
            .take(10)
            .map(|h| std::thread::spawn(move || h.join().map_err(|e| e.is_cancelled())))
            .collect();
        let fiber_joiners: Vec<_> = handles
            .by_ref()
            .take(10)
            .map(|h| other.spawn(move || h.join().map_err(|e| e.is_cancelled())))
            .collect();
        let rest: Vec<_> = handles.collect();
        std::thread::sleep(Duration::from_millis(20));

        let took = timed_drop(rt);
        println!(
            "dropped a runtime with {total} waiting fibers (park, sleep 1 h and MAX, park_timeout 1 h, join) in {took:?}"
        );
        assert!(took < PROMPT, "the drop took {took:?}");
        assert_eq!(
            drops.get(),
            total,
            "every fiber's values dropped exactly once"
        );

        for j in thread_joiners {
            assert_eq!(j.join().unwrap(), Err(true), "a plain thread's join");
        }
        for j in fiber_joiners {
            assert_eq!(
                j.join().unwrap(),
                Err(true),
                "another runtime's fiber's join"
            );
        }
        for h in rest {
            assert_cancelled(h.join(), "a waiting fiber");
        }
        // Unparking fibers of a dropped runtime is harmless.
        for f in &never_finishing {
            f.unpark();
        }
        drop(other);
        assert_eq!(drops.get(), total, "and nothing was dropped twice");
        let after = support::settle_thread_count(baseline);
        println!("threads: {baseline} before, {after} after");
        assert_eq!(after, baseline, "every runtime thread is gone");
    });
}

/// A fiber spinning on `yield_now` (always runnable, never parked) and a
/// pair that wake each other forever do not keep the runtime from
/// shutting down: they are unwound at their next switch.
#[test]
fn drop_with_fibers_that_never_stop_running() {
    support::bounded(|| {
        for workers in [1, 2] {
            let rt = runtime(workers);
            let drops = Counter::new();
            let started = Counter::new();
            let spinner = {
                let (token, started) = (drops.token(), started.clone());
                rt.spawn(move || {
                    let _token = token;
                    started.add(1);
                    loop {
                        yield_now();
                    }
                })
            };
            // Two fibers that unpark each other forever.
            let slots: Arc<[Mutex<Option<Fiber>>; 2]> =
                Arc::new([Mutex::new(None), Mutex::new(None)]);
            let pair: Vec<_> = (0..2)
                .map(|me| {
                    let (slots, token, started) = (slots.clone(), drops.token(), started.clone());
                    rt.spawn(move || {
                        let _token = token;
                        started.add(1);
                        *slots[me].lock().unwrap() = Some(fiber::current());
                        loop {
                            let other = slots[1 - me].lock().unwrap().clone();
                            if let Some(other) = other {
                                other.unpark();
                            }
                            fiber::park();
                        }
                    })
                })
                .collect();
            support::wait_for_count(&started, 3, "the three fibers to start");
            let took = timed_drop(rt);
            println!(
                "{workers} worker(s): dropped with a yield loop and a wake loop running in {took:?}"
            );
            assert_eq!(drops.get(), 3);
            assert_cancelled(spinner.join(), "the yield loop");
            for h in pair {
                assert_cancelled(h.join(), "the wake loop");
            }
            drop(slots);
        }
    });
}

/// A runtime dropped by one of its own fibers cannot join its workers
/// (one of them is running that fiber): it says so, and the workers wind
/// down on their own. No hang, and the threads do go away.
#[test]
fn a_runtime_dropped_by_its_own_fiber() {
    if !support::is_child() {
        return support::run_child_test("a_runtime_dropped_by_its_own_fiber", &[]);
    }
    support::bounded(|| {
        let baseline = support::thread_count();
        let rt = Arc::new(Mutex::new(Some(runtime(2))));
        let parked_drops = Counter::new();
        let parked = {
            let token = parked_drops.token();
            rt.lock().unwrap().as_ref().unwrap().spawn(move || {
                let _token = token;
                loop {
                    fiber::park();
                }
            })
        };
        let dropper = {
            let rt2 = rt.clone();
            rt.lock().unwrap().as_ref().unwrap().spawn(move || {
                let own = rt2.lock().unwrap().take().unwrap();
                drop(own);
                "dropped"
            })
        };
        assert_eq!(dropper.join().unwrap(), "dropped");
        assert_cancelled(parked.join(), "a parked fiber of the self-dropped runtime");
        assert_eq!(parked_drops.get(), 1);
        let after = support::settle_thread_count(baseline);
        println!("threads: {baseline} before, {after} after");
        assert_eq!(after, baseline);
    });
}

/// TESTING.md 8.12: 100 runtimes created, used (fibers, a sleep, a
/// blocking call) and dropped one after another, then 4 at a time; the
/// thread count is back to its baseline after each phase.
#[test]
fn many_runtimes_sequentially_and_concurrently() {
    if !support::is_child() {
        return support::run_child_test("many_runtimes_sequentially_and_concurrently", &[]);
    }
    support::bounded(|| {
        fn use_once(rt: &Runtime) {
            let sum = rt.block_on(|| {
                let hs: Vec<_> = (0..10u32).map(|i| spawn(move || i)).collect();
                weft::sleep(Duration::from_millis(1));
                let b = weft::blocking(|| 100u32);
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u32>() + b
            });
            assert_eq!(sum, 145);
        }
        let baseline = support::thread_count();
        let start = Instant::now();
        for _ in 0..100 {
            let rt = runtime(2);
            use_once(&rt);
        }
        let sequential = start.elapsed();
        let after_sequential = support::settle_thread_count(baseline);
        let start = Instant::now();
        for _ in 0..5 {
            let threads: Vec<_> = (0..4)
                .map(|_| {
                    std::thread::spawn(|| {
                        let rt = runtime(2);
                        use_once(&rt);
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
        }
        let concurrent = start.elapsed();
        let after_concurrent = support::settle_thread_count(baseline);
        println!(
            "100 runtimes in sequence: {sequential:?}; 5 x 4 concurrent: {concurrent:?}; threads {baseline} -> {after_sequential} -> {after_concurrent}"
        );
        assert_eq!(after_sequential, baseline);
        assert_eq!(after_concurrent, baseline);
    });
}

/// A fiber blocked in a `weft::blocking` job when the runtime is dropped
/// is unwound at once; the drop does not wait for the job (which runs on
/// to its end on its own thread, its result dropped).
#[test]
fn drop_while_a_fiber_waits_for_a_blocking_job() {
    support::bounded(|| {
        let rt = runtime(2);
        let job_done = Arc::new(AtomicBool::new(false));
        let drops = Counter::new();
        let job_started = Counter::new();
        let waiting = {
            let (job_done, token) = (job_done.clone(), drops.token());
            let job_started = job_started.clone();
            rt.spawn(move || {
                let _token = token;
                weft::blocking(move || {
                    job_started.add(1);
                    std::thread::sleep(Duration::from_millis(1_500));
                    job_done.store(true, Ordering::SeqCst);
                })
            })
        };
        support::wait_for_count(&job_started, 1, "the blocking job to start");
        std::thread::sleep(Duration::from_millis(10));
        let took = timed_drop(rt);
        println!("drop with a fiber waiting on a 1.5 s blocking job: {took:?}");
        assert!(
            !job_done.load(Ordering::SeqCst),
            "the drop waited for the blocking job ({took:?})"
        );
        assert_eq!(drops.get(), 1);
        assert_cancelled(waiting.join(), "the fiber in blocking()");
        support::wait_until(Duration::from_secs(30), "the blocking job to end", || {
            job_done.load(Ordering::SeqCst)
        });
    });
}

/// A DropToken is a Counter's token; keep the import used in every build.
#[allow(dead_code, reason = "documents the type the tests count with")]
fn _token_type(t: DropToken) -> DropToken {
    t
}

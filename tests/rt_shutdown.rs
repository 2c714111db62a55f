//! Dropping a runtime (TESTING.md 8.2, 8.5, 8.6, 8.12): unstarted fibers
//! are cancelled without running, parked and runnable fibers are unwound
//! on their worker (every destructor runs exactly once, joiners see
//! `is_cancelled`), the drop returns promptly, a handle kept after the
//! drop spawns fibers that are cancelled at once, and the threads go away.
//!
//! The tests that count threads run in a child process, so that other
//! tests' threads cannot disturb the count.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{Counter, DropToken};
use weft::fiber::{self, Fiber};
use weft::runtime::Handle;
use weft::{JoinHandle, Runtime, spawn, yield_now};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("a runtime")
}

/// Drops `rt`, returning how long the drop took.
fn timed_drop(rt: Runtime) -> Duration {
    let start = Instant::now();
    drop(rt);
    start.elapsed()
}

/// A generous bound for "the drop returned promptly": a drop that waits
/// for a sleeping fiber or a blocked worker would take far longer.
const PROMPT: Duration = Duration::from_secs(10);

fn assert_cancelled<T: std::fmt::Debug>(result: Result<T, weft::JoinError>, what: &str) {
    match result {
        Err(err) if err.is_cancelled() => {
            assert_eq!(
                err.to_string(),
                "the fiber was cancelled: its runtime shut down"
            );
        }
        other => panic!("{what}: expected a cancelled JoinError, got {other:?}"),
    }
}

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

/// Runs `on_drop` when dropped.
struct OnDrop<F: FnMut()>(F);

impl<F: FnMut()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

/// TESTING.md 8.6: a fiber's destructor, run while the shutdown unwinds
/// it, unparks another parked fiber and spawns a new one. No deadlock, no
/// panic; both parked fibers' values are dropped once; the fiber spawned
/// during shutdown is cancelled (its closure dropped once, never run).
#[test]
fn wake_and_spawn_from_a_destructor_during_shutdown() {
    support::bounded(|| {
        for round in 0..40 {
            let workers = 1 + round % 2;
            let rt = runtime(workers);
            let drops = Counter::new();
            let late_ran = Counter::new();
            let late_handle: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::new(Mutex::new(None));
            let started = Counter::new();
            let other = {
                let (token, started) = (drops.token(), started.clone());
                rt.spawn(move || {
                    let _token = token;
                    started.add(1);
                    loop {
                        fiber::park();
                    }
                })
            };
            let other_fiber = other.fiber();
            let waker = {
                let (token, drops, late_ran, late_handle, started) = (
                    drops.token(),
                    drops.clone(),
                    late_ran.clone(),
                    late_handle.clone(),
                    started.clone(),
                );
                rt.spawn(move || {
                    let _token = token;
                    started.add(1);
                    let _on_drop = OnDrop(move || {
                        other_fiber.unpark();
                        let (late_token, late_ran) = (drops.token(), late_ran.clone());
                        let h = spawn(move || {
                            let _late_token = late_token;
                            late_ran.add(1);
                        });
                        *late_handle.lock().unwrap() = Some(h);
                    });
                    loop {
                        fiber::park();
                    }
                })
            };
            support::wait_for_count(&started, 2, "both fibers to start");
            let took = timed_drop(rt);
            assert!(took < PROMPT, "round {round}: the drop took {took:?}");
            assert_eq!(
                drops.get(),
                3,
                "round {round}: two fibers' tokens and the late closure's"
            );
            assert_eq!(
                late_ran.get(),
                0,
                "round {round}: a fiber spawned during shutdown ran"
            );
            assert_cancelled(other.join(), "the woken fiber");
            assert_cancelled(waker.join(), "the waking fiber");
            let late = late_handle
                .lock()
                .unwrap()
                .take()
                .expect("the destructor spawned");
            assert_cancelled(late.join(), "the fiber spawned during shutdown");
        }
    });
}

/// A destructor that joins another fiber while the shutdown unwinds its
/// fiber (a "join on drop" guard). The joined fiber is parked forever, on
/// the same worker or another, and is unwound before or after the guard's
/// fiber (the order fibers started in decides which, on one worker). The
/// join must return `is_cancelled`, not wait for a fiber that only this
/// same shutdown can end.
#[test]
fn join_from_a_destructor_during_shutdown() {
    support::bounded(|| {
        for workers in [1, 2] {
            for guard_first in [false, true] {
                let rt = runtime(workers);
                let outcome: Arc<Mutex<Option<bool>>> = Arc::new(Mutex::new(None));
                let target: Arc<Mutex<Option<JoinHandle<()>>>> = Arc::new(Mutex::new(None));
                let started = Counter::new();
                let start_parked = || {
                    let started = started.clone();
                    let h = rt.spawn(move || {
                        started.add(1);
                        loop {
                            fiber::park();
                        }
                    });
                    *target.lock().unwrap() = Some(h);
                };
                if !guard_first {
                    start_parked();
                    // Started (so it comes first in its worker's list).
                    support::wait_for_count(&started, 1, "the joined fiber to start");
                }
                let guard_fiber = {
                    let (outcome, target, started) =
                        (outcome.clone(), target.clone(), started.clone());
                    rt.spawn(move || {
                        started.add(1);
                        let _join_on_drop = OnDrop(move || {
                            if let Some(h) = target.lock().unwrap().take() {
                                let cancelled = h.join().is_err_and(|e| e.is_cancelled());
                                *outcome.lock().unwrap() = Some(cancelled);
                            }
                        });
                        loop {
                            fiber::park();
                        }
                    })
                };
                if guard_first {
                    support::wait_for_count(&started, 1, "the guard's fiber to start");
                    start_parked();
                }
                support::wait_for_count(&started, 2, "both fibers to start");
                let took = timed_drop(rt);
                println!(
                    "{workers} worker(s), guard's fiber started {}: a destructor's join during shutdown; drop took {took:?}",
                    if guard_first { "first" } else { "second" }
                );
                assert_eq!(
                    *outcome.lock().unwrap(),
                    Some(true),
                    "the destructor's join saw is_cancelled"
                );
                assert_cancelled(guard_fiber.join(), "the fiber with the guard");
            }
        }
    });
}

/// TESTING.md 8.2: a handle kept after the runtime is dropped spawns
/// fibers whose join returns `is_cancelled` at once; the closure is
/// dropped exactly once and never run.
#[test]
fn spawn_through_a_handle_after_the_drop() {
    support::bounded(|| {
        let rt = runtime(2);
        let handle = rt.handle().clone();
        assert_eq!(handle.spawn(|| 1).join().unwrap(), 1);
        drop(rt);
        let ran = Counter::new();
        let drops = Counter::new();
        for i in 0..100 {
            let (ran, token) = (ran.clone(), drops.token());
            let start = Instant::now();
            let h = if i % 2 == 0 {
                handle.spawn(move || {
                    let _token = token;
                    ran.add(1);
                })
            } else {
                fiber::Builder::new()
                    .name("late")
                    .spawn_on(&handle, move || {
                        let _token = token;
                        ran.add(1);
                    })
                    .expect("a valid builder")
            };
            assert!(h.is_finished(), "cancelled on the spot");
            assert_cancelled(h.join(), "a spawn after the drop");
            let took = start.elapsed();
            assert!(
                took < Duration::from_secs(1),
                "spawn and join took {took:?}"
            );
        }
        assert_eq!(ran.get(), 0);
        assert_eq!(drops.get(), 100);
        // From a fiber of another runtime, too.
        let other = runtime(1);
        let handle2 = handle.clone();
        let err = other.block_on(move || handle2.spawn(|| 5).join().unwrap_err());
        assert!(err.is_cancelled());
    });
}

/// TESTING.md 8.2, racing: a thread spawns through a handle while the
/// runtime is dropped, 1,000 times. No hang, no panic; every handle
/// resolves, to the value (the closure ran once) or to `is_cancelled`
/// (it never ran); every closure is dropped exactly once either way.
#[test]
fn spawn_racing_the_drop() {
    support::bounded(|| {
        let iterations = 1_000;
        const PER_ITERATION: usize = 64;
        let (mut ran_total, mut cancelled_total) = (0usize, 0usize);
        for iteration in 0..iterations {
            let rt = runtime(2);
            let handle = rt.handle().clone();
            let ran: Arc<Vec<AtomicU8>> =
                Arc::new((0..PER_ITERATION).map(|_| AtomicU8::new(0)).collect());
            let dropped: Arc<Vec<AtomicU8>> =
                Arc::new((0..PER_ITERATION).map(|_| AtomicU8::new(0)).collect());
            let progress = Arc::new(AtomicUsize::new(0));
            let spawner = {
                let (ran, dropped, progress) = (ran.clone(), dropped.clone(), progress.clone());
                std::thread::spawn(move || {
                    (0..PER_ITERATION)
                        .map(|i| {
                            progress.store(i, Ordering::SeqCst);
                            let token = Tracked(dropped.clone(), i);
                            let ran = ran.clone();
                            handle.spawn(move || {
                                let _token = token;
                                ran[i].fetch_add(1, Ordering::SeqCst);
                                i
                            })
                        })
                        .collect::<Vec<_>>()
                })
            };
            // Drop when the spawner is at a different point each time:
            // before its first spawn, in the middle, after its last.
            let at = iteration % (PER_ITERATION + 8);
            while progress.load(Ordering::SeqCst) < at.min(PER_ITERATION - 1) {
                std::hint::spin_loop();
            }
            drop(rt);
            let handles = spawner.join().expect("the spawning thread panicked");
            for (i, h) in handles.into_iter().enumerate() {
                match h.join() {
                    Ok(v) => {
                        assert_eq!(v, i);
                        assert_eq!(
                            ran[i].load(Ordering::SeqCst),
                            1,
                            "iteration {iteration}: fiber {i}"
                        );
                        ran_total += 1;
                    }
                    Err(e) => {
                        assert!(e.is_cancelled(), "iteration {iteration}: fiber {i}: {e:?}");
                        assert_eq!(
                            ran[i].load(Ordering::SeqCst),
                            0,
                            "iteration {iteration}: fiber {i}"
                        );
                        cancelled_total += 1;
                    }
                }
                assert_eq!(
                    dropped[i].load(Ordering::SeqCst),
                    1,
                    "iteration {iteration}: closure {i} dropped once"
                );
            }
        }
        println!(
            "{iterations} drops raced by a spawning thread: {ran_total} fibers ran, {cancelled_total} were cancelled"
        );
    });
}

/// Marks slot `.1` of `.0` when dropped.
struct Tracked(Arc<Vec<AtomicU8>>, usize);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0[self.1].fetch_add(1, Ordering::SeqCst);
    }
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

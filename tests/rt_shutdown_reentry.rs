//! Code that reaches into a runtime while its drop is under way, or after
//! it (TESTING.md 8.2, 8.6). A destructor that the shutdown runs as it
//! unwinds a fiber may wake a parked fiber, spawn a new one or join
//! another: no deadlock, no panic, the late fiber is cancelled without
//! running and the join sees `is_cancelled`. A `Handle` kept after the
//! drop spawns fibers that are cancelled at once; one racing the drop
//! from another thread gets each handle resolved to its value or to
//! `is_cancelled`, every closure dropped exactly once either way.
//!
//! The drop itself (fibers in every state, threads, many runtimes) is
//! tested in `rt_shutdown.rs`.

mod rt_util;
mod support;

use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rt_util::{PROMPT, assert_cancelled, runtime, timed_drop};
use support::Counter;
use weft::fiber;
use weft::{JoinHandle, spawn};

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

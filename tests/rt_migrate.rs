//! Where started fibers resume: only on their home worker by default; on
//! any worker with the `unsafe` migration opt-in.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use weft::Runtime;

fn runtime(migrate: bool) -> Runtime {
    let builder = Runtime::builder().workers(2);
    let builder = if migrate {
        // SAFETY: the fibers of these tests keep nothing thread-bound
        // across their blocking points.
        unsafe { builder.migrate_started_fibers(true) }
    } else {
        builder
    };
    builder.build().expect("a runtime")
}

fn thread_name() -> String {
    std::thread::current().name().unwrap_or("?").to_owned()
}

/// A fiber parks on worker A; a fiber on A then blocks A's thread for
/// `block`; the parked fiber is unparked from a plain thread meanwhile.
/// Returns (thread before the park, thread after, how long the resume
/// took after the unpark).
fn park_while_home_is_blocked(migrate: bool, block: Duration) -> (String, String, Duration) {
    let rt = runtime(migrate);
    let parked = Arc::new(Barrier::new(2));
    let woken_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let (fiber_tx, fiber_rx) = std::sync::mpsc::channel();
    let sleeper = {
        let (parked, woken_at) = (parked.clone(), woken_at.clone());
        rt.spawn(move || {
            let before = thread_name();
            fiber_tx.send(weft::fiber::current()).unwrap();
            // Block the home worker after we park, from a fiber that must
            // start on the same worker: spawned from here, it lands on our
            // worker's own queue, and the other worker is kept away by the
            // barrier below until we are parked.
            let blocker = weft::spawn(move || std::thread::sleep(block));
            parked.wait();
            weft::fiber::park();
            let resumed = woken_at.lock().unwrap().expect("unparked").elapsed();
            drop(blocker);
            (before, thread_name(), resumed)
        })
    };
    let fiber = fiber_rx.recv().unwrap();
    parked.wait();
    // Give the blocker time to start on the sleeper's worker.
    std::thread::sleep(Duration::from_millis(100));
    *woken_at.lock().unwrap() = Some(Instant::now());
    fiber.unpark();
    sleeper.join().expect("the sleeper finished")
}

#[test]
fn without_the_opt_in_a_fiber_waits_for_its_home_worker() {
    let block = Duration::from_millis(600);
    let (before, after, waited) = park_while_home_is_blocked(false, block);
    println!("home {before}, resumed on {after} after {waited:?}");
    assert_eq!(before, after, "a started fiber resumes on its home worker");
}

#[test]
fn with_the_opt_in_another_worker_resumes_a_fiber_whose_home_is_blocked() {
    let block = Duration::from_secs(2);
    let (before, after, waited) = park_while_home_is_blocked(true, block);
    println!("home {before}, resumed on {after} after {waited:?}");
    // The blocker may have started on either worker; when it shares the
    // sleeper's worker, the other worker must take the woken fiber long
    // before the block ends.
    if before != after {
        assert!(
            waited < block,
            "resumed elsewhere only after the block: {waited:?}"
        );
    } else {
        println!("the blocker ran on the other worker; nothing to migrate this time");
    }
}

#[test]
fn migration_keeps_exact_counts_under_load() {
    let rt = runtime(true);
    let total = rt.block_on(|| {
        let fibers: Vec<_> = (0..2_000u64)
            .map(|i| {
                weft::spawn(move || {
                    let mut acc = 0;
                    for step in 0..20 {
                        weft::yield_now();
                        if step % 7 == 0 {
                            weft::sleep(Duration::from_micros(50));
                        }
                        acc += step;
                    }
                    acc + i
                })
            })
            .collect();
        fibers.into_iter().map(|f| f.join().unwrap()).sum::<u64>()
    });
    assert_eq!(total, 2_000 * 190 + 1_999 * 2_000 / 2);
}

#[test]
fn migration_park_unpark_ping_pong_across_threads() {
    let rt = runtime(true);
    let rounds = 20_000u64;
    let count = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let c = count.clone();
    let d = done.clone();
    rt.block_on(move || {
        let me = weft::fiber::current();
        let pinger = weft::spawn(move || {
            for _ in 0..rounds {
                c.fetch_add(1, Ordering::AcqRel);
                me.unpark();
                weft::yield_now();
            }
            d.store(true, Ordering::Release);
            me.unpark();
        });
        while !done.load(Ordering::Acquire) {
            weft::fiber::park();
        }
        pinger.join().unwrap();
    });
    assert_eq!(count.load(Ordering::Acquire), rounds);
}

#[test]
fn dropping_a_migrating_runtime_unwinds_parked_fibers() {
    struct Counted(Arc<AtomicU64>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }
    let drops = Arc::new(AtomicU64::new(0));
    let rt = runtime(true);
    let handles: Vec<_> = (0..1_000)
        .map(|_| {
            let guard = Counted(drops.clone());
            rt.spawn(move || {
                let _guard = guard;
                loop {
                    weft::fiber::park();
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    drop(rt);
    assert_eq!(drops.load(Ordering::Relaxed), 1_000);
    for h in handles {
        assert!(h.join().unwrap_err().is_cancelled());
    }
}

//! Mutex, Condvar, RwLock, Semaphore, WaitGroup, Barrier: exclusion,
//! hand-off order, waking, panics while held, fibers and threads mixed.

mod sync_util;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sync_util::{runtime, scale, watchdog};
use weft::sync::{AcquireError, Barrier, Condvar, Mutex, RwLock, Semaphore, WaitGroup};

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn mutex_excludes_fibers_and_threads_holding_across_parks() {
    let _w = watchdog(
        "mutex_excludes_fibers_and_threads_holding_across_parks",
        LIMIT,
    );
    let rt = runtime(2);
    let n = scale(2000, 300);
    let lock = Arc::new(Mutex::new((0usize, false)));
    let bump = |lock: &Mutex<(usize, bool)>| {
        let mut g = lock.lock();
        assert!(!g.1, "two holders at once");
        g.1 = true;
        weft::yield_now(); // a park with the guard held
        g.0 += 1;
        g.1 = false;
    };
    let fibers: Vec<_> = (0..8)
        .map(|_| {
            let lock = lock.clone();
            rt.spawn(move || (0..n).for_each(|_| bump(&lock)))
        })
        .collect();
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let lock = lock.clone();
            std::thread::spawn(move || (0..n).for_each(|_| bump(&lock)))
        })
        .collect();
    fibers.into_iter().for_each(|f| f.join().unwrap());
    threads.into_iter().for_each(|t| t.join().unwrap());
    assert_eq!(lock.lock().0, 10 * n);
}

#[test]
fn mutex_hands_off_in_arrival_order() {
    let _w = watchdog("mutex_hands_off_in_arrival_order", LIMIT);
    let rt = runtime(1);
    let order = rt.block_on(|| {
        let lock = Arc::new(Mutex::new(Vec::new()));
        let held = lock.lock();
        let (started_tx, started_rx) = weft::chan::unbounded();
        let waiters: Vec<_> = (0..5)
            .map(|i| {
                let (lock, started) = (lock.clone(), started_tx.clone());
                let h = weft::spawn(move || {
                    started.send(()).unwrap();
                    lock.lock().push(i);
                });
                started_rx.recv().unwrap(); // it is queued when we run again
                h
            })
            .collect();
        // A newcomer's try_lock cannot barge in while others wait.
        drop(held);
        assert!(lock.try_lock().is_none(), "handed off, not released");
        waiters.into_iter().for_each(|h| h.join().unwrap());
        lock.lock().clone()
    });
    assert_eq!(order, [0, 1, 2, 3, 4]);
}

#[test]
fn mutex_is_not_poisoned_by_a_panicking_holder() {
    let _w = watchdog("mutex_is_not_poisoned_by_a_panicking_holder", LIMIT);
    let rt = runtime(2);
    rt.block_on(|| {
        let lock = Arc::new(Mutex::new(1));
        let l = lock.clone();
        let panicked = weft::spawn(move || {
            let mut g = l.lock();
            *g = 2;
            panic!("holder panics");
        })
        .join();
        assert!(panicked.unwrap_err().is_panic());
        assert_eq!(*lock.lock(), 2, "released, with the value as left");
        assert!(!lock.is_locked());
    });
}

#[test]
fn condvar_notify_one_and_all() {
    let _w = watchdog("condvar_notify_one_and_all", LIMIT);
    let rt = runtime(2);
    rt.block_on(|| {
        let state = Arc::new((Mutex::new(0u32), Condvar::new()));
        let woke = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let (state, woke) = (state.clone(), woke.clone());
                weft::spawn(move || {
                    let g = state.1.wait_while(state.0.lock(), |n| *n == 0);
                    woke.fetch_add(1, Ordering::SeqCst);
                    drop(g);
                })
            })
            .collect();
        // A thread waiter too.
        let thread = {
            let state = state.clone();
            std::thread::spawn(move || {
                let g = state.1.wait_while(state.0.lock(), |n| *n < 2);
                *g
            })
        };
        weft::sleep(Duration::from_millis(20));
        assert_eq!(woke.load(Ordering::SeqCst), 0);
        *state.0.lock() = 1;
        state.1.notify_one();
        state.1.notify_all();
        waiters.into_iter().for_each(|w| w.join().unwrap());
        assert_eq!(woke.load(Ordering::SeqCst), 4);
        *state.0.lock() = 2;
        state.1.notify_all();
        assert_eq!(thread.join().unwrap(), 2);
        let (g, res) = state
            .1
            .wait_timeout(state.0.lock(), Duration::from_millis(10));
        assert!(res.timed_out());
        drop(g);
    });
}

#[test]
fn rwlock_readers_share_writers_exclude_and_are_not_starved() {
    let _w = watchdog(
        "rwlock_readers_share_writers_exclude_and_are_not_starved",
        LIMIT,
    );
    // One worker: a fiber that said it is about to wait runs on into its
    // wait and parks before we run again, so the order is deterministic.
    let rt = runtime(1);
    rt.block_on(|| {
        let lock = Arc::new(RwLock::new(0u64));
        let (started_tx, started_rx) = weft::chan::unbounded::<()>();
        let r1 = lock.read();
        let r2 = lock.try_read().expect("readers share");
        assert!(lock.try_write().is_none());
        // A writer queues behind the readers...
        let writer = {
            let (lock, started) = (lock.clone(), started_tx.clone());
            weft::spawn(move || {
                started.send(()).unwrap();
                *lock.write() += 1;
            })
        };
        started_rx.recv().unwrap();
        // ...and a later reader queues behind the writer (no starvation).
        assert!(
            lock.try_read().is_none(),
            "a queued writer holds back readers"
        );
        let reader = {
            let (lock, started) = (lock.clone(), started_tx.clone());
            weft::spawn(move || {
                started.send(()).unwrap();
                *lock.read()
            })
        };
        started_rx.recv().unwrap();
        assert!(!writer.is_finished() && !reader.is_finished());
        drop((r1, r2));
        writer.join().unwrap();
        assert_eq!(
            reader.join().unwrap(),
            1,
            "the reader came after the writer"
        );
        // Many readers and writers, mixed.
        let n = scale(500, 100);
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let lock = lock.clone();
                weft::spawn(move || {
                    for _ in 0..n {
                        if i % 2 == 0 {
                            let mut w = lock.write();
                            let before = *w;
                            weft::yield_now();
                            *w = before + 1;
                        } else {
                            let r = lock.read();
                            let v = *r;
                            weft::yield_now();
                            assert_eq!(*r, v, "no writer while reading");
                        }
                    }
                })
            })
            .collect();
        tasks.into_iter().for_each(|t| t.join().unwrap());
        assert_eq!(*lock.read(), 1 + 3 * n as u64);
    });
}

#[test]
fn semaphore_bounds_concurrency_and_closes() {
    let _w = watchdog("semaphore_bounds_concurrency_and_closes", LIMIT);
    // One worker: see rwlock_readers_share_writers_exclude_and_are_not_starved.
    let rt = runtime(1);
    rt.block_on(|| {
        let sem = Arc::new(Semaphore::new(3));
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let fibers: Vec<_> = (0..50)
            .map(|_| {
                let (sem, now, peak) = (sem.clone(), now.clone(), peak.clone());
                weft::spawn(move || {
                    let _p = sem.acquire().unwrap();
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    weft::sleep(Duration::from_millis(1));
                    now.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        fibers.into_iter().for_each(|f| f.join().unwrap());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
        assert_eq!(sem.available_permits(), 3);
        // A big request at the front is not overtaken by small ones.
        sem.acquire_many(3).unwrap().forget();
        let (started_tx, started_rx) = weft::chan::unbounded::<()>();
        let big = {
            let (sem, started) = (sem.clone(), started_tx.clone());
            weft::spawn(move || {
                started.send(()).unwrap();
                sem.acquire_many(2).map(|p| p.num_permits())
            })
        };
        started_rx.recv().unwrap();
        let small = {
            let (sem, started) = (sem.clone(), started_tx.clone());
            weft::spawn(move || {
                started.send(()).unwrap();
                sem.acquire().map(|p| p.num_permits())
            })
        };
        started_rx.recv().unwrap();
        sem.add_permits(1);
        weft::yield_now();
        assert!(
            !small.is_finished() && !big.is_finished(),
            "one permit: not enough for the front, and nobody overtakes it"
        );
        assert_eq!(sem.available_permits(), 1);
        sem.add_permits(1);
        assert_eq!(big.join().unwrap(), Ok(2));
        assert_eq!(small.join().unwrap(), Ok(1));
        assert_eq!(sem.available_permits(), 2);
        sem.add_permits(1);
        // Close wakes waiters with an error.
        let _held = sem.acquire_many(3).unwrap();
        let waiter = {
            let sem = sem.clone();
            weft::spawn(move || sem.acquire().map(drop))
        };
        weft::sleep(Duration::from_millis(5));
        sem.close();
        assert_eq!(waiter.join().unwrap(), Err(AcquireError::Closed));
    });
}

#[test]
fn wait_group_waits_for_every_member_even_panicking_ones() {
    let _w = watchdog(
        "wait_group_waits_for_every_member_even_panicking_ones",
        LIMIT,
    );
    let rt = runtime(2);
    rt.block_on(|| {
        let wg = WaitGroup::new();
        let done = Arc::new(AtomicUsize::new(0));
        for i in 0..100 {
            let (wg, done) = (wg.clone(), done.clone());
            weft::spawn(move || {
                let _member = wg;
                weft::sleep(Duration::from_millis(1));
                if i == 50 {
                    panic!("a member panics");
                }
                done.fetch_add(1, Ordering::SeqCst);
            });
        }
        let thread_member = wg.clone();
        let t = std::thread::spawn(move || drop(thread_member));
        wg.wait();
        assert_eq!(done.load(Ordering::SeqCst), 99);
        t.join().unwrap();
    });
}

#[test]
fn barrier_releases_all_with_one_leader_per_round() {
    let _w = watchdog("barrier_releases_all_with_one_leader_per_round", LIMIT);
    let rt = runtime(2);
    let barrier = Arc::new(Barrier::new(5));
    let leaders = Arc::new(AtomicUsize::new(0));
    let fibers: Vec<_> = (0..4)
        .map(|_| {
            let (barrier, leaders) = (barrier.clone(), leaders.clone());
            rt.spawn(move || {
                for _ in 0..10 {
                    if barrier.wait().is_leader() {
                        leaders.fetch_add(1, Ordering::SeqCst);
                    }
                }
            })
        })
        .collect();
    for _ in 0..10 {
        if barrier.wait().is_leader() {
            leaders.fetch_add(1, Ordering::SeqCst);
        }
    }
    fibers.into_iter().for_each(|f| f.join().unwrap());
    assert_eq!(leaders.load(Ordering::SeqCst), 10);
}

#[test]
fn a_lock_waiter_parks_its_fiber_only() {
    let _w = watchdog("a_lock_waiter_parks_its_fiber_only", LIMIT);
    // One worker: a waiter that blocked the thread would deadlock.
    let rt = runtime(1);
    rt.block_on(|| {
        let lock = Arc::new(Mutex::new(()));
        let flag = Arc::new(AtomicBool::new(false));
        let g = lock.lock();
        let waiter = {
            let (lock, flag) = (lock.clone(), flag.clone());
            weft::spawn(move || {
                let _g = lock.lock();
                flag.load(Ordering::SeqCst)
            })
        };
        let start = Instant::now();
        weft::sleep(Duration::from_millis(10));
        assert!(start.elapsed() < Duration::from_secs(5));
        flag.store(true, Ordering::SeqCst);
        drop(g);
        assert!(waiter.join().unwrap());
    });
}

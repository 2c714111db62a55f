//! Runtime shutdown with fibers waiting in `sync` (TESTING.md 8.5, 8.6):
//! they are unwound (their destructors run, values are dropped exactly
//! once), the drop does not hang, and blocking calls made by destructors
//! during the unwinding give up instead of spinning.

mod support;
mod sync_util;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use sync_util::{Counted, count, counter, runtime, watchdog};
use weft::chan::{RecvError, bounded, unbounded};
use weft::sync::{Barrier, Condvar, Mutex, RwLock, Semaphore, WaitGroup};

const LIMIT: Duration = Duration::from_secs(60);

/// Waits until `n` fibers have reported in (they are about to wait).
fn wait_for(started: &Arc<AtomicUsize>, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while started.load(Ordering::SeqCst) < n {
        assert!(Instant::now() < deadline, "the fibers did not start");
        std::thread::sleep(Duration::from_millis(1));
    }
    // Let the last ones reach their park.
    std::thread::sleep(Duration::from_millis(20));
}

#[test]
fn fibers_blocked_in_channel_ops_are_unwound_at_shutdown() {
    let _w = watchdog(
        "fibers_blocked_in_channel_ops_are_unwound_at_shutdown",
        LIMIT,
    );
    let rt = runtime(2);
    let drops = counter();
    let started = Arc::new(AtomicUsize::new(0));
    let (recv_tx, recv_rx) = bounded::<Counted>(0);
    let (send_tx, send_rx) = bounded::<Counted>(1);
    send_tx.send(Counted::new(usize::MAX, &drops)).unwrap();
    // 1,000 fibers blocked in recv, each holding a value of its own.
    for i in 0..1000 {
        let (rx, drops, started) = (recv_rx.clone(), drops.clone(), started.clone());
        rt.spawn(move || {
            let _mine = Counted::new(i, &drops);
            started.fetch_add(1, Ordering::SeqCst);
            let _ = rx.recv();
            unreachable!("nothing is ever sent");
        });
    }
    // 1,000 blocked in send on a full channel: their values sit in their
    // packets, on their stacks.
    for i in 0..1000 {
        let (tx, drops, started) = (send_tx.clone(), drops.clone(), started.clone());
        rt.spawn(move || {
            started.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send(Counted::new(1000 + i, &drops));
            unreachable!("nobody receives");
        });
    }
    wait_for(&started, 2000);
    assert_eq!(count(&drops), 0);
    let start = Instant::now();
    drop(rt);
    println!("runtime dropped in {:?}", start.elapsed());
    assert_eq!(count(&drops), 2000, "each fiber's value dropped once");
    drop((recv_tx, recv_rx, send_tx));
    assert_eq!(count(&drops), 2000);
    drop(send_rx);
    assert_eq!(
        count(&drops),
        2001,
        "the queued value went with the channel"
    );
}

#[test]
fn fibers_blocked_in_locks_and_friends_are_unwound_at_shutdown() {
    let _w = watchdog(
        "fibers_blocked_in_locks_and_friends_are_unwound_at_shutdown",
        LIMIT,
    );
    let rt = runtime(2);
    let drops = counter();
    let started = Arc::new(AtomicUsize::new(0));
    let mutex = Arc::new(Mutex::new(()));
    let rwlock = Arc::new(RwLock::new(()));
    let condvar = Arc::new((Mutex::new(false), Condvar::new()));
    let sem = Arc::new(Semaphore::new(0));
    let barrier = Arc::new(Barrier::new(1000));
    let wg = WaitGroup::new();
    let (_never_tx, never_rx) = unbounded::<u8>();
    // The holders: a fiber holds the mutex and a write lock, parked.
    {
        let (mutex, rwlock, never_rx, started) = (
            mutex.clone(),
            rwlock.clone(),
            never_rx.clone(),
            started.clone(),
        );
        rt.spawn(move || {
            let _m = mutex.lock();
            let _w = rwlock.write();
            started.fetch_add(1, Ordering::SeqCst);
            let _ = never_rx.recv();
        });
    }
    wait_for(&started, 1);
    type Wait = Box<dyn FnOnce() + Send>;
    let waits: Vec<Box<dyn Fn() -> Wait>> = vec![
        Box::new(|| {
            let m = mutex.clone();
            Box::new(move || drop(m.lock()))
        }),
        Box::new(|| {
            let l = rwlock.clone();
            Box::new(move || drop(l.read()))
        }),
        Box::new(|| {
            let c = condvar.clone();
            Box::new(move || drop(c.1.wait_while(c.0.lock(), |ready| !*ready)))
        }),
        Box::new(|| {
            let s = sem.clone();
            Box::new(move || drop(s.acquire()))
        }),
        Box::new(|| {
            let b = barrier.clone();
            Box::new(move || {
                let _ = b.wait();
            })
        }),
        Box::new(|| {
            // The test keeps `wg` (a member that never leaves) to the end.
            let w = wg.clone();
            Box::new(move || w.wait())
        }),
        Box::new(|| {
            let rx = never_rx.clone();
            Box::new(move || {
                let (_t, other) = bounded::<u8>(0);
                weft::select! {
                    recv(rx) -> _v => {},
                    recv(other) -> _v => {},
                }
            })
        }),
    ];
    let kinds = waits.len();
    for i in 0..(kinds * 20) {
        let wait = waits[i % kinds]();
        let (drops, started) = (drops.clone(), started.clone());
        rt.spawn(move || {
            let _mine = Counted::new(i, &drops);
            started.fetch_add(1, Ordering::SeqCst);
            wait();
        });
    }
    wait_for(&started, 1 + kinds * 20);
    let start = Instant::now();
    drop(rt);
    println!("runtime dropped in {:?}", start.elapsed());
    assert_eq!(count(&drops), kinds * 20, "every waiter was unwound once");
    // The locks are free again: the unwinding released or passed them on.
    assert!(mutex.try_lock().is_some());
    assert!(rwlock.try_write().is_some());
    assert_eq!(sem.available_permits(), 0);
    drop(waits);
    drop(wg);
}

/// Records what a channel operation in a destructor returned.
struct BlocksInDrop {
    recv: weft::chan::Receiver<u8>,
    send: weft::chan::Sender<u8>,
    outcome: Arc<std::sync::Mutex<Vec<String>>>,
}

impl Drop for BlocksInDrop {
    fn drop(&mut self) {
        let start = Instant::now();
        let recv = self.recv.recv();
        let send = self.send.send(1);
        let recv_timeout = self.recv.recv_timeout(Duration::from_secs(3600));
        let mut out = self.outcome.lock().unwrap();
        out.push(format!("{recv:?} {send:?} {recv_timeout:?}"));
        assert!(start.elapsed() < Duration::from_secs(5), "gave up at once");
    }
}

#[test]
fn channel_ops_in_destructors_during_shutdown_give_up_instead_of_hanging() {
    let _w = watchdog(
        "channel_ops_in_destructors_during_shutdown_give_up_instead_of_hanging",
        LIMIT,
    );
    let outcome = Arc::new(std::sync::Mutex::new(Vec::new()));
    let started = Arc::new(AtomicUsize::new(0));
    let rt = runtime(2);
    let (keep_tx, empty_rx) = bounded::<u8>(0);
    let (full_tx, keep_rx) = bounded::<u8>(0);
    // One of them also wakes another parked fiber from its destructor
    // (TESTING.md 8.6): an unpark and a send during shutdown.
    let (wake_tx, wake_rx) = unbounded::<u8>();
    let woken = rt.spawn(move || wake_rx.recv());
    struct Wakes(weft::chan::Sender<u8>);
    impl Drop for Wakes {
        fn drop(&mut self) {
            let _ = self.0.send(9);
        }
    }
    for _ in 0..10 {
        let guard = BlocksInDrop {
            recv: empty_rx.clone(),
            send: full_tx.clone(),
            outcome: outcome.clone(),
        };
        let (wakes, started) = (Wakes(wake_tx.clone()), started.clone());
        rt.spawn(move || {
            let _guard = guard;
            let _wakes = wakes;
            started.fetch_add(1, Ordering::SeqCst);
            weft::fiber::park();
            weft::fiber::park();
            unreachable!("never unparked");
        });
    }
    wait_for(&started, 10);
    drop(rt);
    let out = outcome.lock().unwrap().clone();
    assert_eq!(out.len(), 10, "every destructor ran");
    for line in out {
        assert_eq!(line, "Err(RecvError) Err(SendError(..)) Err(Disconnected)");
    }
    // The woken fiber got a value or was unwound; either way it finished.
    let _ = woken.join();
    drop((keep_tx, keep_rx, wake_tx));
    assert_eq!(
        RecvError.to_string(),
        "receiving on an empty and disconnected channel"
    );
}

#[test]
fn shutdown_with_blocked_fibers_repeated() {
    let _w = watchdog("shutdown_with_blocked_fibers_repeated", LIMIT);
    let drops = counter();
    for round in 0..50 {
        let rt = runtime(2);
        let (tx, rx) = bounded::<Counted>(0);
        let lock = Arc::new(Mutex::new(0));
        let held = lock.lock();
        for i in 0..20 {
            let (rx, tx, lock) = (rx.clone(), tx.clone(), lock.clone());
            // Made before the spawn: a fiber that never started drops it
            // with its closure.
            let value = Counted::new(i, &drops);
            rt.spawn(move || match i % 3 {
                0 => drop(rx.recv()),
                1 => drop(tx.send(value)),
                _ => drop(lock.lock()),
            });
        }
        std::thread::sleep(Duration::from_millis(2));
        drop(rt);
        drop(held);
        assert!(lock.try_lock().is_some(), "round {round}");
    }
    // Values sent were dropped by their receivers; the rest with their
    // fibers (unwound, or never started): each exactly once.
    assert_eq!(count(&drops), 50 * 20);
}

#[test]
fn a_contended_lock_in_a_destructor_during_shutdown_aborts_with_a_message() {
    if support::is_child() {
        // A thread holds the lock, so it can never be granted while the
        // fiber below is unwound.
        let lock = Arc::new(Mutex::new(()));
        let (held_tx, held_rx) = std::sync::mpsc::channel();
        {
            let lock = lock.clone();
            std::thread::spawn(move || {
                let _g = lock.lock();
                held_tx.send(()).unwrap();
                std::thread::sleep(Duration::from_secs(60));
            });
        }
        held_rx.recv().unwrap();
        struct LocksInDrop(Arc<Mutex<()>>);
        impl Drop for LocksInDrop {
            fn drop(&mut self) {
                drop(self.0.lock());
            }
        }
        let rt = runtime(1);
        let started = Arc::new(AtomicUsize::new(0));
        let s = started.clone();
        rt.spawn(move || {
            let _guard = LocksInDrop(lock);
            s.fetch_add(1, Ordering::SeqCst);
            weft::fiber::park();
            weft::fiber::park();
        });
        wait_for(&started, 1);
        drop(rt);
        unreachable!("the shutdown must abort");
    }
    let _w = watchdog(
        "a_contended_lock_in_a_destructor_during_shutdown_aborts_with_a_message",
        LIMIT,
    );
    let out = support::run_child(
        "a_contended_lock_in_a_destructor_during_shutdown_aborts_with_a_message",
        &[],
    );
    let stderr = support::stderr(&out);
    assert_eq!(
        support::exit_signal(&out),
        Some(libc::SIGABRT),
        "{}",
        support::describe(&out)
    );
    assert!(
        stderr.contains("Mutex::lock would have to wait while the runtime is shutting down"),
        "{}",
        support::describe(&out)
    );
}

//! `fiber_local!`: each fiber its own value, made on first use and dropped
//! when the fiber's body ends (before its joiner hears of the end, also
//! for a panicking or cancelled fiber); off a fiber, a thread-local.
//!
//! Each test uses its own statics: the tests of a file run in parallel.

mod support;

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::QUIET;
use weft::{Runtime, fiber_local, spawn};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("a runtime")
}

fiber_local! {
    static MINE: Cell<u64> = Cell::new(u64::MAX);
    static LOG: RefCell<Vec<u64>> = RefCell::new(Vec::new());
}

#[test]
fn each_fiber_sees_its_own_value() {
    support::bounded(|| {
        let rt = runtime(2);
        let wrong = rt.block_on(|| {
            let hs: Vec<_> = (0..1_000u64)
                .map(|i| {
                    spawn(move || {
                        assert_eq!(MINE.with(Cell::get), u64::MAX, "a fresh value per fiber");
                        MINE.with(|m| m.set(i));
                        LOG.with(|l| l.borrow_mut().push(i));
                        // Other fibers of the same worker run meanwhile.
                        weft::yield_now();
                        if i % 10 == 0 {
                            weft::sleep(Duration::from_millis(1));
                        }
                        LOG.with(|l| l.borrow_mut().push(i));
                        let ok = MINE.with(Cell::get) == i && LOG.with(|l| *l.borrow() == [i, i]);
                        usize::from(!ok)
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
        });
        assert_eq!(wrong, 0, "fibers saw each other's values");
    });
}

static MADE: AtomicUsize = AtomicUsize::new(0);
static DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Tracked(u32);

impl Tracked {
    fn new() -> Tracked {
        MADE.fetch_add(1, Ordering::SeqCst);
        Tracked(0)
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        DROPPED.fetch_add(1, Ordering::SeqCst);
    }
}

fiber_local! {
    static TRACKED: Tracked = Tracked::new();
}

/// Values are made on first use only, and dropped when the body ends:
/// by the time `join` returns, whether the body returned or panicked.
/// Fibers unwound at shutdown drop theirs too. (One test owns these
/// counters.)
#[test]
fn values_are_made_lazily_and_dropped_when_the_body_ends() {
    support::bounded(|| {
        support::quiet_panics();
        let rt = runtime(2);
        let (made, dropped) = rt.block_on(|| {
            let users: Vec<_> = (0..100)
                .map(|_| {
                    spawn(|| {
                        TRACKED.with(|t| t.0);
                        weft::yield_now();
                    })
                })
                .collect();
            let idle: Vec<_> = (0..50).map(|_| spawn(weft::yield_now)).collect();
            for h in users.into_iter().chain(idle) {
                h.join().unwrap();
            }
            // The main fiber has not touched TRACKED: no value of its own.
            (MADE.load(Ordering::SeqCst), DROPPED.load(Ordering::SeqCst))
        });
        assert_eq!(made, 100, "only fibers that used it made one");
        assert_eq!(dropped, 100, "each dropped by the time its join returned");

        // A panicking fiber's value is dropped before the joiner hears.
        let err = rt.block_on(|| {
            spawn(|| -> () {
                TRACKED.with(|t| t.0);
                panic!("{QUIET}with a fiber-local alive")
            })
            .join()
            .unwrap_err()
        });
        assert!(err.is_panic());
        assert_eq!(DROPPED.load(Ordering::SeqCst), 101);

        // Parked fibers unwound at shutdown drop theirs.
        let parked: Vec<_> = (0..10)
            .map(|_| {
                rt.spawn(|| {
                    TRACKED.with(|t| t.0);
                    loop {
                        weft::fiber::park();
                    }
                })
            })
            .collect();
        support::wait_until(Duration::from_secs(30), "10 more values", || {
            MADE.load(Ordering::SeqCst) == 111
        });
        drop(rt);
        assert_eq!(DROPPED.load(Ordering::SeqCst), 111);
        for h in parked {
            assert!(h.join().unwrap_err().is_cancelled());
        }
    });
}

fiber_local! {
    static PER_THREAD: Cell<u32> = Cell::new(0);
}

/// Off a fiber the key is an ordinary thread-local: the value persists
/// between calls on one thread, and each thread has its own, including a
/// blocking-pool thread running a job.
#[test]
fn off_a_fiber_it_is_a_thread_local() {
    support::bounded(|| {
        PER_THREAD.with(|v| v.set(v.get() + 1));
        PER_THREAD.with(|v| v.set(v.get() + 1));
        assert_eq!(PER_THREAD.with(Cell::get), 2);
        let other = std::thread::spawn(|| {
            PER_THREAD.with(|v| v.set(v.get() + 10));
            PER_THREAD.with(Cell::get)
        })
        .join()
        .unwrap();
        assert_eq!(other, 10);
        assert_eq!(
            PER_THREAD.with(Cell::get),
            2,
            "unchanged by the other thread"
        );

        let rt = runtime(1);
        let (in_fiber, in_pool_twice) = rt.block_on(|| {
            PER_THREAD.with(|v| v.set(100));
            let pool = || {
                weft::blocking(|| {
                    PER_THREAD.with(|v| v.set(v.get() + 1));
                    PER_THREAD.with(Cell::get)
                })
            };
            let first = pool();
            let second = pool();
            (PER_THREAD.with(Cell::get), (first, second))
        });
        assert_eq!(in_fiber, 100);
        // One blocking thread ran both jobs (max 512, but the first is idle
        // again by the second): its thread-local counted both.
        assert!(
            in_pool_twice == (1, 2) || in_pool_twice == (1, 1),
            "{in_pool_twice:?}"
        );
        assert_eq!(
            PER_THREAD.with(Cell::get),
            2,
            "the test thread's value is its own"
        );
    });
}

static BASE_INITS: AtomicUsize = AtomicUsize::new(0);

fiber_local! {
    static BASE: u64 = {
        BASE_INITS.fetch_add(1, Ordering::SeqCst);
        40
    };
    static DERIVED: u64 = BASE.with(|b| *b) + 2;
}

/// An initialiser may read another fiber-local.
#[test]
fn an_initialiser_may_use_another_fiber_local() {
    support::bounded(|| {
        let rt = runtime(2);
        let got = rt.block_on(|| {
            let hs: Vec<_> = (0..10).map(|_| spawn(|| DERIVED.with(|d| *d))).collect();
            hs.into_iter()
                .map(|h| h.join().unwrap())
                .collect::<Vec<_>>()
        });
        assert_eq!(got, vec![42; 10]);
        assert_eq!(BASE_INITS.load(Ordering::SeqCst), 10, "one BASE per fiber");
    });
}

struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        panic!("{QUIET}a fiber-local's destructor");
    }
}

fiber_local! {
    static BOMB: PanicsOnDrop = PanicsOnDrop;
}

/// A fiber-local whose destructor panics: reported to the joiner like a
/// panic of the body, and the worker goes on.
#[test]
fn a_panicking_fiber_local_destructor_is_the_fibers_panic() {
    support::bounded(|| {
        support::quiet_panics();
        let rt = runtime(1);
        let err = rt.block_on(|| spawn(|| BOMB.with(|_| 5)).join().unwrap_err());
        assert!(err.is_panic());
        assert_eq!(
            support::panic_message(err.into_panic().as_ref()),
            Some(format!("{QUIET}a fiber-local's destructor").as_str())
        );
        assert_eq!(rt.block_on(|| spawn(|| 1).join().unwrap()), 1);
    });
}

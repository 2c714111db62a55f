//! Panics in fibers (TESTING.md 3.1-3.5): payloads reach the joiner
//! intact, the fiber's destructors have run by then, the worker survives,
//! and user values whose `Drop` panics never unwind a worker.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind, panic_any};
use std::time::Duration;

use support::{Counter, QUIET};
use weft::{JoinError, Runtime, spawn};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("a runtime")
}

/// 3.1 and 3.3: `&str`, `String` and non-string payloads come out of
/// `join` as the fiber threw them.
#[test]
fn panic_payloads_reach_the_joiner() {
    support::bounded(|| {
        let rt = runtime(2);
        let err = rt.block_on(|| spawn(|| -> u32 { panic!("boom") }).join().unwrap_err());
        assert!(err.is_panic() && !err.is_cancelled() && !err.is_no_stack());
        assert_eq!(err.to_string(), "the fiber panicked: boom");
        assert_eq!(format!("{err:?}"), "JoinError::Panic(\"boom\")");
        assert_eq!(err.into_panic().downcast_ref::<&str>(), Some(&"boom"));

        let err = rt.block_on(|| {
            // A runtime argument: literal ones are folded into a &str.
            let n = std::hint::black_box(7);
            spawn(move || -> u32 { panic!("boom {n}") })
                .join()
                .unwrap_err()
        });
        assert_eq!(
            err.into_panic().downcast::<String>().map(|s| *s).ok(),
            Some("boom 7".to_owned())
        );

        let err = rt.block_on(|| spawn(|| panic_any(42u64)).join().unwrap_err());
        assert_eq!(err.to_string(), "the fiber panicked");
        let payload = err.try_into_panic().expect("a panic");
        assert_eq!(payload.downcast::<u64>().map(|b| *b).ok(), Some(42));

        // Joined from a plain thread, after the fiber parked once.
        let h = rt.spawn(|| {
            weft::sleep(Duration::from_millis(5));
            panic_any(String::from("late"))
        });
        let err: JoinError = h.join().unwrap_err();
        assert_eq!(
            err.into_panic()
                .downcast_ref::<String>()
                .map(String::as_str),
            Some("late")
        );
    });
}

/// 3.2: every destructor of the panicking fiber (its captures and the
/// values on its stack) has run before `join` returns.
#[test]
fn destructors_run_before_join_returns() {
    support::bounded(|| {
        support::quiet_panics();
        let rt = runtime(2);
        let drops = Counter::new();
        let (captured, on_stack) = (drops.token(), drops.clone());
        let h = rt.spawn(move || {
            let _captured = captured;
            let _local = on_stack.token();
            weft::yield_now();
            weft::sleep(Duration::from_millis(1));
            panic!("{QUIET}with two values alive");
        });
        let err = h.join().unwrap_err();
        assert_eq!(drops.get(), 2, "both destructors ran before join returned");
        assert!(err.is_panic());
    });
}

/// 3.1: the worker survives: on a one-worker runtime, the next 1,000
/// fibers run after a panic, and `block_on` re-raises its main fiber's
/// panic in the caller with the payload.
#[test]
fn the_worker_survives_a_panic() {
    support::bounded(|| {
        support::quiet_panics();
        let rt = runtime(1);
        for round in 0..3 {
            let err = rt.block_on(move || {
                spawn(move || -> () { panic!("{QUIET}round {round}") })
                    .join()
                    .unwrap_err()
            });
            assert!(err.is_panic());
            let sum = rt.block_on(|| {
                let hs: Vec<_> = (0..1_000u64).map(|i| spawn(move || i)).collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            });
            assert_eq!(sum, 499_500);
        }
        let caught = catch_unwind(AssertUnwindSafe(|| {
            rt.block_on(|| -> () { panic!("{QUIET}in the main fiber") })
        }))
        .unwrap_err();
        assert_eq!(
            support::panic_message(caught.as_ref()),
            Some(format!("{QUIET}in the main fiber").as_str())
        );
        assert_eq!(rt.block_on(|| 5), 5, "the runtime still runs fibers");
    });
}

struct PanicOnDrop(&'static str);

impl Drop for PanicOnDrop {
    fn drop(&mut self) {
        panic!("{QUIET}drop of {} panicked", self.0);
    }
}

/// 3.4: a detached fiber whose result, or whose panic payload, panics
/// when dropped. The runtime drops those values itself (nobody will join),
/// often on a worker; the panic must be contained there, never unwind the
/// worker (which would strand the fibers that live on it and hang the
/// next `block_on` on a one-worker runtime).
#[test]
fn a_result_or_payload_that_panics_on_drop_does_not_kill_the_worker() {
    support::bounded(|| {
        support::quiet_panics();
        let rt = runtime(1);
        for _ in 0..10 {
            drop(rt.spawn(|| PanicOnDrop("a detached fiber's result")));
            drop(rt.spawn(|| panic_any(PanicOnDrop("a detached fiber's panic payload"))));
        }
        // Also when the handle is dropped while the fiber is parked.
        let parked = rt.spawn(|| {
            weft::sleep(Duration::from_millis(10));
            PanicOnDrop("a result nobody waits for any more")
        });
        drop(parked);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(rt.block_on(|| spawn(|| 1).join().unwrap()), 1);

        // A joiner that takes such a payload gets it like any other; what
        // happens when it drops it is its own business (as with std).
        let err = rt.block_on(|| {
            spawn(|| panic_any(PanicOnDrop("joined payload")))
                .join()
                .unwrap_err()
        });
        let payload = err.into_panic();
        assert!(payload.is::<PanicOnDrop>());
        assert!(catch_unwind(AssertUnwindSafe(move || drop(payload))).is_err());
        drop(rt);
    });
}

/// 3.5: a destructor that panics while a parked fiber is being unwound at
/// shutdown is a panic during a panic: Rust aborts the process, with a
/// message, as it would on a thread. Defined, and no hang.
#[test]
fn a_destructor_that_panics_during_the_shutdown_unwind_aborts() {
    if support::is_child() {
        let rt = runtime(1);
        let started = Counter::new();
        let h = {
            let started = started.clone();
            rt.spawn(move || {
                let _bomb = PanicOnDrop("a parked fiber's local, at shutdown");
                started.add(1);
                loop {
                    weft::fiber::park();
                }
            })
        };
        support::wait_for_count(&started, 1, "the fiber to start");
        drop(rt);
        drop(h);
        println!("the runtime drop returned");
        return;
    }
    let out = support::run_child_with_limit(
        "a_destructor_that_panics_during_the_shutdown_unwind_aborts",
        &[],
        support::HANG_LIMIT,
    );
    let err = support::stderr(&out);
    assert_eq!(
        support::exit_signal(&out),
        Some(libc::SIGABRT),
        "{}",
        support::describe(&out)
    );
    assert!(
        err.contains("panic in a destructor during cleanup"),
        "{}",
        support::describe(&out)
    );
}

//! Bad input and misuse (TESTING.md 8.7, 8.9-8.11): spawning off a
//! runtime, the fiber API off a fiber (std's behaviour, by design),
//! `block_on` inside a fiber, bad builder settings, and a worker blocked
//! by a fiber that does not park.

mod support;

use std::io::ErrorKind;
use std::panic::catch_unwind;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use weft::fiber::{self, Fiber};
use weft::runtime::{Builder, Handle};
use weft::{Runtime, spawn};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .expect("a runtime")
}

fn panic_text(payload: Box<dyn std::any::Any + Send>) -> String {
    support::panic_message(payload.as_ref())
        .expect("a string payload")
        .to_owned()
}

/// The "no runtime here" message says how to start one.
fn assert_names_the_fix(message: &str) {
    for fix in ["weft::run", "Runtime::new", "Handle"] {
        assert!(
            message.contains(fix),
            "the message should mention {fix}: {message}"
        );
    }
}

/// `weft::spawn` and `Handle::current` off a runtime panic, saying how to
/// start one; `fiber::Builder::spawn` returns that as an error;
/// `Handle::try_current` is `None`. The same on a plain thread while a
/// runtime exists elsewhere.
#[test]
fn spawn_off_a_runtime_says_how_to_start_one() {
    support::bounded(|| {
        let check = || {
            let payload = catch_unwind(|| drop(spawn(|| 1))).unwrap_err();
            assert_names_the_fix(&panic_text(payload));
            let payload = catch_unwind(Handle::current).unwrap_err();
            assert_names_the_fix(&panic_text(payload));
            assert!(Handle::try_current().is_none());
            let err = fiber::Builder::new().spawn(|| 1).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert_names_the_fix(&err.to_string());
        };
        check();
        let rt = runtime(1);
        std::thread::spawn(check).join().unwrap();
        // On the runtime, all three work.
        rt.block_on(|| {
            assert!(Handle::try_current().is_some());
            let h = Handle::current();
            assert_eq!(h.spawn(|| 2).join().unwrap(), 2);
            assert_eq!(
                fiber::Builder::new().spawn(|| 3).unwrap().join().unwrap(),
                3
            );
        });
    });
}

/// TESTING.md 8.9, by design: off a fiber, `park`, `park_timeout`,
/// `sleep`, `yield_now` and `current` behave like their `std::thread`
/// counterparts on the calling thread, with no runtime and on a plain
/// thread while a runtime exists.
#[test]
fn fiber_functions_off_a_fiber_behave_like_std() {
    support::bounded(|| {
        let check = |label: &'static str| {
            // current(): the thread's name, a stable id.
            let me = fiber::current();
            assert_eq!(me.name(), std::thread::current().name(), "{label}");
            assert_eq!(me.id(), fiber::current().id(), "{label}");
            // park/unpark: another thread unparks us through the Fiber.
            let flag = Arc::new(AtomicBool::new(false));
            let unparker = {
                let (flag, me) = (flag.clone(), me.clone());
                std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(5));
                    flag.store(true, Ordering::Release);
                    me.unpark();
                })
            };
            while !flag.load(Ordering::Acquire) {
                fiber::park();
            }
            unparker.join().unwrap();
            // A std unpark of the thread wakes fiber::park too: same token.
            std::thread::current().unpark();
            fiber::park();
            // park_timeout, sleep, yield_now.
            let start = Instant::now();
            fiber::park_timeout(Duration::from_millis(20));
            let parked = start.elapsed();
            let start = Instant::now();
            weft::sleep(Duration::from_millis(20));
            let slept = start.elapsed();
            weft::yield_now();
            println!("{label}: park_timeout(20 ms) {parked:?}, sleep(20 ms) {slept:?}");
            assert!(slept >= Duration::from_millis(20), "{label}");
            assert!(parked < Duration::from_secs(10), "{label}");
        };
        let check_here = move || check("no runtime");
        std::thread::Builder::new()
            .name("plain-1".into())
            .spawn(check_here)
            .unwrap()
            .join()
            .unwrap();
        let _rt = runtime(2);
        std::thread::Builder::new()
            .name("plain-2".into())
            .spawn(move || check("a runtime elsewhere"))
            .unwrap()
            .join()
            .unwrap();
        // A thread's Fiber is not any fiber's.
        let t = fiber::current();
        let f: Fiber = _rt.block_on(fiber::current);
        assert_ne!(t, f);
    });
}

/// TESTING.md 8.10: `block_on` inside a fiber would block the worker; it
/// panics with a message naming the fix. The same for another runtime's
/// `block_on` and for `weft::run`, which would nest a runtime.
#[test]
fn block_on_inside_a_fiber_panics_naming_the_fix() {
    support::bounded(|| {
        support::quiet_panics();
        let rt = Arc::new(runtime(2));
        let other = Arc::new(runtime(1));
        let messages: Vec<String> = {
            let (rt2, other2) = (rt.clone(), other.clone());
            rt.block_on(move || {
                let own = spawn(move || rt2.block_on(|| 1)).join();
                let foreign = spawn(move || other2.block_on(|| 2)).join();
                let nested = spawn(|| weft::run(|| 3)).join();
                [own, foreign, nested]
                    .into_iter()
                    .map(|r| panic_text(r.expect_err("block_on inside a fiber").into_panic()))
                    .collect()
            })
        };
        for message in &messages {
            assert!(
                message.contains("Cannot block_on inside a weft fiber"),
                "{message}"
            );
            assert!(
                message.contains("weft::spawn") && message.contains("join"),
                "names the fix: {message}"
            );
        }
        // The runtimes are fine afterwards.
        assert_eq!(rt.block_on(|| spawn(|| 4).join().unwrap()), 4);
        assert_eq!(other.block_on(|| 5), 5);
        // block_on from the blocking pool (not a worker) is allowed.
        let other2 = other.clone();
        assert_eq!(
            rt.block_on(move || weft::blocking(move || other2.block_on(|| 6))),
            6
        );
    });
}

fn build_err(builder: Builder) -> std::io::Error {
    builder.build().map(drop).expect_err("a bad setting")
}

/// TESTING.md 8.11: each bad setting is a clear `InvalidInput` error at
/// `build()` (or at spawn, for a fiber's own stack size) whose message
/// says what to use instead.
#[test]
fn bad_builder_settings_are_clear_errors() {
    support::bounded(|| {
        let cases: Vec<(&str, Builder, &[&str])> = vec![
            ("workers(0)", Runtime::builder().workers(0), &["workers(1)"]),
            (
                "max_blocking_threads(0)",
                Runtime::builder().max_blocking_threads(0),
                &["max_blocking_threads(1)"],
            ),
            (
                "stack_size(0)",
                Runtime::builder().stack_size(0),
                &["use at least 16 KiB"],
            ),
            (
                "stack_size(1)",
                Runtime::builder().stack_size(1),
                &["too small", "use at least 16 KiB"],
            ),
            (
                "stack_size(usize::MAX)",
                Runtime::builder().stack_size(usize::MAX),
                &["above the maximum", "use a smaller stack_size"],
            ),
        ];
        for (what, builder, fixes) in cases {
            let err = build_err(builder);
            let message = err.to_string();
            println!("{what}: {message}");
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{what}");
            for fix in fixes {
                assert!(message.contains(fix), "{what}: {message}");
            }
        }
        // A fiber's own stack size: an error from spawn, the runtime runs on.
        let rt = runtime(1);
        for (size, fix) in [
            (0, "use at least 16 KiB"),
            (1, "use at least 16 KiB"),
            (usize::MAX, "use a smaller stack_size"),
        ] {
            let err = fiber::Builder::new()
                .stack_size(size)
                .spawn_on(rt.handle(), || ())
                .map(drop)
                .expect_err("a bad stack size");
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains(fix), "stack_size({size}): {err}");
            let err = rt.block_on(move || {
                fiber::Builder::new()
                    .stack_size(size)
                    .spawn(|| ())
                    .map(drop)
                    .expect_err("a bad stack size")
            });
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
        }
        assert_eq!(rt.block_on(|| 1), 1);
    });
}

/// Settings at their edges: one blocking thread kept for no time, a custom
/// thread name (workers `<prefix>-<index>`, blocking threads
/// `<prefix>-blocking`) are valid; `max_stacks(0)`, which would let no
/// fiber run, is refused at build time with an error naming the fix.
#[test]
fn edge_settings() {
    support::bounded(|| {
        let rt = Runtime::builder()
            .workers(1)
            .max_blocking_threads(1)
            .blocking_keep_alive(Duration::ZERO)
            .thread_name("edge")
            .build()
            .unwrap();
        let names = rt.block_on(|| {
            let worker = std::thread::current().name().map(str::to_owned);
            let pool: Vec<_> = (0..3)
                .map(|_| weft::blocking(|| std::thread::current().name().map(str::to_owned)))
                .collect();
            (worker, pool)
        });
        assert_eq!(names.0.as_deref(), Some("edge-0"));
        assert!(
            names
                .1
                .iter()
                .all(|n| n.as_deref() == Some("edge-blocking")),
            "{names:?}"
        );

        let err = Runtime::builder()
            .workers(1)
            .max_stacks(0)
            .build()
            .unwrap_err();
        println!("max_stacks(0): {err}");
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
        assert!(
            err.to_string().contains("max_stacks(0)") && err.to_string().contains("at least 1"),
            "{err}"
        );
    });
}

/// TESTING.md 8.7: a fiber blocks its worker thread (std::thread::sleep,
/// not a fiber sleep) right after spawning 100 fibers onto that worker's
/// queue. With 2 workers the other one steals them: all 100 finish while
/// the block still holds. With 1 worker nothing runs until it ends (a
/// cooperative scheduler; documented by this test), then all do.
#[test]
fn a_blocked_worker_does_not_hold_its_queue() {
    support::bounded(|| {
        for (workers, block) in [(2, Duration::from_secs(2)), (1, Duration::from_millis(300))] {
            let rt = runtime(workers);
            let done = Arc::new(AtomicUsize::new(0));
            let done_while_blocked = Arc::new(OnceLock::new());
            let spawned_at = Arc::new(OnceLock::new());
            let unblocked = Arc::new(AtomicBool::new(false));
            let blocker = {
                let (done, done_while_blocked, spawned_at, unblocked) = (
                    done.clone(),
                    done_while_blocked.clone(),
                    spawned_at.clone(),
                    unblocked.clone(),
                );
                rt.spawn(move || {
                    spawned_at.set(Instant::now()).unwrap();
                    let hs: Vec<_> = (0..100)
                        .map(|_| {
                            let done = done.clone();
                            spawn(move || done.fetch_add(1, Ordering::SeqCst))
                        })
                        .collect();
                    std::thread::sleep(block);
                    done_while_blocked.set(done.load(Ordering::SeqCst)).unwrap();
                    unblocked.store(true, Ordering::SeqCst);
                    hs.len()
                })
            };
            if workers == 2 {
                support::wait_until(Duration::from_secs(30), "100 fibers", || {
                    done.load(Ordering::SeqCst) == 100
                });
                let took = spawned_at.get().expect("spawned").elapsed();
                let still_blocked = !unblocked.load(Ordering::SeqCst);
                println!(
                    "2 workers: 100 fibers queued behind a {block:?} block finished {took:?} after the spawn"
                );
                assert!(
                    still_blocked,
                    "they should finish while the block holds (took {took:?})"
                );
            }
            assert_eq!(blocker.join().unwrap(), 100);
            support::wait_until(Duration::from_secs(30), "100 fibers", || {
                done.load(Ordering::SeqCst) == 100
            });
            let during = *done_while_blocked.get().unwrap();
            println!("{workers} worker(s): {during} of 100 finished during the block");
            if workers == 1 {
                assert_eq!(during, 0, "one blocked worker runs nothing else");
            } else {
                assert_eq!(during, 100);
            }
        }
    });
}

/// The stall monitor (see `sched/monitor.rs`): a fiber that blocks its
/// worker for longer than a second is reported on stderr, once, by id,
/// with the fix; fibers that keep yielding for as long, and an idle
/// runtime, are not. In a child process, to read its stderr.
#[test]
fn a_fiber_that_holds_its_worker_is_reported_once() {
    if support::is_child() {
        let rt = Runtime::builder().workers(2).build().unwrap();
        // Busy for 1.5 s, but yielding: every worker makes progress.
        rt.block_on(|| {
            let start = Instant::now();
            while start.elapsed() < Duration::from_millis(1_500) {
                weft::yield_now();
            }
        });
        // Idle for as long.
        std::thread::sleep(Duration::from_millis(1_500));
        // Blocks its worker for 2.5 s.
        let blocker = rt.spawn(|| {
            println!("blocker={}", fiber::current().id().as_u64());
            std::thread::sleep(Duration::from_millis(2_500));
        });
        blocker.join().unwrap();
        return;
    }
    let out = support::run_child("a_fiber_that_holds_its_worker_is_reported_once", &[]);
    assert!(out.status.success(), "{}", support::describe(&out));
    let stdout = support::stdout(&out);
    // libtest prints the test's name on the same line, before it.
    let id: String = stdout
        .split("blocker=")
        .nth(1)
        .unwrap_or_else(|| panic!("the child printed its id: {}", support::describe(&out)))
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let stderr = support::stderr(&out);
    let reports: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("has held worker"))
        .collect();
    assert_eq!(
        reports.len(),
        1,
        "one report, for the blocker only:\n{stderr}"
    );
    assert!(
        reports[0].starts_with(&format!("weft: fiber {id} has held worker ")),
        "it names the fiber: {}",
        reports[0]
    );
    assert!(
        reports[0].contains("weft::blocking"),
        "it names the fix: {}",
        reports[0]
    );
}

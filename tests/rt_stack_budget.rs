//! The stack budget, `runtime::Builder::max_stacks` ("at most n fiber
//! stacks exist at once"): past it, exactly the fibers over the budget
//! cannot start, each with an `is_no_stack` error that names the budget,
//! and the runtime runs new fibers as usual once stacks come back; the
//! budget also covers fibers built with their own stack size, and stacks
//! left idle on one worker do not keep fibers on another from starting.
//!
//! Each test holds `support::heavy()` (as the stress tests in
//! `rt_stress.rs` do: the budget tests park fibers on every worker) and
//! runs under the hang guard.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use weft::fiber;
use weft::{JoinHandle, Runtime, spawn};

/// Spawns `n` fibers from outside that each park until `go` is set;
/// waits until every one has started or failed to start, and returns
/// their handles and how many started.
fn park_many(rt: &Runtime, n: usize, go: &Arc<AtomicBool>) -> (Vec<JoinHandle<()>>, usize) {
    let started = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let (go, started) = (go.clone(), started.clone());
            rt.spawn(move || {
                started.fetch_add(1, Ordering::SeqCst);
                while !go.load(Ordering::Acquire) {
                    fiber::park();
                }
            })
        })
        .collect();
    support::wait_until(
        Duration::from_secs(30),
        "every fiber to start or fail",
        || started.load(Ordering::SeqCst) + handles.iter().filter(|h| h.is_finished()).count() == n,
    );
    let started = started.load(Ordering::SeqCst);
    (handles, started)
}

/// Releases fibers parked by [`park_many`] and returns how many of them
/// could not start, checking that each of those says why.
fn release(go: &AtomicBool, handles: Vec<JoinHandle<()>>) -> usize {
    go.store(true, Ordering::Release);
    for h in &handles {
        h.fiber().unpark();
    }
    let mut no_stack = 0;
    for h in handles {
        if let Err(e) = h.join() {
            assert!(e.is_no_stack(), "{e:?}");
            let message = e.to_string();
            assert!(
                message.contains("max_stacks") && message.contains("budget"),
                "{message}"
            );
            no_stack += 1;
        }
    }
    no_stack
}

/// The stack budget: with `max_stacks(N)` and N + 10 fibers parked at
/// once, exactly 10 cannot start (`is_no_stack`, with a message naming
/// the budget); once the parked ones finish, new fibers start fine. On one
/// worker the whole budget is used again, three times over.
#[test]
fn the_stack_budget() {
    let _heavy = support::heavy();
    support::bounded(|| {
        const N: usize = 100;
        for workers in [1, 2] {
            let rt = Runtime::builder()
                .workers(workers)
                .max_stacks(N)
                .build()
                .unwrap();
            let waves = if workers == 1 { 3 } else { 1 };
            for wave in 0..waves {
                let go = Arc::new(AtomicBool::new(false));
                let (handles, started) = park_many(&rt, N + 10, &go);
                let failed_early = handles.iter().filter(|h| h.is_finished()).count();
                let no_stack = release(&go, handles);
                println!(
                    "{workers} worker(s), wave {wave}: {started} of {} fibers started under max_stacks({N}), {no_stack} could not",
                    N + 10
                );
                assert_eq!(failed_early, 10);
                assert_eq!(no_stack, 10, "exactly the 10 over the budget");
                assert_eq!(started, N);
            }
            // Afterwards, fibers run as usual.
            let sum = rt.block_on(|| {
                let hs: Vec<_> = (0..1_000u64).map(|i| spawn(move || i)).collect();
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            });
            assert_eq!(sum, 499_500);
        }
    });
}

/// `max_stacks` bounds every fiber stack of the runtime ("at most n fiber
/// stacks exist at once", `runtime::Builder::max_stacks`), including
/// those of fibers built with their own `fiber::Builder::stack_size`.
///
/// A regression test: a fiber with its own stack size used to get its
/// stack from a separate pool that `Shared::pool_for` (`src/sched/mod.rs`)
/// built without any budget, so all N + 10 of them started. Every pool of
/// a runtime now shares one budget (`stack_pool/budget.rs`).
#[test]
fn the_stack_budget_covers_fibers_with_their_own_stack_size() {
    let _heavy = support::heavy();
    support::bounded(|| {
        const N: usize = 20;
        let rt = Runtime::builder().workers(1).max_stacks(N).build().unwrap();
        let go = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..N + 10)
            .map(|_| {
                let (go, started) = (go.clone(), started.clone());
                fiber::Builder::new()
                    .stack_size(64 * 1024)
                    .spawn_on(rt.handle(), move || {
                        started.fetch_add(1, Ordering::SeqCst);
                        while !go.load(Ordering::Acquire) {
                            fiber::park();
                        }
                    })
                    .unwrap()
            })
            .collect();
        support::wait_until(
            Duration::from_secs(30),
            "every fiber to start or fail",
            || {
                started.load(Ordering::SeqCst) + handles.iter().filter(|h| h.is_finished()).count()
                    == N + 10
            },
        );
        let started = started.load(Ordering::SeqCst);
        let no_stack = release(&go, handles);
        println!(
            "max_stacks({N}), {} fibers with 64 KiB stacks: {started} started, {no_stack} could not",
            N + 10
        );
        assert_eq!(
            started, N,
            "no more than max_stacks fibers hold stacks at once"
        );
        assert_eq!(no_stack, 10);
    });
}

/// Keeps its worker thread blocked (not parked) until released.
fn block_a_worker(rt: &Runtime) -> (JoinHandle<()>, Arc<AtomicBool>) {
    let (started, release) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let h = {
        let (started, release) = (started.clone(), release.clone());
        rt.spawn(move || {
            started.store(true, Ordering::Release);
            while !release.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    support::wait_until(Duration::from_secs(30), "the blocker to start", || {
        started.load(Ordering::Acquire)
    });
    (h, release)
}

/// With two workers, stacks that went idle on one worker must not keep
/// fibers on the other from starting while fewer than `max_stacks` are in
/// use. Made deterministic by blocking one worker at a time: 99 fibers
/// run (and finish) on worker A while B is blocked; then A is blocked and
/// 98 fibers, fewer than the budget left, are started on B.
///
/// A regression test: the idle stacks sat in A's per-thread stack cache
/// (`stack_pool/cache.rs`, up to 32) and still counted against the budget
/// while B could not take them, so B's fibers failed with "stack budget
/// exhausted ... (N of them idle in other threads' caches)". The budget
/// now counts stacks in use, not stacks carved (`stack_pool/budget.rs`).
#[test]
fn idle_stacks_on_one_worker_do_not_starve_another() {
    let _heavy = support::heavy();
    support::bounded(|| {
        const BUDGET: usize = 100;
        let rt = Runtime::builder()
            .workers(2)
            .max_stacks(BUDGET)
            .build()
            .unwrap();
        // Worker B blocked (one stack): 99 fibers start on A, then finish.
        let (blocker_b, release_b) = block_a_worker(&rt);
        let go = Arc::new(AtomicBool::new(false));
        let (handles, started) = park_many(&rt, BUDGET - 1, &go);
        assert_eq!(started, BUDGET - 1, "the whole budget, used on A");
        assert_eq!(release(&go, handles), 0);
        // Worker A blocked (a stack from A's cache); B free again.
        let (blocker_a, release_a) = block_a_worker(&rt);
        release_b.store(true, Ordering::Release);
        blocker_b.join().unwrap();
        // 98 fibers on B: with A's blocker, 99 stacks in use, 1 to spare.
        let go = Arc::new(AtomicBool::new(false));
        let (handles, started) = park_many(&rt, BUDGET - 2, &go);
        let no_stack = release(&go, handles);
        release_a.store(true, Ordering::Release);
        blocker_a.join().unwrap();
        println!(
            "after 99 fibers ran on one worker, {started} of {} started on the other under max_stacks({BUDGET}); {no_stack} could not",
            BUDGET - 2
        );
        assert_eq!(
            no_stack,
            0,
            "fibers failed to start with at most {} of {BUDGET} stacks in use",
            BUDGET - 1
        );
    });
}

//! `weft::blocking`: the value comes back, a panic is re-raised in the
//! fiber, `weft::spawn` works inside, jobs beyond `max_blocking_threads`
//! queue, the worker stays free meanwhile, and off a fiber the closure
//! simply runs on the calling thread.

mod support;

use std::panic::{AssertUnwindSafe, catch_unwind, panic_any};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use support::QUIET;
use weft::{Runtime, spawn};

fn runtime(workers: usize, blocking_threads: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .max_blocking_threads(blocking_threads)
        .build()
        .expect("a runtime")
}

#[test]
fn returns_the_value_from_another_thread() {
    support::bounded(|| {
        let rt = runtime(2, 4);
        let (value, worker, pool) = rt.block_on(|| {
            let worker = std::thread::current().id();
            let (value, pool): (String, ThreadId) =
                weft::blocking(|| ("from the pool".to_owned(), std::thread::current().id()));
            (value, worker, pool)
        });
        assert_eq!(value, "from the pool");
        assert_ne!(worker, pool, "the closure ran on a blocking thread");
    });
}

#[test]
fn a_panic_is_re_raised_in_the_fiber() {
    support::bounded(|| {
        support::quiet_panics();
        let rt = runtime(2, 4);
        // Caught inside the fiber: the payload is the closure's.
        let caught = rt.block_on(|| {
            let r = catch_unwind(AssertUnwindSafe(|| {
                weft::blocking(|| -> u32 { panic_any(format!("{QUIET}in the pool")) })
            }));
            r.unwrap_err().downcast::<String>().map(|s| *s).unwrap()
        });
        assert_eq!(caught, format!("{QUIET}in the pool"));
        // Uncaught: the fiber panics with it, and its joiner sees it.
        let err = rt.block_on(|| {
            spawn(|| weft::blocking(|| -> u32 { panic_any(7u8) }))
                .join()
                .unwrap_err()
        });
        assert_eq!(err.into_panic().downcast_ref::<u8>(), Some(&7));
        // The pool and the runtime are fine afterwards.
        assert_eq!(rt.block_on(|| weft::blocking(|| 1)), 1);
    });
}

#[test]
fn spawn_inside_a_blocking_closure() {
    support::bounded(|| {
        let rt = runtime(2, 2);
        let sum = rt.block_on(|| {
            weft::blocking(|| {
                let hs: Vec<_> = (0..100u64).map(|i| spawn(move || i)).collect();
                // Joined from the blocking thread, which blocks (a thread).
                hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
            })
        });
        assert_eq!(sum, 4950);
        // weft::Handle::current is this runtime's, there.
        let ok = rt.block_on(|| weft::blocking(|| weft::runtime::Handle::try_current().is_some()));
        assert!(ok);
        // A nested blocking call on the pool thread just runs inline.
        let same = rt.block_on(|| {
            weft::blocking(|| {
                let outer = std::thread::current().id();
                weft::blocking(move || std::thread::current().id() == outer)
            })
        });
        assert!(same);
    });
}

/// 100 jobs of 50 ms with at most 8 blocking threads: all complete, never
/// more than 8 at once (the rest queue), and the worker threads are free
/// meanwhile (a fiber yields 100 times before the jobs are all done).
#[test]
fn jobs_beyond_the_thread_limit_queue() {
    support::bounded(|| {
        let rt = runtime(2, 8);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let (done, ticks_before_first) = rt.block_on({
            let (running, most) = (running.clone(), most.clone());
            move || {
                let first_done = Arc::new(AtomicUsize::new(0));
                let hs: Vec<_> = (0..100u64)
                    .map(|i| {
                        let (running, most, first_done) =
                            (running.clone(), most.clone(), first_done.clone());
                        spawn(move || {
                            let r = weft::blocking(move || {
                                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                                most.fetch_max(now, Ordering::SeqCst);
                                std::thread::sleep(Duration::from_millis(50));
                                running.fetch_sub(1, Ordering::SeqCst);
                                i
                            });
                            first_done.fetch_add(1, Ordering::SeqCst);
                            r
                        })
                    })
                    .collect();
                // The workers are not blocked: this fiber runs meanwhile.
                let ticker = {
                    let first_done = first_done.clone();
                    spawn(move || {
                        let mut ticks = 0;
                        while ticks < 100 {
                            weft::yield_now();
                            ticks += 1;
                        }
                        (ticks, first_done.load(Ordering::SeqCst))
                    })
                };
                let (_, done_when_ticked) = ticker.join().unwrap();
                let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
                (sum, done_when_ticked)
            }
        });
        let took = start.elapsed();
        let most = most.load(Ordering::SeqCst);
        println!(
            "100 x 50 ms blocking jobs on 8 threads: {took:?}, at most {most} at once; {ticks_before_first} jobs had finished when a fiber had yielded 100 times"
        );
        assert_eq!(done, 4950, "every job's value came back");
        assert!(most <= 8, "at most 8 blocking threads: saw {most}");
        assert!(most >= 2, "jobs ran in parallel: saw {most}");
        assert!(
            ticks_before_first < 100,
            "the fiber's 100 yields should run while the jobs (at least 650 ms in all) are under way"
        );
    });
}

/// A burst of jobs that arrives while one blocking thread is idle gets
/// as many threads as it needs (up to the limit), not only that one idle
/// thread: 8 jobs that each wait for all 8 to be running all run at once.
/// (Before the pool counted the idle threads it had already notified,
/// every job of the burst saw the same idle thread, none started a new
/// one, and the 8 jobs ran one after another.)
#[test]
fn a_burst_of_jobs_is_not_queued_behind_one_idle_thread() {
    support::bounded(|| {
        for round in 0..5 {
            let rt = runtime(2, 8);
            // One job, so that one blocking thread exists and goes idle.
            rt.block_on(|| weft::blocking(|| ()));
            std::thread::sleep(Duration::from_millis(10));
            let running = Arc::new(AtomicUsize::new(0));
            let most = Arc::new(AtomicUsize::new(0));
            let start = Instant::now();
            rt.block_on({
                let (running, most) = (running.clone(), most.clone());
                move || {
                    let hs: Vec<_> = (0..8)
                        .map(|_| {
                            let (running, most) = (running.clone(), most.clone());
                            spawn(move || {
                                weft::blocking(move || {
                                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                                    most.fetch_max(now, Ordering::SeqCst);
                                    let waited = Instant::now();
                                    while running.load(Ordering::SeqCst) < 8
                                        && waited.elapsed() < Duration::from_secs(3)
                                    {
                                        std::thread::sleep(Duration::from_millis(1));
                                    }
                                    most.fetch_max(
                                        running.load(Ordering::SeqCst),
                                        Ordering::SeqCst,
                                    );
                                    std::thread::sleep(Duration::from_millis(5));
                                    running.fetch_sub(1, Ordering::SeqCst);
                                })
                            })
                        })
                        .collect();
                    for h in hs {
                        h.join().unwrap();
                    }
                }
            });
            let most = most.load(Ordering::SeqCst);
            println!(
                "round {round}: a burst of 8 jobs after a warm-up ran {most} at once, in {:?}",
                start.elapsed()
            );
            assert_eq!(
                most, 8,
                "round {round}: the burst should run on 8 threads at once"
            );
        }
    });
}

/// Off a fiber, `blocking` runs the closure on the calling thread.
#[test]
fn off_a_fiber_it_just_runs_the_closure() {
    support::bounded(|| {
        let here = std::thread::current().id();
        assert!(weft::blocking(move || std::thread::current().id() == here));
        let _rt = runtime(1, 1);
        let v = std::thread::spawn(|| {
            let here = std::thread::current().id();
            weft::blocking(move || (std::thread::current().id() == here, 9))
        })
        .join()
        .unwrap();
        assert_eq!(v, (true, 9));
        let caught = catch_unwind(|| weft::blocking(|| -> () { panic_any(3i32) })).unwrap_err();
        assert_eq!(caught.downcast_ref::<i32>(), Some(&3));
    });
}

/// Idle blocking threads go away after their keep-alive, and all of them
/// when the runtime is dropped; run in a child so the count is ours.
#[test]
fn blocking_threads_are_reaped() {
    if !support::is_child() {
        return support::run_child_test("blocking_threads_are_reaped", &[]);
    }
    support::bounded(|| {
        let baseline = support::thread_count();
        let rt = Runtime::builder()
            .workers(1)
            .max_blocking_threads(4)
            .blocking_keep_alive(Duration::from_millis(50))
            .build()
            .unwrap();
        let with_workers = support::thread_count();
        // Four jobs that meet at a barrier: four blocking threads exist at
        // once, and the last to arrive counts the process's threads.
        let busy = rt.block_on(|| {
            let barrier = Arc::new(std::sync::Barrier::new(4));
            let hs: Vec<_> = (0..4)
                .map(|_| {
                    let barrier = barrier.clone();
                    spawn(move || {
                        weft::blocking(move || {
                            barrier.wait().is_leader().then(support::thread_count)
                        })
                    })
                })
                .collect();
            hs.into_iter()
                .filter_map(|h| h.join().unwrap())
                .sum::<usize>()
        });
        // After the keep-alive, the idle ones exit on their own.
        let reaped = support::settle_thread_count(with_workers);
        drop(rt);
        let after = support::settle_thread_count(baseline);
        println!(
            "threads: {baseline} at start, {with_workers} with the worker, {busy} after 4 jobs, {reaped} after the keep-alive, {after} after the drop"
        );
        assert_eq!(
            busy,
            with_workers + 4,
            "four jobs at once, four blocking threads"
        );
        assert_eq!(
            reaped, with_workers,
            "idle blocking threads exit after their keep-alive"
        );
        assert_eq!(after, baseline);
    });
}

/// A fiber being cancelled (unwound by the runtime's drop) whose
/// destructor calls `blocking` cannot wait for the pool (its parks return
/// at once): the job runs inline, on the worker's thread, instead of the
/// fiber spinning until a pool thread has run it.
#[test]
fn a_cancelled_fiber_runs_a_blocking_job_inline() {
    support::bounded(|| {
        struct BlockOnDrop(std::sync::mpsc::Sender<ThreadId>);
        impl Drop for BlockOnDrop {
            fn drop(&mut self) {
                let ran_on = weft::blocking(|| std::thread::current().id());
                let _ = self.0.send(ran_on);
                let _ = self.0.send(std::thread::current().id());
            }
        }
        let rt = runtime(1, 4);
        let (tx, rx) = std::sync::mpsc::channel();
        let (parked_tx, parked_rx) = std::sync::mpsc::channel();
        rt.block_on(move || {
            spawn(move || {
                let _guard = BlockOnDrop(tx);
                let _ = parked_tx.send(());
                weft::fiber::park();
            });
        });
        parked_rx.recv().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        drop(rt);
        let ran_on = rx.recv().unwrap();
        let fiber_thread = rx.recv().unwrap();
        assert_eq!(
            ran_on, fiber_thread,
            "the job ran on the cancelled fiber's own thread"
        );
    });
}

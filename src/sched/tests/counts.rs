//! The reference counts of tasks that parked: a PARKED task owns one count,
//! left by its park and taken over by whoever moves it out of PARKED (see
//! `fiber::task`, "References"). Every way in and out is run here, and once
//! the runtime is gone only the test's own handle may still count: one more
//! is a leaked task, one fewer a task freed while still referenced.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::fiber::{self, JoinHandle};
use crate::runtime::Runtime;

fn runtime() -> Runtime {
    Runtime::builder().workers(2).build().expect("a runtime")
}

/// Waits until every handle's fiber has finished.
fn wait_finished(handles: &[JoinHandle<()>]) {
    while !handles.iter().all(JoinHandle::is_finished) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn assert_only_the_handles_count(handles: &[JoinHandle<()>], what: &str) {
    for (i, handle) in handles.iter().enumerate() {
        assert_eq!(handle.task_count(), 1, "{what}: fiber {i}");
    }
}

/// A fiber that parks until `flag` is set, `rounds` times over.
fn parker(rt: &Runtime, flags: Arc<Vec<AtomicBool>>) -> JoinHandle<()> {
    rt.spawn(move || {
        for flag in flags.iter() {
            while !flag.load(Ordering::Acquire) {
                fiber::park();
            }
        }
    })
}

#[test]
fn woken_from_a_fiber_or_a_thread() {
    const ROUNDS: usize = 50;
    let rt = runtime();
    let flags: Vec<Arc<Vec<AtomicBool>>> = (0..8)
        .map(|_| Arc::new((0..ROUNDS).map(|_| AtomicBool::new(false)).collect()))
        .collect();
    let handles: Vec<JoinHandle<()>> = flags.iter().map(|f| parker(&rt, f.clone())).collect();
    let fibers: Vec<fiber::Fiber> = handles.iter().map(JoinHandle::fiber).collect();
    for round in 0..ROUNDS {
        for (i, (flag, fiber)) in flags.iter().zip(&fibers).enumerate() {
            let release = {
                let (flag, fiber) = (flag.clone(), fiber.clone());
                move || {
                    flag[round].store(true, Ordering::Release);
                    fiber.unpark();
                }
            };
            // Half from a fiber (a worker's LIFO slot or inbox), half from
            // a plain thread (always the inbox).
            if i % 2 == 0 {
                rt.spawn(release).join().expect("the releaser");
            } else {
                std::thread::spawn(release).join().expect("the releaser");
            }
        }
    }
    drop(fibers);
    wait_finished(&handles);
    drop(rt);
    assert_only_the_handles_count(&handles, "woken by unpark");
}

#[test]
fn woken_by_a_channel_or_a_timer() {
    let rt = runtime();
    let (tx, rx) = crate::chan::bounded::<u32>(0);
    let mut handles = vec![rt.spawn(move || {
        for value in 0..100 {
            assert_eq!(rx.recv(), Ok(value));
        }
    })];
    handles.push(rt.spawn(move || {
        for value in 0..100 {
            tx.send(value).expect("the receiver waits");
        }
    }));
    for _ in 0..4 {
        handles.push(rt.spawn(|| {
            fiber::park_timeout(Duration::from_millis(2));
            crate::sleep(Duration::from_millis(2));
        }));
    }
    wait_finished(&handles);
    drop(rt);
    assert_only_the_handles_count(&handles, "woken by a channel or a timer");
}

#[test]
fn parked_at_shutdown() {
    let rt = runtime();
    let started = Arc::new(AtomicUsize::new(0));
    let handles: Vec<JoinHandle<()>> = (0..16)
        .map(|i| {
            let started = started.clone();
            rt.spawn(move || {
                started.fetch_add(1, Ordering::Release);
                if i % 2 == 0 {
                    crate::sleep(Duration::from_secs(3600));
                } else {
                    // Parks until cancelled: a cancelled fiber's park
                    // returns at once, and so does this loop then.
                    while !fiber::current::is_cancelled() {
                        fiber::park();
                    }
                }
            })
        })
        .collect();
    // Once all have started, each parks at once. One still on its way
    // at the drop is unwound as a running fiber instead: the counts must
    // hold either way, this path is just less often taken.
    while started.load(Ordering::Acquire) < handles.len() {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(10));
    drop(rt);
    assert_only_the_handles_count(&handles, "parked at shutdown");
}

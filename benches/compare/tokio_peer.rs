//! The workloads on tokio: a multi-thread runtime with
//! `worker_threads(Params::workers)` and tokio's defaults otherwise (also
//! for one worker: the current-thread runtime is a different scheduler).
//! Every workload runs in a task spawned from `block_on`, so that it runs
//! on a worker and its spawns go to that worker's queue, as weft's main
//! fiber does (`block_on`'s own future runs on the calling thread, off the
//! workers, and would spawn through the shared injection queue).

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use tokio::sync::Notify;

use crate::workloads::{
    Measurement, Params, SKYNET_DIV, ns_per, parked_measurement, rss_bytes, same_thread_note,
    skynet_expected, thread_id,
};

/// Runs `work` as a task on a fresh runtime and returns its result.
pub(crate) fn on_runtime<F>(p: &Params, work: F) -> Result<Measurement, String>
where
    F: Future<Output = Result<Measurement, String>> + Send + 'static,
{
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(p.workers)
        .build()
        .map_err(|err| format!("cannot build the runtime: {err}"))?;
    rt.block_on(async move { tokio::spawn(work).await })
        .map_err(|err| format!("root task: {err}"))?
}

pub(crate) fn spawn_join(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    on_runtime(&p, async move {
        let mut m = Measurement::default();
        for _ in 0..p.reps {
            let mut handles = Vec::with_capacity(p.size as usize);
            let start = Instant::now();
            for _ in 0..p.size {
                handles.push(tokio::spawn(async {}));
            }
            for h in handles {
                h.await.map_err(|err| format!("join: {err}"))?;
            }
            m.samples.push(ns_per(start.elapsed(), p.size));
        }
        Ok(m)
    })
}

pub(crate) fn yield_pair(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let per_task = p.size / 2;
    on_runtime(&p, async move {
        let mut m = Measurement::default();
        let mut same = 0;
        for _ in 0..p.reps {
            let start = Instant::now();
            let body = move || async move {
                for _ in 0..per_task {
                    tokio::task::yield_now().await;
                }
                thread_id()
            };
            let a = tokio::spawn(body());
            let b = tokio::spawn(body());
            let a = a.await.map_err(|err| format!("join: {err}"))?;
            let b = b.await.map_err(|err| format!("join: {err}"))?;
            m.samples.push(ns_per(start.elapsed(), per_task * 2));
            same += usize::from(a == b);
        }
        m.notes.push(same_thread_note(same, p.reps));
        Ok(m)
    })
}

/// A skynet node: the recursion needs a boxed future (the future of an
/// `async fn` cannot contain itself).
fn skynet_node(num: u64, size: u64) -> Pin<Box<dyn Future<Output = u64> + Send>> {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let sub = size / SKYNET_DIV;
        let mut children = Vec::with_capacity(SKYNET_DIV as usize);
        for i in 0..SKYNET_DIV {
            children.push(tokio::spawn(skynet_node(num + i * sub, sub)));
        }
        let mut sum = 0;
        for h in children {
            sum += h.await.expect("a skynet node finishes");
        }
        sum
    })
}

pub(crate) fn skynet(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let expected = skynet_expected(p.size)?;
    on_runtime(&p, async move {
        let mut m = Measurement::default();
        for _ in 0..p.reps {
            let start = Instant::now();
            let sum = skynet_node(0, p.size).await;
            let elapsed = start.elapsed();
            if sum != expected {
                return Err(format!("wrong sum {sum}, expected {expected}"));
            }
            m.samples.push(elapsed.as_secs_f64() * 1e3);
        }
        Ok(m)
    })
}

pub(crate) fn parked_rss(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let n = p.size as usize;
    on_runtime(&p, async move {
        let release = Arc::new(Notify::new());
        let parked = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(n);
        let before = rss_bytes();
        for _ in 0..n {
            let release = Arc::clone(&release);
            let parked = Arc::clone(&parked);
            handles.push(tokio::spawn(async move {
                // Created before counting: `notify_waiters` completes every
                // `Notified` created before it, polled or not.
                let notified = release.notified();
                parked.fetch_add(1, Ordering::AcqRel);
                notified.await;
                true
            }));
        }
        while parked.load(Ordering::Acquire) < n {
            tokio::task::yield_now().await;
        }
        // Let the last ones reach their first `Pending`.
        for _ in 0..1000 {
            tokio::task::yield_now().await;
        }
        let during = rss_bytes();
        release.notify_waiters();
        let mut finished = 0;
        for h in handles {
            if matches!(h.await, Ok(true)) {
                finished += 1;
            }
        }
        if finished != n {
            return Err(format!("only {finished} of {n} parked tasks finished"));
        }
        Ok(parked_measurement(before, during, p.size))
    })
}

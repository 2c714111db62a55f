//! The workloads on weft: a runtime with `Params::workers` workers and the
//! defaults otherwise (256 KiB stacks committed lazily, started fibers do
//! not migrate). Every workload runs in the runtime's main fiber
//! (`block_on`), so spawns are made from a fiber on a worker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::workloads::{
    Measurement, Params, SKYNET_DIV, ns_per, parked_measurement, rss_bytes, same_thread_note,
    skynet_expected, thread_id,
};

pub(crate) fn runtime(p: &Params) -> Result<weft::Runtime, String> {
    weft::Runtime::builder()
        .workers(p.workers)
        .build()
        .map_err(|err| format!("cannot build the runtime: {err}"))
}

pub(crate) fn spawn_join(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    runtime(&p)?.block_on(move || {
        let mut m = Measurement::default();
        for _ in 0..p.reps {
            let mut handles = Vec::with_capacity(p.size as usize);
            let start = Instant::now();
            for _ in 0..p.size {
                handles.push(weft::spawn(|| ()));
            }
            for h in handles {
                h.join().map_err(|err| format!("join: {err}"))?;
            }
            m.samples.push(ns_per(start.elapsed(), p.size));
        }
        Ok(m)
    })
}

pub(crate) fn yield_pair(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let per_fiber = p.size / 2;
    runtime(&p)?.block_on(move || {
        let mut m = Measurement::default();
        let mut same = 0;
        for _ in 0..p.reps {
            let start = Instant::now();
            let body = move || {
                for _ in 0..per_fiber {
                    weft::yield_now();
                }
                thread_id()
            };
            let a = weft::spawn(body);
            let b = weft::spawn(body);
            let a = a.join().map_err(|err| format!("join: {err}"))?;
            let b = b.join().map_err(|err| format!("join: {err}"))?;
            m.samples.push(ns_per(start.elapsed(), per_fiber * 2));
            same += usize::from(a == b);
        }
        m.notes.push(same_thread_note(same, p.reps));
        Ok(m)
    })
}

fn skynet_node(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let sub = size / SKYNET_DIV;
    let children: Vec<_> = (0..SKYNET_DIV)
        .map(|i| weft::spawn(move || skynet_node(num + i * sub, sub)))
        .collect();
    children
        .into_iter()
        .map(|h| h.join().expect("a skynet node finishes"))
        .sum()
}

pub(crate) fn skynet(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let expected = skynet_expected(p.size)?;
    runtime(&p)?.block_on(move || {
        let mut m = Measurement::default();
        for _ in 0..p.reps {
            let start = Instant::now();
            let sum = skynet_node(0, p.size);
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
    runtime(&p)?.block_on(move || {
        let release = Arc::new(AtomicBool::new(false));
        let parked = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(n);
        let before = rss_bytes();
        for _ in 0..n {
            let release = Arc::clone(&release);
            let parked = Arc::clone(&parked);
            handles.push(weft::spawn(move || {
                parked.fetch_add(1, Ordering::AcqRel);
                while !release.load(Ordering::Acquire) {
                    weft::fiber::park();
                }
                true
            }));
        }
        while parked.load(Ordering::Acquire) < n {
            weft::sleep(Duration::from_millis(1));
        }
        // The last ones counted themselves and are switching out.
        weft::sleep(Duration::from_millis(20));
        let during = rss_bytes();
        release.store(true, Ordering::Release);
        for h in &handles {
            h.fiber().unpark();
        }
        let finished = handles
            .into_iter()
            .map(|h| h.join())
            .filter(|r| matches!(r, Ok(true)))
            .count();
        if finished != n {
            return Err(format!("only {finished} of {n} parked fibers finished"));
        }
        Ok(parked_measurement(before, during, p.size))
    })
}

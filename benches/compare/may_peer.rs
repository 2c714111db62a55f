//! The workloads on may: `may::config().set_workers(Params::workers)` and
//! may's defaults otherwise (see [`settings`]). Every workload runs in a
//! root coroutine, so spawns are made from a coroutine on a worker.
//!
//! may's configuration is global and read when its scheduler starts (at
//! the first spawn), so each process measures one worker count: the runner
//! runs every (peer, workload) pair in its own child process anyway.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use may::coroutine::JoinHandle;

use crate::workloads::{
    Measurement, Params, SKYNET_DIV, ns_per, parked_measurement, rss_bytes, same_thread_note,
    skynet_expected, thread_id,
};

/// may's settings as this runner leaves them, for the header.
pub(crate) fn settings() -> String {
    let config = may::config();
    format!(
        "set_workers(N); stack {} KiB (may's default: {:#x} words, one mmap + one mprotect'ed guard page per \
         coroutine, allocated at spawn); coroutine pool capacity {}; worker pinning {}",
        config.get_stack_size() * size_of::<usize>() / 1024,
        config.get_stack_size(),
        config.get_pool_capacity(),
        if config.get_worker_pin() { "on" } else { "off" },
    )
}

/// Spawns a coroutine with may's default settings.
pub(crate) fn go<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // SAFETY: may's contract for coroutines: no thread-local is used
    // across a blocking point (the bodies here use none), and the body
    // fits in the stack (they are shallow; may's default stack is 32 KiB).
    unsafe { may::coroutine::spawn(f) }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned())
}

pub(crate) fn join<T>(h: JoinHandle<T>) -> Result<T, String> {
    h.join()
        .map_err(|payload| format!("panicked: {}", panic_message(&*payload)))
}

/// Runs `work` in a root coroutine and returns its result.
pub(crate) fn on_runtime<F>(p: &Params, work: F) -> Result<Measurement, String>
where
    F: FnOnce() -> Result<Measurement, String> + Send + 'static,
{
    may::config().set_workers(p.workers);
    let mut m = join(go(work))??;
    m.notes.push(format!(
        "stack={}KiB",
        may::config().get_stack_size() * size_of::<usize>() / 1024
    ));
    Ok(m)
}

pub(crate) fn spawn_join(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    on_runtime(&p, move || {
        let mut m = Measurement::default();
        for _ in 0..p.reps {
            let mut handles = Vec::with_capacity(p.size as usize);
            let start = Instant::now();
            for _ in 0..p.size {
                handles.push(go(|| ()));
            }
            for h in handles {
                join(h)?;
            }
            m.samples.push(ns_per(start.elapsed(), p.size));
        }
        Ok(m)
    })
}

pub(crate) fn yield_pair(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let per_co = p.size / 2;
    on_runtime(&p, move || {
        let mut m = Measurement::default();
        let mut same = 0;
        for _ in 0..p.reps {
            let start = Instant::now();
            let body = move || {
                for _ in 0..per_co {
                    may::coroutine::yield_now();
                }
                thread_id()
            };
            let a = go(body);
            let b = go(body);
            let a = join(a)?;
            let b = join(b)?;
            m.samples.push(ns_per(start.elapsed(), per_co * 2));
            same += usize::from(a == b);
        }
        m.notes.push(same_thread_note(same, p.reps));
        Ok(m)
    })
}

fn skynet_node(num: u64, size: u64) -> Result<u64, String> {
    if size == 1 {
        return Ok(num);
    }
    let sub = size / SKYNET_DIV;
    let children: Vec<_> = (0..SKYNET_DIV)
        .map(|i| go(move || skynet_node(num + i * sub, sub)))
        .collect();
    let mut sum = 0;
    let mut first_error = None;
    for h in children {
        match join(h).and_then(|r| r) {
            Ok(part) => sum += part,
            Err(err) => first_error = first_error.or(Some(err)),
        }
    }
    first_error.map_or(Ok(sum), Err)
}

pub(crate) fn skynet(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let expected = skynet_expected(p.size)?;
    on_runtime(&p, move || {
        let mut m = Measurement::default();
        for _ in 0..p.reps {
            let start = Instant::now();
            let sum = skynet_node(0, p.size)?;
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
    on_runtime(&p, move || {
        let release = Arc::new(AtomicBool::new(false));
        let parked = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(n);
        let before = rss_bytes();
        for _ in 0..n {
            let release = Arc::clone(&release);
            let parked = Arc::clone(&parked);
            handles.push(go(move || {
                parked.fetch_add(1, Ordering::AcqRel);
                while !release.load(Ordering::Acquire) {
                    may::coroutine::park();
                }
                true
            }));
        }
        while parked.load(Ordering::Acquire) < n {
            may::coroutine::sleep(Duration::from_millis(1));
        }
        // The last ones counted themselves and are switching out.
        may::coroutine::sleep(Duration::from_millis(20));
        let during = rss_bytes();
        release.store(true, Ordering::Release);
        for h in &handles {
            h.coroutine().unpark();
        }
        let mut finished = 0;
        for h in handles {
            if matches!(join(h), Ok(true)) {
                finished += 1;
            }
        }
        if finished != n {
            return Err(format!("only {finished} of {n} parked coroutines finished"));
        }
        Ok(parked_measurement(before, during, p.size))
    })
}

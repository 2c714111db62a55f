//! Helpers for the `sync_*` tests: a watchdog that turns a hang into a
//! failure, a value that counts its drops, runtimes of a given size.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each sync_* test file uses its own subset"
)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Fails the whole test binary (exit code 101, with a message) if it is
/// not dropped within `limit`: a hung test must fail, not stall CI.
#[must_use = "the watchdog is disarmed when dropped"]
pub struct Watchdog {
    disarm: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

pub fn watchdog(name: &str, limit: Duration) -> Watchdog {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let name = name.to_owned();
    let thread = std::thread::spawn(move || {
        if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            eprintln!("watchdog: test '{name}' still running after {limit:?}: it hangs");
            std::process::exit(101);
        }
    });
    Watchdog {
        disarm: Some(tx),
        thread: Some(thread),
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.disarm.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A value that counts how often it is dropped.
#[derive(Debug)]
pub struct Counted {
    pub id: usize,
    drops: Arc<AtomicUsize>,
}

impl Counted {
    pub fn new(id: usize, drops: &Arc<AtomicUsize>) -> Counted {
        Counted {
            id,
            drops: drops.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

pub fn counter() -> Arc<AtomicUsize> {
    Arc::new(AtomicUsize::new(0))
}

pub fn count(c: &Arc<AtomicUsize>) -> usize {
    c.load(Ordering::SeqCst)
}

/// A runtime with `workers` workers.
pub fn runtime(workers: usize) -> weft::Runtime {
    weft::Runtime::builder()
        .workers(workers)
        .build()
        .expect("a runtime")
}

/// `release` in an optimised build, `debug` otherwise (debug builds are an
/// order of magnitude slower; CI runs both).
pub fn scale(release: usize, debug: usize) -> usize {
    if cfg!(debug_assertions) {
        debug
    } else {
        release
    }
}

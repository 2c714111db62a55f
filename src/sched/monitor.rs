//! The stall monitor: one thread per runtime that notices a worker held by
//! one fiber for long, and says so on stderr.
//!
//! Fibers are not preempted: a fiber that computes for seconds, or calls
//! something that blocks its thread (a `std` lock held elsewhere, a file
//! read, `std::thread::sleep`), keeps every other fiber of its worker
//! waiting, and nothing else would tell. Go's monitor preempts such a
//! goroutine; a weft fiber cannot be, so the monitor only reports it, once
//! per stall, naming the fiber and the fix (`weft::blocking`).
//!
//! Each worker publishes, with relaxed stores only it makes, which fiber it
//! is running ([`Watch::running`], 0 in its loop) and how many times it
//! has entered a fiber from its loop ([`Watch::entries`]). The monitor
//! samples both every [`SAMPLE`]; a worker whose pair has not changed for
//! [`STALL`] while a fiber runs is stalled.
//!
//! It also keeps queued work from waiting on a busy worker: a task woken
//! from IDLE goes on the waker's deque without waking another worker
//! (`Shared::schedule_woken`), on the bet that the waking fiber switches
//! out soon. A worker whose pair has not changed for a whole sample, with
//! tasks in its deque, lost that bet: the monitor wakes a sleeper to steal
//! them, so they wait at most about two samples.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use super::Shared;

/// How often the monitor looks.
const SAMPLE: Duration = Duration::from_millis(100);

/// How long one fiber may hold its worker before the monitor reports it.
pub(crate) const STALL: Duration = Duration::from_secs(1);

/// What a worker publishes for the monitor (in `WorkerShared`). A cache
/// line of its own: the worker writes it on every hand-off, and other
/// threads write their wakes into the inbox and parker beside it.
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Watch {
    /// The id of the fiber running on the worker; 0 while none does.
    running: AtomicU64,
    /// How many times the worker's loop has entered a fiber.
    entries: AtomicU64,
}

impl Watch {
    /// The worker's loop enters the fiber `id`.
    #[inline]
    pub(crate) fn enter(&self, id: u64) {
        // Only the worker writes these: a load and a store, no RMW.
        let entries = self.entries.load(Ordering::Relaxed);
        self.entries
            .store(entries.wrapping_add(1), Ordering::Relaxed);
        self.running.store(id, Ordering::Relaxed);
    }

    /// A fiber hands the thread to fiber `id` (`worker/handoff.rs`).
    #[inline]
    pub(crate) fn hand_to(&self, id: u64) {
        self.running.store(id, Ordering::Relaxed);
    }

    /// The worker is back in its loop.
    #[inline]
    pub(crate) fn leave(&self) {
        self.running.store(0, Ordering::Relaxed);
    }

    fn sample(&self) -> (u64, u64) {
        (
            self.running.load(Ordering::Relaxed),
            self.entries.load(Ordering::Relaxed),
        )
    }
}

/// The monitor thread, stopped and joined by [`Monitor::stop`] (the
/// runtime's drop). It also ends by itself once the runtime shuts down or
/// is gone, so a runtime dropped without joining its threads (by one of its
/// own fibers) leaves no monitor behind.
#[derive(Debug)]
pub(crate) struct Monitor {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Monitor {
    pub(crate) fn start(shared: &Arc<Shared>, name: String) -> std::io::Result<Monitor> {
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let weak = Arc::downgrade(shared);
        let signal = Arc::clone(&stop);
        // Made here, not on the monitor's thread: a thread's first
        // allocation gives it a malloc arena of its own, whose pages (about
        // 1 MB) showed up in the memory the actor tests measure.
        let seen = vec![Seen::new(Instant::now()); shared.workers.len()];
        let thread = thread::Builder::new()
            .name(name)
            .spawn(move || watch(&weak, &signal, seen))?;
        Ok(Monitor {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread and waits for it.
    pub(crate) fn stop(&mut self) {
        let (flag, wake) = &*self.stop;
        *flag.lock().unwrap_or_else(|e| e.into_inner()) = true;
        wake.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Where a worker was when the monitor last saw it change.
#[derive(Clone, Copy)]
struct Seen {
    sample: (u64, u64),
    since: Instant,
    reported: bool,
}

impl Seen {
    fn new(now: Instant) -> Seen {
        Seen {
            sample: (0, 0),
            since: now,
            reported: false,
        }
    }
}

/// The monitor's loop. It allocates nothing (see `Monitor::start`) until
/// it has a stall to report.
fn watch(shared: &Weak<Shared>, stop: &(Mutex<bool>, Condvar), mut seen: Vec<Seen>) {
    let (flag, wake) = stop;
    let mut stopped = flag.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        stopped = wake
            .wait_timeout(stopped, SAMPLE)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        if *stopped {
            return;
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.is_shutdown() {
            return;
        }
        let now = Instant::now();
        for (worker, seen) in shared.workers.iter().zip(seen.iter_mut()) {
            let sample = worker.watch.sample();
            if sample != seen.sample || sample.0 == 0 {
                *seen = Seen {
                    sample,
                    ..Seen::new(now)
                };
                continue;
            }
            if !worker.stealer.is_empty() {
                shared.notify_parked();
            }
            let held = now.duration_since(seen.since);
            if held >= STALL && !seen.reported {
                seen.reported = true;
                eprintln!(
                    "weft: fiber {} has held worker {} for {:.1} s without parking, yielding or returning; the other fibers of that worker wait meanwhile (a blocking call in a fiber belongs in weft::blocking)",
                    sample.0,
                    worker.index,
                    held.as_secs_f64(),
                );
            }
        }
    }
}

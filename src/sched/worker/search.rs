//! A worker with nothing to run: it searches (steals), watches its own
//! queues a moment, then sleeps on its parker or in the I/O driver. The
//! searching/sleeping protocol itself (who may search, whom a push wakes)
//! is `sched/idle.rs`.

use std::time::{Duration, Instant};

use super::Worker;
use crate::fiber::task::TaskRef;

/// How long an idle worker watches for work before it sleeps (see
/// `Worker::spin_for_work`).
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(20);

/// Pause instructions between two looks while spinning: a look reads
/// other workers' cache lines, which their owners are writing.
const SPIN_ROUND: u32 = 16;

impl Worker {
    /// A searcher found work (stolen, or in its own queues after a wake):
    /// it stops searching, and if it was the last searcher it wakes a
    /// sleeper to go on looking, as `idle.rs` requires. Without this, a
    /// worker woken to search that found its work by the ordinary route
    /// would count as searching for as long as it runs, and every later
    /// push would think someone was already looking.
    pub(super) fn end_search(&self) {
        if self.searching.replace(false) && self.shared.idle.transition_worker_from_searching() {
            self.shared.notify_parked();
        }
    }

    /// Nothing to run: search, then sleep (see `idle.rs`).
    pub(super) fn idle(&self) {
        let idle = &self.shared.idle;
        if !self.searching.get() {
            self.searching.set(idle.transition_worker_to_searching());
        }
        if self.searching.get()
            && let Some(task) = self.steal()
        {
            self.end_search();
            self.run_task(task, false);
            return;
        }
        if self.spin_for_work() {
            return;
        }
        let last_searcher =
            idle.transition_worker_to_parked(self.me.index, self.searching.replace(false));
        // Last checks, now that we are in the sleeper list: work a pusher
        // saw no reason to wake anyone for, our own queues, shutdown.
        let skip_sleep = (last_searcher && self.shared.has_stealable_work())
            || self.me.inbox.is_pending()
            || !self.local.is_empty()
            || self.shared.is_shutdown();
        if !skip_sleep {
            let timeout = self
                .timers
                .borrow()
                .next_deadline()
                .map(|deadline| deadline.saturating_duration_since(Instant::now()));
            self.me
                .parker
                .park_or_drive(timeout, self.shared.driver.as_ref());
        }
        self.searching
            .set(idle.transition_worker_from_parked(self.me.index));
    }

    /// Watches for work a moment before sleeping; true if some came.
    ///
    /// A started fiber lives on its worker, so the other end of a
    /// conversation (a channel, a reply) on another worker wakes it
    /// through this worker's inbox. Asleep, each such wake costs a futex
    /// wake and a reschedule (measured at about 28 µs on a busy 2-core
    /// VM: a ping-pong split over two workers ran at 57 µs a round trip);
    /// awake, a store the inbox's owner sees at once. So, like Go's
    /// spinning threads, an idle worker watches its inbox and queues for
    /// [`SPIN_BEFORE_SLEEP`] first, which an idle runtime pays once per
    /// idle period.
    ///
    /// It does not watch other workers' queues: a fiber stolen before it
    /// starts stays on the thief for good, and a pair of fibers spawned
    /// together and talking to each other is best left on one worker, which
    /// starts both within microseconds. A searcher that spins still counts
    /// as searching (pushers wake nobody for it), so stealable work waits
    /// at most the spin: going to sleep, the last searcher re-checks every
    /// queue (see `idle.rs`).
    ///
    /// No spin while the reactor has sockets registered: a server's wakes
    /// come from the reactor, which the spin does not watch, and on a
    /// machine whose cores the server shares (with its clients, or other
    /// processes) the spin's cycles are taken from them. Measured on the
    /// comparison runner's echo and HTTP rows (load generator on the same
    /// 2 cores, 4 interleaved runs of 5 each): without the spin about 137k
    /// and 127k round trips/s, with it about 120k and 121k.
    fn spin_for_work(&self) -> bool {
        if self
            .shared
            .driver
            .as_ref()
            .is_some_and(|gate| gate.driver.has_sources())
        {
            return false;
        }
        let start = Instant::now();
        loop {
            for _ in 0..SPIN_ROUND {
                std::hint::spin_loop();
            }
            if self.me.inbox.is_pending() || !self.local.is_empty() || self.shared.is_shutdown() {
                return true;
            }
            if start.elapsed() >= SPIN_BEFORE_SLEEP {
                return false;
            }
        }
    }

    /// Steals from the injector or another worker, starting at a random one.
    fn steal(&self) -> Option<TaskRef> {
        let workers = &self.shared.workers;
        let start = self.next_random() as usize % workers.len();
        for i in 0..workers.len() {
            let victim = &workers[(start + i) % workers.len()];
            if victim.index == self.me.index {
                continue;
            }
            if let Some(task) = victim.stealer.steal_batch_and_pop(&self.local) {
                victim
                    .stolen_from
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                return Some(task);
            }
        }
        self.shared.injector.steal_batch_and_pop(&self.local)
    }

    fn next_random(&self) -> u32 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng.set(x);
        x
    }
}

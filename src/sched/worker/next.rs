//! Which task a worker runs next ([`Worker::next_task`]), in the order of
//! steps 1 to 6 of "The loop" in `mod.rs`, and the queues' helpers: the
//! inbox drained into the ready queue, due timers fired.

use std::time::Instant;

use super::{FAIRNESS_INTERVAL, Worker};
use crate::fiber::task::TaskRef;
use crate::loom::sync::atomic::Ordering;

/// On how many fairness rounds the owner takes its own deque's oldest task
/// (see `Worker::steal_own_oldest`): one in 16, about every 1,000 rounds.
const OWN_OLDEST_EVERY: u32 = 16;

impl Worker {
    /// The task to run next, if any: see the module doc for the order.
    pub(super) fn next_task(&self) -> Option<Taken> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick.is_multiple_of(FAIRNESS_INTERVAL) {
            // A busy runtime still sees its I/O: a turn of the driver.
            if let Some(driver) = &self.shared.driver {
                driver.poll_if_free();
            }
            self.fire_timers();
            let oldest = self
                .steal_injected()
                .or_else(|| self.steal_own_oldest(tick))
                .map(Taken::unclaimed)
                .or_else(|| self.ready.pop_front().map(Taken::claimed));
            if oldest.is_some() {
                return oldest;
            }
        }
        if self.yielded.replace(false)
            && let Some(task) = self.local.pop().or_else(|| self.steal_injected())
        {
            return Some(Taken::unclaimed(task));
        }
        if let Some(task) = self.take_lifo() {
            return Some(task);
        }
        if let Some(task) = self.pop_ready() {
            return Some(task);
        }
        if let Some(task) = self.local.pop() {
            return Some(Taken::unclaimed(task));
        }
        if self.fire_timers() > 0
            && let Some(task) = self.take_lifo().or_else(|| self.pop_ready())
        {
            return Some(task);
        }
        self.shared
            .injector
            .steal_batch_and_pop(&self.local)
            .map(Taken::unclaimed)
    }

    /// The oldest unstarted task of this worker's own deque, on one
    /// fairness round in [`OWN_OLDEST_EVERY`], when no other worker is
    /// idle and none has stolen from this one since the last such round.
    ///
    /// The deque is LIFO for its owner, so under steady spawning its
    /// oldest tasks would wait for good if nobody took them. Thieves take
    /// that end, so the owner needs to only when every worker is busy,
    /// and then rarely: each time it does, it starts a fiber in the middle
    /// of a thief's run. Taking it on every fairness round split a ring of
    /// fibers spawned in a row between two workers in runs of 32 to 64
    /// (the thief's batches), and every boundary is a hop through another
    /// worker's inbox: about 150 a lap of a 10,000-fiber ring, instead of
    /// a handful.
    ///
    /// Nor does it when a thief took from that end since the last such
    /// round: then the oldest tasks are not waiting for good, and taking
    /// one only cuts the thief's run.
    fn steal_own_oldest(&self, tick: u32) -> Option<TaskRef> {
        if !(tick / FAIRNESS_INTERVAL).is_multiple_of(OWN_OLDEST_EVERY)
            || !self.shared.idle.all_busy()
        {
            return None;
        }
        let stolen = self
            .me
            .stolen_from
            .load(std::sync::atomic::Ordering::Relaxed);
        if self.stolen_seen.replace(stolen) != stolen {
            return None;
        }
        self.me.stealer.steal()
    }

    /// The oldest task of the injector. Looks before it steals: a steal
    /// from an empty injector still costs a `SeqCst` fence, and the yield
    /// path asks on every round.
    fn steal_injected(&self) -> Option<TaskRef> {
        if self.shared.injector.is_empty() {
            return None;
        }
        self.shared.injector.steal()
    }

    /// The fiber in the LIFO slot: claimed for us if pinned.
    fn take_lifo(&self) -> Option<Taken> {
        let task = self.lifo.take()?;
        Some(Taken {
            task,
            claimed: self.pin,
        })
    }

    /// The next of this worker's runnable fibers (after
    /// [`Self::take_inbox`]). Both queues hold only pinned fibers, claimed
    /// for us.
    fn pop_ready(&self) -> Option<Taken> {
        self.take_inbox();
        self.ready.pop_front().map(Taken::claimed)
    }

    /// Fibers woken by other threads join the back of the ready queue
    /// whenever the inbox has any, not only once the queue is empty: a
    /// fiber that yields in a loop is always in the ready queue, and would
    /// otherwise keep them out for good.
    #[inline(always)]
    pub(super) fn take_inbox(&self) {
        if self.me.inbox.is_pending() {
            self.me.inbox.drain_into(&mut &self.ready);
        }
    }

    /// Wakes the fibers whose timers are due; returns how many.
    pub(super) fn fire_timers(&self) -> usize {
        if self.timers.borrow().is_empty() {
            return 0;
        }
        let now = Instant::now();
        let mut fired = 0;
        loop {
            // The borrow ends before `wake`, which may push to our queues.
            let due = self.timers.borrow_mut().pop_due(now);
            let Some((seq, task)) = due else { break };
            if task.header.timer_seq.load(Ordering::Relaxed) == seq {
                crate::sched::wake(&task);
                fired += 1;
            }
        }
        fired
    }
}

/// A task taken from a queue, and whether this worker holds its claim
/// already: a pinned fiber queued at home (see `fiber::state`).
pub(super) struct Taken {
    pub(super) task: TaskRef,
    pub(super) claimed: bool,
}

impl Taken {
    fn claimed(task: TaskRef) -> Taken {
        Taken {
            task,
            claimed: true,
        }
    }

    fn unclaimed(task: TaskRef) -> Taken {
        Taken {
            task,
            claimed: false,
        }
    }
}

//! Direct hand-off: a fiber that yields or parks switches straight into
//! the next fiber its worker would run, without a round trip through the
//! worker's loop.
//!
//! The loop would resume the fiber that yielded or parked, file it, pick
//! the next one and resume that: two switches and a loop round. When the
//! next one is a claimed fiber of this worker (its LIFO slot, ready queue
//! or inbox: pinned fibers, see `fiber::state`), the fiber can do the
//! filing itself and [`arch::switch`](crate::arch) into it: one switch.
//! The fiber switched into cannot tell; its next switch-out returns to the
//! loop's `enter`, which lands on whichever fiber `current` names.
//!
//! Filing a fiber before its stack is left is what the PARKED protocol
//! forbids in general (`fiber::state`): a waker on another thread could
//! resume it while its stack is still in use. A pinned fiber is exempt:
//! only its home worker ever runs it, and that is this thread, busy with
//! the switch. (The loom model `loom_pinned_park_publishes_early` checks
//! that publishing early is harmless for a pinned fiber.)
//!
//! The loop still gets the thread back whenever it has something to do
//! that a hand-off would skip: every 61st round (timers, the injector, the
//! reactor; and a shutdown, which it checks every round), unstarted tasks
//! of its own deque to run after a yield, or no claimed fiber to switch
//! to. Unstarted tasks in the injector wait for the fairness round, as in
//! tokio (its global queue interval) and Go (`schedule` looks at the
//! global run queue once in 61 ticks).

use super::{FAIRNESS_INTERVAL, Worker};
use crate::fiber::state::Park;
use crate::fiber::task::{Body, FiberCoroutine, Reason, TaskCell, TaskRef, leave_count_to_park};
use crate::fiber::task_ref::TaskArc;

/// What [`Worker::hand_off`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HandOff {
    /// Switched to other fibers, and was switched back to: carry on.
    Switched,
    /// Nothing to switch for: a park found its token, or a yield found no
    /// other fiber to let run. Carry on.
    Stay,
    /// Switch out to the worker's loop, as usual.
    ToLoop,
}

/// The fiber a hand-off switches to, and whether its stack is still to be
/// asked into the cache (one from the LIFO slot was, when it was woken:
/// `push_woken`); or what the hand-off returns instead.
type Picked = Result<(TaskRef, bool), HandOff>;

impl Worker {
    /// Called by the running fiber `me`, about to switch out for `reason`:
    /// hands the thread to the next claimed fiber of this worker if the
    /// loop has nothing else to do first (see the module doc).
    #[inline(always)]
    pub(crate) fn hand_off(&self, me: &TaskCell<dyn Body>, reason: Reason) -> HandOff {
        // Shutdown is not checked here: the loop checks it on each of its
        // rounds, and gets one at least every `FAIRNESS_INTERVAL`
        // hand-offs; a cancelled fiber never switches out at all.
        if !self.handing_off.get() {
            return HandOff::ToLoop;
        }
        let tick = self.tick.get().wrapping_add(1);
        if tick.is_multiple_of(FAIRNESS_INTERVAL) {
            // The loop takes this round, with its fairness checks.
            return HandOff::ToLoop;
        }
        if reason == Reason::Yield && !self.local.is_empty() {
            // After a yield, the loop starts this worker's unstarted tasks
            // first; the injector's wait for the fairness round (see the
            // module doc): looking at it here cost every yield two loads
            // of a line other threads write.
            return HandOff::ToLoop;
        }
        self.take_inbox();
        let picked = match reason {
            Reason::Yield => self.file_yielder(me),
            Reason::Park => self.file_parker(me),
        };
        let (next, cold) = match picked {
            Ok(next) => next,
            Err(HandOff::Stay) if reason == Reason::Yield => {
                // Alone: the yield is over, and it counts as a round.
                self.tick.set(tick);
                return HandOff::Stay;
            }
            Err(outcome) => return outcome,
        };
        // Its address found once (a `TaskRef` is a fat pointer to a block
        // whose header's offset depends on the body's type).
        let next_cell: &TaskCell<dyn Body> = &next;
        if cold {
            // A claimed pinned fiber of ours, suspended.
            self.prefetch(next_cell);
        }
        self.tick.set(tick);
        self.previous.set(std::ptr::from_ref(me).cast());
        self.current.set(Some(std::ptr::from_ref(next_cell)));
        self.me.watch.hand_to(next_cell.header.id.as_u64());
        // SAFETY: both are started pinned fibers of this worker: `me` runs
        // (inside its body, entered by `run_task` or a hand-off, as
        // `handing_off` says) and `next`, taken from our claimed queues, is
        // suspended and not `me` (a running fiber is in no queue). Nothing
        // holds a reference to either coroutine. `current` and `running`
        // name `next` before it runs, for `run_task` to land on.
        let (from, to) = unsafe { (me.header.coroutine_ptr(), next_cell.header.coroutine_ptr()) };
        // `running` is empty (`take_running`): nothing to drop.
        let none = self.running.replace(Some(next));
        debug_assert!(none.is_none());
        std::mem::forget(none);
        // SAFETY: see above.
        unsafe { FiberCoroutine::switch(from, to) };
        HandOff::Switched
    }

    /// Whether a yield now would hand the thread straight to the fiber in
    /// the LIFO slot (one just woken here): it is there, and nothing sends
    /// a yield to the loop first, by [`hand_off`](Self::hand_off)'s own
    /// checks (hand-offs on this runtime, this worker's deque empty). The
    /// fairness round, once in 61, is not foreseen here: see
    /// `fiber::current::yield_to_woken`.
    ///
    /// Stricter than the hand-off by one look: the injector must be empty
    /// too. Its tasks would wait for a fairness round while an actor that
    /// yields here keeps its fiber, and unstarted actors are what its
    /// caller must not keep waiting (see `yield_to_woken`).
    pub(crate) fn yield_reaches_woken(&self) -> bool {
        let woken = self.lifo.take();
        let waits = woken.is_some();
        self.lifo.set(woken);
        waits && self.handing_off.get() && self.local.is_empty() && self.shared.injector.is_empty()
    }

    /// After a yield: files `me` (pinned, it stays RUNNING: claimed, at the
    /// back of the ready queue) and picks the next fiber, the LIFO slot's
    /// or the ready queue's front. See [`Picked`].
    #[inline(always)]
    fn file_yielder(&self, me: &TaskCell<dyn Body>) -> Picked {
        match self.lifo.take() {
            Some(next) => {
                self.ready.push_back(self.take_running(me));
                Ok((next, false))
            }
            None if self.ready.is_empty() => Err(HandOff::Stay),
            None => match self.ready.rotate(self.take_running(me)) {
                Ok(next) => Ok((next, true)),
                Err(_) => unreachable!("the ready queue is not empty"),
            },
        }
    }

    /// Before a park: picks the next fiber, then publishes `me` as parked,
    /// unless a wake came first (then `me` carries on, and the picked
    /// fiber keeps its turn at the front of the queue). See [`Picked`].
    #[inline(always)]
    fn file_parker(&self, me: &TaskCell<dyn Body>) -> Picked {
        let next = match self.lifo.take() {
            Some(next) => (next, false),
            None => match self.ready.pop_front() {
                Some(next) => (next, true),
                None => return Err(HandOff::ToLoop),
            },
        };
        let me_ref = self.take_running(me);
        match me.header.state.transition_to_parked() {
            Park::Parked => leave_count_to_park(me_ref),
            Park::Notified => {
                self.running.set(Some(me_ref));
                self.ready.push_front(next.0);
                return Err(HandOff::Stay);
            }
        }
        Ok(next)
    }

    /// The running fiber's reference, taken for filing: `me`'s.
    #[inline(always)]
    fn take_running(&self, me: &TaskCell<dyn Body>) -> TaskRef {
        let me_ref = self
            .running
            .take()
            .expect("a hand-off is from the running fiber");
        debug_assert!(std::ptr::addr_eq(TaskArc::as_ptr(&me_ref), me));
        me_ref
    }
}

//! A task's state: one atomic word, and the only transitions it may take.
//!
//! ```text
//!                spawn                 pop + claim
//!   (new) ───────────────> SCHEDULED ──────────────> RUNNING ────> COMPLETE
//!                            ^   ^                    │  │  │  (body ended)
//!              wake (idle)   │   │ wake (parked)      │  │  │
//!     IDLE ──────────────────┘   └──────── PARKED <───┘  │  └─> SCHEDULED (yield)
//!      ^                                  (after the     │
//!      └──────── body returned to idle ───  switch-out)  │
//!               (actors; a wake meanwhile reschedules) ──┘
//! ```
//!
//! - IDLE: holds no stack and sits in no queue (an actor between runs).
//! - SCHEDULED: in exactly one run queue. A task that has a fiber sits in
//!   its home worker's queues; one without can be stolen by any worker.
//! - RUNNING: one worker owns it: its fiber runs, or is switching out.
//! - PARKED: its fiber is suspended, in no queue; a wake reschedules it.
//! - COMPLETE: the body has ended for good.
//!
//! Three flags ride along:
//!
//! - NOTIFIED: a wake that arrived while the task was SCHEDULED or RUNNING
//!   (std's unpark token). The next park consumes it instead of parking;
//!   a body returning to IDLE with it set is rescheduled at once.
//! - CANCELLED: the runtime is shutting down. Parks return at once, and a
//!   task that has not started never will.
//! - PINNED: set by the claim that starts the fiber on a runtime without
//!   the migration opt-in, where a started fiber only ever runs on its home
//!   worker. Nobody else could claim it, so the claim moves to whoever
//!   queues it at home: a waker takes it from PARKED straight to RUNNING,
//!   and a yield or a consumed token leaves it RUNNING. The home worker
//!   then runs it from its LIFO slot, ready queue or inbox with no further
//!   compare-exchange. A pinned fiber is RUNNING from its first run to its
//!   end except while PARKED; a wake that finds it RUNNING (running, or
//!   queued at home) leaves NOTIFIED as before.
//!
//! The park/unpark race is settled here: a fiber that wants to park only
//! switches out; the *worker*, back on its own stack, publishes PARKED with
//! [`State::transition_to_parked`]. An unpark that lands before that sees
//! RUNNING and leaves NOTIFIED, which the worker's transition finds. So a
//! waker never sees PARKED while the fiber's stack is still in use, and no
//! wake is lost.
//!
//! Above the flags the word counts the task's references (its
//! `TaskArc`s), as tokio's task state does: a body that ends drops the
//! reference its runner held in the same compare-exchange that publishes
//! COMPLETE or IDLE, one locked instruction where a separate count took
//! two. Every transition keeps the count as it finds it.
//!
//! Orderings: every transition is an `AcqRel` compare-exchange. A
//! transition that hands the task to another thread (to PARKED, to
//! SCHEDULED) releases what the fiber wrote; the claim that takes it
//! (SCHEDULED to RUNNING, PARKED to SCHEDULED in a waker) acquires it.

use crate::loom::sync::atomic::{AtomicUsize, Ordering, fence};

/// The lifecycle, in the low bits.
const LIFECYCLE: usize = 0b111;
const IDLE: usize = 0;
const SCHEDULED: usize = 1;
const RUNNING: usize = 2;
const PARKED: usize = 3;
const COMPLETE: usize = 4;
/// A wake is pending (see the module doc).
const NOTIFIED: usize = 1 << 3;
/// The runtime is shutting down (see the module doc).
const CANCELLED: usize = 1 << 4;
/// Its fiber runs only at home; see the module doc.
const PINNED: usize = 1 << 5;
/// The reference count, in the bits above the flags.
const REF_SHIFT: u32 = 6;
const REF_ONE: usize = 1 << REF_SHIFT;
/// A reference taken at this count aborts, as `Arc`'s do: only leaked
/// references (with `mem::forget`) could get there, and wrapping would
/// free a live task.
const MAX_REFS: usize = (isize::MAX as usize) >> REF_SHIFT;
/// A new task's count: `TaskArc::new_twice` hands out two references.
const BORN_REFS: usize = 2 * REF_ONE;

/// The word after RUNNING to COMPLETE: the token cleared, the rest (the
/// count among it) kept.
#[inline]
fn completed(s: usize) -> usize {
    debug_assert_eq!(s & LIFECYCLE, RUNNING, "only a running task completes");
    (s & !(LIFECYCLE | NOTIFIED)) | COMPLETE
}

/// Aborts if the word `s`, about to gain a reference, already counts
/// [`MAX_REFS`]: as an `Arc`'s, a count that high means leaked references,
/// and wrapping would free a live task.
#[inline]
fn abort_past_max_refs(s: usize) {
    if s >> REF_SHIFT >= MAX_REFS {
        std::process::abort();
    }
}

/// A task's state word.
#[derive(Debug)]
pub(crate) struct State(AtomicUsize);

/// A decoded snapshot, for assertions and debugging.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Snapshot(usize);

#[cfg_attr(
    not(loom),
    allow(dead_code, reason = "for assertions; the loom models use them all")
)]
#[cfg(any(test, loom))]
impl Snapshot {
    pub(crate) fn is_idle(self) -> bool {
        self.0 & LIFECYCLE == IDLE
    }
    pub(crate) fn is_scheduled(self) -> bool {
        self.0 & LIFECYCLE == SCHEDULED
    }
    pub(crate) fn is_running(self) -> bool {
        self.0 & LIFECYCLE == RUNNING
    }
    pub(crate) fn is_parked(self) -> bool {
        self.0 & LIFECYCLE == PARKED
    }
    pub(crate) fn is_complete(self) -> bool {
        self.0 & LIFECYCLE == COMPLETE
    }
    pub(crate) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    pub(crate) fn is_pinned(self) -> bool {
        self.0 & PINNED != 0
    }
}

impl Snapshot {
    #[inline]
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    /// A short name of the lifecycle state, for fiber dumps.
    pub(crate) fn name(self) -> &'static str {
        match self.0 & LIFECYCLE {
            IDLE => "idle",
            SCHEDULED => "scheduled",
            RUNNING => "running",
            PARKED => "parked",
            _ => "complete",
        }
    }
}

/// What a worker must do after claiming a task: run it, or leave it (it
/// was claimed by someone else, cancelled, or completed).
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// It is now RUNNING and ours.
    Run,
    /// It was not SCHEDULED: drop this queue entry.
    Skip,
}

/// What a worker does with a fiber that switched out to park.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Park {
    /// It is PARKED: a wake will reschedule it.
    Parked,
    /// A wake came first (or the task is cancelled): the token is consumed
    /// and it is SCHEDULED (still RUNNING if pinned); queue it at home.
    Notified,
}

/// What a worker does with a task whose body returned to idle.
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Idle {
    /// It is IDLE: a wake will schedule it.
    Idle,
    /// A wake came first: it is SCHEDULED again; queue it.
    Rescheduled,
}

/// What a waker must do after [`State::wake`].
#[must_use]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wake {
    /// Nothing: the task runs or is queued (the token is set), or is done.
    Nothing,
    /// It was IDLE and is SCHEDULED now, with a reference added for the
    /// queue in the same compare-exchange (the caller takes it over with
    /// `take_woken_count`): queue it, on any worker.
    Schedule,
    /// It was PARKED and is SCHEDULED now (RUNNING, claimed, if pinned):
    /// queue it at its home worker.
    Resume,
}

impl State {
    /// A task that is SCHEDULED from birth (spawn queues it at once),
    /// with the two references `TaskArc::new_twice` hands out.
    pub(crate) fn new_scheduled() -> State {
        State(AtomicUsize::new(SCHEDULED | BORN_REFS))
    }

    /// A task born IDLE (an actor: scheduled by its first message).
    #[cfg_attr(
        not(test),
        expect(dead_code, reason = "the actor layer starts tasks idle")
    )]
    pub(crate) fn new_idle() -> State {
        State(AtomicUsize::new(IDLE | BORN_REFS))
    }

    #[inline]
    pub(crate) fn load(&self) -> Snapshot {
        Snapshot(self.0.load(Ordering::Acquire))
    }

    /// Applies `f` until the compare-exchange succeeds; `f` returns the new
    /// word (or `None` to leave it) and the outcome.
    fn update<T>(&self, mut f: impl FnMut(usize) -> (Option<usize>, T)) -> T {
        let mut current = self.0.load(Ordering::Acquire);
        loop {
            let (next, outcome) = f(current);
            let Some(next) = next else { return outcome };
            match self
                .0
                .compare_exchange_weak(current, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => return outcome,
                Err(actual) => current = actual,
            }
        }
    }

    /// A worker popped the task from a queue: SCHEDULED to RUNNING. `pin`
    /// (a runtime without the migration opt-in) marks it PINNED.
    pub(crate) fn transition_to_running(&self, pin: bool) -> Claim {
        let pinned = if pin { PINNED } else { 0 };
        self.update(|s| match s & LIFECYCLE {
            SCHEDULED => (Some((s & !LIFECYCLE) | RUNNING | pinned), Claim::Run),
            _ => (None, Claim::Skip),
        })
    }

    /// Shutdown claims a parked fiber to unwind it: PARKED to RUNNING.
    pub(crate) fn transition_to_running_from_parked(&self) -> Claim {
        self.update(|s| match s & LIFECYCLE {
            PARKED => (Some((s & !LIFECYCLE) | RUNNING), Claim::Run),
            _ => (None, Claim::Skip),
        })
    }

    /// The fiber switched out to park; the worker is back on its own stack.
    #[inline]
    pub(crate) fn transition_to_parked(&self) -> Park {
        self.update(|s| {
            debug_assert_eq!(s & LIFECYCLE, RUNNING, "only a running task parks");
            if s & (NOTIFIED | CANCELLED) != 0 {
                // A pinned fiber stays RUNNING: still claimed, by its home.
                let next = if s & PINNED != 0 { RUNNING } else { SCHEDULED };
                (Some((s & !(LIFECYCLE | NOTIFIED)) | next), Park::Notified)
            } else {
                (Some((s & !LIFECYCLE) | PARKED), Park::Parked)
            }
        })
    }

    /// The fiber yielded: RUNNING to SCHEDULED, keeping any token. Only an
    /// unpinned fiber does this; a pinned one stays RUNNING.
    pub(crate) fn transition_to_scheduled(&self) {
        self.update(|s| {
            debug_assert_eq!(s & LIFECYCLE, RUNNING, "only a running task yields");
            debug_assert_eq!(s & PINNED, 0, "a pinned fiber yields RUNNING");
            (Some((s & !LIFECYCLE) | SCHEDULED), ())
        });
    }

    /// The look that decides whether a running body about to go idle has
    /// more to do (`look`: is anything in the actor's mailbox?), taken
    /// after a pending token: a token left by a wake whose cause the look
    /// then finds (a message already handled) is stale, and going idle
    /// with it would reschedule the task for nothing. A wake after the
    /// take leaves a new token, which [`idle_and_release`] turns into a
    /// reschedule, so nothing is lost. If the look finds work the token
    /// goes back: it may be an unpark meant for a later park of this run.
    ///
    /// [`idle_and_release`]: Self::idle_and_release
    pub(crate) fn look_before_idle(&self, look: impl FnOnce() -> bool) -> bool {
        #[cfg(loom)]
        if crate::loom::mutation::planted("idle_look_takes_the_token_late") {
            let work = look();
            let token = self.take_token();
            if work && token {
                self.put_token_back();
            }
            return work;
        }
        let token = self.take_token();
        let work = look();
        if work && token {
            self.put_token_back();
        }
        work
    }

    /// Clears a pending token of the running task; whether there was one.
    fn take_token(&self) -> bool {
        self.update(|s| {
            debug_assert_eq!(
                s & LIFECYCLE,
                RUNNING,
                "only the running task takes its token"
            );
            if s & NOTIFIED != 0 {
                (Some(s & !NOTIFIED), true)
            } else {
                (None, false)
            }
        })
    }

    /// Sets the token [`take_token`](Self::take_token) took.
    fn put_token_back(&self) {
        self.update(|s| (Some(s | NOTIFIED), ()));
    }

    /// The body ended for good: RUNNING to COMPLETE.
    pub(crate) fn transition_to_complete(&self) {
        self.update(|s| (Some(completed(s)), ()));
    }

    /// [`transition_to_complete`](Self::transition_to_complete), and the
    /// runner's reference dropped in the same compare-exchange: whether it
    /// was the last (its `AcqRel` is the release and the acquire a last
    /// decrement needs).
    #[inline]
    pub(crate) fn complete_and_release(&self) -> bool {
        self.update(|s| {
            debug_assert!(s >= REF_ONE, "the runner holds a reference");
            let next = completed(s) - REF_ONE;
            (Some(next), next < REF_ONE)
        })
    }

    /// The body returned to idle (the task will run again when woken):
    /// RUNNING to IDLE, and the runner's reference dropped in the same
    /// compare-exchange; whether it was the last. If a wake came first
    /// (and the task is not cancelled), back to SCHEDULED instead, and
    /// the caller keeps its reference, for the queue.
    #[inline]
    pub(crate) fn idle_and_release(&self) -> (Idle, bool) {
        self.update(|s| {
            debug_assert_eq!(s & LIFECYCLE, RUNNING, "only a running task goes idle");
            debug_assert!(s >= REF_ONE, "the runner holds a reference");
            if s & NOTIFIED != 0 && s & CANCELLED == 0 {
                (
                    Some((s & !(LIFECYCLE | NOTIFIED)) | SCHEDULED),
                    (Idle::Rescheduled, false),
                )
            } else {
                let next = ((s & !(LIFECYCLE | NOTIFIED)) | IDLE) - REF_ONE;
                (Some(next), (Idle::Idle, next < REF_ONE))
            }
        })
    }

    /// Adds a reference (a `TaskArc` clone). Relaxed, as `Arc`'s: a count
    /// is only ever taken from one already held.
    #[inline]
    pub(crate) fn ref_inc(&self) {
        abort_past_max_refs(self.0.fetch_add(REF_ONE, Ordering::Relaxed));
    }

    /// Drops a reference; whether it was the last. `Arc`'s orderings: the
    /// decrement releases this thread's uses of the task, and the last one
    /// acquires everyone else's before the task is dropped.
    #[inline]
    pub(crate) fn ref_dec(&self) -> bool {
        if self.0.fetch_sub(REF_ONE, Ordering::Release) >> REF_SHIFT != 1 {
            return false;
        }
        fence(Ordering::Acquire);
        true
    }

    /// How many references exist (a snapshot).
    #[cfg(test)]
    pub(crate) fn refs(&self) -> usize {
        self.0.load(Ordering::Acquire) >> REF_SHIFT
    }

    /// Wakes the task (std's `unpark`): see [`Wake`]. `Resume` hands the
    /// fiber to the caller to queue at home: RUNNING (claimed) if it is
    /// pinned, else SCHEDULED.
    pub(crate) fn wake(&self) -> Wake {
        self.update(|s| match s & LIFECYCLE {
            IDLE if s & CANCELLED == 0 => {
                abort_past_max_refs(s);
                (
                    Some(((s & !LIFECYCLE) | SCHEDULED) + REF_ONE),
                    Wake::Schedule,
                )
            }
            // A pinned fiber is claimed here, for its home worker.
            PARKED if s & PINNED != 0 => (Some((s & !LIFECYCLE) | RUNNING), Wake::Resume),
            PARKED => (Some((s & !LIFECYCLE) | SCHEDULED), Wake::Resume),
            // Written even when the token is set already (the same word,
            // by a release RMW): whoever consumes the token must see what
            // this waker did before waking, and a waker that wrote nothing
            // would not synchronize with it. Then the fiber could consume
            // an earlier wake's token, re-read its condition stale, and
            // park for good (`loom_unpark_with_a_stale_token_is_not_lost`;
            // std's parker swaps NOTIFIED in unconditionally for the same
            // reason).
            SCHEDULED | RUNNING => {
                #[cfg(loom)]
                if s & NOTIFIED != 0
                    && crate::loom::mutation::planted("wake_skips_the_write_when_notified")
                {
                    return (None, Wake::Nothing);
                }
                (Some(s | NOTIFIED), Wake::Nothing)
            }
            _ => (None, Wake::Nothing),
        })
    }

    /// The running fiber's park, before switching out: consumes a pending
    /// token (or sees the task cancelled) and tells it not to park.
    #[inline]
    pub(crate) fn try_consume_notification(&self) -> bool {
        self.update(|s| {
            if s & CANCELLED != 0 {
                (None, true)
            } else if s & NOTIFIED != 0 {
                (Some(s & !NOTIFIED), true)
            } else {
                (None, false)
            }
        })
    }

    /// Marks the task cancelled (runtime shutdown). Returns the state just
    /// before.
    pub(crate) fn cancel(&self) -> Snapshot {
        Snapshot(self.0.fetch_or(CANCELLED, Ordering::AcqRel))
    }
}

#[cfg(all(test, not(loom)))]
mod tests;

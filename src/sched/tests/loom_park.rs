//! Models (a) and (d): park racing unpark and the switch-out, and an
//! unpark handed to a sleeping home worker through its inbox.

use ::loom::cell::UnsafeCell;
use ::loom::sync::Arc;
use ::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use ::loom::thread;

use crate::fiber::state::{Claim, Park, State, Wake};
use crate::sched::idle::Idle;
use crate::sched::inbox::Inbox;
use crate::sched::park::Parker;
use crate::sched::queue::Injector;

/// A fiber reduced to what the protocol sees: its state word, its stack
/// (touched by whoever runs it), and how often its second step ran.
struct ModelFiber {
    state: State,
    stack: UnsafeCell<u32>,
    resumed: AtomicUsize,
}

impl ModelFiber {
    fn new() -> ModelFiber {
        ModelFiber {
            state: State::new_scheduled(),
            stack: UnsafeCell::new(0),
            resumed: AtomicUsize::new(0),
        }
    }

    /// Runs on the fiber's stack.
    fn touch_stack(&self, by: u32) {
        // SAFETY: loom checks this access for races; that is the point.
        self.stack.with_mut(|s| unsafe { *s += by });
    }

    /// The fiber's second step: it runs once it is resumed.
    fn resume_and_finish(&self) {
        self.touch_stack(100);
        self.resumed.fetch_add(1, Ordering::Relaxed);
        self.state.transition_to_complete();
    }
}

/// A run queue any worker takes from, and the parker of the worker that
/// waits on it: the migration opt-in's routing, where a fiber published
/// too early would be resumed by another thread while its stack is in use.
struct Shared {
    queue: Injector<Arc<ModelFiber>>,
    taker: Parker,
    done: AtomicBool,
}

impl Shared {
    fn push(&self, fiber: Arc<ModelFiber>) {
        self.queue.push(fiber);
        self.taker.unpark();
    }
}

/// Worker A runs the fiber's first step, which parks. Mirrors
/// `Worker::run_task` and `fiber::park`: the fiber tries its token first;
/// otherwise it switches out, touching its stack to the last instruction,
/// and only then does the worker call `transition_to_parked`; `Notified`
/// requeues it.
fn worker_runs_and_parks(fiber: &Arc<ModelFiber>, shared: &Shared, publish_early: bool) {
    assert_eq!(fiber.state.transition_to_running(false), Claim::Run);
    fiber.touch_stack(1);
    if fiber.state.try_consume_notification() {
        // The token was there: park returns without switching out.
        fiber.resume_and_finish();
        return;
    }
    let outcome = if publish_early {
        // The planted bug: publish PARKED, then finish switching out.
        let outcome = fiber.state.transition_to_parked();
        fiber.touch_stack(10);
        outcome
    } else {
        fiber.touch_stack(10);
        fiber.state.transition_to_parked()
    };
    if outcome == Park::Notified {
        shared.push(fiber.clone());
    }
}

/// Worker B takes the fiber from the queue, claims and resumes it (mirrors
/// `next_task` + `run_task`), sleeping on its parker until there is one.
fn worker_resumes(shared: &Shared) {
    loop {
        // `done` first: once it is set, every push has happened before.
        let done = shared.done.load(Ordering::Acquire);
        if let Some(fiber) = shared.queue.steal() {
            if fiber.state.transition_to_running(false) == Claim::Run {
                fiber.resume_and_finish();
            }
            return;
        }
        if done {
            return;
        }
        shared.taker.park(None);
    }
}

fn park_unpark_model(publish_early: bool) {
    ::loom::model(move || {
        let fiber = Arc::new(ModelFiber::new());
        let shared = Arc::new(Shared {
            queue: Injector::new(),
            taker: Parker::new(),
            done: AtomicBool::new(false),
        });
        let a = {
            let (fiber, shared) = (fiber.clone(), shared.clone());
            thread::spawn(move || worker_runs_and_parks(&fiber, &shared, publish_early))
        };
        let b = {
            let shared = shared.clone();
            thread::spawn(move || worker_resumes(&shared))
        };
        // The unparker: `sched::wake`, with the migration routing.
        if fiber.state.wake() == Wake::Resume {
            shared.push(fiber.clone());
        }
        a.join().unwrap();
        // If A resumed the fiber through its token, nothing was queued:
        // let B stop.
        shared.done.store(true, Ordering::Release);
        shared.taker.unpark();
        b.join().unwrap();
        assert!(fiber.state.load().is_complete(), "the fiber was resumed");
        assert_eq!(fiber.resumed.load(Ordering::Relaxed), 1, "exactly once");
    });
}

/// (a) A fiber is published PARKED only after its worker has left its
/// stack; an unpark racing the switch-out is never lost, and the fiber is
/// resumed exactly once, even by another worker.
#[test]
fn loom_park_unpark_races_the_switch_out() {
    park_unpark_model(false);
}

/// The planted bug (PARKED published before the switch-out is done) lets
/// another worker run the fiber on a stack still in use: loom reports the
/// concurrent access.
#[test]
fn loom_park_unpark_mutation_publish_early_is_caught() {
    if crate::loom::mutation::is_mutant_run() {
        park_unpark_model(true);
    } else {
        crate::loom::mutation::expect_rejected(
            "sched::tests::loom_park::loom_park_unpark_mutation_publish_early_is_caught",
            "park_publish_early",
            &["Causality violation"],
        );
    }
}

/// A home worker: its inbox, parker and sleeper accounting.
struct Home {
    inbox: Inbox<Arc<ModelFiber>>,
    parker: Parker,
    idle: Idle,
}

impl Home {
    fn new() -> Home {
        Home {
            inbox: Inbox::new(),
            parker: Parker::new(),
            idle: Idle::new(1),
        }
    }

    /// Another thread unparks `fiber`, whose home this is: `sched::resume`'s
    /// remote path (it claims a parked fiber and hands it to the inbox).
    fn unpark(&self, fiber: &Arc<ModelFiber>) {
        if fiber.state.wake() == Wake::Resume {
            self.inbox.push(fiber.clone());
            self.parker.unpark();
        }
    }
}

/// The home worker waiting for its fiber; mirrors `Worker::idle` (register
/// as a sleeper, a last look at the inbox, park, unregister) and
/// `next_task`'s inbox drain.
fn home_worker(home: &Home) -> Arc<ModelFiber> {
    loop {
        let mut woken = Vec::new();
        home.inbox.drain_into(&mut woken);
        if let Some(fiber) = woken.pop() {
            return fiber;
        }
        home.idle.transition_worker_to_parked(0, false);
        if !home.inbox.is_pending() {
            home.parker.park(None);
        }
        home.idle.transition_worker_from_parked(0);
    }
}

fn inbox_model(waker_unparks: bool) {
    ::loom::model(move || {
        let home = Arc::new(Home::new());
        let fiber = Arc::new(ModelFiber::new());
        // The fiber ran on its home worker, pinned, and parked there.
        assert_eq!(fiber.state.transition_to_running(true), Claim::Run);
        fiber.touch_stack(1);
        assert_eq!(fiber.state.transition_to_parked(), Park::Parked);
        let worker = {
            let home = home.clone();
            thread::spawn(move || {
                // The waker claimed it for us: it runs without a claim.
                let fiber = home_worker(&home);
                fiber.resume_and_finish();
            })
        };
        // Another thread unparks it: `sched::resume`'s remote path.
        assert_eq!(fiber.state.wake(), Wake::Resume);
        home.inbox.push(fiber.clone());
        if waker_unparks {
            home.parker.unpark();
        }
        worker.join().unwrap();
        assert_eq!(fiber.resumed.load(Ordering::Relaxed), 1);
    });
}

/// A pinned fiber's park racing two unparks from other threads: each
/// waker either leaves the token or claims the fiber (PARKED to RUNNING)
/// and hands it to the home worker's inbox; the home worker resumes it
/// exactly once, from its token, its `Notified` park or its inbox, and
/// never claims it again.
#[test]
fn loom_pinned_park_races_two_unparks() {
    pinned_park_model(false);
}

/// As above, with PARKED published while the fiber is still on its stack,
/// as a direct hand-off does (`sched::worker::handoff`): harmless for a
/// pinned fiber, whose only resumer is the thread publishing.
#[test]
fn loom_pinned_park_publishes_early() {
    pinned_park_model(true);
}

fn pinned_park_model(publish_early: bool) {
    ::loom::model(move || {
        let home = Arc::new(Home::new());
        let fiber = Arc::new(ModelFiber::new());
        let worker = {
            let (home, fiber) = (home.clone(), fiber.clone());
            thread::spawn(move || {
                assert_eq!(fiber.state.transition_to_running(true), Claim::Run);
                fiber.touch_stack(1);
                if fiber.state.try_consume_notification() {
                    return fiber.resume_and_finish();
                }
                let outcome = if publish_early {
                    let outcome = fiber.state.transition_to_parked();
                    fiber.touch_stack(10);
                    outcome
                } else {
                    fiber.touch_stack(10);
                    fiber.state.transition_to_parked()
                };
                if outcome == Park::Notified {
                    assert!(fiber.state.load().is_running(), "still claimed");
                    return fiber.resume_and_finish();
                }
                let woken = home_worker(&home);
                assert!(woken.state.load().is_running(), "claimed by its waker");
                woken.resume_and_finish();
            })
        };
        let other = {
            let (home, fiber) = (home.clone(), fiber.clone());
            thread::spawn(move || home.unpark(&fiber))
        };
        home.unpark(&fiber);
        other.join().unwrap();
        worker.join().unwrap();
        assert!(fiber.state.load().is_complete());
        assert_eq!(fiber.resumed.load(Ordering::Relaxed), 1, "exactly once");
    });
}

/// (d) An unpark from another thread reaches a home worker that is going
/// to sleep or asleep: it wakes and resumes the fiber, exactly once.
#[test]
fn loom_unpark_reaches_a_sleeping_home_worker() {
    inbox_model(true);
}

/// The planted bug (a waker that queues the fiber but does not unpark the
/// home worker) leaves the worker asleep: loom reports the deadlock.
#[test]
fn loom_inbox_mutation_waker_without_unpark_deadlocks() {
    if crate::loom::mutation::is_mutant_run() {
        inbox_model(false);
    } else {
        crate::loom::mutation::expect_rejected(
            "sched::tests::loom_park::loom_inbox_mutation_waker_without_unpark_deadlocks",
            "inbox_waker_without_unpark",
            &["deadlock"],
        );
    }
}

/// The parker alone: a sleeper that loops on a flag, and two threads that
/// unpark it, one after setting the flag. The wake that comes with the
/// flag is never lost (this caught a consume-by-store bug at bound 3).
#[test]
fn loom_parker_keeps_a_late_unpark() {
    ::loom::model(|| {
        let shared = Arc::new((Parker::new(), AtomicBool::new(false)));
        let sleeper = {
            let shared = shared.clone();
            thread::spawn(move || {
                while !shared.1.load(Ordering::Acquire) {
                    shared.0.park(None);
                }
            })
        };
        let other = {
            let shared = shared.clone();
            thread::spawn(move || shared.0.unpark())
        };
        shared.1.store(true, Ordering::Release);
        shared.0.unpark();
        other.join().unwrap();
        sleeper.join().unwrap();
    });
}

/// A pinned fiber that parks in a loop until a flag is set, as
/// `fiber::park`'s callers do; the flag's setter then unparks it, while
/// the token of an earlier unpark is still unconsumed. The fiber may
/// consume that stale token and look at the flag again: it must then see
/// the flag, or find the setter's own token, or be woken through its
/// inbox. (Caught a lost wake-up: a wake that found the token already set
/// wrote nothing, so the fiber consuming that token did not synchronize
/// with the setter's flag, re-read it unset, and parked for good.)
#[test]
fn loom_unpark_with_a_stale_token_is_not_lost() {
    stale_token_model();
}

/// The planted bug (a wake that finds the token set writes nothing) loses
/// the wake-up: loom reports the deadlock.
#[test]
fn loom_stale_token_mutation_wake_without_write_deadlocks() {
    if crate::loom::mutation::is_mutant_run() {
        stale_token_model();
    } else {
        crate::loom::mutation::expect_rejected(
            "sched::tests::loom_park::loom_stale_token_mutation_wake_without_write_deadlocks",
            "wake_skips_the_write_when_notified",
            &["deadlock"],
        );
    }
}

fn stale_token_model() {
    ::loom::model(|| {
        let home = Arc::new(Home::new());
        let fiber = Arc::new(ModelFiber::new());
        let flag = Arc::new(AtomicBool::new(false));
        assert_eq!(fiber.state.transition_to_running(true), Claim::Run);
        // An earlier round's unpark, its token not consumed yet.
        assert_eq!(fiber.state.wake(), Wake::Nothing);
        let worker = {
            let (home, fiber, flag) = (home.clone(), fiber.clone(), flag.clone());
            thread::spawn(move || {
                // `while !flag { park() }`, with park as `fiber::park` and
                // `Worker::run_task` do it for a pinned fiber.
                while !flag.load(Ordering::Acquire) {
                    if fiber.state.try_consume_notification() {
                        continue;
                    }
                    if fiber.state.transition_to_parked() == Park::Notified {
                        continue;
                    }
                    let woken = home_worker(&home);
                    assert!(woken.state.load().is_running(), "claimed by its waker");
                }
                fiber.resume_and_finish();
            })
        };
        flag.store(true, Ordering::Release);
        home.unpark(&fiber);
        worker.join().unwrap();
        assert_eq!(fiber.resumed.load(Ordering::Relaxed), 1);
    });
}

//! Model (e): a body going idle (an actor whose mailbox looks empty) while
//! a message is pushed and its task woken. The last look at the mailbox
//! is taken after any pending token (`State::look_before_idle`), so that a
//! token whose message was already handled does not reschedule the task
//! for nothing; the model checks that this loses no message either.

use ::loom::sync::Arc;
use ::loom::sync::atomic::{AtomicUsize, Ordering};
use ::loom::thread;

use crate::fiber::state::{Claim, Idle, State, Wake};
use crate::loom::sync::Mutex;

/// An actor reduced to its task's state word and a mailbox.
struct ModelActor {
    state: State,
    mailbox: Mutex<Vec<u32>>,
    handled: AtomicUsize,
    activations: AtomicUsize,
}

impl ModelActor {
    /// `Addr::send`: push, then wake the task (`sched::wake_by`); true if
    /// the wake found it idle and scheduled it (the sender queues it, with
    /// the reference the wake added).
    fn send(&self, msg: u32) -> bool {
        self.mailbox.lock().push(msg);
        match self.state.wake() {
            Wake::Schedule => true,
            Wake::Nothing => false,
            Wake::Resume => unreachable!("the model's actor never parks"),
        }
    }

    /// One activation, from its claim until it goes idle: mirrors
    /// `ActorCell::run`'s loop (handle what the mailbox holds, then the
    /// look that decides) and `Worker::run_task`'s move to idle
    /// (`TaskArc::go_idle`), which drops the runner's reference, or runs
    /// the body again if a wake came first.
    fn activate(&self) {
        assert_eq!(self.state.transition_to_running(true), Claim::Run);
        loop {
            self.activations.fetch_add(1, Ordering::Relaxed);
            loop {
                let batch: Vec<u32> = std::mem::take(&mut *self.mailbox.lock());
                self.handled.fetch_add(batch.len(), Ordering::Relaxed);
                if !self
                    .state
                    .look_before_idle(|| !self.mailbox.lock().is_empty())
                {
                    break;
                }
            }
            match self.state.idle_and_release() {
                (Idle::Idle, last) => {
                    assert!(!last, "the address holds a reference");
                    return;
                }
                (Idle::Rescheduled, _) => {
                    assert_eq!(self.state.transition_to_running(true), Claim::Run);
                }
            }
        }
    }
}

fn go_idle_model() {
    ::loom::model(|| {
        let actor = Arc::new(ModelActor {
            state: State::new_scheduled(),
            mailbox: Mutex::new(vec![1]),
            handled: AtomicUsize::new(0),
            activations: AtomicUsize::new(0),
        });
        // The first message's push left a token while the actor ran (the
        // claim comes first in `activate`; here the token is set before
        // the claim's RUNNING, as `wake` on a SCHEDULED task does).
        assert_eq!(actor.state.wake(), Wake::Nothing);
        let sender = {
            let actor = actor.clone();
            thread::spawn(move || actor.send(2))
        };
        actor.activate();
        if sender.join().unwrap() {
            // The sender found it idle and queued it: a worker runs it.
            actor.activate();
        }
        assert_eq!(
            actor.handled.load(Ordering::Relaxed),
            2,
            "a message was lost: the actor went idle with it in its mailbox"
        );
        assert!(actor.mailbox.lock().is_empty());
        assert!(actor.state.load().is_idle());
        // Born with two references (the first run's and the address's);
        // each run that went idle dropped the one it ran with.
        assert_eq!(
            actor.state.refs(),
            1,
            "a run's reference was kept or dropped twice"
        );
        // At most one run besides the first, and only for the second
        // message: the first one's token alone never costs a run.
        assert!(actor.activations.load(Ordering::Relaxed) <= 2);
    });
}

/// No message is lost, and a stale token costs no extra run.
#[test]
fn loom_going_idle_loses_no_message() {
    go_idle_model();
}

/// The planted bug (the token taken after the look, so that a message
/// pushed between them is taken for stale) loses the message.
#[test]
fn loom_go_idle_mutation_token_taken_late_loses_a_message() {
    if crate::loom::mutation::is_mutant_run() {
        go_idle_model();
    } else {
        crate::loom::mutation::expect_rejected(
            "sched::tests::loom_go_idle::loom_go_idle_mutation_token_taken_late_loses_a_message",
            "idle_look_takes_the_token_late",
            &["a message was lost"],
        );
    }
}

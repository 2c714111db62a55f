//! The transitions, one at a time (the races are loom's: `sched/tests`).

use super::*;

#[test]
fn a_spawned_task_runs_then_completes() {
    let s = State::new_scheduled();
    assert_eq!(s.transition_to_running(false), Claim::Run);
    assert_eq!(
        s.transition_to_running(false),
        Claim::Skip,
        "claimed once only"
    );
    s.transition_to_complete();
    assert!(s.load().is_complete());
    assert_eq!(s.wake(), Wake::Nothing);
    assert_eq!(s.transition_to_running(false), Claim::Skip);
}

#[test]
fn park_then_wake_resumes_at_home() {
    let s = State::new_scheduled();
    assert_eq!(s.transition_to_running(false), Claim::Run);
    assert_eq!(s.transition_to_parked(), Park::Parked);
    assert_eq!(s.wake(), Wake::Resume);
    assert_eq!(
        s.wake(),
        Wake::Nothing,
        "the second wake only leaves a token"
    );
    assert!(s.load().is_scheduled() && s.load().is_notified());
    assert_eq!(s.transition_to_running(false), Claim::Run);
    assert!(
        s.try_consume_notification(),
        "the token makes the next park return"
    );
    assert!(!s.try_consume_notification());
}

#[test]
fn a_wake_before_the_switch_out_is_not_lost() {
    let s = State::new_scheduled();
    assert_eq!(s.transition_to_running(false), Claim::Run);
    // The fiber decided to park and is switching out; a wake lands.
    assert_eq!(s.wake(), Wake::Nothing);
    assert_eq!(s.transition_to_parked(), Park::Notified);
    let after = s.load();
    assert!(
        after.is_scheduled() && !after.is_notified(),
        "queued again, token consumed"
    );
    assert_eq!(
        s.transition_to_running(false),
        Claim::Run,
        "so the next claim succeeds"
    );
}

#[test]
fn idle_tasks_are_rescheduled_by_a_wake() {
    let s = State::new_idle();
    assert_eq!(s.wake(), Wake::Schedule);
    assert_eq!(s.wake(), Wake::Nothing);
    assert_eq!(s.transition_to_running(false), Claim::Run);
    assert_eq!(
        s.idle_and_release().0,
        Idle::Rescheduled,
        "the token reschedules"
    );
    assert_eq!(s.transition_to_running(false), Claim::Run);
    assert_eq!(s.idle_and_release().0, Idle::Idle);
    assert_eq!(s.wake(), Wake::Schedule);
}

#[test]
fn a_stale_token_does_not_reschedule_a_task_going_idle() {
    let s = State::new_idle();
    assert_eq!(s.wake(), Wake::Schedule);
    assert_eq!(s.transition_to_running(true), Claim::Run);
    // A message came while it ran and was handled: its token is stale.
    assert_eq!(s.wake(), Wake::Nothing);
    assert!(!s.look_before_idle(|| false), "nothing waits");
    assert_eq!(
        s.idle_and_release().0,
        Idle::Idle,
        "no reschedule for nothing"
    );
}

#[test]
fn a_look_that_finds_work_keeps_the_token() {
    let s = State::new_scheduled();
    assert_eq!(s.transition_to_running(true), Claim::Run);
    assert_eq!(s.wake(), Wake::Nothing);
    assert!(s.look_before_idle(|| true));
    assert!(
        s.load().is_notified(),
        "the token is back, for a later park"
    );
    assert!(!s.look_before_idle(|| false), "then nothing waits");
    assert!(!s.load().is_notified(), "and the token is gone");
    assert_eq!(s.idle_and_release().0, Idle::Idle);
}

#[test]
fn a_pinned_fiber_is_claimed_by_its_waker_and_never_rescheduled() {
    let s = State::new_scheduled();
    assert_eq!(s.transition_to_running(true), Claim::Run);
    assert!(s.load().is_pinned());
    assert_eq!(s.transition_to_parked(), Park::Parked);
    assert_eq!(s.wake(), Wake::Resume);
    assert!(s.load().is_running(), "the waker claimed it for its home");
    assert_eq!(s.wake(), Wake::Nothing);
    assert!(s.load().is_notified(), "a second wake leaves a token");
    assert_eq!(
        s.transition_to_running(true),
        Claim::Skip,
        "nobody claims a claimed fiber again"
    );
    assert_eq!(
        s.transition_to_parked(),
        Park::Notified,
        "the token keeps it from parking"
    );
    let after = s.load();
    assert!(after.is_running() && !after.is_notified() && after.is_pinned());
    s.transition_to_complete();
    assert!(s.load().is_complete());
}

#[test]
fn the_count_rides_above_the_lifecycle_and_its_flags() {
    let s = State::new_scheduled();
    assert_eq!(s.refs(), 2, "born with two references");
    s.ref_inc();
    assert_eq!(s.transition_to_running(true), Claim::Run);
    assert_eq!(s.wake(), Wake::Nothing);
    assert_eq!(s.refs(), 3, "transitions keep the count");
    assert!(s.load().is_running() && s.load().is_notified() && s.load().is_pinned());
    assert!(!s.ref_dec(), "two are left");
    assert!(!s.complete_and_release(), "one is left");
    let after = s.load();
    assert!(after.is_complete() && !after.is_notified());
    assert_eq!(s.refs(), 1);
    assert!(s.ref_dec(), "the last one");
}

#[test]
fn a_wake_from_idle_counts_the_queue_and_going_idle_drops_it() {
    let s = State::new_idle();
    assert_eq!(s.refs(), 2);
    assert_eq!(s.wake(), Wake::Schedule);
    assert_eq!(s.refs(), 3, "the wake added the queue's reference");
    assert_eq!(s.wake(), Wake::Nothing);
    assert_eq!(s.refs(), 3, "a wake that schedules nothing adds none");
    assert_eq!(s.transition_to_running(false), Claim::Run);
    assert_eq!(s.idle_and_release(), (Idle::Rescheduled, false));
    assert_eq!(s.refs(), 3, "the queue takes the runner's reference");
    assert_eq!(s.transition_to_running(false), Claim::Run);
    assert_eq!(s.idle_and_release(), (Idle::Idle, false));
    assert_eq!(s.refs(), 2);
    assert_eq!(s.wake(), Wake::Schedule);
    assert_eq!(s.transition_to_running(false), Claim::Run);
    assert!(!s.ref_dec());
    assert!(!s.ref_dec());
    assert_eq!(s.idle_and_release(), (Idle::Idle, true), "the last one");
}

#[test]
fn yield_keeps_the_token() {
    let s = State::new_scheduled();
    assert_eq!(s.transition_to_running(false), Claim::Run);
    assert_eq!(s.wake(), Wake::Nothing);
    s.transition_to_scheduled();
    assert!(s.load().is_scheduled() && s.load().is_notified());
}

#[test]
fn cancelled_tasks_do_not_park_or_restart() {
    let s = State::new_scheduled();
    assert_eq!(s.transition_to_running(false), Claim::Run);
    assert!(!s.cancel().is_cancelled());
    assert!(
        s.try_consume_notification(),
        "a cancelled fiber's park returns at once"
    );
    assert_eq!(
        s.transition_to_parked(),
        Park::Notified,
        "a cancelled fiber is not parked"
    );
    assert_eq!(s.transition_to_running(false), Claim::Run);
    assert_eq!(s.wake(), Wake::Nothing);
    assert_eq!(
        s.idle_and_release().0,
        Idle::Idle,
        "no reschedule after cancel"
    );
    assert_eq!(
        s.wake(),
        Wake::Nothing,
        "an idle cancelled task is not scheduled"
    );
}

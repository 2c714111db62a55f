//! The Mutex hand-off, driven through the real `Mutex` on loom's
//! primitives: no lost wake-up (every waiter gets the lock), no double
//! wake (never two holders: the protected cell is loom's, which reports
//! overlapping access as a causality violation).

use ::loom::cell::UnsafeCell;
use ::loom::sync::Arc;
use ::loom::thread;

use crate::loom::mutation;
use crate::sync::Mutex;

/// Three parties take the lock and bump the counter under it.
fn handoff_model() {
    ::loom::model(|| {
        let lock = Arc::new(Mutex::new(UnsafeCell::new(0usize)));
        let bump = |lock: &Mutex<UnsafeCell<usize>>| {
            let guard = lock.lock();
            // SAFETY: the lock makes this the only access (loom checks).
            guard.with_mut(|n| unsafe { *n += 1 });
        };
        let others: Vec<_> = (0..2)
            .map(|_| {
                let lock = lock.clone();
                thread::spawn(move || bump(&lock))
            })
            .collect();
        bump(&lock);
        others.into_iter().for_each(|t| t.join().unwrap());
        let guard = lock.lock();
        // SAFETY: as above.
        assert_eq!(guard.with(|n| unsafe { *n }), 3);
    });
}

#[test]
fn loom_mutex_hands_off_without_lost_or_double_wakes() {
    handoff_model();
}

/// The planted bug (an unlock that releases as if nobody waited) strands
/// the queued waiter: loom reports the deadlock.
#[test]
fn loom_mutex_mutation_unlock_forgets_waiters_is_caught() {
    if mutation::is_mutant_run() {
        handoff_model();
    } else {
        mutation::expect_rejected(
            "sync::tests::loom_mutex::loom_mutex_mutation_unlock_forgets_waiters_is_caught",
            "mutex_unlock_forgets_waiters",
            &["deadlock"],
        );
    }
}

/// The planted bug (hand the lock over *and* release it) lets a newcomer
/// take the lock while the woken waiter holds it too: two holders.
#[test]
fn loom_mutex_mutation_handoff_also_releases_is_caught() {
    if mutation::is_mutant_run() {
        handoff_model();
    } else {
        mutation::expect_rejected(
            "sync::tests::loom_mutex::loom_mutex_mutation_handoff_also_releases_is_caught",
            "mutex_handoff_also_releases",
            &["Causality violation", "deadlock"],
        );
    }
}

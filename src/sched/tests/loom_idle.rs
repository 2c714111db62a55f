//! Model (b): workers going to sleep while work is pushed; no wake-up is
//! lost.

use ::loom::sync::Arc;
use ::loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use ::loom::thread;

use crate::sched::idle::Idle;
use crate::sched::park::Parker;
use crate::sched::queue::Injector;

const WORKERS: usize = 2;

struct Shared {
    injector: Injector<u32>,
    idle: Idle,
    parkers: Vec<Parker>,
    ran: AtomicUsize,
    main: Parker,
    shutdown: AtomicBool,
}

impl Shared {
    /// `Shared::notify_parked`.
    fn notify_parked(&self) {
        if let Some(worker) = self.idle.worker_to_notify() {
            self.parkers[worker].unpark();
        }
    }

    fn run(&self, _task: u32) {
        self.ran.fetch_add(1, Ordering::Relaxed);
        self.main.unpark();
    }
}

/// One worker's loop, reduced to the idle protocol. Mirrors
/// `Worker::run_loop`, `end_search` and `idle`: take work if any (ending a
/// search, waking a sleeper if it was the last searcher); else become a
/// searcher if allowed and steal; else register as a sleeper, and if it
/// was the last searcher re-check the queues before sleeping (skipped in
/// the planted bug).
fn worker(index: usize, shared: &Shared, recheck: bool) {
    let mut searching = false;
    let end_search = |searching: &mut bool| {
        if std::mem::replace(searching, false) && shared.idle.transition_worker_from_searching() {
            shared.notify_parked();
        }
    };
    loop {
        if shared.shutdown.load(Ordering::Acquire) {
            return;
        }
        // `next_task`: the injector (this model's only queue).
        if let Some(task) = shared.injector.steal() {
            end_search(&mut searching);
            shared.run(task);
            continue;
        }
        // `idle`: search.
        if !searching {
            searching = shared.idle.transition_worker_to_searching();
        }
        if searching && let Some(task) = shared.injector.steal() {
            end_search(&mut searching);
            shared.run(task);
            continue;
        }
        // Sleep.
        let last_searcher = shared
            .idle
            .transition_worker_to_parked(index, std::mem::replace(&mut searching, false));
        let work_pending = recheck && last_searcher && !shared.injector.is_empty();
        if !work_pending && !shared.shutdown.load(Ordering::Acquire) {
            shared.parkers[index].park(None);
        }
        searching = shared.idle.transition_worker_from_parked(index);
    }
}

fn sleep_notify_model(recheck: bool) {
    ::loom::model(move || {
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            idle: Idle::new(WORKERS),
            parkers: (0..WORKERS).map(|_| Parker::new()).collect(),
            ran: AtomicUsize::new(0),
            main: Parker::new(),
            shutdown: AtomicBool::new(false),
        });
        let workers: Vec<_> = (0..WORKERS)
            .map(|index| {
                let shared = shared.clone();
                thread::spawn(move || worker(index, &shared, recheck))
            })
            .collect();
        // A spawn from outside: push, then wake a sleeper if nobody searches.
        shared.injector.push(7);
        shared.notify_parked();
        // Wait until a worker ran it. A lost wake-up leaves everyone
        // asleep, which loom reports as a deadlock.
        while shared.ran.load(Ordering::Relaxed) == 0 {
            shared.main.park(None);
        }
        shared.shutdown.store(true, Ordering::Release);
        for parker in &shared.parkers {
            parker.unpark();
        }
        for w in workers {
            w.join().unwrap();
        }
        assert_eq!(shared.ran.load(Ordering::Relaxed), 1, "run exactly once");
    });
}

/// (b) A push that races with workers going to sleep always wakes one.
#[test]
fn loom_sleep_notify_loses_no_wake_up() {
    sleep_notify_model(true);
}

/// The planted bug: the last searcher does not re-check the queues before
/// sleeping, so a push that saw it still searching (and woke nobody) is
/// stranded.
#[test]
fn loom_sleep_notify_mutation_no_recheck_deadlocks() {
    if crate::loom::mutation::is_mutant_run() {
        sleep_notify_model(false);
    } else {
        crate::loom::mutation::expect_rejected(
            "sched::tests::loom_idle::loom_sleep_notify_mutation_no_recheck_deadlocks",
            "sleep_without_recheck",
            &["deadlock"],
        );
    }
}

//! Single-threaded checks of the scheduler's small structures.

use std::time::{Duration, Instant};

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use crate::sched::driver::{Driver, DriverGate};
use crate::sched::idle::Idle;
use crate::sched::inbox::Inbox;
use crate::sched::park::Parker;
use crate::sched::registry::Registry;
use crate::sched::timer::Timers;

#[test]
fn registry_reuses_slots() {
    let mut r = Registry::new();
    let a = r.insert("a");
    let b = r.insert("b");
    assert_eq!(r.len(), 2);
    assert_eq!(r.remove(a), Some("a"));
    assert_eq!(r.remove(a), None, "removed once");
    let c = r.insert("c");
    assert_eq!(c, a, "the freed slot is reused");
    assert_eq!(r.iter().copied().collect::<Vec<_>>(), ["c", "b"]);
    r.remove(b);
    r.remove(c);
    assert!(r.is_empty());
}

#[test]
fn timers_fire_in_deadline_order_and_only_when_due() {
    let mut t = Timers::new();
    let now = Instant::now();
    t.insert(now + Duration::from_millis(20), 1, "late");
    t.insert(now + Duration::from_millis(10), 2, "early");
    t.insert(now + Duration::from_millis(10), 3, "early, armed later");
    assert_eq!(t.next_deadline(), Some(now + Duration::from_millis(10)));
    assert_eq!(t.pop_due(now), None);
    let at = now + Duration::from_millis(15);
    assert_eq!(t.pop_due(at), Some((2, "early")));
    assert_eq!(t.pop_due(at), Some((3, "early, armed later")));
    assert_eq!(t.pop_due(at), None);
    assert_eq!(
        t.pop_due(now + Duration::from_millis(20)),
        Some((1, "late"))
    );
    assert!(t.is_empty());
}

#[test]
fn inbox_drains_in_push_order() {
    let inbox = Inbox::new();
    assert!(!inbox.is_pending());
    inbox.push(1);
    inbox.push(2);
    assert!(inbox.is_pending());
    let mut out = Vec::new();
    inbox.drain_into(&mut out);
    assert_eq!(out, [1, 2]);
    assert!(!inbox.is_pending());
}

#[test]
fn parker_keeps_an_early_unpark_and_times_out() {
    let p = Parker::new();
    p.unpark();
    let start = Instant::now();
    p.park(None);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "the early token returned at once"
    );
    let start = Instant::now();
    p.park(Some(Duration::from_millis(20)));
    assert!(start.elapsed() >= Duration::from_millis(20));
}

#[test]
fn idle_wakes_one_sleeper_only_when_nobody_searches() {
    let idle = Idle::new(2);
    // Worker 0 searches, worker 1 sleeps.
    assert!(idle.transition_worker_to_searching());
    assert!(
        !idle.transition_worker_to_searching(),
        "at most half the workers search"
    );
    assert!(!idle.transition_worker_to_parked(1, false));
    assert_eq!(
        idle.worker_to_notify(),
        None,
        "a searcher will find the work"
    );
    // Worker 0 gives up and sleeps too: it was the last searcher.
    assert!(idle.transition_worker_to_parked(0, true));
    assert_eq!(idle.worker_to_notify(), Some(0));
    assert_eq!(
        idle.worker_to_notify(),
        None,
        "the woken worker counts as searching"
    );
    assert!(
        idle.transition_worker_from_parked(0),
        "chosen by notify: it searches"
    );
    assert!(
        idle.transition_worker_from_searching(),
        "and was the last searcher"
    );
    assert!(idle.is_parked(1));
    assert!(
        !idle.transition_worker_from_parked(1),
        "woken directly: it does not search"
    );
}

/// A driver that sleeps on a condition variable until unparked.
#[derive(Default)]
struct FakeDriver {
    woken: Mutex<bool>,
    cvar: Condvar,
    parks: AtomicUsize,
    polls: AtomicUsize,
}

impl Driver for FakeDriver {
    fn park(&self, timeout: Option<Duration>) {
        self.parks.fetch_add(1, Ordering::SeqCst);
        let mut woken = self.woken.lock().unwrap();
        let deadline = timeout.map(|t| Instant::now() + t);
        while !*woken {
            match deadline {
                None => woken = self.cvar.wait(woken).unwrap(),
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    woken = self.cvar.wait_timeout(woken, left).unwrap().0;
                }
            }
        }
        *woken = false;
    }

    fn poll(&self) {
        self.polls.fetch_add(1, Ordering::SeqCst);
    }

    fn unpark(&self) {
        *self.woken.lock().unwrap() = true;
        self.cvar.notify_one();
    }

    fn has_sources(&self) -> bool {
        false
    }
}

#[test]
fn a_worker_sleeps_in_the_driver_and_unpark_interrupts_it() {
    let fake = Arc::new(FakeDriver::default());
    let gate = Arc::new(DriverGate::new(fake.clone()));
    let parker = Arc::new(Parker::with_driver(Some(fake.clone())));
    let sleeper = {
        let (parker, gate) = (parker.clone(), gate.clone());
        std::thread::spawn(move || parker.park_or_drive(None, Some(&gate)))
    };
    while fake.parks.load(Ordering::SeqCst) == 0 {
        std::thread::yield_now();
    }
    assert!(!gate.try_own(), "one owner at a time");
    gate.poll_if_free();
    assert_eq!(
        fake.polls.load(Ordering::SeqCst),
        0,
        "a busy worker does not poll an owned driver"
    );
    parker.unpark();
    sleeper.join().unwrap();
    assert!(gate.try_own(), "released after the park");
    gate.release();
    gate.poll_if_free();
    assert_eq!(fake.polls.load(Ordering::SeqCst), 1);
}

#[test]
fn an_unpark_before_the_driver_park_is_kept() {
    let fake = Arc::new(FakeDriver::default());
    let gate = DriverGate::new(fake.clone());
    let parker = Parker::with_driver(Some(fake.clone()));
    parker.unpark();
    let start = Instant::now();
    parker.park_or_drive(None, Some(&gate));
    assert!(start.elapsed() < Duration::from_secs(1));
    assert_eq!(
        fake.parks.load(Ordering::SeqCst),
        0,
        "the token returned before the driver"
    );
}

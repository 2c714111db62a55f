//! Stress with exact counts: 10,000,000 messages across 100,000 actors on
//! all workers (with per-sender order checked inside every actor), the
//! same through bounded mailboxes whose senders park, asks whose timeouts
//! race their replies, actors moving between workers between runs (and
//! never in the middle of one), fairness against an actor that floods
//! itself, and a hundred thousand actors running under a budget of six
//! stacks (an idle actor holds none).
//!
//! The big tests hold `support::heavy()` and scale down in debug builds.
//! Timings are printed, never asserted. Every test runs under the hang
//! guard (`support::bounded`).

mod actor_util;
mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actor_util::{Event, Log, Probe, runtime};
use support::Rng;
use weft::actor::{self, Actor, Addr, AskError, Context, Reply, StopReason};

/// Totals every counting actor adds to when it stops.
#[derive(Default)]
struct Totals {
    messages: AtomicU64,
    sum: AtomicU64,
    /// Actors whose count matched what they were told to expect.
    exact: AtomicUsize,
    /// Messages that arrived out of their sender's order.
    out_of_order: AtomicU64,
}

/// Counts its messages and checks each sender's order.
struct Counting {
    expected: u64,
    count: u64,
    sum: u64,
    next: Vec<u32>,
    totals: Arc<Totals>,
}

/// `(sender, sequence number for this actor from that sender, value)`.
type Tagged = (u16, u32, u64);

impl Actor for Counting {
    type Msg = Tagged;

    fn handle(&mut self, (sender, seq, value): Tagged, _: &mut Context<Self>) {
        let next = &mut self.next[sender as usize];
        if seq != *next {
            self.totals.out_of_order.fetch_add(1, Ordering::Relaxed);
        }
        *next = seq + 1;
        self.count += 1;
        self.sum += value;
    }

    fn stopped(&mut self, reason: &StopReason, _: &mut Context<Self>) {
        assert_eq!(*reason, StopReason::Normal);
        self.totals
            .messages
            .fetch_add(self.count, Ordering::Relaxed);
        self.totals.sum.fetch_add(self.sum, Ordering::Relaxed);
        if self.count == self.expected {
            self.totals.exact.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// `senders` senders (all fibers but two plain threads) each send
/// `per_actor` messages to every one of `actors` counting actors, in
/// rounds over the actors; then every actor is stopped and joined, and
/// the totals must be exact.
fn fan_in(actors: usize, senders: usize, per_actor: u32, capacity: Option<usize>) {
    let rt = runtime(2);
    let totals = Arc::new(Totals::default());
    let total = actors as u64 * senders as u64 * per_actor as u64;
    let addrs: Arc<Vec<Addr<Counting>>> = Arc::new(
        (0..actors)
            .map(|_| {
                let mut b = actor::Builder::new();
                if let Some(c) = capacity {
                    b = b.mailbox_capacity(c);
                }
                b.spawn_on(
                    rt.handle(),
                    Counting {
                        expected: senders as u64 * per_actor as u64,
                        count: 0,
                        sum: 0,
                        next: vec![0; senders],
                        totals: totals.clone(),
                    },
                )
            })
            .collect(),
    );
    let start = Instant::now();
    let sender_body = |s: usize, addrs: Arc<Vec<Addr<Counting>>>| {
        move || {
            let n = addrs.len();
            for round in 0..per_actor {
                for k in 0..n {
                    // Each sender walks the actors from its own offset.
                    let a = (k + s * 7919) % n;
                    let value = (s as u64) << 40 | (round as u64) << 20 | a as u64 & 0xfffff;
                    if addrs[a].send((s as u16, round, value)).is_err() {
                        panic!("actor {a} stopped");
                    }
                }
            }
        }
    };
    let mut fibers = Vec::new();
    let mut threads = Vec::new();
    for s in 0..senders {
        if s < senders - 2 {
            fibers.push(rt.spawn(sender_body(s, addrs.clone())));
        } else {
            threads.push(std::thread::spawn(sender_body(s, addrs.clone())));
        }
    }
    fibers.into_iter().for_each(|f| f.join().unwrap());
    threads.into_iter().for_each(|t| t.join().unwrap());
    for a in addrs.iter() {
        a.stop();
    }
    for a in addrs.iter() {
        assert_eq!(a.join(), StopReason::Normal);
    }
    let took = start.elapsed();
    let mut want_sum = 0u64;
    for s in 0..senders as u64 {
        for round in 0..per_actor as u64 {
            for a in 0..actors as u64 {
                want_sum += s << 40 | round << 20 | a & 0xfffff;
            }
        }
    }
    println!(
        "{total} messages from {senders} senders to {actors} actors ({capacity:?} mailboxes) \
         on 2 workers in {took:?} ({:.0} ns per message)",
        took.as_nanos() as f64 / total as f64
    );
    assert_eq!(totals.messages.load(Ordering::Relaxed), total);
    assert_eq!(totals.exact.load(Ordering::Relaxed), actors);
    assert_eq!(totals.sum.load(Ordering::Relaxed), want_sum);
    assert_eq!(totals.out_of_order.load(Ordering::Relaxed), 0);
}

#[test]
fn ten_million_messages_across_a_hundred_thousand_actors() {
    let _heavy = support::heavy();
    support::bounded(|| {
        // 10 senders x 100,000 actors x 10 = 10,000,000 (debug: 1,000,000).
        let actors = support::scaled(10_000, 100_000);
        fan_in(actors, 10, 10, None);
    });
}

#[test]
fn a_million_messages_through_bounded_mailboxes_with_parked_senders() {
    let _heavy = support::heavy();
    support::bounded(|| {
        // 10 senders x 1,000 actors x 100 = 1,000,000 (debug: 200,000),
        // through mailboxes of 4: senders park all the time.
        let per = support::scaled(20, 100) as u32;
        fan_in(1_000, 10, per, Some(4));
    });
}

// ---------------------------------------------------------------------------
// ask timeouts racing replies
// ---------------------------------------------------------------------------

/// Sleeps a little (or not), then answers with the request's value.
struct Echo {
    handled: Arc<AtomicU64>,
}

impl Actor for Echo {
    type Msg = (u64, u64, Reply<u64>);
    fn handle(&mut self, (value, delay_us, reply): Self::Msg, _: &mut Context<Self>) {
        self.handled.fetch_add(1, Ordering::Relaxed);
        if delay_us > 0 {
            weft::sleep(Duration::from_micros(delay_us));
        }
        reply.send(value);
    }
}

/// 22 askers (20 fibers, 2 threads) ask 100 echo actors with timeouts as
/// long as the actors' delays, at random: each answer is the value asked
/// for (a late reply never reaches a later ask) or `Timeout`, and every
/// ask was handled exactly once.
#[test]
fn ask_timeouts_racing_replies() {
    let _heavy = support::heavy();
    support::bounded(|| {
        let per_asker = support::scaled(200, 1_000);
        let seed = Rng::seed();
        println!("seed {seed}");
        let rt = runtime(2);
        let handled = Arc::new(AtomicU64::new(0));
        let echoes: Arc<Vec<Addr<Echo>>> = Arc::new(
            (0..100)
                .map(|_| {
                    actor::Builder::new().spawn_on(
                        rt.handle(),
                        Echo {
                            handled: handled.clone(),
                        },
                    )
                })
                .collect(),
        );
        let ok = Arc::new(AtomicU64::new(0));
        let timeouts = Arc::new(AtomicU64::new(0));
        let body = |i: u64| {
            let (echoes, ok, timeouts) = (echoes.clone(), ok.clone(), timeouts.clone());
            move || {
                let mut rng = Rng::new(seed ^ i);
                for k in 0..per_asker as u64 {
                    let value = i << 32 | k;
                    let to = &echoes[rng.below(echoes.len() as u64) as usize];
                    let delay = rng.below(3) * 500;
                    let timeout = Duration::from_micros(rng.below(3) * 500);
                    match to.ask_timeout(|r| (value, delay, r), timeout) {
                        Ok(v) => {
                            assert_eq!(v, value, "an answer to another ask");
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(AskError::Timeout) => {
                            timeouts.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
            }
        };
        let start = Instant::now();
        let fibers: Vec<_> = (0..20).map(|i| rt.spawn(body(i))).collect();
        let threads: Vec<_> = (20..22).map(|i| std::thread::spawn(body(i))).collect();
        fibers.into_iter().for_each(|f| f.join().unwrap());
        threads.into_iter().for_each(|t| t.join().unwrap());
        for e in echoes.iter() {
            e.stop();
        }
        for e in echoes.iter() {
            assert_eq!(e.join(), StopReason::Normal);
        }
        let total = 22 * per_asker as u64;
        let (ok, timeouts) = (ok.load(Ordering::Relaxed), timeouts.load(Ordering::Relaxed));
        println!(
            "{total} asks in {:?}: {ok} answered, {timeouts} timed out",
            start.elapsed()
        );
        assert_eq!(ok + timeouts, total);
        assert_eq!(
            handled.load(Ordering::Relaxed),
            total,
            "every ask handled once"
        );
        assert!(ok > 0 && timeouts > 0, "both outcomes happened");
    });
}

// ---------------------------------------------------------------------------
// where actors run
// ---------------------------------------------------------------------------

/// Records the worker of each run, and whether a run ever changed thread
/// across a blocking call.
struct WhereAmI {
    runs: Arc<Mutex<BTreeMap<String, usize>>>,
    moved_mid_run: Arc<AtomicUsize>,
}

impl Actor for WhereAmI {
    type Msg = bool;
    fn handle(&mut self, block: bool, _: &mut Context<Self>) {
        let here = std::thread::current().name().unwrap_or("?").to_owned();
        if block {
            weft::sleep(Duration::from_micros(200));
            let after = std::thread::current().name().unwrap_or("?").to_owned();
            if after != here {
                self.moved_mid_run.fetch_add(1, Ordering::Relaxed);
            }
        }
        *self.runs.lock().unwrap().entry(here).or_default() += 1;
    }
}

/// Between runs an actor may be taken by any worker: one actor, woken
/// from plain threads while fibers keep one worker or the other busy,
/// runs on both workers of a 2-worker runtime. A run that blocks resumes
/// on the worker it started on.
#[test]
fn an_idle_actor_is_taken_by_either_worker() {
    support::bounded(|| {
        let rt = weft::Runtime::builder()
            .workers(2)
            .thread_name("steal")
            .build()
            .unwrap();
        let runs = Arc::new(Mutex::new(BTreeMap::new()));
        let moved = Arc::new(AtomicUsize::new(0));
        let a = actor::Builder::new().spawn_on(
            rt.handle(),
            WhereAmI {
                runs: runs.clone(),
                moved_mid_run: moved.clone(),
            },
        );
        let mut rounds = 0;
        while rounds < 400 {
            rounds += 1;
            // Hold one worker in a blocking call now and then, so the
            // other must take the actor.
            let blocker = (rounds % 4 == 0)
                .then(|| rt.spawn(|| std::thread::sleep(Duration::from_millis(3))));
            a.send(rounds % 2 == 0).unwrap();
            let want = rounds;
            actor_util::wait_until("the run", || {
                runs.lock().unwrap().values().sum::<usize>() == want
            });
            if let Some(b) = blocker {
                b.join().unwrap();
            }
            if rounds >= 40 && runs.lock().unwrap().len() >= 2 {
                break;
            }
        }
        a.stop();
        a.join();
        let runs = runs.lock().unwrap().clone();
        println!("one actor's {rounds} runs by worker: {runs:?}");
        assert!(
            runs.keys().all(|k| k.starts_with("steal-")),
            "runs only on workers: {runs:?}"
        );
        assert_eq!(runs.len(), 2, "both workers ran the actor: {runs:?}");
        assert_eq!(
            moved.load(Ordering::Relaxed),
            0,
            "a run never moves mid-handler"
        );
    });
}

// ---------------------------------------------------------------------------
// fairness
// ---------------------------------------------------------------------------

/// Sends itself a message for each one it handles: its mailbox is never
/// empty.
struct Flood {
    handled: Arc<AtomicU64>,
}

impl Actor for Flood {
    type Msg = ();
    fn started(&mut self, ctx: &mut Context<Self>) {
        let _ = ctx.addr().send(());
    }
    fn handle(&mut self, (): (), ctx: &mut Context<Self>) {
        self.handled.fetch_add(1, Ordering::Relaxed);
        let _ = ctx.addr().send(());
    }
}

/// On one worker, two actors that flood themselves cannot starve a third
/// (which gets 1,000 messages from a plain thread and 1,000 asks from a
/// fiber) or each other: a run handles a bounded batch, then the actor
/// queues again behind the others.
#[test]
fn a_flooding_actor_cannot_starve_the_others() {
    support::bounded(|| {
        let rt = runtime(1);
        let flood_a = Arc::new(AtomicU64::new(0));
        let flood_b = Arc::new(AtomicU64::new(0));
        let fa = actor::Builder::new().spawn_on(
            rt.handle(),
            Flood {
                handled: flood_a.clone(),
            },
        );
        let fb = actor::Builder::new().spawn_on(
            rt.handle(),
            Flood {
                handled: flood_b.clone(),
            },
        );
        let log = Log::new();
        let quiet = actor::Builder::new().spawn_on(rt.handle(), Probe::new(&log));
        let start = Instant::now();
        for i in 0..1000 {
            quiet.send(actor_util::Msg::Num(i)).ok().unwrap();
        }
        let asks = {
            let quiet = quiet.clone();
            rt.spawn(move || {
                for i in 0..1000u64 {
                    let got = quiet.ask(move |r| actor_util::job(move |_, _| r.send(i)));
                    assert_eq!(got, Ok(i));
                }
            })
        };
        log.wait_for("1,000 messages", |e| {
            e.iter().filter(|e| matches!(e, Event::Num(_))).count() == 1000
        });
        asks.join().unwrap();
        let took = start.elapsed();
        let (a, b) = (
            flood_a.load(Ordering::Relaxed),
            flood_b.load(Ordering::Relaxed),
        );
        println!(
            "1,000 messages and 1,000 asks handled in {took:?} beside two floods \
             ({a} and {b} messages handled meanwhile)"
        );
        assert!(a > 0 && b > 0, "both floods ran");
        assert_eq!(log.nums(), (0..1000).collect::<Vec<_>>());
        for f in [&fa, &fb] {
            f.kill();
            assert_eq!(f.join(), StopReason::Killed);
        }
        quiet.stop();
        quiet.join();
    });
}

// ---------------------------------------------------------------------------
// no stack when idle
// ---------------------------------------------------------------------------

/// A runtime allowed 6 stacks at once runs 100,000 actors (20,000 in
/// debug), each handling a message, while 2 more sit blocked in handlers
/// holding theirs: an idle actor holds no stack, and a run gives its
/// stack back when it ends.
#[test]
fn a_hundred_thousand_actors_on_six_stacks() {
    let _heavy = support::heavy();
    support::bounded(|| {
        let n = support::scaled(20_000, 100_000);
        let rt = weft::Runtime::builder()
            .workers(2)
            .max_stacks(6)
            .build()
            .unwrap();
        let handled = Arc::new(AtomicU64::new(0));
        let start = Instant::now();
        let reasons = rt.block_on({
            let handled = handled.clone();
            move || {
                let (tx, rx) = weft::chan::unbounded::<()>();
                let blocked: Vec<Addr<Probe>> = (0..2)
                    .map(|_| {
                        let a = actor::spawn(Probe::new(&Log::new()));
                        let rx = rx.clone();
                        actor_util::send(
                            &a,
                            actor_util::job(move |_, _| {
                                let _ = rx.recv();
                            }),
                        );
                        a
                    })
                    .collect();
                struct Tally(Arc<AtomicU64>);
                impl Actor for Tally {
                    type Msg = ();
                    fn handle(&mut self, (): (), _: &mut Context<Self>) {
                        self.0.fetch_add(1, Ordering::Relaxed);
                    }
                }
                let addrs: Vec<Addr<Tally>> = (0..n)
                    .map(|_| actor::spawn(Tally(handled.clone())))
                    .collect();
                for a in &addrs {
                    a.send(()).ok().unwrap();
                }
                for a in &addrs {
                    a.stop();
                }
                let mut reasons = HashSet::new();
                for a in &addrs {
                    reasons.insert(a.join().to_string());
                }
                drop(tx);
                for b in &blocked {
                    b.stop();
                    b.join();
                }
                reasons
            }
        });
        println!(
            "{n} actors handled a message each under a 6-stack budget in {:?}; stop reasons {reasons:?}",
            start.elapsed()
        );
        assert_eq!(handled.load(Ordering::Relaxed), n as u64);
        assert_eq!(reasons.len(), 1);
        assert!(reasons.contains("stopped normally"), "{reasons:?}");
    });
}

/// Starts with 100,000 messages to itself, and at its 1,000th wakes an
/// idle actor, recording how many messages it had handled then; the woken
/// actor records how many the flood had handled when it ran.
struct Waker {
    handled: Arc<AtomicU64>,
    other: Addr<Witness>,
    woken_at: Arc<AtomicU64>,
}

struct Witness {
    flood_handled: Arc<AtomicU64>,
    seen_at: Arc<AtomicU64>,
}

impl Actor for Witness {
    type Msg = ();
    fn handle(&mut self, (): (), _: &mut Context<Self>) {
        self.seen_at
            .store(self.flood_handled.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

impl Actor for Waker {
    type Msg = ();
    fn started(&mut self, ctx: &mut Context<Self>) {
        let me = ctx.addr();
        for _ in 0..100_000 {
            let _ = me.send(());
        }
    }
    fn handle(&mut self, (): (), _: &mut Context<Self>) {
        let n = self.handled.fetch_add(1, Ordering::SeqCst) + 1;
        if n == 1_000 {
            self.woken_at.store(n, Ordering::SeqCst);
            self.other.send(()).ok().unwrap();
        }
    }
}

/// "A message to an idle actor schedules a task that ... handles a bounded
/// batch (then yields, so one busy actor cannot starve others)": after a
/// full batch the busy actor must queue again *behind* the work already
/// waiting, so an actor it woke runs after at most the rest of the
/// current batch and one more (2 x 64 messages). On one worker, 20 times,
/// with 100,000 messages queued for the busy actor.
#[test]
fn a_busy_actor_queues_again_behind_the_actors_it_woke() {
    support::bounded(|| {
        let rt = runtime(1);
        let mut worst = 0;
        for _ in 0..20 {
            let handled = Arc::new(AtomicU64::new(0));
            let woken_at = Arc::new(AtomicU64::new(0));
            let seen_at = Arc::new(AtomicU64::new(0));
            let witness = actor::Builder::new().spawn_on(
                rt.handle(),
                Witness {
                    flood_handled: handled.clone(),
                    seen_at: seen_at.clone(),
                },
            );
            let flood = actor::Builder::new().spawn_on(
                rt.handle(),
                Waker {
                    handled: handled.clone(),
                    other: witness.clone(),
                    woken_at: woken_at.clone(),
                },
            );
            actor_util::wait_until("the witness to run", || seen_at.load(Ordering::SeqCst) > 0);
            let lag = seen_at.load(Ordering::SeqCst) - woken_at.load(Ordering::SeqCst);
            worst = worst.max(lag);
            flood.kill();
            flood.join();
            witness.stop();
            witness.join();
        }
        println!(
            "an actor woken by a flooding actor ran after at most {worst} more of the flood's \
             messages (a batch is 64)"
        );
        assert!(
            worst <= 128,
            "the flood handled {worst} more messages before the actor it woke ran: \
             it is queued again ahead of the others, not behind them"
        );
    });
}

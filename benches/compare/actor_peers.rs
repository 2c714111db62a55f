//! The actor rows (issue 6) on weft, tokio and may (ractor, on tokio, is
//! in `ractor_peer.rs`).
//!
//! - weft: `weft::actor` actors with the default (unbounded) mailbox;
//! - tokio: an actor is a task that owns an `mpsc::unbounded_channel`
//!   receiver and loops on `recv().await`; `ask` sends a
//!   `oneshot::Sender` along and awaits the reply;
//! - may: an actor is a coroutine blocked on its own `may::sync::mpsc`
//!   receiver; `ask` sends a fresh reply channel along (may has no
//!   oneshot).
//!
//! Every actor's state is one `u64` (the ring's also its next hop), and
//! the driver keeps one address per actor in a `Vec` (8 bytes each on
//! every peer, counted in `actor_idle_rss`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use weft::actor::{self, Actor, Addr, Context, Reply};

use crate::workloads::{Measurement, Params, ns_per, rss_bytes};
use crate::{may_peer, tokio_peer, weft_peer};

/// Messages handled by the idle actors (one child measures one peer; the
/// smoke run resets it).
pub(crate) static HANDLED: AtomicUsize = AtomicUsize::new(0);

/// Hops per repetition of the actor ring: N * laps.
const RING_HOPS: u64 = 2_000_000;

pub(crate) fn ring_laps(p: &Params) -> u64 {
    if p.quick {
        2
    } else {
        (RING_HOPS / p.size.max(1)).max(1)
    }
}

/// The figure of an idle-RSS run, with its raw numbers as notes.
pub(crate) fn idle_measurement(before: u64, idle: u64, n: u64, spawn: Duration) -> Measurement {
    let per = idle.saturating_sub(before) as f64 / n as f64;
    Measurement {
        samples: vec![per],
        notes: vec![
            format!("rss_before={}KiB", before / 1024),
            format!("rss_idle={}KiB", idle / 1024),
            format!("spawn+first_message={}ms", spawn.as_millis()),
        ],
    }
}

/// The figure and notes of an actor ring run (hops per lap: the N - 1
/// actors and the driver).
pub(crate) fn ring_measurement(
    n: u64,
    laps: u64,
    setup: Duration,
    token: u64,
    reps: usize,
    samples: Vec<f64>,
) -> Result<Measurement, String> {
    let expected = (n - 1) * (1 + laps * reps as u64);
    if token != expected {
        return Err(format!("the token is {token}, expected {expected}"));
    }
    Ok(Measurement {
        samples,
        notes: vec![
            format!("laps={laps}"),
            format!("hops_per_rep={}", n * laps),
            format!("setup+first_lap={}ms", setup.as_millis()),
        ],
    })
}

// ---- weft ----------------------------------------------------------------

struct Idle(u64);

impl Actor for Idle {
    type Msg = u64;

    fn handle(&mut self, n: u64, _: &mut Context<Self>) {
        self.0 += n;
        HANDLED.fetch_add(1, Ordering::Release);
    }
}

pub(crate) fn idle_rss_weft(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let n = p.size as usize;
    weft_peer::runtime(&p)?.block_on(move || {
        HANDLED.store(0, Ordering::Release);
        let mut addrs = Vec::with_capacity(n);
        let before = rss_bytes();
        let start = Instant::now();
        for _ in 0..n {
            let addr = actor::spawn(Idle(0));
            addr.send(1).map_err(|_| "an idle actor stopped")?;
            addrs.push(addr);
        }
        while HANDLED.load(Ordering::Acquire) < n {
            weft::sleep(Duration::from_millis(1));
        }
        let spawn = start.elapsed();
        // The last ones are giving their stacks back.
        weft::sleep(Duration::from_millis(20));
        let idle = rss_bytes();
        drop(addrs);
        Ok(idle_measurement(before, idle, p.size, spawn))
    })
}

/// Where a ring member sends: the next actor, or back to the driver.
enum Next {
    Actor(Addr<Hop>),
    Driver(weft::chan::Sender<u64>),
}

struct Hop(Next);

impl Actor for Hop {
    type Msg = u64;

    fn handle(&mut self, token: u64, _: &mut Context<Self>) {
        // A send fails only while the ring is being torn down.
        let _ = match &self.0 {
            Next::Actor(next) => next.send(token + 1).map_err(drop),
            Next::Driver(driver) => driver.send(token + 1).map_err(drop),
        };
    }
}

pub(crate) fn ring_weft(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let laps = ring_laps(&p);
    weft_peer::runtime(&p)?.block_on(move || {
        let start = Instant::now();
        let (driver_tx, driver_rx) = weft::chan::bounded(1);
        // Spawned from the last to the first, each knowing its next. The
        // Vec holds every address, so that dropping it frees the ring one
        // actor at a time (not a million nested drops).
        let mut addrs = Vec::with_capacity(p.size as usize);
        let mut next = Next::Driver(driver_tx);
        for _ in 1..p.size {
            let addr = actor::spawn(Hop(next));
            next = Next::Actor(addr.clone());
            addrs.push(addr);
        }
        let Next::Actor(first) = next else {
            return Err("a ring needs 2 members".to_owned());
        };
        let broke = |_| "the ring broke".to_owned();
        first.send(0).map_err(|_| "the ring broke")?;
        let mut token = driver_rx.recv().map_err(broke)?;
        let setup = start.elapsed();
        let mut samples = Vec::with_capacity(p.reps);
        for _ in 0..p.reps {
            let start = Instant::now();
            for _ in 0..laps {
                first.send(token).map_err(|_| "the ring broke")?;
                token = driver_rx.recv().map_err(broke)?;
            }
            samples.push(ns_per(start.elapsed(), p.size * laps));
        }
        drop(first);
        addrs.reverse();
        drop(addrs);
        ring_measurement(p.size, laps, setup, token, p.reps, samples)
    })
}

struct Ask(u64, Reply<u64>);

struct Server;

impl Actor for Server {
    type Msg = Ask;

    fn handle(&mut self, Ask(n, reply): Ask, _: &mut Context<Self>) {
        reply.send(n + 1);
    }
}

pub(crate) fn ask_weft(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    weft_peer::runtime(&p)?.block_on(move || {
        let server = actor::spawn(Server);
        let mut m = Measurement::default();
        let mut n = 0;
        for _ in 0..p.reps {
            let start = Instant::now();
            for _ in 0..p.size {
                n = server
                    .ask(|reply| Ask(n, reply))
                    .map_err(|err| format!("ask: {err}"))?;
            }
            m.samples.push(ns_per(start.elapsed(), p.size));
        }
        server.stop();
        server.join();
        check_asks(n, &p)?;
        Ok(m)
    })
}

pub(crate) fn check_asks(n: u64, p: &Params) -> Result<(), String> {
    let expected = p.size * p.reps as u64;
    if n == expected {
        Ok(())
    } else {
        Err(format!("{n} answers, expected {expected}"))
    }
}

// ---- tokio ---------------------------------------------------------------

pub(crate) fn idle_rss_tokio(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let n = p.size as usize;
    tokio_peer::on_runtime(&p, async move {
        HANDLED.store(0, Ordering::Release);
        let mut senders = Vec::with_capacity(n);
        let before = rss_bytes();
        let start = Instant::now();
        for _ in 0..n {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
            tokio::spawn(async move {
                let mut state = 0;
                while let Some(n) = rx.recv().await {
                    state += n;
                    HANDLED.fetch_add(1, Ordering::Release);
                }
                state
            });
            tx.send(1).map_err(|_| "an idle task ended")?;
            senders.push(tx);
        }
        while HANDLED.load(Ordering::Acquire) < n {
            tokio::task::yield_now().await;
        }
        let spawn = start.elapsed();
        // Let the last ones reach their `Pending`.
        for _ in 0..1000 {
            tokio::task::yield_now().await;
        }
        let idle = rss_bytes();
        drop(senders);
        Ok(idle_measurement(before, idle, p.size, spawn))
    })
}

pub(crate) fn ring_tokio(p: &Params) -> Result<Measurement, String> {
    use tokio::sync::mpsc::unbounded_channel;
    let p = *p;
    let laps = ring_laps(&p);
    tokio_peer::on_runtime(&p, async move {
        let start = Instant::now();
        let (mut next, mut driver_rx) = unbounded_channel::<u64>();
        let mut tasks = Vec::with_capacity(p.size as usize);
        for _ in 1..p.size {
            let (tx, mut rx) = unbounded_channel::<u64>();
            let my_next = std::mem::replace(&mut next, tx);
            tasks.push(tokio::spawn(async move {
                while let Some(token) = rx.recv().await {
                    if my_next.send(token + 1).is_err() {
                        break;
                    }
                }
            }));
        }
        let first = next;
        let broke = "the ring broke";
        first.send(0).map_err(|_| broke)?;
        let mut token = driver_rx.recv().await.ok_or(broke)?;
        let setup = start.elapsed();
        let mut samples = Vec::with_capacity(p.reps);
        for _ in 0..p.reps {
            let start = Instant::now();
            for _ in 0..laps {
                first.send(token).map_err(|_| broke)?;
                token = driver_rx.recv().await.ok_or(broke)?;
            }
            samples.push(ns_per(start.elapsed(), p.size * laps));
        }
        drop(first);
        for task in tasks {
            task.await.map_err(|err| format!("a ring task: {err}"))?;
        }
        ring_measurement(p.size, laps, setup, token, p.reps, samples)
    })
}

pub(crate) fn ask_tokio(p: &Params) -> Result<Measurement, String> {
    use tokio::sync::{mpsc, oneshot};
    let p = *p;
    tokio_peer::on_runtime(&p, async move {
        let (server, mut inbox) = mpsc::unbounded_channel::<(u64, oneshot::Sender<u64>)>();
        let task = tokio::spawn(async move {
            while let Some((n, reply)) = inbox.recv().await {
                let _ = reply.send(n + 1);
            }
        });
        let mut m = Measurement::default();
        let mut n = 0;
        for _ in 0..p.reps {
            let start = Instant::now();
            for _ in 0..p.size {
                let (reply, answer) = oneshot::channel();
                server.send((n, reply)).map_err(|_| "the server ended")?;
                n = answer.await.map_err(|_| "no answer")?;
            }
            m.samples.push(ns_per(start.elapsed(), p.size));
        }
        drop(server);
        task.await.map_err(|err| format!("the server: {err}"))?;
        check_asks(n, &p)?;
        Ok(m)
    })
}

// ---- may -----------------------------------------------------------------

pub(crate) fn idle_rss_may(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let n = p.size as usize;
    may_peer::on_runtime(&p, move || {
        HANDLED.store(0, Ordering::Release);
        let mut senders = Vec::with_capacity(n);
        let before = rss_bytes();
        let start = Instant::now();
        for _ in 0..n {
            let (tx, rx) = may::sync::mpsc::channel::<u64>();
            // Detached: it ends when its sender is dropped.
            may_peer::go(move || {
                let mut state = 0;
                for n in rx.iter() {
                    state += n;
                    HANDLED.fetch_add(1, Ordering::Release);
                }
                state
            });
            tx.send(1).map_err(|_| "an idle coroutine ended")?;
            senders.push(tx);
        }
        while HANDLED.load(Ordering::Acquire) < n {
            may::coroutine::sleep(Duration::from_millis(1));
        }
        let spawn = start.elapsed();
        may::coroutine::sleep(Duration::from_millis(20));
        let idle = rss_bytes();
        drop(senders);
        Ok(idle_measurement(before, idle, p.size, spawn))
    })
}

pub(crate) fn ring_may(p: &Params) -> Result<Measurement, String> {
    use may::sync::mpsc::channel;
    let p = *p;
    let laps = ring_laps(&p);
    may_peer::on_runtime(&p, move || {
        let start = Instant::now();
        let (mut next, driver_rx) = channel::<u64>();
        let mut coroutines = Vec::with_capacity(p.size as usize);
        for _ in 1..p.size {
            let (tx, rx) = channel::<u64>();
            let my_next = std::mem::replace(&mut next, tx);
            coroutines.push(may_peer::go(move || {
                for token in rx.iter() {
                    if my_next.send(token + 1).is_err() {
                        break;
                    }
                }
            }));
        }
        let first = next;
        let broke = "the ring broke";
        first.send(0).map_err(|_| broke)?;
        let mut token = driver_rx.recv().map_err(|_| broke)?;
        let setup = start.elapsed();
        let mut samples = Vec::with_capacity(p.reps);
        for _ in 0..p.reps {
            let start = Instant::now();
            for _ in 0..laps {
                first.send(token).map_err(|_| broke)?;
                token = driver_rx.recv().map_err(|_| broke)?;
            }
            samples.push(ns_per(start.elapsed(), p.size * laps));
        }
        drop(first);
        for co in coroutines {
            may_peer::join(co)?;
        }
        ring_measurement(p.size, laps, setup, token, p.reps, samples)
    })
}

pub(crate) fn ask_may(p: &Params) -> Result<Measurement, String> {
    use may::sync::mpsc::{Sender, channel};
    let p = *p;
    may_peer::on_runtime(&p, move || {
        let (server, inbox) = channel::<(u64, Sender<u64>)>();
        let co = may_peer::go(move || {
            for (n, reply) in inbox.iter() {
                let _ = reply.send(n + 1);
            }
        });
        let mut m = Measurement::default();
        let mut n = 0;
        for _ in 0..p.reps {
            let start = Instant::now();
            for _ in 0..p.size {
                let (reply, answer) = channel();
                server.send((n, reply)).map_err(|_| "the server ended")?;
                n = answer.recv().map_err(|_| "no answer")?;
            }
            m.samples.push(ns_per(start.elapsed(), p.size));
        }
        drop(server);
        may_peer::join(co)?;
        check_asks(n, &p)?;
        Ok(m)
    })
}

//! Channel hand-offs (issue 4) on each peer: `ping_pong` and the rings.
//!
//! - weft: `weft::chan::bounded(1)` (the figure) and `bounded(0)`, the
//!   rendezvous, once more for the notes;
//! - tokio: `tokio::sync::mpsc::channel(1)`;
//! - may: `may::sync::mpsc::channel()` (unbounded: may has no bounded
//!   channel), where at most one value is ever in flight anyway.
//!
//! In both workloads a channel never holds more than one value, so a
//! capacity of 1 never makes a sender wait: what is measured is the
//! hand-off to a waiting receiver and its wake-up.
//!
//! The ping-pong pair and the ring's fibers are spawned from the workload's
//! root fiber/task/coroutine; with 2 workers, work stealing decides where
//! each one runs (the `pair_on_one_thread` note says where the pair ran).

use std::time::{Duration, Instant};

use crate::workloads::{Measurement, Params, ns_per, same_thread_note, thread_id};
use crate::{may_peer, tokio_peer, weft_peer};

/// Hops per repetition of a ring, about: N * laps.
const RING_HOPS: u64 = 2_000_000;

/// Laps per repetition of a ring of `p.size`.
fn ring_laps(p: &Params) -> u64 {
    if p.quick {
        2
    } else {
        (RING_HOPS / p.size.max(1)).max(1)
    }
}

/// The token after the warm-up lap and `reps` repetitions of `laps` laps,
/// each lap adding 1 per forwarding member (all but the root).
fn ring_expected(n: u64, laps: u64, reps: usize) -> u64 {
    (n - 1) * (1 + laps * reps as u64)
}

/// The figure and notes of a ring run.
fn ring_measurement(n: u64, laps: u64, setup: Duration, samples: Vec<f64>) -> Measurement {
    Measurement {
        samples,
        notes: vec![
            format!("laps={laps}"),
            format!("hops_per_rep={}", n * laps),
            format!("setup+first_lap={}ms", setup.as_millis()),
        ],
    }
}

fn check_token(token: u64, expected: u64) -> Result<(), String> {
    if token == expected {
        Ok(())
    } else {
        Err(format!("the token is {token}, expected {expected}"))
    }
}

// ---- weft ----------------------------------------------------------------

/// `rounds` round trips between two fibers over two `bounded(cap)`
/// channels: ns per round trip, and whether both ran on one thread.
fn weft_round_trips(rounds: u64, cap: usize) -> Result<(f64, bool), String> {
    let (ping_tx, ping_rx) = weft::chan::bounded::<u64>(cap);
    let (pong_tx, pong_rx) = weft::chan::bounded::<u64>(cap);
    let ponger = weft::spawn(move || {
        for n in ping_rx.iter() {
            if pong_tx.send(n + 1).is_err() {
                break;
            }
        }
        thread_id()
    });
    let pinger = weft::spawn(move || {
        let start = Instant::now();
        let mut n = 0;
        for _ in 0..rounds {
            ping_tx.send(n).map_err(|_| "the ponger is gone")?;
            n = pong_rx.recv().map_err(|_| "the ponger is gone")?;
        }
        Ok::<_, &str>((start.elapsed(), n, thread_id()))
    });
    let (elapsed, n, pinger_thread) = pinger.join().map_err(|err| format!("pinger: {err}"))??;
    let ponger_thread = ponger.join().map_err(|err| format!("ponger: {err}"))?;
    check_token(n, rounds)?;
    Ok((ns_per(elapsed, rounds), pinger_thread == ponger_thread))
}

pub(crate) fn ping_pong_weft(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    weft_peer::runtime(&p)?.block_on(move || {
        let mut m = Measurement::default();
        let mut same = 0;
        for _ in 0..p.reps {
            let (ns, one_thread) = weft_round_trips(p.size, 1)?;
            m.samples.push(ns);
            same += usize::from(one_thread);
        }
        m.notes.push(same_thread_note(same, p.reps));
        let (rendezvous, _) = weft_round_trips(p.size, 0)?;
        m.notes
            .push(format!("bounded(0)_once={rendezvous:.0}ns/rt"));
        Ok(m)
    })
}

pub(crate) fn ring_weft(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let laps = ring_laps(&p);
    weft_peer::runtime(&p)?.block_on(move || {
        let start = Instant::now();
        let (first_tx, mut prev_rx) = weft::chan::bounded::<u64>(1);
        let mut fibers = Vec::with_capacity(p.size as usize);
        for _ in 1..p.size {
            let (tx, rx) = weft::chan::bounded(1);
            let my_rx = std::mem::replace(&mut prev_rx, rx);
            fibers.push(weft::spawn(move || {
                for token in my_rx.iter() {
                    if tx.send(token + 1).is_err() {
                        break;
                    }
                }
            }));
        }
        // The root fiber is the ring's last member: it receives what the
        // (n-1)-th sends and starts every lap.
        let last_rx = prev_rx;
        let gone = |_| "the ring broke".to_owned();
        first_tx.send(0).map_err(|_| "the ring broke")?;
        let mut token = last_rx.recv().map_err(gone)?;
        let setup = start.elapsed();
        let mut samples = Vec::with_capacity(p.reps);
        for _ in 0..p.reps {
            let start = Instant::now();
            for _ in 0..laps {
                first_tx.send(token).map_err(|_| "the ring broke")?;
                token = last_rx.recv().map_err(gone)?;
            }
            samples.push(ns_per(start.elapsed(), p.size * laps));
        }
        check_token(token, ring_expected(p.size, laps, p.reps))?;
        drop(first_tx);
        for fiber in fibers {
            fiber.join().map_err(|err| format!("a ring fiber: {err}"))?;
        }
        Ok(ring_measurement(p.size, laps, setup, samples))
    })
}

// ---- tokio ---------------------------------------------------------------

async fn tokio_round_trips(rounds: u64) -> Result<(f64, bool), String> {
    use tokio::sync::mpsc::channel;
    let (ping_tx, mut ping_rx) = channel::<u64>(1);
    let (pong_tx, mut pong_rx) = channel::<u64>(1);
    let ponger = tokio::spawn(async move {
        while let Some(n) = ping_rx.recv().await {
            if pong_tx.send(n + 1).await.is_err() {
                break;
            }
        }
        thread_id()
    });
    let pinger = tokio::spawn(async move {
        let start = Instant::now();
        let mut n = 0;
        for _ in 0..rounds {
            ping_tx.send(n).await.map_err(|_| "the ponger is gone")?;
            n = pong_rx.recv().await.ok_or("the ponger is gone")?;
        }
        Ok::<_, &str>((start.elapsed(), n, thread_id()))
    });
    let (elapsed, n, pinger_thread) = pinger.await.map_err(|err| format!("pinger: {err}"))??;
    let ponger_thread = ponger.await.map_err(|err| format!("ponger: {err}"))?;
    check_token(n, rounds)?;
    Ok((ns_per(elapsed, rounds), pinger_thread == ponger_thread))
}

pub(crate) fn ping_pong_tokio(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    tokio_peer::on_runtime(&p, async move {
        let mut m = Measurement::default();
        let mut same = 0;
        for _ in 0..p.reps {
            let (ns, one_thread) = tokio_round_trips(p.size).await?;
            m.samples.push(ns);
            same += usize::from(one_thread);
        }
        m.notes.push(same_thread_note(same, p.reps));
        Ok(m)
    })
}

pub(crate) fn ring_tokio(p: &Params) -> Result<Measurement, String> {
    use tokio::sync::mpsc::channel;
    let p = *p;
    let laps = ring_laps(&p);
    tokio_peer::on_runtime(&p, async move {
        let start = Instant::now();
        let (first_tx, mut prev_rx) = channel::<u64>(1);
        let mut tasks = Vec::with_capacity(p.size as usize);
        for _ in 1..p.size {
            let (tx, rx) = channel(1);
            let mut my_rx = std::mem::replace(&mut prev_rx, rx);
            tasks.push(tokio::spawn(async move {
                while let Some(token) = my_rx.recv().await {
                    if tx.send(token + 1).await.is_err() {
                        break;
                    }
                }
            }));
        }
        let mut last_rx = prev_rx;
        let broke = "the ring broke";
        first_tx.send(0).await.map_err(|_| broke)?;
        let mut token = last_rx.recv().await.ok_or(broke)?;
        let setup = start.elapsed();
        let mut samples = Vec::with_capacity(p.reps);
        for _ in 0..p.reps {
            let start = Instant::now();
            for _ in 0..laps {
                first_tx.send(token).await.map_err(|_| broke)?;
                token = last_rx.recv().await.ok_or(broke)?;
            }
            samples.push(ns_per(start.elapsed(), p.size * laps));
        }
        check_token(token, ring_expected(p.size, laps, p.reps))?;
        drop(first_tx);
        for task in tasks {
            task.await.map_err(|err| format!("a ring task: {err}"))?;
        }
        Ok(ring_measurement(p.size, laps, setup, samples))
    })
}

// ---- may -----------------------------------------------------------------

fn may_round_trips(rounds: u64) -> Result<(f64, bool), String> {
    use may::sync::mpsc::channel;
    let (ping_tx, ping_rx) = channel::<u64>();
    let (pong_tx, pong_rx) = channel::<u64>();
    let ponger = may_peer::go(move || {
        for n in ping_rx.iter() {
            if pong_tx.send(n + 1).is_err() {
                break;
            }
        }
        thread_id()
    });
    let pinger = may_peer::go(move || {
        let start = Instant::now();
        let mut n = 0;
        for _ in 0..rounds {
            ping_tx.send(n).map_err(|_| "the ponger is gone")?;
            n = pong_rx.recv().map_err(|_| "the ponger is gone")?;
        }
        Ok::<_, &str>((start.elapsed(), n, thread_id()))
    });
    let (elapsed, n, pinger_thread) = may_peer::join(pinger)??;
    let ponger_thread = may_peer::join(ponger)?;
    check_token(n, rounds)?;
    Ok((ns_per(elapsed, rounds), pinger_thread == ponger_thread))
}

pub(crate) fn ping_pong_may(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    may_peer::on_runtime(&p, move || {
        let mut m = Measurement::default();
        let mut same = 0;
        for _ in 0..p.reps {
            let (ns, one_thread) = may_round_trips(p.size)?;
            m.samples.push(ns);
            same += usize::from(one_thread);
        }
        m.notes.push(same_thread_note(same, p.reps));
        Ok(m)
    })
}

pub(crate) fn ring_may(p: &Params) -> Result<Measurement, String> {
    use may::sync::mpsc::channel;
    let p = *p;
    let laps = ring_laps(&p);
    may_peer::on_runtime(&p, move || {
        let start = Instant::now();
        let (first_tx, mut prev_rx) = channel::<u64>();
        let mut coroutines = Vec::with_capacity(p.size as usize);
        for _ in 1..p.size {
            let (tx, rx) = channel();
            let my_rx = std::mem::replace(&mut prev_rx, rx);
            coroutines.push(may_peer::go(move || {
                for token in my_rx.iter() {
                    if tx.send(token + 1).is_err() {
                        break;
                    }
                }
            }));
        }
        let last_rx = prev_rx;
        let broke = "the ring broke";
        first_tx.send(0).map_err(|_| broke)?;
        let mut token = last_rx.recv().map_err(|_| broke)?;
        let setup = start.elapsed();
        let mut samples = Vec::with_capacity(p.reps);
        for _ in 0..p.reps {
            let start = Instant::now();
            for _ in 0..laps {
                first_tx.send(token).map_err(|_| broke)?;
                token = last_rx.recv().map_err(|_| broke)?;
            }
            samples.push(ns_per(start.elapsed(), p.size * laps));
        }
        check_token(token, ring_expected(p.size, laps, p.reps))?;
        drop(first_tx);
        for co in coroutines {
            may_peer::join(co)?;
        }
        Ok(ring_measurement(p.size, laps, setup, samples))
    })
}

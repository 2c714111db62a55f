//! The actor rows on ractor: its actors on the same tokio runtime as the
//! tokio peer (`tokio_peer::on_runtime`: multi-thread, N workers), spawned
//! unnamed and unsupervised with `Actor::spawn`, messages by `cast`, asks
//! by `call`. The shapes are `actor_peers.rs`'s.

use std::sync::atomic::Ordering;
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, rpc::CallResult};
use tokio::sync::mpsc::{UnboundedSender, unbounded_channel};

use crate::actor_peers::{HANDLED, check_asks, idle_measurement, ring_laps, ring_measurement};
use crate::tokio_peer;
use crate::workloads::{Measurement, Params, ns_per, rss_bytes};

/// ractor's settings, for the header.
pub(crate) fn settings() -> String {
    let lock = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"));
    let needle = "name = \"ractor\"\nversion = \"";
    let version = lock
        .find(needle)
        .and_then(|at| lock[at + needle.len()..].split('"').next())
        .unwrap_or("?");
    format!(
        "ractor {version} (features: tokio_runtime only, no per-message tracing span) on the tokio runtime \
         above; Actor::spawn(None, ..) (unnamed, unsupervised), cast, call(.., None); actor rows only"
    )
}

fn spawn_err(err: impl std::fmt::Display) -> String {
    format!("ractor spawn: {err}")
}

struct Idle;

impl Actor for Idle {
    type Msg = u64;
    type State = u64;
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<u64>, (): ()) -> Result<u64, ActorProcessingErr> {
        Ok(0)
    }

    async fn handle(
        &self,
        _: ActorRef<u64>,
        n: u64,
        state: &mut u64,
    ) -> Result<(), ActorProcessingErr> {
        *state += n;
        HANDLED.fetch_add(1, Ordering::Release);
        Ok(())
    }
}

pub(crate) fn idle_rss(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let n = p.size as usize;
    tokio_peer::on_runtime(&p, async move {
        HANDLED.store(0, Ordering::Release);
        let mut actors = Vec::with_capacity(n);
        let before = rss_bytes();
        let start = Instant::now();
        for _ in 0..n {
            // The join handle is dropped: the actor runs on, detached.
            let (actor, _) = Actor::spawn(None, Idle, ()).await.map_err(spawn_err)?;
            actor.cast(1).map_err(|err| format!("cast: {err}"))?;
            actors.push(actor);
        }
        while HANDLED.load(Ordering::Acquire) < n {
            tokio::task::yield_now().await;
        }
        let spawn = start.elapsed();
        for _ in 0..1000 {
            tokio::task::yield_now().await;
        }
        let idle = rss_bytes();
        for actor in &actors {
            actor.stop(None);
        }
        Ok(idle_measurement(before, idle, p.size, spawn))
    })
}

/// Where a ring member sends: the next actor, or back to the driver.
enum Next {
    Actor(ActorRef<u64>),
    Driver(UnboundedSender<u64>),
}

struct Hop;

impl Actor for Hop {
    type Msg = u64;
    type State = Next;
    type Arguments = Next;

    async fn pre_start(&self, _: ActorRef<u64>, next: Next) -> Result<Next, ActorProcessingErr> {
        Ok(next)
    }

    async fn handle(
        &self,
        _: ActorRef<u64>,
        token: u64,
        next: &mut Next,
    ) -> Result<(), ActorProcessingErr> {
        // A send fails only while the ring is being torn down.
        let _ = match next {
            Next::Actor(actor) => actor.cast(token + 1).map_err(drop),
            Next::Driver(driver) => driver.send(token + 1).map_err(drop),
        };
        Ok(())
    }
}

pub(crate) fn ring(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    let laps = ring_laps(&p);
    tokio_peer::on_runtime(&p, async move {
        let start = Instant::now();
        let (driver_tx, mut driver_rx) = unbounded_channel();
        let mut actors = Vec::with_capacity(p.size as usize);
        let mut next = Next::Driver(driver_tx);
        for _ in 1..p.size {
            let (actor, _) = Actor::spawn(None, Hop, next).await.map_err(spawn_err)?;
            next = Next::Actor(actor.clone());
            actors.push(actor);
        }
        let Next::Actor(first) = next else {
            return Err("a ring needs 2 members".to_owned());
        };
        let broke = "the ring broke";
        first.cast(0).map_err(|_| broke)?;
        let mut token = driver_rx.recv().await.ok_or(broke)?;
        let setup = start.elapsed();
        let mut samples = Vec::with_capacity(p.reps);
        for _ in 0..p.reps {
            let start = Instant::now();
            for _ in 0..laps {
                first.cast(token).map_err(|_| broke)?;
                token = driver_rx.recv().await.ok_or(broke)?;
            }
            samples.push(ns_per(start.elapsed(), p.size * laps));
        }
        for actor in &actors {
            actor.stop(None);
        }
        ring_measurement(p.size, laps, setup, token, p.reps, samples)
    })
}

struct Ask(u64, RpcReplyPort<u64>);

struct Server;

impl Actor for Server {
    type Msg = Ask;
    type State = ();
    type Arguments = ();

    async fn pre_start(&self, _: ActorRef<Ask>, (): ()) -> Result<(), ActorProcessingErr> {
        Ok(())
    }

    async fn handle(
        &self,
        _: ActorRef<Ask>,
        Ask(n, reply): Ask,
        (): &mut (),
    ) -> Result<(), ActorProcessingErr> {
        let _ = reply.send(n + 1);
        Ok(())
    }
}

pub(crate) fn ask(p: &Params) -> Result<Measurement, String> {
    let p = *p;
    tokio_peer::on_runtime(&p, async move {
        let (server, handle) = Actor::spawn(None, Server, ()).await.map_err(spawn_err)?;
        let mut m = Measurement::default();
        let mut n = 0;
        for _ in 0..p.reps {
            let start = Instant::now();
            for _ in 0..p.size {
                n = match server.call(|reply| Ask(n, reply), None).await {
                    Ok(CallResult::Success(answer)) => answer,
                    Ok(_) => return Err("call: no answer".to_owned()),
                    Err(err) => return Err(format!("call: {err}")),
                };
            }
            m.samples.push(ns_per(start.elapsed(), p.size));
        }
        server.stop(None);
        handle.await.map_err(|err| format!("the server: {err}"))?;
        check_asks(n, &p)?;
        Ok(m)
    })
}

//! Two actors pass a counter back and forth; then a fiber and a plain
//! thread `ask` an actor over and over. Prints the time per round trip.
//!
//! Run: `cargo run --release --example ping_pong_actors`
//! (flags: `--rounds N` (1,000,000), `--workers N` (1 and all CPUs)).

use std::time::{Duration, Instant};

use weft::actor::{self, Actor, Addr, Context, Reply};
use weft::chan;

/// One side of the game.
struct Player {
    peer: Option<Addr<Player>>,
    done: chan::Sender<()>,
}

enum Msg {
    /// Who to send the ball back to.
    Peer(Addr<Player>),
    /// The ball, with the hits left.
    Ball(u64),
}

impl Actor for Player {
    type Msg = Msg;

    fn handle(&mut self, msg: Msg, _: &mut Context<Self>) {
        match msg {
            Msg::Peer(peer) => self.peer = Some(peer),
            Msg::Ball(0) => {
                let _ = self.done.send(());
            }
            Msg::Ball(left) => {
                let peer = self.peer.as_ref().expect("the peer is set first");
                if peer.send(Msg::Ball(left - 1)).is_err() {
                    panic!("the peer stopped");
                }
            }
        }
    }

    fn stopped(&mut self, _: &weft::actor::StopReason, _: &mut Context<Self>) {
        // Break the cycle of addresses.
        self.peer = None;
    }
}

/// Answers with what it is asked, plus one.
struct Echo;

impl Actor for Echo {
    type Msg = (u64, Reply<u64>);
    fn handle(&mut self, (n, reply): (u64, Reply<u64>), _: &mut Context<Self>) {
        reply.send(n + 1);
    }
}

fn per(took: Duration, n: u64) -> f64 {
    took.as_nanos() as f64 / n.max(1) as f64
}

fn ping_pong(rounds: u64) -> Duration {
    let (done_tx, done_rx) = chan::unbounded();
    let a = actor::spawn(Player {
        peer: None,
        done: done_tx.clone(),
    });
    let b = actor::spawn(Player {
        peer: None,
        done: done_tx,
    });
    a.send(Msg::Peer(b.clone())).ok().unwrap();
    b.send(Msg::Peer(a.clone())).ok().unwrap();
    let start = Instant::now();
    // A round trip is two hops: a -> b -> a.
    a.send(Msg::Ball(2 * rounds)).ok().unwrap();
    done_rx.recv().unwrap();
    let took = start.elapsed();
    for p in [a, b] {
        p.stop();
        p.join();
    }
    took
}

fn ask_loop(echo: &Addr<Echo>, rounds: u64) -> Duration {
    let start = Instant::now();
    for i in 0..rounds {
        let got = echo.ask(|r| (i, r)).unwrap();
        assert_eq!(got, i + 1);
    }
    start.elapsed()
}

fn main() {
    let mut rounds: u64 = 1_000_000;
    let mut workers: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .and_then(|v| v.replace('_', "").parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--rounds" => rounds = value,
            "--workers" => workers = Some(value as usize),
            other => {
                eprintln!(
                    "unknown flag {other}; usage: ping_pong_actors [--rounds N] [--workers N]"
                );
                std::process::exit(2);
            }
        }
    }
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let configs: Vec<usize> = match workers {
        Some(w) => vec![w],
        None if all > 1 => vec![1, all],
        None => vec![1],
    };
    for workers in configs {
        let rt = weft::Runtime::builder().workers(workers).build().unwrap();
        // Best of three, each a full run.
        let best = |f: &dyn Fn() -> Duration| (0..3).map(|_| f()).min().unwrap();
        let pp = rt.block_on(move || {
            ping_pong(rounds / 10);
            let best = |f: &dyn Fn() -> Duration| (0..3).map(|_| f()).min().unwrap();
            best(&|| ping_pong(rounds))
        });
        let echo = actor::Builder::new().spawn_on(rt.handle(), Echo);
        let from_fiber = {
            let echo = echo.clone();
            rt.block_on(move || {
                let best = |f: &dyn Fn() -> Duration| (0..3).map(|_| f()).min().unwrap();
                best(&|| ask_loop(&echo, rounds))
            })
        };
        let thread_rounds = rounds / 10;
        let from_thread = best(&|| ask_loop(&echo, thread_rounds));
        echo.stop();
        echo.join();
        println!("{workers} worker(s), {rounds} round trips, best of 3:");
        println!(
            "  actor <-> actor ping-pong:  {:>6.0} ns per round trip ({:.0} ns per message)",
            per(pp, rounds),
            per(pp, 2 * rounds)
        );
        println!(
            "  ask from a fiber:           {:>6.0} ns per round trip",
            per(from_fiber, rounds)
        );
        println!(
            "  ask from a plain thread:    {:>6.0} ns per round trip ({thread_rounds} rounds)",
            per(from_thread, thread_rounds)
        );
    }
}

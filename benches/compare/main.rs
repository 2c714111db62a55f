//! weft beside tokio and may, in the same run, with the same worker count.
//!
//! ```sh
//! cargo bench --bench compare                      # every workload, 2 workers (the cores)
//! cargo bench --bench compare -- --workers 4       # another worker count
//! cargo bench --bench compare -- --only skynet     # some workloads (comma-separated)
//! cargo bench --bench compare -- --peers weft,may  # some peers
//! cargo bench --bench compare -- --timeout 60      # per child, in seconds (default 120)
//! cargo bench --bench compare -- --reps 3 --size 100000  # override the table's repetitions and sizes
//! cargo bench --bench compare -- --rounds 3        # 3 children per (peer, workload), in turns
//! ```
//!
//! The runner (the process `cargo bench` starts, which gets `--bench`)
//! measures nothing itself: for every (peer, workload) pair it re-executes
//! this binary as a child (`--child PEER WORKLOAD --workers N`), which
//! builds that peer's runtime, runs the workload a few times and prints one
//! `RESULT` line. A child that crashes, aborts, runs out of memory, reports
//! an error or outlives the time limit (then it is killed) becomes
//! `failed: ...` in the table, and the runner goes on. The table gives each
//! peer's figure and weft's ratio to each peer: below 1.00x, weft is faster
//! (or, for memory, smaller).
//!
//! With `--rounds K` each (peer, workload) runs in K child processes, the
//! peers taking turns (weft, tokio, may, weft, tokio, may, ...), and the
//! figure is the median of the K children's medians. On a shared VM the
//! speed of the same code changes in time, by up to half (the same
//! binary's ping-pong: 70 ns in one process, 103 in the next, and both
//! within one): one child per peer makes the ratio a draw of two such
//! levels, taking turns and the median of several makes it a comparison.
//!
//! Without `--bench` (as `cargo test --benches` runs it), every workload
//! runs once, tiny, in this process, on weft only: a check that the runner
//! compiles and its weft side runs, in about a second.
//!
//! The workloads, their sizes and the per-peer functions are the table in
//! `workloads.rs`.

mod actor_peers;
mod may_peer;
mod net_load;
mod net_peers;
mod ractor_peer;
mod report;
mod runner;
mod sync_peers;
mod tokio_peer;
mod weft_peer;
mod workloads;

use std::process::ExitCode;
use std::time::Duration;

use workloads::{Params, Peer, WORKLOADS, Workload};

/// What the command line asks for.
#[derive(Debug)]
struct Options {
    bench: bool,
    child: Option<(Peer, &'static Workload)>,
    workers: usize,
    timeout: Duration,
    only: Option<Vec<&'static Workload>>,
    peers: Vec<Peer>,
    /// Repetitions, overriding each workload's own count.
    reps: Option<usize>,
    /// A size for every workload, overriding the table's (to explore, or
    /// to profile a smaller run).
    size: Option<u64>,
    /// Child processes per (peer, workload), the peers taking turns.
    rounds: usize,
}

fn usage() -> String {
    let names: Vec<_> = WORKLOADS.iter().map(|w| w.name).collect();
    format!(
        "usage: compare [--bench] [--workers N] [--only W1,W2] [--peers P1,P2] [--timeout SECS] [--reps R] [--size S] [--rounds K]\n\
         workloads: {}\npeers: weft, tokio, may, ractor (actor rows only)",
        names.join(", ")
    )
}

fn parse_args() -> Result<Options, String> {
    let mut opts = Options {
        bench: false,
        child: None,
        workers: std::thread::available_parallelism().map_or(2, |n| n.get()),
        timeout: Duration::from_secs(120),
        only: None,
        peers: Peer::ALL.to_vec(),
        reps: None,
        size: None,
        rounds: 1,
    };
    let mut args = std::env::args().skip(1);
    let workload = |name: &str| {
        Workload::find(name).ok_or_else(|| format!("no workload named {name:?}\n{}", usage()))
    };
    let number = |flag: &str, value: Option<String>| -> Result<usize, String> {
        value
            .as_deref()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .ok_or_else(|| format!("{flag} needs a positive number\n{}", usage()))
    };
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bench" => opts.bench = true,
            "--child" => {
                let peer = args.next().unwrap_or_default();
                let peer = Peer::parse(&peer)
                    .ok_or_else(|| format!("no peer named {peer:?}\n{}", usage()))?;
                let name = args.next().unwrap_or_default();
                opts.child = Some((peer, workload(&name)?));
            }
            "--workers" => opts.workers = number("--workers", args.next())?,
            "--timeout" => {
                opts.timeout = Duration::from_secs(number("--timeout", args.next())? as u64)
            }
            "--reps" => opts.reps = Some(number("--reps", args.next())?),
            "--size" => opts.size = Some(number("--size", args.next())? as u64),
            "--rounds" => opts.rounds = number("--rounds", args.next())?,
            "--only" => {
                let list = args.next().unwrap_or_default();
                opts.only = Some(list.split(',').map(workload).collect::<Result<_, _>>()?);
            }
            "--peers" => {
                let list = args.next().unwrap_or_default();
                opts.peers = list
                    .split(',')
                    .map(|p| {
                        Peer::parse(p).ok_or_else(|| format!("no peer named {p:?}\n{}", usage()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                opts.peers
                    .sort_by_key(|p| Peer::ALL.iter().position(|q| q == p));
                opts.peers.dedup();
            }
            "--help" | "-h" => return Err(usage()),
            // `cargo bench NAME` passes NAME as a filter: treat it as
            // `--only` by substring.
            filter if !filter.starts_with('-') => {
                let matching: Vec<_> = WORKLOADS
                    .iter()
                    .filter(|w| w.name.contains(filter))
                    .collect();
                if matching.is_empty() {
                    return Err(format!("no workload matches {filter:?}\n{}", usage()));
                }
                opts.only.get_or_insert_with(Vec::new).extend(matching);
            }
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    Ok(opts)
}

fn main() -> ExitCode {
    let opts = match parse_args() {
        Ok(opts) => opts,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    if let Some((peer, workload)) = opts.child {
        return runner::child_main(peer, workload, &opts);
    }
    let workloads: Vec<&'static Workload> = match &opts.only {
        Some(list) => list.clone(),
        None => WORKLOADS.iter().collect(),
    };
    if opts.bench {
        runner::compare(&workloads, &opts);
        ExitCode::SUCCESS
    } else {
        smoke(&workloads)
    }
}

/// Each workload once, tiny, in this process, on weft only.
fn smoke(workloads: &[&'static Workload]) -> ExitCode {
    println!(
        "compare: smoke run (weft only, tiny sizes; `cargo bench --bench compare` runs the comparison)"
    );
    let mut failed = 0;
    for w in workloads {
        let params = Params {
            workers: w.workers(2),
            size: w.smoke_size,
            reps: 1,
            quick: true,
        };
        match (w.weft)(&params) {
            Ok(m) => println!(
                "  {:<14} size {:>7}: ok, {:.1} {}",
                w.name,
                w.smoke_size,
                m.median(),
                w.unit.label()
            ),
            Err(err) => {
                println!("  {:<14} size {:>7}: FAILED: {err}", w.name, w.smoke_size);
                failed += 1;
            }
        }
    }
    println!("{} passed, {} failed", workloads.len() - failed, failed);
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

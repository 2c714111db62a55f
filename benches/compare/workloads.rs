//! The workloads, their sizes and units, and the table that maps each
//! (workload, peer) pair to the function that measures it.
//!
//! Adding a workload: write one function per peer with the signature
//! [`RunFn`] (the scheduler rows are in `weft_peer.rs`, `tokio_peer.rs` and
//! `may_peer.rs`; channels in `sync_peers.rs`, sockets in `net_peers.rs`,
//! actors in `actor_peers.rs` and `ractor_peer.rs`), and add a row to
//! [`WORKLOADS`]. The runner, the child protocol, the table and the smoke
//! test pick it up from there.

use std::fmt;

use crate::{actor_peers, may_peer, net_peers, ractor_peer, sync_peers, tokio_peer, weft_peer};

/// A runtime weft is compared with (or weft itself).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Peer {
    Weft,
    Tokio,
    May,
    /// An actor library on tokio: only the actor rows.
    Ractor,
}

impl Peer {
    pub(crate) const ALL: [Peer; 4] = [Peer::Weft, Peer::Tokio, Peer::May, Peer::Ractor];

    pub(crate) fn name(self) -> &'static str {
        match self {
            Peer::Weft => "weft",
            Peer::Tokio => "tokio",
            Peer::May => "may",
            Peer::Ractor => "ractor",
        }
    }

    pub(crate) fn parse(name: &str) -> Option<Peer> {
        Peer::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Peer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a figure is, and so how it is summarised and printed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Unit {
    /// Nanoseconds per operation (`what` names the operation).
    NsPer(&'static str),
    /// Operations per second (`what` names the operation): a throughput,
    /// where more is better.
    PerSec(&'static str),
    /// Milliseconds for the whole workload.
    Ms,
    /// Bytes of resident memory per thing (`what`: fiber, actor).
    BytesPer(&'static str),
}

impl Unit {
    pub(crate) fn label(self) -> String {
        match self {
            Unit::NsPer(what) => format!("ns/{what}"),
            Unit::PerSec(what) => format!("{what}/s"),
            Unit::Ms => "ms".to_owned(),
            Unit::BytesPer(what) => format!("B/{what}"),
        }
    }

    /// Whether a larger figure is the better one (so a weft/peer ratio
    /// above 1.00x favours weft).
    pub(crate) fn higher_is_better(self) -> bool {
        matches!(self, Unit::PerSec(_))
    }
}

/// A second figure of a row, printed as a line of its own under it: the
/// child reports it as the note `key=VALUE` (a number, perhaps followed by
/// a unit, as in `peak_rss=412MiB`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Extra {
    pub(crate) key: &'static str,
    /// The name in the table's first column.
    pub(crate) label: &'static str,
    /// The unit in the table's unit column.
    pub(crate) unit: &'static str,
}

impl Extra {
    /// This figure in a set of notes.
    pub(crate) fn find(self, notes: &[String]) -> Option<f64> {
        notes.iter().find_map(|note| {
            let value = note.strip_prefix(self.key)?.strip_prefix('=')?;
            let end = value
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(value.len());
            value[..end].parse().ok()
        })
    }
}

/// The peak resident set the runner notes for every child.
pub(crate) const PEAK_RSS: Extra = Extra {
    key: "peak_rss",
    label: "  peak RSS",
    unit: "MiB",
};

/// Latency percentiles the load generator notes.
pub(crate) const P50: Extra = Extra {
    key: "p50_us",
    label: "  p50",
    unit: "us",
};
pub(crate) const P99: Extra = Extra {
    key: "p99_us",
    label: "  p99",
    unit: "us",
};

/// How many workers a workload runs with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Workers {
    /// The runner's worker count (`--workers N`, default: the cores).
    Default,
    /// Exactly this many, whatever `--workers` says.
    Fixed(usize),
}

/// What one measuring function is given.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Params {
    /// Worker threads of the runtime under test.
    pub(crate) workers: usize,
    /// The workload's size (tasks, total yields, skynet leaves, parked
    /// fibers).
    pub(crate) size: u64,
    /// Repetitions inside the one process (one runtime, reused).
    pub(crate) reps: usize,
    /// The smoke run: whatever is not the size (laps, seconds of load)
    /// shrinks too, to milliseconds.
    pub(crate) quick: bool,
}

/// What one measuring function returns: one figure per repetition (in the
/// workload's unit) and free-form notes (`key=value` words, no tabs or
/// newlines) for the details section.
#[derive(Clone, Debug, Default)]
pub(crate) struct Measurement {
    pub(crate) samples: Vec<f64>,
    pub(crate) notes: Vec<String>,
}

impl Measurement {
    /// The figure reported: the median of the samples (the lower middle
    /// one for an even count).
    pub(crate) fn median(&self) -> f64 {
        let mut sorted = self.samples.clone();
        sorted.sort_by(f64::total_cmp);
        sorted[(sorted.len() - 1) / 2]
    }
}

/// Measures one workload on one peer, in this process. An `Err` is a
/// failure of the peer (a wrong result, a refused spawn), reported in the
/// table like a crash.
pub(crate) type RunFn = fn(&Params) -> Result<Measurement, String>;

/// One row of the comparison.
#[derive(Debug)]
pub(crate) struct Workload {
    /// The name on the command line and in the table.
    pub(crate) name: &'static str,
    /// One line on what is measured.
    pub(crate) what: &'static str,
    pub(crate) unit: Unit,
    pub(crate) workers: Workers,
    /// Size in the full run (`--bench`).
    pub(crate) size: u64,
    /// Size in the smoke run (no `--bench`).
    pub(crate) smoke_size: u64,
    /// Repetitions in the full run (the smoke run does one).
    pub(crate) reps: usize,
    /// Second figures, each a line under the row.
    pub(crate) extras: &'static [Extra],
    pub(crate) weft: RunFn,
    pub(crate) tokio: RunFn,
    pub(crate) may: RunFn,
    /// Only the actor rows have a ractor side.
    pub(crate) ractor: Option<RunFn>,
}

impl Workload {
    /// The peer's function; `None` where the peer has no such workload.
    pub(crate) fn run_fn(&self, peer: Peer) -> Option<RunFn> {
        match peer {
            Peer::Weft => Some(self.weft),
            Peer::Tokio => Some(self.tokio),
            Peer::May => Some(self.may),
            Peer::Ractor => self.ractor,
        }
    }

    pub(crate) fn workers(&self, default: usize) -> usize {
        match self.workers {
            Workers::Default => default,
            Workers::Fixed(n) => n,
        }
    }

    pub(crate) fn find(name: &str) -> Option<&'static Workload> {
        WORKLOADS.iter().find(|w| w.name == name)
    }
}

/// Skynet's shape: every node has this many children.
pub(crate) const SKYNET_DIV: u64 = 10;

/// The sum skynet must return for `leaves` leaves numbered from 0; an
/// error unless `leaves` is a power of [`SKYNET_DIV`] (the tree is full).
pub(crate) fn skynet_expected(leaves: u64) -> Result<u64, String> {
    let mut n = leaves;
    while n > 1 && n.is_multiple_of(SKYNET_DIV) {
        n /= SKYNET_DIV;
    }
    if n != 1 {
        return Err(format!(
            "skynet needs a power of {SKYNET_DIV} leaves, not {leaves}"
        ));
    }
    Ok(leaves * (leaves - 1) / 2)
}

/// A ring of `n` (one row per size).
const fn ring(name: &'static str, n: u64) -> Workload {
    Workload {
        name,
        what: "N fibers/tasks/coroutines in a ring, each forwarding a token to the next over its own channel (as ping_pong's), 2,000,000/N laps; time / hops",
        unit: Unit::NsPer("hop"),
        workers: Workers::Default,
        size: n,
        smoke_size: 1_000,
        reps: 3,
        extras: &[PEAK_RSS],
        weft: sync_peers::ring_weft,
        tokio: sync_peers::ring_tokio,
        may: sync_peers::ring_may,
        ractor: None,
    }
}

/// The workloads, in table order.
pub(crate) static WORKLOADS: &[Workload] = &[
    Workload {
        name: "spawn_join",
        what: "spawn N empty fibers/tasks from inside the runtime, keep the handles, join them all; time / N",
        unit: Unit::NsPer("task"),
        workers: Workers::Default,
        size: 1_000_000,
        smoke_size: 1_000,
        reps: 5,
        extras: &[],
        weft: weft_peer::spawn_join,
        tokio: tokio_peer::spawn_join,
        may: may_peer::spawn_join,
        ractor: None,
    },
    Workload {
        name: "yield_1w",
        what: "one worker, two fibers each yield_now N/2 times; time / N",
        unit: Unit::NsPer("yield"),
        workers: Workers::Fixed(1),
        size: 10_000_000,
        smoke_size: 10_000,
        reps: 5,
        extras: &[],
        weft: weft_peer::yield_pair,
        tokio: tokio_peer::yield_pair,
        may: may_peer::yield_pair,
        ractor: None,
    },
    Workload {
        name: "yield",
        what: "as yield_1w, on the default worker count (the two fibers may sit on different workers)",
        unit: Unit::NsPer("yield"),
        workers: Workers::Default,
        size: 10_000_000,
        smoke_size: 10_000,
        reps: 5,
        extras: &[],
        weft: weft_peer::yield_pair,
        tokio: tokio_peer::yield_pair,
        may: may_peer::yield_pair,
        ractor: None,
    },
    Workload {
        name: "skynet",
        what: "skynet: every node spawns 10 children, N leaves return their number, the sum is checked",
        unit: Unit::Ms,
        workers: Workers::Default,
        size: 1_000_000,
        smoke_size: 1_000,
        reps: 5,
        extras: &[],
        weft: weft_peer::skynet,
        tokio: tokio_peer::skynet,
        may: may_peer::skynet,
        ractor: None,
    },
    Workload {
        name: "parked_rss",
        what: "N fibers/tasks parked at once (plus their join handles): (RSS parked - RSS before) / N",
        unit: Unit::BytesPer("fiber"),
        workers: Workers::Default,
        size: 100_000,
        smoke_size: 100,
        reps: 1,
        extras: &[],
        weft: weft_peer::parked_rss,
        tokio: tokio_peer::parked_rss,
        may: may_peer::parked_rss,
        ractor: None,
    },
    Workload {
        name: "ping_pong",
        what: "two fibers/tasks/coroutines bounce a counter over two channels (weft bounded(1), tokio mpsc::channel(1), may mpsc); time / N round trips",
        unit: Unit::NsPer("rt"),
        workers: Workers::Default,
        size: 1_000_000,
        smoke_size: 10_000,
        reps: 5,
        extras: &[],
        weft: sync_peers::ping_pong_weft,
        tokio: sync_peers::ping_pong_tokio,
        may: sync_peers::ping_pong_may,
        ractor: None,
    },
    ring("ring_10k", 10_000),
    ring("ring_100k", 100_000),
    ring("ring_1m", 1_000_000),
    Workload {
        name: "echo_100",
        what: "TCP echo server, one fiber/task/coroutine per connection, N connections of the load generator below, 64-byte messages; round trips / s",
        unit: Unit::PerSec("rt"),
        workers: Workers::Default,
        size: 100,
        smoke_size: 4,
        reps: 3,
        extras: &[P50, P99],
        weft: net_peers::echo_weft,
        tokio: net_peers::echo_tokio,
        may: net_peers::echo_may,
        ractor: None,
    },
    Workload {
        name: "http_hello",
        what: "HTTP/1.1 keep-alive hello-world server (a request ends at its blank line; one fixed response with Content-Length), N connections sending GET /; requests / s",
        unit: Unit::PerSec("req"),
        workers: Workers::Default,
        size: 100,
        smoke_size: 4,
        reps: 3,
        extras: &[P50, P99],
        weft: net_peers::http_weft,
        tokio: net_peers::http_tokio,
        may: net_peers::http_may,
        ractor: None,
    },
    Workload {
        name: "actor_idle_rss",
        what: "N actors spawned, sent one message each (handled), then idle: (RSS idle - RSS before) / N (state: a u64; the driver keeps each address, 8 B)",
        unit: Unit::BytesPer("actor"),
        workers: Workers::Default,
        size: 1_000_000,
        smoke_size: 1_000,
        reps: 1,
        extras: &[PEAK_RSS],
        weft: actor_peers::idle_rss_weft,
        tokio: actor_peers::idle_rss_tokio,
        may: actor_peers::idle_rss_may,
        ractor: Some(ractor_peer::idle_rss),
    },
    Workload {
        name: "actor_ring_1m",
        what: "N actors in a ring (weft Addr::send, tokio task + unbounded mpsc, may coroutine + mpsc, ractor cast), a token passed on, 2,000,000/N laps; time / hops",
        unit: Unit::NsPer("hop"),
        workers: Workers::Default,
        size: 1_000_000,
        smoke_size: 1_000,
        reps: 3,
        extras: &[PEAK_RSS],
        weft: actor_peers::ring_weft,
        tokio: actor_peers::ring_tokio,
        may: actor_peers::ring_may,
        ractor: Some(ractor_peer::ring),
    },
    Workload {
        name: "actor_ask",
        what: "request/reply to one actor from the root (weft Addr::ask, tokio mpsc + oneshot, may mpsc + reply channel, ractor call), N in a row; time / N",
        unit: Unit::NsPer("rt"),
        workers: Workers::Default,
        size: 1_000_000,
        smoke_size: 10_000,
        reps: 5,
        extras: &[],
        weft: actor_peers::ask_weft,
        tokio: actor_peers::ask_tokio,
        may: actor_peers::ask_may,
        ractor: Some(ractor_peer::ask),
    },
];

/// Nanoseconds per operation.
pub(crate) fn ns_per(elapsed: std::time::Duration, n: u64) -> f64 {
    elapsed.as_nanos() as f64 / n as f64
}

/// The resident set of this process, in bytes (`/proc/self/statm`:
/// resident pages times the page size).
pub(crate) fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm is readable");
    let resident: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("statm has a resident field");
    resident * page_size()
}

pub(crate) fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// The thread running the caller (read in a function of its own, never
/// inlined, so no thread-local address is kept across a switch).
#[inline(never)]
pub(crate) fn thread_id() -> std::thread::ThreadId {
    std::thread::current().id()
}

/// The note of a yield run: in how many repetitions the two fibers
/// finished on the same thread (so took turns on one worker).
pub(crate) fn same_thread_note(same: usize, reps: usize) -> String {
    format!("pair_on_one_thread={same}/{reps}")
}

/// The figure of a parked-RSS run, with its raw numbers as notes.
pub(crate) fn parked_measurement(before: u64, parked: u64, n: u64) -> Measurement {
    let per = parked.saturating_sub(before) as f64 / n as f64;
    Measurement {
        samples: vec![per],
        notes: vec![
            format!("rss_before={}KiB", before / 1024),
            format!("rss_parked={}KiB", parked / 1024),
        ],
    }
}

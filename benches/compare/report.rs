//! What the runner prints: the header (when, where, how), the table, and
//! the details (every sample, the notes, full failure messages).

use std::ffi::CStr;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::Options;
use crate::may_peer;
use crate::workloads::{Extra, Measurement, Peer, Workload};
use crate::{net_load, ractor_peer};

/// How one (peer, workload) child ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    Ok(Measurement),
    Failed(String),
    /// The peer has no such workload (ractor outside the actor rows).
    Absent,
}

/// One workload's outcomes, in peer order.
#[derive(Debug)]
pub(crate) struct Row {
    pub(crate) workload: &'static Workload,
    pub(crate) outcomes: Vec<(Peer, Outcome)>,
}

impl Row {
    /// The peer's figure: the row's own (`extra` None) or a second one.
    fn figure(&self, peer: Peer, extra: Option<Extra>) -> Option<f64> {
        self.outcomes.iter().find_map(|(p, o)| match o {
            Outcome::Ok(m) if *p == peer => match extra {
                None => Some(m.median()),
                Some(extra) => extra.find(&m.notes),
            },
            _ => None,
        })
    }
}

pub(crate) fn header(opts: &Options, workloads: &[&'static Workload]) {
    println!(
        "weft compare: weft beside tokio and may (and ractor on the actor rows), same worker count, same run"
    );
    println!("date:      {}", utc_now());
    println!("machine:   {}", machine());
    println!("load:      {} before the first child", load(true));
    println!(
        "workers:   {} (--workers N; default: the cores); rows marked 1 use one worker whatever --workers says",
        opts.workers
    );
    println!("versions:  {}", versions());
    println!(
        "method:    each (peer, workload) in its own child process (time limit {} s); the child times the workload \
         only (Instant around it: no process or runtime start) and reports the MEDIAN of its repetitions, all in \
         one runtime (the first, cold one included); parked_rss and actor_idle_rss are one measurement each; \
         echo_100 and http_hello: one sample per timed stretch of load",
        opts.timeout.as_secs()
    );
    if opts.rounds > 1 {
        println!(
            "rounds:    {} (--rounds): each (peer, workload) in {} children, the peers taking turns; the figure is \
             the median of the children's medians, the bracket lists each child's median, the notes are the \
             median child's",
            opts.rounds, opts.rounds
        );
    }
    if let Ok(exe) = std::env::current_exe() {
        println!(
            "one child: {} --child PEER WORKLOAD --workers N [--reps R] [--size S] (e.g. under perf record -e cpu-clock -g)",
            exe.display()
        );
    }
    println!("peers:");
    println!(
        "  weft:  Runtime::builder().workers(N), defaults otherwise: 256 KiB stacks from the pool, committed as \
         touched, taken at a fiber's first run; started fibers stay on their worker; the workload runs in \
         block_on's main fiber"
    );
    println!(
        "  tokio: runtime::Builder::new_multi_thread().worker_threads(N) (multi-thread also for 1 worker: the \
         current-thread runtime is another scheduler), defaults otherwise (event_interval 61, \
         global_queue_interval self-tuning, LIFO slot on); the workload runs in a task spawned from block_on, on \
         a worker; enable_io() for the socket rows"
    );
    println!(
        "  may:   {}; the workload runs in a root coroutine",
        may_peer::settings()
    );
    println!("  ractor: {}", ractor_peer::settings());
    println!(
        "load generator (echo_100, http_hello): {}",
        net_load::description()
    );
    println!("workloads:");
    for w in workloads {
        let size = opts.size.unwrap_or(w.size);
        let overridden = if opts.size.is_some() { " (--size)" } else { "" };
        println!("  {:<14} N={size:<10} {}{overridden}", w.name, w.what);
    }
    if opts.reps.is_some() {
        println!("repetitions overridden by --reps");
    }
    println!();
}

pub(crate) fn table(rows: &[Row], opts: &Options) {
    let peers = &opts.peers;
    let others: Vec<Peer> = peers.iter().copied().filter(|&p| p != Peer::Weft).collect();
    let with_weft = peers.contains(&Peer::Weft);
    let mut head: Vec<String> = vec!["workload".into(), "workers".into(), "unit".into()];
    head.extend(peers.iter().map(|p| p.name().to_owned()));
    if with_weft {
        head.extend(others.iter().map(|p| format!("weft/{p}")));
    }
    let mut lines = vec![head];
    for row in rows {
        let w = row.workload;
        let unit = if w.unit.higher_is_better() {
            format!("{} (↑)", w.unit.label())
        } else {
            w.unit.label()
        };
        let mut cells = vec![w.name.to_owned(), w.workers(opts.workers).to_string(), unit];
        for (_, outcome) in &row.outcomes {
            cells.push(match outcome {
                Outcome::Ok(m) => figure(m.median()),
                Outcome::Failed(why) => truncate(&format!("failed: {why}"), 80),
                Outcome::Absent => "-".to_owned(),
            });
        }
        if with_weft {
            cells.extend(ratios(row, &others, None));
        }
        lines.push(cells);
        for &extra in w.extras {
            let mut cells = vec![extra.label.to_owned(), String::new(), extra.unit.to_owned()];
            for &(peer, _) in &row.outcomes {
                cells.push(row.figure(peer, Some(extra)).map_or("-".to_owned(), figure));
            }
            if with_weft {
                cells.extend(ratios(row, &others, Some(extra)));
            }
            lines.push(cells);
        }
    }
    let columns = lines[0].len();
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            lines
                .iter()
                .map(|l| l[c].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, line) in lines.iter().enumerate() {
        let cells: Vec<String> = line
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(c, (cell, &width))| {
                if c < 3 {
                    format!("{cell:<width$}")
                } else {
                    format!("{cell:>width$}")
                }
            })
            .collect();
        println!("{}", cells.join("  ").trim_end());
        if i == 0 {
            let total = widths.iter().sum::<usize>() + 2 * (columns - 1);
            println!("{}", "-".repeat(total));
        }
    }
    println!(
        "ratios: weft's figure / the peer's; below 1.00x weft is faster (times, latencies) or smaller (memory); \
         for rates, marked (↑): rt/s, req/s, ABOVE 1.00x weft is faster. Figures are medians; every sample is in the \
         details, in run order (the first one is cold). Indented lines are second figures of the row above, \
         from the same child: peak RSS is the child's VmHWM, p50/p99 are over every measured round trip."
    );
    println!(
        "load:   {} after the last child (the children's own load included)",
        load(false)
    );
    println!();
    println!("details:");
    for row in rows {
        for (peer, outcome) in &row.outcomes {
            let label = format!("{} / {peer}", row.workload.name);
            match outcome {
                Outcome::Ok(m) => {
                    let samples: Vec<String> = m.samples.iter().map(|&s| figure(s)).collect();
                    println!(
                        "  {label:<22} {} {}: [{}]  {}",
                        figure(m.median()),
                        row.workload.unit.label(),
                        samples.join(", "),
                        m.notes.join(" ")
                    );
                }
                Outcome::Failed(why) => println!("  {label:<22} failed: {why}"),
                Outcome::Absent => {}
            }
        }
    }
}

/// The weft/peer ratio cells of one line.
fn ratios(row: &Row, others: &[Peer], extra: Option<Extra>) -> Vec<String> {
    others
        .iter()
        .map(
            |&peer| match (row.figure(Peer::Weft, extra), row.figure(peer, extra)) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
                _ => "n/a".to_owned(),
            },
        )
        .collect()
}

/// A figure with about three significant digits.
fn figure(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.2}")
    } else if v < 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.0}")
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_owned()
    } else {
        let cut: String = s.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}

/// Now, as `YYYY-MM-DD hh:mm:ss UTC`.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm (proleptic Gregorian).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Cores, kernel (uname) and CPU model.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    // SAFETY: uname fills the struct it is given; all-zero is a valid
    // initial value for its byte arrays.
    let mut uts: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: `uts` is a valid, writable utsname.
    let kernel = if unsafe { libc::uname(&mut uts) } == 0 {
        let field = |f: &[libc::c_char]| {
            // SAFETY: uname NUL-terminates each field within its array.
            unsafe { CStr::from_ptr(f.as_ptr()) }
                .to_string_lossy()
                .into_owned()
        };
        format!(
            "{} {} {}",
            field(&uts.sysname),
            field(&uts.release),
            field(&uts.machine)
        )
    } else {
        "uname failed".to_owned()
    };
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let max_map_count = std::fs::read_to_string("/proc/sys/vm/max_map_count")
        .map_or_else(|_| "?".to_owned(), |s| s.trim().to_owned());
    format!(
        "{cores} cores (available_parallelism), {kernel}, {cpu}, vm.max_map_count={max_map_count}"
    )
}

/// The 1, 5 and 15 minute load averages; with `warn`, a warning when the
/// last minute was busy (only before the first child: afterwards the
/// runner's own children are in the figure).
fn load(warn: bool) -> String {
    let Ok(text) = std::fs::read_to_string("/proc/loadavg") else {
        return "unknown".to_owned();
    };
    let fields: Vec<&str> = text.split_whitespace().take(3).collect();
    let one_minute: f64 = fields.first().and_then(|f| f.parse().ok()).unwrap_or(0.0);
    let warning = if warn && one_minute >= 0.5 {
        " (WARNING: other processes are using the cores; figures may be inflated and noisy)"
    } else {
        ""
    };
    format!("loadavg {}{warning}", fields.join(" "))
}

/// The peers' versions, from the Cargo.lock this binary was built with,
/// weft's commit, and the rustc on PATH.
fn versions() -> String {
    let lock = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.lock"));
    let version = |name: &str| {
        let needle = format!("name = \"{name}\"\nversion = \"");
        lock.find(&needle)
            .and_then(|at| lock[at + needle.len()..].split('"').next())
            .unwrap_or("?")
            .to_owned()
    };
    let run = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = run("git", &["rev-parse", "--short", "HEAD"]).unwrap_or_else(|| "?".to_owned());
    let dirty = run("git", &["status", "--porcelain", "--untracked-files=no"])
        .is_some_and(|s| !s.is_empty());
    let rustc = run("rustc", &["--version"]).unwrap_or_else(|| "rustc ?".to_owned());
    format!(
        "weft {} @ {commit}{}, tokio {}, may {} (generator {}); {rustc}; {}",
        env!("CARGO_PKG_VERSION"),
        if dirty { "+dirty" } else { "" },
        version("tokio"),
        version("may"),
        version("generator"),
        if cfg!(debug_assertions) {
            "DEBUG BUILD: the figures mean nothing"
        } else {
            "optimized build"
        },
    )
}

//! The two sides of the child protocol: the parent re-executes this binary
//! once per (peer, workload), with a time limit, and parses the one
//! `RESULT` line the child prints.
//!
//! The line is `RESULT<TAB>median<TAB>sample,sample,...<TAB>note note ...`
//! (figures in the workload's unit; notes are `key=value` words).

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::Options;
use crate::report::{self, Outcome, Row};
use crate::workloads::{Measurement, Params, Peer, Workload};

const RESULT: &str = "RESULT";

/// The child: measure `workload` on `peer` and print the `RESULT` line.
pub(crate) fn child_main(peer: Peer, workload: &Workload, opts: &Options) -> ExitCode {
    let params = Params {
        workers: workload.workers(opts.workers),
        size: opts.size.unwrap_or(workload.size),
        reps: opts.reps.unwrap_or(workload.reps),
        quick: false,
    };
    let Some(run) = workload.run_fn(peer) else {
        eprintln!("{peer} has no {} workload", workload.name);
        return ExitCode::FAILURE;
    };
    match run(&params) {
        Ok(mut m) => {
            if let Some(peak) = peak_rss_kib() {
                m.notes.push(format!("peak_rss={}MiB", peak / 1024));
            }
            let samples: Vec<String> = m.samples.iter().map(|s| format!("{s}")).collect();
            println!(
                "{RESULT}\t{}\t{}\t{}",
                m.median(),
                samples.join(","),
                m.notes.join(" ")
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

/// The process's peak resident set (`VmHWM`), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The parent: every workload on every peer (`opts.rounds` times, the
/// peers taking turns), then the report.
pub(crate) fn compare(workloads: &[&'static Workload], opts: &Options) {
    report::header(opts, workloads);
    let mut rows = Vec::new();
    for &workload in workloads {
        // Per peer: each round's measurement, or the failure that ended
        // its rounds (a peer that failed once is not run again).
        let mut runs: Vec<Result<Vec<Measurement>, String>> =
            vec![Ok(Vec::new()); opts.peers.len()];
        for round in 1..=opts.rounds {
            for (&peer, run) in opts.peers.iter().zip(&mut runs) {
                let Ok(measured) = run else { continue };
                if workload.run_fn(peer).is_none() {
                    continue;
                }
                let of = if opts.rounds > 1 {
                    format!(" (round {round} of {})", opts.rounds)
                } else {
                    String::new()
                };
                eprint!("compare: {} on {peer}{of} ... ", workload.name);
                let started = Instant::now();
                match run_child(peer, workload, opts) {
                    Ok(m) => {
                        eprintln!(
                            "{:.1} {} ({:.1} s)",
                            m.median(),
                            workload.unit.label(),
                            started.elapsed().as_secs_f64()
                        );
                        measured.push(m);
                    }
                    Err(why) => {
                        eprintln!("failed: {why}");
                        *run = Err(why);
                    }
                }
            }
        }
        let outcomes = opts
            .peers
            .iter()
            .zip(runs)
            .map(|(&peer, run)| {
                let outcome = match run {
                    _ if workload.run_fn(peer).is_none() => Outcome::Absent,
                    Ok(measured) => Outcome::Ok(across_rounds(measured)),
                    Err(why) => Outcome::Failed(why),
                };
                (peer, outcome)
            })
            .collect();
        rows.push(Row { workload, outcomes });
    }
    report::table(&rows, opts);
}

/// One peer's rounds as one measurement: the round whose median is the
/// median of the rounds' (the lower middle one for an even count) gives
/// the notes; the samples become the rounds' medians, in the order they
/// ran, so the figure is the median of the medians. One round is itself.
fn across_rounds(mut rounds: Vec<Measurement>) -> Measurement {
    if rounds.len() == 1 {
        return rounds.remove(0);
    }
    let medians: Vec<f64> = rounds.iter().map(Measurement::median).collect();
    let mut order: Vec<usize> = (0..rounds.len()).collect();
    order.sort_by(|&a, &b| medians[a].total_cmp(&medians[b]));
    let middle = order[(order.len() - 1) / 2];
    let mut notes = std::mem::take(&mut rounds[middle].notes);
    notes.push(format!(
        "rounds={} notes_from_round={}",
        rounds.len(),
        middle + 1
    ));
    Measurement {
        samples: medians,
        notes,
    }
}

fn run_child(peer: Peer, workload: &Workload, opts: &Options) -> Result<Measurement, String> {
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(err) => return Err(format!("cannot find this executable: {err}")),
    };
    let mut command = Command::new(exe);
    command
        .args(["--child", peer.name(), workload.name])
        .args(["--workers", &opts.workers.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(reps) = opts.reps {
        command.args(["--reps", &reps.to_string()]);
    }
    if let Some(size) = opts.size {
        command.args(["--size", &size.to_string()]);
    }
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(err) => return Err(format!("cannot start the child: {err}")),
    };
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let status = wait_with_timeout(&mut child, opts.timeout);
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let Some(status) = status else {
        return Err(format!(
            "timed out after {} s (killed){}",
            opts.timeout.as_secs(),
            last_line(&stderr).map_or(String::new(), |l| format!("; stderr: {l}"))
        ));
    };
    if status.success()
        && let Some(m) = parse_result(&stdout)
    {
        return Ok(m);
    }
    Err(failure(status, &stderr))
}

/// Reads a pipe to its end on a thread of its own (so that a chatty child
/// never blocks on a full pipe while the parent waits).
fn drain(pipe: Option<impl Read + Send + 'static>) -> thread::JoinHandle<String> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        if let Some(mut pipe) = pipe {
            let _ = pipe.read_to_end(&mut bytes);
        }
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Waits for the child; past `timeout`, kills it and returns `None`.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

fn parse_result(stdout: &str) -> Option<Measurement> {
    let line = stdout.lines().rev().find(|l| l.starts_with(RESULT))?;
    let mut fields = line.split('\t').skip(1);
    let _median = fields.next()?;
    let samples = fields
        .next()?
        .split(',')
        .map(|s| s.parse().ok())
        .collect::<Option<Vec<f64>>>()?;
    let notes = fields
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    (!samples.is_empty()).then_some(Measurement { samples, notes })
}

/// The last meaningful line of a child's stderr (not the hint about
/// `RUST_BACKTRACE` that follows a panic message).
fn last_line(stderr: &str) -> Option<&str> {
    stderr
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty() && !l.starts_with("note: run with `RUST_BACKTRACE"))
}

fn failure(status: ExitStatus, stderr: &str) -> String {
    let how = match status.signal() {
        Some(signal) => signal_name(signal),
        None => match status.code() {
            Some(0) => "exited 0 without a RESULT line".to_owned(),
            Some(code) => format!("exit code {code}"),
            None => "unknown exit status".to_owned(),
        },
    };
    match last_line(stderr) {
        Some(line) => format!("{line} ({how})"),
        None => how,
    }
}

fn signal_name(signal: i32) -> String {
    let name = match signal {
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGILL => "SIGILL",
        libc::SIGKILL => "SIGKILL (out of memory?)",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGTERM => "SIGTERM",
        libc::SIGTRAP => "SIGTRAP",
        _ => return format!("signal {signal}"),
    };
    name.to_owned()
}

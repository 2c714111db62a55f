//! A closed-loop load generator for the echo and HTTP examples (and any
//! server that speaks the same): N connections, each sending one request
//! and waiting for its whole response before the next, for a fixed time.
//! It prints requests/s and latency percentiles, and one `RESULT` line
//! for scripts.
//!
//! Run: `cargo run --release --example loadgen -- MODE ADDR [options]`
//!
//! - `MODE`: `echo` (a `--size`-byte message, echoed back) or `http`
//!   (`GET /` with keep-alive; the response is read to its
//!   `Content-Length`).
//! - `--conns N` (100), `--duration SECS` (10), `--warmup SECS` (1, not
//!   measured), `--workers N` (1: the generator's own weft workers),
//!   `--size BYTES` (64, echo only).
//!
//! Example: `cargo run --release --example loadgen -- echo 127.0.0.1:7000 --conns 100 --duration 10`

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use weft::net::TcpStream;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Echo,
    Http,
}

struct Args {
    mode: Mode,
    addr: String,
    conns: usize,
    duration: Duration,
    warmup: Duration,
    workers: usize,
    size: usize,
}

/// What one connection measured.
#[derive(Default)]
struct Tally {
    /// Latencies of the measured requests, in nanoseconds.
    latencies: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

fn main() {
    let args = parse_args();
    let rt = weft::Runtime::builder()
        .workers(args.workers)
        .build()
        .expect("start the runtime");
    let mode = args.mode;
    let addr = args.addr.clone();
    let (conns, duration, warmup, size) = (args.conns, args.duration, args.warmup, args.size);
    let (tallies, elapsed) = rt.block_on(move || {
        let measuring = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..conns)
            .map(|_| {
                let (addr, measuring, stop) = (addr.clone(), measuring.clone(), stop.clone());
                weft::spawn(move || client(mode, &addr, size, &measuring, &stop))
            })
            .collect();
        weft::sleep(warmup);
        measuring.store(true, Ordering::Relaxed);
        let start = Instant::now();
        weft::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        let elapsed = start.elapsed();
        let tallies: Vec<Tally> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        (tallies, elapsed)
    });
    report(&args, tallies, elapsed);
}

/// One connection's closed loop.
fn client(mode: Mode, addr: &str, size: usize, measuring: &AtomicBool, stop: &AtomicBool) -> Tally {
    let mut tally = Tally::default();
    let note = |tally: &mut Tally, err: io::Error| {
        tally.errors += 1;
        tally.first_error.get_or_insert_with(|| err.to_string());
    };
    let mut conn = match TcpStream::connect(addr) {
        Ok(conn) => conn,
        Err(err) => {
            note(&mut tally, err);
            return tally;
        }
    };
    let _ = conn.set_nodelay(true);
    let request: Vec<u8> = match mode {
        Mode::Echo => (0..size).map(|i| b'a' + (i % 26) as u8).collect(),
        Mode::Http => format!("GET / HTTP/1.1\r\nHost: {addr}\r\n\r\n").into_bytes(),
    };
    let mut buf = vec![0u8; 64 * 1024];
    while !stop.load(Ordering::Relaxed) {
        let start = Instant::now();
        let result = conn.write_all(&request).and_then(|()| match mode {
            Mode::Echo => read_echo(&mut conn, &request, &mut buf),
            Mode::Http => read_http(&mut conn, &mut buf),
        });
        match result {
            Ok(()) => {
                if measuring.load(Ordering::Relaxed) {
                    let nanos = start.elapsed().as_nanos();
                    tally
                        .latencies
                        .push(u32::try_from(nanos).unwrap_or(u32::MAX));
                }
            }
            Err(err) => {
                note(&mut tally, err);
                return tally;
            }
        }
    }
    tally
}

fn read_echo(conn: &mut TcpStream, request: &[u8], buf: &mut [u8]) -> io::Result<()> {
    // Read into the whole buffer, not exactly the reply's length: a short
    // read tells weft the socket is drained, which saves a syscall.
    let mut filled = 0;
    while filled < request.len() {
        let n = conn.read(&mut buf[filled..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
    }
    if &buf[..filled] != request {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "echo differs"));
    }
    Ok(())
}

/// Reads one response: its head, then `Content-Length` bytes of body.
fn read_http(conn: &mut TcpStream, buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    loop {
        let n = conn.read(&mut buf[filled..])?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        filled += n;
        if let Some(end) = buf[..filled].windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            if !head.starts_with("http/1.1 200") {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "not a 200"));
            }
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no content-length"))?;
            let have = filled - (end + 4);
            if have > length {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "extra bytes"));
            }
            let mut rest = vec![0u8; length - have];
            return conn.read_exact(&mut rest);
        }
        if filled == buf.len() {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too large"));
        }
    }
}

fn report(args: &Args, tallies: Vec<Tally>, elapsed: Duration) {
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    let first_error = tallies.iter().find_map(|t| t.first_error.clone());
    let mut all: Vec<u32> = tallies.into_iter().flat_map(|t| t.latencies).collect();
    all.sort_unstable();
    let pct = |p: f64| -> f64 {
        if all.is_empty() {
            return 0.0;
        }
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        f64::from(all[i]) / 1000.0
    };
    let rps = all.len() as f64 / elapsed.as_secs_f64();
    let mode = match args.mode {
        Mode::Echo => "echo",
        Mode::Http => "http",
    };
    println!(
        "{mode} {}: {} connections, {:.1} s: {} requests, {:.0} req/s; latency p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us; {} errors",
        args.addr,
        args.conns,
        elapsed.as_secs_f64(),
        all.len(),
        rps,
        pct(0.50),
        pct(0.99),
        pct(0.999),
        errors
    );
    if let Some(err) = first_error {
        println!("first error: {err}");
    }
    println!(
        "RESULT mode={mode} conns={} requests={} rps={rps:.0} p50_us={:.1} p99_us={:.1} p999_us={:.1} errors={errors}",
        args.conns,
        all.len(),
        pct(0.50),
        pct(0.99),
        pct(0.999)
    );
}

fn parse_args() -> Args {
    let usage = "usage: loadgen echo|http ADDR [--conns N] [--duration SECS] [--warmup SECS] [--workers N] [--size BYTES]";
    let mut it = std::env::args().skip(1);
    let mode = match it.next().as_deref() {
        Some("echo") => Mode::Echo,
        Some("http") => Mode::Http,
        _ => panic!("{usage}"),
    };
    let addr = it.next().unwrap_or_else(|| panic!("{usage}"));
    let mut args = Args {
        mode,
        addr,
        conns: 100,
        duration: Duration::from_secs(10),
        warmup: Duration::from_secs(1),
        workers: 1,
        size: 64,
    };
    let secs =
        |v: Option<String>| Duration::from_secs_f64(v.and_then(|v| v.parse().ok()).expect(usage));
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--conns" => args.conns = it.next().and_then(|v| v.parse().ok()).expect(usage),
            "--duration" => args.duration = secs(it.next()),
            "--warmup" => args.warmup = secs(it.next()),
            "--workers" => args.workers = it.next().and_then(|v| v.parse().ok()).expect(usage),
            "--size" => args.size = it.next().and_then(|v| v.parse().ok()).expect(usage),
            _ => panic!("{usage}"),
        }
    }
    args
}

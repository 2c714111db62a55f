//! The load generator of the socket rows (issue 5): the same code for
//! every peer, so that only the server differs.
//!
//! It runs in the child, beside the server under test, on
//! [`THREADS`] plain threads (no runtime), each driving its share of the
//! connections with nonblocking std sockets and a level-triggered `epoll`
//! loop: every connection is a closed loop (one request out, the whole
//! response in, the next request), as `examples/loadgen.rs` does on weft.
//! So the generator and the server share the machine's cores, and every
//! peer pays the same generator.
//!
//! Time is cut in phases: a warm-up (not counted), then `reps` measured
//! repetitions; a round trip counts in the phase in which its response
//! completed. The figure of a repetition is its round trips per second;
//! the latencies (send of the request to the end of its response) of all
//! measured repetitions give `p50_us`/`p99_us`/`p999_us`.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::workloads::{Measurement, Params};

/// Generator threads (fixed: the same for every peer and worker count).
pub(crate) const THREADS: usize = 2;

/// Bytes of an echo message.
pub(crate) const ECHO_SIZE: usize = 64;

/// The request the HTTP rows send.
const HTTP_REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// What the connections speak.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Mode {
    /// A 64-byte message, echoed back.
    Echo,
    /// `GET /` with keep-alive; the response is read to its
    /// `Content-Length`.
    Http,
}

/// How long a run lasts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Plan {
    pub(crate) conns: usize,
    pub(crate) warmup: Duration,
    pub(crate) reps: usize,
    pub(crate) rep: Duration,
}

impl Plan {
    /// `p.size` connections; 1 s of warm-up and 1.5 s repetitions, or
    /// 50 ms and 100 ms in the smoke run.
    pub(crate) fn from_params(p: &Params) -> Plan {
        let (warmup, rep) = if p.quick {
            (Duration::from_millis(50), Duration::from_millis(100))
        } else {
            (Duration::from_secs(1), Duration::from_millis(1500))
        };
        Plan {
            conns: p.size as usize,
            warmup,
            reps: p.reps,
            rep,
        }
    }
}

/// For the report's header.
pub(crate) fn description() -> String {
    format!(
        "in the child, beside the server, sharing its cores: {THREADS} plain threads (no runtime), each \
         driving its share of the N connections over nonblocking std sockets with a level-triggered epoll \
         loop; each connection is a closed loop (echo: {ECHO_SIZE} bytes out, {ECHO_SIZE} back; http: \
         GET / keep-alive, the response read to its Content-Length); 1 s warm-up, then 1.5 s repetitions; \
         loopback; the same code for every peer"
    )
}

/// What one generator thread saw.
#[derive(Default)]
struct Tally {
    /// Round trips completed in each measured repetition.
    per_rep: Vec<u64>,
    /// Latencies of the measured round trips, in nanoseconds.
    latencies: Vec<u32>,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `plan` against the server at `addr`; every socket is closed when
/// this returns.
pub(crate) fn run(mode: Mode, addr: SocketAddr, plan: Plan) -> Result<Measurement, String> {
    // 0: warm-up; 1..=reps: measured; reps + 1: stop.
    let phase = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let conns = plan.conns / THREADS + usize::from(t < plan.conns % THREADS);
            let phase = Arc::clone(&phase);
            thread::Builder::new()
                .name(format!("loadgen-{t}"))
                .spawn(move || drive(mode, addr, conns, plan.reps, &phase))
                .map_err(|err| format!("cannot start a generator thread: {err}"))
        })
        .collect::<Result<_, _>>()?;
    thread::sleep(plan.warmup);
    let mut durations = Vec::with_capacity(plan.reps);
    for rep in 1..=plan.reps {
        let start = Instant::now();
        phase.store(rep, Ordering::Relaxed);
        thread::sleep(plan.rep);
        durations.push(start.elapsed());
    }
    phase.store(plan.reps + 1, Ordering::Relaxed);
    let tallies: Vec<Tally> = threads
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| panicked()))
        .collect();
    summarize(mode, &plan, &durations, tallies)
}

fn panicked() -> Tally {
    Tally {
        errors: 1,
        first_error: Some("a generator thread panicked".to_owned()),
        ..Tally::default()
    }
}

fn summarize(
    mode: Mode,
    plan: &Plan,
    durations: &[Duration],
    tallies: Vec<Tally>,
) -> Result<Measurement, String> {
    let errors: u64 = tallies.iter().map(|t| t.errors).sum();
    if let Some(first) = tallies.iter().find_map(|t| t.first_error.as_deref()) {
        return Err(format!("{errors} connection error(s), the first: {first}"));
    }
    let samples = durations
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let count: u64 = tallies.iter().map(|t| t.per_rep[i]).sum();
            count as f64 / d.as_secs_f64()
        })
        .collect();
    let mut all: Vec<u32> = tallies.into_iter().flat_map(|t| t.latencies).collect();
    if all.is_empty() {
        return Err("no round trip completed".to_owned());
    }
    all.sort_unstable();
    let pct = |p: f64| {
        let i = ((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1;
        f64::from(all[i]) / 1000.0
    };
    Ok(Measurement {
        samples,
        notes: vec![
            format!("p50_us={:.1}", pct(0.50)),
            format!("p99_us={:.1}", pct(0.99)),
            format!("p999_us={:.1}", pct(0.999)),
            format!("max_us={:.0}", pct(1.0)),
            format!("measured={}", all.len()),
            format!("conns={}", plan.conns),
            format!("mode={mode:?}"),
        ],
    })
}

/// One connection's state.
struct Conn {
    stream: TcpStream,
    /// When the request in flight was sent.
    sent: Instant,
    /// The response so far: `buf[..filled]`.
    buf: Box<[u8]>,
    filled: usize,
}

/// The epoll set of one thread (closed on drop).
struct Epoll(i32);

impl Epoll {
    fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 has no memory preconditions.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Epoll(fd))
    }

    /// Watches `fd` for input, level-triggered, tagged with `key`.
    fn add(&self, fd: i32, key: u64) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: key,
        };
        // SAFETY: `self.0` is an open epoll descriptor; `event` is a valid
        // epoll_event that the kernel only reads during the call.
        if unsafe { libc::epoll_ctl(self.0, libc::EPOLL_CTL_ADD, fd, &mut event) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` and returns the ready keys' count in
    /// `events`.
    fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> io::Result<usize> {
        let max = i32::try_from(events.len()).unwrap_or(i32::MAX);
        // SAFETY: `events` is writable for `max` entries, which is all the
        // kernel writes.
        let n = unsafe { libc::epoll_wait(self.0, events.as_mut_ptr(), max, timeout_ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(0)
            } else {
                Err(err)
            };
        }
        Ok(n as usize)
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: the descriptor is ours and closed once.
        unsafe { libc::close(self.0) };
    }
}

/// One generator thread: `n` connections until the phase says stop.
fn drive(mode: Mode, addr: SocketAddr, n: usize, reps: usize, phase: &AtomicUsize) -> Tally {
    let mut tally = Tally {
        per_rep: vec![0; reps],
        ..Tally::default()
    };
    if let Err(err) = drive_loop(mode, addr, n, reps, phase, &mut tally) {
        tally.errors += 1;
        tally.first_error.get_or_insert_with(|| err.to_string());
    }
    tally
}

fn drive_loop(
    mode: Mode,
    addr: SocketAddr,
    n: usize,
    reps: usize,
    phase: &AtomicUsize,
    tally: &mut Tally,
) -> io::Result<()> {
    let request: Vec<u8> = match mode {
        Mode::Echo => (0..ECHO_SIZE).map(|i| b'a' + (i % 26) as u8).collect(),
        Mode::Http => HTTP_REQUEST.to_vec(),
    };
    let epoll = Epoll::new()?;
    let mut conns = Vec::with_capacity(n);
    for key in 0..n {
        let stream = TcpStream::connect(addr)?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        epoll.add(stream.as_raw_fd(), key as u64)?;
        conns.push(Conn {
            stream,
            sent: Instant::now(),
            buf: vec![0; 4096].into_boxed_slice(),
            filled: 0,
        });
    }
    for conn in &mut conns {
        send(&mut conn.stream, &request)?;
        conn.sent = Instant::now();
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; n.max(1)];
    loop {
        let now_phase = phase.load(Ordering::Relaxed);
        if now_phase > reps {
            return Ok(());
        }
        let ready = epoll.wait(&mut events, 10)?;
        for event in &events[..ready] {
            let conn = &mut conns[event.u64 as usize];
            if conn.filled == conn.buf.len() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "response too large",
                ));
            }
            let got = match conn.stream.read(&mut conn.buf[conn.filled..]) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(got) => got,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                Err(err) => return Err(err),
            };
            conn.filled += got;
            if !complete(mode, &request, &conn.buf[..conn.filled])? {
                continue;
            }
            let now = Instant::now();
            if now_phase >= 1 {
                tally.per_rep[now_phase - 1] += 1;
                let nanos = now.duration_since(conn.sent).as_nanos();
                tally
                    .latencies
                    .push(u32::try_from(nanos).unwrap_or(u32::MAX));
            }
            conn.filled = 0;
            send(&mut conn.stream, &request)?;
            conn.sent = now;
        }
    }
}

/// Writes a whole request; with one request in flight the socket's buffer
/// is empty, so a short write is an error here, not a reason to wait.
fn send(stream: &mut TcpStream, request: &[u8]) -> io::Result<()> {
    let n = stream.write(request)?;
    if n != request.len() {
        return Err(io::Error::other("a short write of a small request"));
    }
    Ok(())
}

/// Whether `got` is a whole response to `request`; an error if it cannot
/// become one.
fn complete(mode: Mode, request: &[u8], got: &[u8]) -> io::Result<bool> {
    match mode {
        Mode::Echo => {
            if got.len() < request.len() {
                return Ok(false);
            }
            if got != request {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "echo differs"));
            }
            Ok(true)
        }
        Mode::Http => {
            let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") else {
                return Ok(false);
            };
            let head = &got[..end];
            if !head.starts_with(b"HTTP/1.1 200") {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "not a 200"));
            }
            let length = content_length(head)
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no content-length"))?;
            let body = got.len() - (end + 4);
            if body > length {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "extra bytes"));
            }
            Ok(body == length)
        }
    }
}

fn content_length(head: &[u8]) -> Option<usize> {
    const NAME: &[u8] = b"content-length:";
    head.split(|&b| b == b'\n').find_map(|line| {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() < NAME.len() || !line[..NAME.len()].eq_ignore_ascii_case(NAME) {
            return None;
        }
        std::str::from_utf8(&line[NAME.len()..])
            .ok()?
            .trim()
            .parse()
            .ok()
    })
}

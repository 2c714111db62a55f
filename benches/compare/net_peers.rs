//! The servers of the socket rows (issue 5), one per peer, driven by the
//! one load generator of `net_load.rs` in the same child.
//!
//! Each peer serves the way its users would write it: weft and may with
//! their blocking-style sockets and std `Read`/`Write`, one fiber or
//! coroutine per connection; tokio with `TcpListener` and
//! `AsyncReadExt`/`AsyncWriteExt`, one task per connection. Both rows
//! share the connection loops below: `echo` writes back what it read;
//! `http` answers every request head (up to its blank line) in the buffer
//! with one fixed keep-alive response, then reads more.
//!
//! Shutdown, the same for every peer: when the generator is done (it has
//! closed its sockets, so every connection loop has read its end and
//! returned), the acceptor is told to stop and woken by one last connect;
//! it joins its connection fibers/tasks/coroutines and returns how many it
//! served, and the runtime is dropped. Loopback only (`127.0.0.1:0`).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::ThreadId;

use crate::net_load::{self, Mode, Plan};
use crate::workloads::{Measurement, Params, thread_id};
use crate::{may_peer, weft_peer};

/// The one response of the HTTP row.
const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";

/// A connection's read buffer.
const BUF: usize = 4096;

/// Appends a response to `out` for every whole request head at the front
/// of `buf`; returns the bytes they took.
fn answer_http(buf: &[u8], out: &mut Vec<u8>) -> usize {
    let mut start = 0;
    while let Some(end) = buf[start..].windows(4).position(|w| w == b"\r\n\r\n") {
        out.extend_from_slice(RESPONSE);
        start += end + 4;
    }
    start
}

/// A connection's buffers and the protocol step between a read and a
/// write, shared by the blocking and the async loops.
struct Session {
    mode: Mode,
    buf: Box<[u8]>,
    filled: usize,
    out: Vec<u8>,
}

impl Session {
    fn new(mode: Mode) -> Session {
        Session {
            mode,
            buf: vec![0; BUF].into_boxed_slice(),
            filled: 0,
            out: Vec::with_capacity(4 * RESPONSE.len()),
        }
    }

    /// Where the next read goes.
    fn space(&mut self) -> &mut [u8] {
        &mut self.buf[self.filled..]
    }

    /// Takes `n` bytes just read and returns what to write back (perhaps
    /// nothing yet), or `None` to close (a request head larger than the
    /// buffer).
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        match self.mode {
            Mode::Echo => Some(&self.buf[..n]),
            Mode::Http => {
                self.filled += n;
                self.out.clear();
                let used = answer_http(&self.buf[..self.filled], &mut self.out);
                self.buf.copy_within(used..self.filled, 0);
                self.filled -= used;
                (self.filled < self.buf.len()).then_some(&self.out[..])
            }
        }
    }
}

/// The connection loop on a blocking-style socket (weft, may): until the
/// peer closes, or an error.
fn serve_blocking<S: Read + Write>(mut stream: S, mode: Mode) {
    let mut session = Session::new(mode);
    loop {
        let n = match stream.read(session.space()) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match session.take(n) {
            Some([]) => {}
            Some(reply) => {
                if stream.write_all(reply).is_err() {
                    return;
                }
            }
            None => return,
        }
    }
}

/// What the child reports: the generator's measurement plus the count of
/// connections the server saw (the generator's plus the wake-up).
fn finish(load: Result<Measurement, String>, served: usize) -> Result<Measurement, String> {
    let mut m = load?;
    m.notes.push(format!("server_accepted={served}"));
    Ok(m)
}

/// How many connection fibers ran on each worker thread, most first
/// (started fibers stay on their worker, so this is their placement for
/// the whole run).
fn placement_note(workers: Vec<ThreadId>) -> String {
    let mut counts: Vec<usize> = Vec::new();
    let mut seen: Vec<ThreadId> = Vec::new();
    for worker in workers {
        match seen.iter().position(|w| *w == worker) {
            Some(i) => counts[i] += 1,
            None => {
                seen.push(worker);
                counts.push(1);
            }
        }
    }
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let counts: Vec<String> = counts.iter().map(ToString::to_string).collect();
    format!("conns_per_worker={}", counts.join("/"))
}

fn io_err(what: &str) -> impl Fn(io::Error) -> String + '_ {
    move |err| format!("{what}: {err}")
}

/// Tells an acceptor to stop: the flag, then a connect to wake it.
fn stop_acceptor(stop: &AtomicBool, addr: SocketAddr) {
    stop.store(true, Ordering::Release);
    let _ = std::net::TcpStream::connect(addr);
}

// ---- weft ----------------------------------------------------------------

pub(crate) fn echo_weft(p: &Params) -> Result<Measurement, String> {
    serve_weft(p, Mode::Echo)
}

pub(crate) fn http_weft(p: &Params) -> Result<Measurement, String> {
    serve_weft(p, Mode::Http)
}

fn serve_weft(p: &Params, mode: Mode) -> Result<Measurement, String> {
    let rt = weft_peer::runtime(p)?;
    // Bound off the runtime: a plain socket until the acceptor first uses
    // it in a fiber.
    let listener = weft::net::TcpListener::bind("127.0.0.1:0").map_err(io_err("bind"))?;
    let addr = listener.local_addr().map_err(io_err("local_addr"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let stop = Arc::clone(&stop);
        rt.spawn(move || {
            let mut conns = Vec::new();
            loop {
                let (stream, _) = listener.accept().map_err(io_err("accept"))?;
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let _ = stream.set_nodelay(true);
                conns.push(weft::spawn(move || {
                    let worker = thread_id();
                    serve_blocking(stream, mode);
                    worker
                }));
            }
            let served = conns.len() + 1;
            let mut workers = Vec::new();
            for conn in conns {
                let worker = conn
                    .join()
                    .map_err(|err| format!("a connection fiber: {err}"))?;
                workers.push(worker);
            }
            Ok::<_, String>((served, placement_note(workers)))
        })
    };
    let load = net_load::run(mode, addr, Plan::from_params(p));
    stop_acceptor(&stop, addr);
    let (served, placement) = acceptor
        .join()
        .map_err(|err| format!("the acceptor: {err}"))??;
    drop(rt);
    finish(load, served).map(|mut m| {
        m.notes.push(placement);
        m
    })
}

// ---- tokio ---------------------------------------------------------------

pub(crate) fn echo_tokio(p: &Params) -> Result<Measurement, String> {
    serve_tokio(p, Mode::Echo)
}

pub(crate) fn http_tokio(p: &Params) -> Result<Measurement, String> {
    serve_tokio(p, Mode::Http)
}

async fn serve_async(mut stream: tokio::net::TcpStream, mode: Mode) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut session = Session::new(mode);
    loop {
        let n = match stream.read(session.space()).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        match session.take(n) {
            Some([]) => {}
            Some(reply) => {
                if stream.write_all(reply).await.is_err() {
                    return;
                }
            }
            None => return,
        }
    }
}

fn serve_tokio(p: &Params, mode: Mode) -> Result<Measurement, String> {
    // As `tokio_peer::on_runtime`'s, plus the I/O driver.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(p.workers)
        .enable_io()
        .build()
        .map_err(io_err("cannot build the runtime"))?;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .map_err(io_err("bind"))?;
    let addr = listener.local_addr().map_err(io_err("local_addr"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let stop = Arc::clone(&stop);
        rt.spawn(async move {
            let mut conns = Vec::new();
            loop {
                let (stream, _) = listener.accept().await.map_err(io_err("accept"))?;
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let _ = stream.set_nodelay(true);
                conns.push(tokio::spawn(serve_async(stream, mode)));
            }
            let served = conns.len() + 1;
            for conn in conns {
                conn.await
                    .map_err(|err| format!("a connection task: {err}"))?;
            }
            Ok::<_, String>(served)
        })
    };
    let load = net_load::run(mode, addr, Plan::from_params(p));
    stop_acceptor(&stop, addr);
    let served = rt
        .block_on(acceptor)
        .map_err(|err| format!("the acceptor: {err}"))??;
    drop(rt);
    finish(load, served)
}

// ---- may -----------------------------------------------------------------

pub(crate) fn echo_may(p: &Params) -> Result<Measurement, String> {
    serve_may(p, Mode::Echo)
}

pub(crate) fn http_may(p: &Params) -> Result<Measurement, String> {
    serve_may(p, Mode::Http)
}

fn serve_may(p: &Params, mode: Mode) -> Result<Measurement, String> {
    may::config().set_workers(p.workers);
    // Bound in a coroutine, where may's sockets are at home.
    let listener = may_peer::join(may_peer::go(|| may::net::TcpListener::bind("127.0.0.1:0")))?
        .map_err(io_err("bind"))?;
    let addr = listener.local_addr().map_err(io_err("local_addr"))?;
    let stop = Arc::new(AtomicBool::new(false));
    let acceptor = {
        let stop = Arc::clone(&stop);
        may_peer::go(move || {
            let mut conns = Vec::new();
            loop {
                let (stream, _) = listener.accept().map_err(io_err("accept"))?;
                if stop.load(Ordering::Acquire) {
                    break;
                }
                let _ = stream.set_nodelay(true);
                conns.push(may_peer::go(move || serve_blocking(stream, mode)));
            }
            let served = conns.len() + 1;
            for conn in conns {
                may_peer::join(conn)?;
            }
            Ok::<_, String>(served)
        })
    };
    let load = net_load::run(mode, addr, Plan::from_params(p));
    stop_acceptor(&stop, addr);
    let served = may_peer::join(acceptor)??;
    finish(load, served)
}

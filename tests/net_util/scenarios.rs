//! The network scenarios of TESTING.md section 6 that more than one test
//! runs: 6.1 smoke (echo), 6.2, 6.3, 6.4 and 6.6. Each is its own test (in
//! `net_tcp.rs` and `net_faults.rs`, which add the resource baseline and
//! the timing assertions), and `net_faults.rs`'s `fd_leak_sweep` (6.11)
//! runs them all back to back in one process.
//!
//! Every scenario builds its own runtime and drops it before it returns,
//! and asserts what must hold on any machine (every byte echoed, the
//! expected errors); what depends on the machine's speed it returns.

use std::collections::HashMap;
use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use weft::net::{TcpListener, TcpStream};

use super::{runtime, set_linger_zero};

/// Spawns an echo server fiber on the current runtime; returns its address.
pub fn spawn_echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    weft::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            weft::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// 6.1 smoke: 1,000 connections each make 100 64-byte round trips
/// through an echo server, on a runtime of 2 workers. Asserts no errors
/// and every byte echoed; returns how long it took, the runtime's drop
/// included.
pub fn echo_smoke() -> Duration {
    let (conns, rounds): (usize, usize) = (1000, 100);
    let start = Instant::now();
    let rt = runtime(2);
    let (errors, bytes) = rt.block_on(move || {
        let addr = spawn_echo_server();
        let errors = Arc::new(AtomicUsize::new(0));
        let bytes = Arc::new(AtomicU64::new(0));
        let clients: Vec<_> = (0..conns)
            .map(|c| {
                let (errors, bytes) = (errors.clone(), bytes.clone());
                weft::spawn(move || {
                    let mut conn = match TcpStream::connect(addr) {
                        Ok(conn) => conn,
                        Err(_) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    let mut reply = [0u8; 64];
                    for round in 0..rounds {
                        let msg: Vec<u8> = (0..64).map(|i| (c + round + i) as u8).collect();
                        let ok = conn.write_all(&msg).is_ok()
                            && conn.read_exact(&mut reply).is_ok()
                            && reply[..] == msg[..];
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        bytes.fetch_add(64, Ordering::Relaxed);
                    }
                })
            })
            .collect();
        for client in clients {
            client.join().unwrap();
        }
        (
            errors.load(Ordering::Relaxed),
            bytes.load(Ordering::Relaxed),
        )
    });
    drop(rt);
    let elapsed = start.elapsed();
    println!(
        "echo smoke: {conns} connections x {rounds} round trips in {elapsed:.2?} ({:.0} round trips/s), {errors} errors",
        (conns * rounds) as f64 / elapsed.as_secs_f64()
    );
    assert_eq!(errors, 0);
    assert_eq!(bytes, (conns * rounds * 64) as u64, "every byte echoed");
    elapsed
}

/// 6.2: `iterations` clients send 30 of 64 bytes and close, alternating
/// FIN and RST. Asserts the handlers saw only EOF or a reset, and that the
/// accept loop kept serving (a probe every 1,000).
pub fn client_disconnects_mid_request(iterations: usize) {
    let rt = runtime(2);
    let outcomes = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let served = Arc::new(AtomicUsize::new(0));
    let addr = {
        let (outcomes, served) = (outcomes.clone(), served.clone());
        rt.block_on(move || {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            weft::spawn(move || {
                for conn in listener.incoming() {
                    let mut conn = conn.expect("the accept loop keeps going");
                    let (outcomes, served) = (outcomes.clone(), served.clone());
                    weft::spawn(move || {
                        let mut request = [0u8; 64];
                        match conn.read_exact(&mut request) {
                            Ok(()) => {
                                conn.write_all(&request).unwrap();
                                served.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(err) => {
                                *outcomes
                                    .lock()
                                    .unwrap()
                                    .entry(format!("{:?}", err.kind()))
                                    .or_default() += 1;
                            }
                        }
                    });
                }
            });
            addr
        })
    };
    let start = Instant::now();
    let mut probes = 0;
    for i in 0..iterations {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.write_all(&[b'x'; 30]).unwrap();
        if i % 2 == 1 {
            set_linger_zero(&conn);
        }
        drop(conn);
        if (i + 1) % 1000 == 0 {
            let mut probe = std::net::TcpStream::connect(addr).unwrap();
            probe
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            probe.write_all(&[b'p'; 64]).unwrap();
            let mut reply = [0u8; 64];
            probe.read_exact(&mut reply).unwrap();
            assert_eq!(reply, [b'p'; 64]);
            probes += 1;
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let seen = loop {
        let seen: usize = outcomes.lock().unwrap().values().sum();
        if seen >= iterations || Instant::now() > deadline {
            break seen;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let outcomes = outcomes.lock().unwrap().clone();
    println!(
        "client disconnects: {iterations} half requests (FIN/RST alternating) in {:.2?}: handlers saw {outcomes:?}; {probes} probes served",
        start.elapsed()
    );
    assert_eq!(seen, iterations);
    assert!(
        outcomes
            .keys()
            .all(|k| k == "UnexpectedEof" || k == "ConnectionReset"),
        "unexpected outcomes {outcomes:?}"
    );
    assert_eq!(served.load(Ordering::Relaxed), probes);
    drop(rt);
}

/// 6.3: `iterations` times request, FIN, response (1 MiB each way); then
/// the reverse (the server's FIN while the client still sends). Asserts
/// every byte and no RST.
pub fn half_close(iterations: usize) {
    const MIB: usize = 1 << 20;
    let rt = runtime(2);
    let start = Instant::now();
    rt.block_on(move || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = weft::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            let response = vec![b'r'; MIB];
            for _ in 0..iterations {
                let (mut conn, _) = listener.accept().unwrap();
                let mut got = 0;
                loop {
                    match conn.read(&mut buf).unwrap() {
                        0 => break,
                        n => got += n,
                    }
                }
                assert_eq!(got, MIB, "the whole request before EOF");
                conn.write_all(&response).unwrap();
            }
            // The reverse: the server closes its side first.
            let (conn, _) = listener.accept().unwrap();
            conn.shutdown(Shutdown::Write).unwrap();
            let mut got = 0;
            loop {
                match (&conn).read(&mut buf).unwrap() {
                    0 => break,
                    n => got += n,
                }
            }
            got
        });
        let request = vec![b'q'; MIB];
        let mut buf = vec![0u8; 64 * 1024];
        for _ in 0..iterations {
            let mut conn = TcpStream::connect(addr).unwrap();
            conn.write_all(&request).unwrap();
            conn.shutdown(Shutdown::Write).unwrap();
            let mut got = 0;
            loop {
                match conn.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(err) => panic!("no RST expected: {err}"),
                }
            }
            assert_eq!(got, MIB);
        }
        let mut conn = TcpStream::connect(addr).unwrap();
        assert_eq!(conn.read(&mut buf).unwrap(), 0, "the server's FIN");
        for _ in 0..16 {
            conn.write_all(&request[..64 * 1024]).unwrap(); // writes still succeed
        }
        conn.shutdown(Shutdown::Write).unwrap();
        assert_eq!(server.join().unwrap(), 16 * 64 * 1024);
    });
    println!(
        "half close: {iterations} x (1 MiB request, FIN, 1 MiB response) and the reverse in {:.2?}",
        start.elapsed()
    );
    drop(rt);
}

/// 6.4: the server writes 64 MiB; the client reads 4 KiB and resets.
/// Asserts the writes after the reset get EPIPE; returns the first
/// failed write's error kind and how long after the reset it came.
pub fn rst_during_response(vectored: bool) -> (ErrorKind, Duration) {
    let rt = runtime(2);
    rt.block_on(move || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let reset_at = Arc::new(Mutex::new(None::<Instant>));
        let client = {
            let reset_at = reset_at.clone();
            weft::spawn(move || {
                let mut conn = TcpStream::connect(addr).unwrap();
                let mut buf = [0u8; 4096];
                conn.read_exact(&mut buf).unwrap();
                set_linger_zero(&conn);
                *reset_at.lock().unwrap() = Some(Instant::now());
                drop(conn);
            })
        };
        let (mut conn, _) = listener.accept().unwrap();
        let chunk = vec![b'z'; 1 << 20];
        let mut sent = 0usize;
        let err = loop {
            let result = if vectored {
                conn.write_vectored(&[
                    IoSlice::new(&chunk[..1 << 19]),
                    IoSlice::new(&chunk[1 << 19..]),
                ])
            } else {
                conn.write(&chunk)
            };
            match result {
                Ok(n) => sent += n,
                Err(err) => break err,
            }
            assert!(sent < 64 << 20, "64 MiB written to a reset peer");
        };
        let after = reset_at
            .lock()
            .unwrap()
            .expect("the client reset")
            .elapsed();
        client.join().unwrap();
        // A reset is reported once; the writes after it get EPIPE, which is
        // where a plain writev raises SIGPIPE.
        let again = conn
            .write_vectored(&[IoSlice::new(&chunk[..4096])])
            .unwrap_err();
        assert_eq!(again.kind(), ErrorKind::BrokenPipe, "{again}");
        let again = conn.write(&chunk[..4096]).unwrap_err();
        assert_eq!(again.kind(), ErrorKind::BrokenPipe, "{again}");
        (err.kind(), after)
    })
}

/// 6.6's request deadline: a request must complete within this of its
/// first byte.
pub const SLOWLORIS_DEADLINE: Duration = Duration::from_secs(2);

/// What a slowloris run measured.
#[derive(Debug)]
pub struct Slowloris {
    /// For each slow connection, how long after its first byte the server
    /// closed it.
    pub closes: Vec<Duration>,
    /// Every normal request's latency, sorted.
    pub latencies: Vec<Duration>,
}

/// 6.6: `slow` clients trickle one byte every 500 ms while `normal`
/// clients make `requests` requests each; the server closes a connection
/// whose request is not complete [`SLOWLORIS_DEADLINE`] after its first
/// byte. Asserts every normal request was answered and no slow connection
/// was closed before its deadline.
pub fn slowloris(slow: usize, normal: usize, requests: usize) -> Slowloris {
    let rt = runtime(2);
    let (closes, latencies) = rt.block_on(move || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        weft::spawn(move || {
            for conn in listener.incoming() {
                let conn = conn.unwrap();
                weft::spawn(move || serve_with_deadline(conn, SLOWLORIS_DEADLINE));
            }
        });
        let slow: Vec<_> = (0..slow)
            .map(|_| weft::spawn(move || slow_client(addr)))
            .collect();
        weft::sleep(Duration::from_millis(200));
        let normal: Vec<_> = (0..normal)
            .map(|_| {
                weft::spawn(move || {
                    let mut conn = TcpStream::connect(addr).unwrap();
                    let mut latencies = Vec::with_capacity(requests);
                    let mut reply = [0u8; 64];
                    for _ in 0..requests {
                        let start = Instant::now();
                        conn.write_all(&[b'n'; 64]).unwrap();
                        conn.read_exact(&mut reply).unwrap();
                        latencies.push(start.elapsed());
                        weft::sleep(Duration::from_millis(5));
                    }
                    latencies
                })
            })
            .collect();
        let mut latencies: Vec<Duration> =
            normal.into_iter().flat_map(|h| h.join().unwrap()).collect();
        latencies.sort_unstable();
        let closes: Vec<Duration> = slow.into_iter().map(|h| h.join().unwrap()).collect();
        (closes, latencies)
    });
    drop(rt);
    assert_eq!(latencies.len(), normal * requests);
    let first = closes.iter().min().copied().unwrap_or_default();
    assert!(
        first >= SLOWLORIS_DEADLINE,
        "a slow connection closed {first:?} after its first byte, before the deadline"
    );
    Slowloris { closes, latencies }
}

/// Serves 64-byte requests; a request must complete within `deadline` of
/// its first byte (Go's ReadHeaderTimeout).
fn serve_with_deadline(mut conn: TcpStream, deadline: Duration) {
    let mut request = [0u8; 64];
    loop {
        let mut got = 0;
        let mut ends = None;
        while got < request.len() {
            if let Some(ends) = ends {
                let left = Instant::saturating_duration_since(&ends, Instant::now());
                if left.is_zero() {
                    return;
                }
                conn.set_read_timeout(Some(left)).unwrap();
            } else {
                conn.set_read_timeout(None).unwrap();
            }
            match conn.read(&mut request[got..]) {
                Ok(0) | Err(_) => return, // EOF, reset, or the deadline
                Ok(n) => {
                    got += n;
                    ends.get_or_insert_with(|| Instant::now() + deadline);
                }
            }
        }
        if conn.write_all(&request).is_err() {
            return;
        }
    }
}

/// Sends a byte every 500 ms; returns how long after the first byte the
/// server closed the connection.
fn slow_client(addr: SocketAddr) -> Duration {
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let first = Instant::now();
    loop {
        let _ = conn.write(b"s");
        match conn.read(&mut [0u8; 8]) {
            Err(err) if err.kind() == ErrorKind::TimedOut => {}
            Ok(0) | Err(_) => return first.elapsed(),
            Ok(_) => panic!("a reply to a request that never finished"),
        }
        assert!(first.elapsed() < Duration::from_secs(10), "never closed");
    }
}

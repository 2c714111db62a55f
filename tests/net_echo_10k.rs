//! TESTING.md 6.1 at full size: an echo server on 2 workers, and a client
//! process (also weft) with 10,000 concurrent keep-alive connections x 100
//! round trips of 64 bytes = 1,000,000 round trips, connects ramped at
//! 2,000 per 100 ms. Release builds run the full size; debug builds 2,000
//! connections (the same code, a fifth of the load).
//!
//! Pass: no errors, every reply byte-exact, under 120 s, server RSS under
//! 1 GiB, the server's fds back to their baseline within 2 s of the
//! client's exit, and fds/threads back after the runtime is dropped.

mod net_util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use net_util::{Baseline, runtime, serial, watchdog};
use weft::net::{TcpListener, TcpStream};

const CONNS: usize = if cfg!(debug_assertions) {
    2_000
} else {
    10_000
};
const ROUNDS: usize = 100;
const SIZE: usize = 64;

#[test]
fn echo_10k_conns_1m_round_trips() {
    if net_util::role().as_deref() == Some("client") {
        client(std::env::var("ADDR").unwrap().parse().unwrap());
        return;
    }
    let _serial = serial();
    let _dog = watchdog("echo_10k", Duration::from_secs(150));
    let base = Baseline::take();
    let rt = runtime(2);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let open = Arc::new(AtomicUsize::new(0));
    {
        let open = open.clone();
        rt.spawn(move || {
            for conn in listener.incoming() {
                let mut conn = conn.expect("accept");
                let open = open.clone();
                open.fetch_add(1, Ordering::Relaxed);
                weft::spawn(move || {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = conn.read(&mut buf) {
                        if n == 0 || conn.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
    }
    std::thread::sleep(Duration::from_millis(20));
    let server_fds = net_util::fd_count();
    // Peak RSS, sampled while the client runs.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let sampling = sampling.clone();
        std::thread::spawn(move || {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(net_util::rss_bytes());
                std::thread::sleep(Duration::from_millis(100));
            }
            peak
        })
    };
    let start = Instant::now();
    let mut child = net_util::spawn_role(
        "echo_10k_conns_1m_round_trips",
        "client",
        &[("ADDR", addr.to_string())],
    );
    let result = child.expect_line("RESULT");
    let (status, stderr) = child.finish(Duration::from_secs(130));
    let elapsed = start.elapsed();
    let exited = Instant::now();
    let (mut fds, mut open_now);
    loop {
        fds = net_util::fd_count();
        open_now = open.load(Ordering::Relaxed);
        if (fds == server_fds && open_now == 0) || exited.elapsed() > Duration::from_secs(2) {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let back_in = exited.elapsed();
    sampling.store(false, Ordering::Relaxed);
    let peak_rss = sampler.join().unwrap();
    println!(
        "echo 10k: {CONNS} connections x {ROUNDS} round trips: {result}; {elapsed:.1?} in all; server peak RSS {} MiB; server fds {server_fds} -> {fds} {back_in:.2?} after the client exited",
        peak_rss >> 20
    );
    assert!(status.success(), "client: {status:?}\n{stderr}");
    assert!(result.contains("errors=0"), "{result}");
    assert!(
        result.contains(&format!("round_trips={}", CONNS * ROUNDS)),
        "{result}"
    );
    assert!(elapsed < Duration::from_secs(120), "{elapsed:?}");
    assert!(peak_rss < 1 << 30, "server RSS {peak_rss}");
    assert_eq!(
        fds, server_fds,
        "server fds not back 2 s after the client exited"
    );
    drop(rt);
    base.check("echo 10k", Duration::from_secs(2));
}

/// The client process: CONNS fibers, each a connection doing ROUNDS
/// round trips; connects ramped at 2,000 per 100 ms.
fn client(addr: SocketAddr) {
    let rt = runtime(2);
    let start = Instant::now();
    let (done, errors, connect_time) = rt.block_on(move || {
        let done = Arc::new(AtomicUsize::new(0));
        let errors = Arc::new(AtomicUsize::new(0));
        let mut handles = Vec::with_capacity(CONNS);
        for batch in 0..CONNS.div_ceil(2000) {
            if batch > 0 {
                weft::sleep(Duration::from_millis(100));
            }
            for c in batch * 2000..CONNS.min((batch + 1) * 2000) {
                let (done, errors) = (done.clone(), errors.clone());
                handles.push(weft::spawn(move || {
                    let mut conn = match TcpStream::connect(addr) {
                        Ok(conn) => conn,
                        Err(err) => {
                            eprintln!("connect: {err}");
                            errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                    };
                    let mut reply = [0u8; SIZE];
                    for round in 0..ROUNDS {
                        let msg: [u8; SIZE] =
                            std::array::from_fn(|i| (c * 7 + round * 3 + i) as u8);
                        let ok = conn.write_all(&msg).is_ok()
                            && conn.read_exact(&mut reply).is_ok()
                            && reply == msg;
                        if !ok {
                            errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
        }
        let connect_time = Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        (
            done.load(Ordering::Relaxed),
            errors.load(Ordering::Relaxed),
            connect_time,
        )
    });
    let elapsed = start.elapsed();
    let _ = connect_time;
    println!(
        "RESULT round_trips={done} errors={errors} secs={:.2} rate={:.0}/s",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64()
    );
    std::io::stdout().flush().unwrap();
}

//! Network faults (TESTING.md 6.2-6.8, 6.11): clients vanishing
//! mid-request, half-close, RST during a response, SIGPIPE at its default
//! disposition, slowloris, EMFILE in the accept loop, back-pressure, and
//! the fd leak sweep over them. Sizes shrink in debug builds; every test
//! has a watchdog and a resource baseline. The scenarios that the sweep
//! re-runs live in `net_util/scenarios.rs`.

mod net_util;

use std::io::{ErrorKind, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use net_util::scenarios::{self, SLOWLORIS_DEADLINE};
use net_util::{Baseline, cpu_time, percentile, runtime, serial, watchdog};
use weft::net::{TcpListener, TcpStream};

const RELEASE: bool = !cfg!(debug_assertions);

/// 6.2's size.
const DISCONNECTS: usize = if RELEASE { 10_000 } else { 2_000 };
/// 6.3's size.
const HALF_CLOSES: usize = if RELEASE { 1000 } else { 100 };
/// 6.6's size: slow clients, normal clients, requests per normal client.
const SLOWLORIS: (usize, usize, usize) = (1000, 100, 100);

/// 6.2: clients send 30 of 64 bytes and close, alternating FIN and RST.
/// Handlers see EOF or a reset, never panic; the accept loop keeps
/// serving (a probe every 1,000).
#[test]
fn client_disconnects_mid_request() {
    let _serial = serial();
    let _dog = watchdog("client_disconnects_mid_request", Duration::from_secs(90));
    let base = Baseline::take();
    scenarios::client_disconnects_mid_request(DISCONNECTS);
    base.check("client disconnects", Duration::from_secs(2));
}

/// 6.3: request, FIN, response; and the reverse (the server's FIN while
/// the client still sends).
#[test]
fn half_close() {
    let _serial = serial();
    let _dog = watchdog("half_close", Duration::from_secs(90));
    let base = Baseline::take();
    scenarios::half_close(HALF_CLOSES);
    base.check("half close", Duration::from_secs(2));
}

/// 6.4's pass: the first failed write says the peer reset or went away.
fn assert_reset_or_broken_pipe(kind: ErrorKind) {
    assert!(
        matches!(kind, ErrorKind::ConnectionReset | ErrorKind::BrokenPipe),
        "{kind:?}"
    );
}

/// 6.4: a reset peer makes the write fail promptly, with `write` and with
/// `write_vectored`.
#[test]
fn rst_during_response_fails_the_write() {
    let _serial = serial();
    let _dog = watchdog("rst_during_response", Duration::from_secs(30));
    let base = Baseline::take();
    for vectored in [false, true] {
        let (kind, after) = scenarios::rst_during_response(vectored);
        println!(
            "rst during response (vectored: {vectored}): {kind:?} {after:.2?} after the reset"
        );
        assert_reset_or_broken_pipe(kind);
        assert!(after < Duration::from_secs(1));
    }
    base.check("rst during response", Duration::from_secs(2));
}

/// 6.5: with SIGPIPE at SIG_DFL (as in a cdylib or a C main), vectored
/// writes to a reset peer (the first gets ECONNRESET, the next EPIPE)
/// return errors instead of killing the process.
#[test]
fn sigpipe_default_disposition() {
    if net_util::role().as_deref() == Some("sigpipe") {
        // SAFETY: restoring the default disposition of SIGPIPE; no handler.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
        for _ in 0..3 {
            let (kind, _) = scenarios::rst_during_response(true);
            println!("KIND {kind:?}");
        }
        println!("SURVIVED");
        return;
    }
    let _serial = serial();
    let _dog = watchdog("sigpipe", Duration::from_secs(60));
    let mut child = net_util::spawn_role("sigpipe_default_disposition", "sigpipe", &[]);
    let kind = child.expect_line("KIND");
    let (status, stderr) = child.finish(Duration::from_secs(30));
    println!("sigpipe at SIG_DFL: the child's vectored write got {kind}; exit {status:?}");
    assert!(status.success(), "the child died: {status:?}\n{stderr}");
    assert!(kind == "BrokenPipe" || kind == "ConnectionReset", "{kind}");
}

/// 6.6: 1,000 clients trickle one byte every 500 ms; the server's 2 s
/// request deadline closes them while 100 normal clients are served.
#[test]
fn slowloris() {
    let _serial = serial();
    let _dog = watchdog("slowloris", Duration::from_secs(60));
    let base = Baseline::take();
    let (slow, normal, requests) = SLOWLORIS;
    let run = scenarios::slowloris(slow, normal, requests);
    let (min, max) = (
        run.closes.iter().min().copied().unwrap_or_default(),
        run.closes.iter().max().copied().unwrap_or_default(),
    );
    let p99 = percentile(&run.latencies, 0.99);
    println!(
        "slowloris: {slow} slow connections closed {min:.2?}..{max:.2?} after their first byte; {} normal requests, p50 {:.2?}, p99 {p99:.2?}",
        run.latencies.len(),
        percentile(&run.latencies, 0.5)
    );
    assert!(
        min >= SLOWLORIS_DEADLINE && max <= SLOWLORIS_DEADLINE + Duration::from_millis(600),
        "{min:?}..{max:?}"
    );
    assert!(p99 < Duration::from_millis(50), "normal p99 {p99:?}");
    base.check("slowloris", Duration::from_secs(3));
}

/// 6.7: with RLIMIT_NOFILE 256 the accept loop hits EMFILE; it neither
/// spins nor dies, logs at most once a second, and accepts the backlog by
/// itself once descriptors are freed.
#[test]
fn emfile_accept_no_spin_no_death() {
    const CLIENTS: usize = 300;
    if net_util::role().as_deref() == Some("emfile") {
        emfile_server(CLIENTS);
        return;
    }
    let _serial = serial();
    let _dog = watchdog("emfile", Duration::from_secs(60));
    let start = Instant::now();
    let mut child = net_util::spawn_role("emfile_accept_no_spin_no_death", "emfile", &[]);
    let addr: SocketAddr = child.expect_line("ADDR").parse().unwrap();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| std::net::TcpStream::connect(addr).unwrap())
        .collect();
    let (status, stderr) = child.finish(Duration::from_secs(40));
    let run = start.elapsed();
    drop(clients);
    let logs = stderr
        .lines()
        .filter(|l| l.contains("accept error"))
        .count();
    println!("emfile: {logs} accept-error log lines in {run:.1?}; child stderr:\n{stderr}");
    assert!(status.success(), "the server child failed: {status:?}");
    assert!(logs >= 1, "EMFILE was never hit");
    assert!(
        logs as f64 <= run.as_secs_f64() + 1.0,
        "more than one log line a second"
    );
}

fn emfile_server(clients: usize) {
    let base_fds = net_util::fd_count();
    let limit = libc::rlimit {
        rlim_cur: 256,
        rlim_max: 20_000,
    };
    // SAFETY: setrlimit reads the struct; lowering the soft limit is allowed.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) }, 0);
    let rt = runtime(2);
    let held = Arc::new(Mutex::new(Vec::new()));
    let accepted = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    println!("ADDR {}", listener.local_addr().unwrap());
    let acceptor = {
        let (held, accepted) = (held.clone(), accepted.clone());
        rt.spawn(move || {
            loop {
                let (conn, _) = listener.accept().expect("accept never fails on EMFILE");
                held.lock().unwrap().push(conn);
                accepted.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    // Wait until accepting stalls: EMFILE.
    let mut last = 0;
    let mut stable_since = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = accepted.load(Ordering::SeqCst);
        if now != last {
            last = now;
            stable_since = Instant::now();
        } else if now > 0 && stable_since.elapsed() > Duration::from_millis(500) {
            break;
        }
    }
    assert!(last < clients, "EMFILE never came: {last} accepted");
    // (a) no spin: CPU over a 3 s window at EMFILE.
    let cpu0 = cpu_time();
    std::thread::sleep(Duration::from_secs(3));
    let cpu = cpu_time() - cpu0;
    // (c) the accept fiber is alive.
    assert!(!acceptor.is_finished(), "the accept loop died");
    // (d) free 100 fds: the backlog drains with no new connection.
    let freed = Instant::now();
    drop(held.lock().unwrap().drain(..100).collect::<Vec<_>>());
    while accepted.load(Ordering::SeqCst) < clients && freed.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let drained = freed.elapsed();
    println!(
        "EMFILE after {last} accepts; CPU over 3 s at EMFILE: {cpu:.3?}; after freeing 100 fds the {} waiting were accepted in {drained:.2?}",
        clients - last
    );
    assert!(
        cpu < Duration::from_millis(300),
        "spinning: {cpu:?} of CPU in 3 s"
    );
    assert_eq!(accepted.load(Ordering::SeqCst), clients);
    assert!(drained < Duration::from_millis(1500), "{drained:?}");
    // (e) the baseline.
    held.lock().unwrap().clear();
    drop(rt);
    drop(acceptor);
    let fds = net_util::fd_count();
    println!("emfile child: fds {base_fds} -> {fds}");
    assert_eq!(fds, base_fds);
}

/// 6.8: a 16 MiB write to a client that does not read for 1 s parks the
/// writer (no CPU burnt, memory bounded) while others are served.
#[test]
fn eagain_backpressure_no_busy_wait() {
    let _serial = serial();
    let _dog = watchdog("backpressure", Duration::from_secs(30));
    let base = Baseline::take();
    const SIZE: usize = 16 << 20;
    let rt = runtime(2);
    let (cpu, worst_probe, rss_growth) = rt.block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let payload: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
        let writer = weft::spawn(move || {
            // The first connection gets the payload; the rest are echoed.
            let (mut conn, _) = listener.accept().unwrap();
            weft::spawn(move || {
                for conn in listener.incoming() {
                    let mut conn = conn.unwrap();
                    weft::spawn(move || {
                        let mut buf = [0u8; 64];
                        while let Ok(n) = conn.read(&mut buf) {
                            if n == 0 || conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            conn.write_all(&payload).unwrap();
        });
        let stalled = Arc::new(AtomicBool::new(true));
        let reader = {
            let stalled = stalled.clone();
            std::thread::spawn(move || {
                let mut conn = std::net::TcpStream::connect(addr).unwrap();
                std::thread::sleep(Duration::from_secs(1));
                stalled.store(false, Ordering::SeqCst);
                let mut got = vec![0u8; SIZE];
                conn.read_exact(&mut got).unwrap();
                got.iter().enumerate().all(|(i, &b)| b == (i % 251) as u8)
            })
        };
        weft::sleep(Duration::from_millis(100));
        let rss0 = net_util::rss_bytes();
        let cpu0 = cpu_time();
        let mut probe = TcpStream::connect(addr).unwrap();
        let mut worst = Duration::ZERO;
        let window = Instant::now();
        while window.elapsed() < Duration::from_millis(700) {
            let start = Instant::now();
            probe.write_all(&[1u8; 64]).unwrap();
            probe.read_exact(&mut [0u8; 64]).unwrap();
            worst = worst.max(start.elapsed());
            weft::sleep(Duration::from_millis(50));
        }
        let cpu = cpu_time() - cpu0;
        let rss_growth = net_util::rss_bytes().saturating_sub(rss0);
        assert!(stalled.load(Ordering::SeqCst), "measured during the stall");
        writer.join().unwrap();
        assert!(reader.join().unwrap(), "all 16 MiB arrived intact");
        (cpu, worst, rss_growth)
    });
    println!(
        "backpressure: CPU during 700 ms of stall {cpu:.2?}; worst probe {worst_probe:.2?}; RSS growth {} KiB; 16 MiB intact",
        rss_growth / 1024
    );
    assert!(cpu < Duration::from_millis(50), "busy-waiting: {cpu:?}");
    assert!(worst_probe < Duration::from_millis(20), "{worst_probe:?}");
    assert!(rss_growth < 8 << 20, "memory grew by {rss_growth} bytes");
    drop(rt);
    base.check("backpressure", Duration::from_secs(2));
}

/// 6.11: 6.1 smoke, 6.2, 6.3, 6.4 (both writes) and 6.6 back to back in
/// one process, each on its own runtime: after each, the process has
/// exactly the fds it had before the first, or the test fails naming
/// each leaked (or lost) fd and what it points at. The count is taken as
/// soon as the scenario returns, with no grace period: dropping a runtime
/// joins its workers, which unwind every fiber still parked, so the
/// sockets they held are closed by then. The sweep runs in a child
/// process of its own, where no other test's fds come and go; it asserts
/// what each scenario asserts, but not the timing bounds of their own
/// tests.
#[test]
fn fd_leak_sweep() {
    if net_util::role().as_deref() == Some("fd_sweep") {
        fd_sweep();
        return;
    }
    // Alone: the other tests of this binary measure CPU and latency.
    let _serial = serial();
    let _dog = watchdog("fd_leak_sweep", Duration::from_secs(170));
    let mut child = net_util::spawn_role("fd_leak_sweep", "fd_sweep", &[]);
    // Proves the child ran the sweep, not an empty test selection.
    let baseline = child.expect_line("SWEEP BASELINE");
    let (status, stderr) = child.finish(Duration::from_secs(150));
    println!("fd leak sweep: baseline {baseline}; child exit {status:?}");
    assert!(status.success(), "the sweep failed: {status:?}\n{stderr}");
}

/// The sweep itself, in the child.
fn fd_sweep() {
    let before = net_util::fd_listing();
    let baseline = net_util::fd_count();
    println!("SWEEP BASELINE {baseline} fds: {before:?}");
    let check = |scenario: &str| {
        let now = net_util::fd_count();
        println!("fd sweep: after {scenario}: {now} fds (before the first: {baseline})");
        if now != baseline {
            let listing = net_util::fd_listing();
            let leaked: Vec<&String> = listing.iter().filter(|fd| !before.contains(fd)).collect();
            let lost: Vec<&String> = before.iter().filter(|fd| !listing.contains(fd)).collect();
            panic!(
                "fd sweep: after {scenario}, {now} fds instead of {baseline}; leaked: {leaked:#?}; closed but open before: {lost:#?}"
            );
        }
    };
    scenarios::echo_smoke();
    check("6.1 smoke (echo)");
    scenarios::client_disconnects_mid_request(DISCONNECTS);
    check("6.2 client_disconnects_mid_request");
    scenarios::half_close(HALF_CLOSES);
    check("6.3 half_close");
    for vectored in [false, true] {
        let (kind, _) = scenarios::rst_during_response(vectored);
        assert_reset_or_broken_pipe(kind);
        check(&format!("6.4 rst_during_response (vectored: {vectored})"));
    }
    let (slow, normal, requests) = SLOWLORIS;
    let run = scenarios::slowloris(slow, normal, requests);
    assert_eq!(run.closes.len(), slow);
    check("6.6 slowloris");
}

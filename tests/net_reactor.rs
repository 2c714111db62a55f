//! The reactor's edge cases under TCP load: draining readiness to
//! `WouldBlock` before parking (TESTING.md 6.13), 10,000 fibers parked on
//! `read` all woken when their peers close at once (6.12), and `EINTR`
//! from `epoll_wait` retried under a signal storm (6.10, shortened). Each
//! test has its own runtime, a watchdog, and checks the process's fd and
//! thread counts afterwards, as in `net_tcp.rs`.

mod net_util;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use net_util::scenarios::spawn_echo_server;
use net_util::{Baseline, runtime, serial, watchdog};
use weft::net::{TcpListener, TcpStream};

/// 6.13: a burst of 1 MiB read in 4 KiB chunks with a yield between
/// chunks: all bytes arrive with no stall (parking before draining to
/// WouldBlock would hang).
#[test]
fn drain_readiness() {
    let _serial = serial();
    let _dog = watchdog("drain_readiness", Duration::from_secs(20));
    let base = Baseline::take();
    let rt = runtime(2);
    let (total, worst) = rt.block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let sender = weft::spawn(move || {
            let mut s = TcpStream::connect(addr).unwrap();
            s.write_all(&vec![1u8; 1 << 20]).unwrap();
        });
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let mut total = 0usize;
        let mut worst = Duration::ZERO;
        let mut last = Instant::now();
        while total < 1 << 20 {
            let n = conn.read(&mut buf).unwrap();
            assert!(n > 0);
            total += n;
            worst = worst.max(last.elapsed());
            weft::yield_now();
            last = Instant::now();
        }
        sender.join().unwrap();
        (total, worst)
    });
    drop(rt);
    println!("drain readiness: {total} bytes, longest wait between chunks {worst:.2?}");
    assert_eq!(total, 1 << 20);
    assert!(worst < Duration::from_millis(100), "a stall of {worst:?}");
    base.check("drain readiness", Duration::from_secs(2));
}

/// 6.12: 10,000 fibers parked on `read`; the clients (another process)
/// all close at once; every fiber wakes with Ok(0) within 2 s.
#[test]
fn peer_close_while_parked_on_read() {
    const CONNS: usize = 10_000;
    if net_util::role().as_deref() == Some("clients") {
        // The child: open CONNS connections, report, wait, exit (closing all).
        let addr: SocketAddr = std::env::var("ADDR").unwrap().parse().unwrap();
        let conns: Vec<_> = (0..CONNS)
            .map(|_| std::net::TcpStream::connect(addr).expect("connect"))
            .collect();
        println!("CONNECTED {}", conns.len());
        let _ = net_util::read_command();
        println!("CLOSING");
        drop(conns);
        return;
    }
    let _serial = serial();
    let _dog = watchdog("peer_close_while_parked", Duration::from_secs(90));
    let base = Baseline::take();
    let rt = runtime(2);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut child = net_util::spawn_role(
        "peer_close_while_parked_on_read",
        "clients",
        &[("ADDR", addr.to_string())],
    );
    let woke_ok = Arc::new(AtomicUsize::new(0));
    let parked = Arc::new(AtomicUsize::new(0));
    let readers = {
        let (woke_ok, parked) = (woke_ok.clone(), parked.clone());
        rt.block_on(move || {
            let mut readers = Vec::with_capacity(CONNS);
            for _ in 0..CONNS {
                let (mut conn, _) = listener.accept().unwrap();
                let (woke_ok, parked) = (woke_ok.clone(), parked.clone());
                readers.push(weft::spawn(move || {
                    parked.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 16];
                    if let Ok(0) = conn.read(&mut buf) {
                        woke_ok.fetch_add(1, Ordering::Relaxed);
                    }
                }));
            }
            readers
        })
    };
    assert_eq!(child.expect_line("CONNECTED"), CONNS.to_string());
    while parked.load(Ordering::Relaxed) < CONNS {
        std::thread::sleep(Duration::from_millis(5));
    }
    std::thread::sleep(Duration::from_millis(100)); // all parked in read
    let start = Instant::now();
    child.send_line("close");
    let (status, stderr) = child.finish(Duration::from_secs(30));
    assert!(status.success(), "client child: {status:?}\n{stderr}");
    rt.block_on(move || {
        for r in readers {
            r.join().unwrap();
        }
    });
    let took = start.elapsed();
    let ok = woke_ok.load(Ordering::Relaxed);
    println!("peer close: {ok} of {CONNS} parked readers woke with Ok(0) in {took:.2?}");
    assert_eq!(ok, CONNS);
    assert!(took < Duration::from_secs(2), "took {took:?}");
    drop(rt);
    base.check("peer close while parked", Duration::from_secs(2));
}

extern "C" fn on_sigusr1(_: libc::c_int) {}

/// 6.10 (shortened): SIGUSR1 without SA_RESTART hits every worker thread
/// every millisecond during an echo load; epoll_wait's EINTR is retried and
/// no request fails.
#[test]
fn epoll_eintr_storm() {
    let _serial = serial();
    let _dog = watchdog("eintr_storm", Duration::from_secs(30));
    let base = Baseline::take();
    // SAFETY: installs a handler that does nothing (async-signal-safe),
    // without SA_RESTART so that blocking syscalls return EINTR.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigusr1 as extern "C" fn(libc::c_int) as usize;
        action.sa_flags = 0;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(
            libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
            0
        );
    }
    let rt = runtime(2);
    let stop = Arc::new(AtomicBool::new(false));
    let signals = Arc::new(AtomicUsize::new(0));
    let storm = {
        let (stop, signals) = (stop.clone(), signals.clone());
        std::thread::spawn(move || {
            // SAFETY: getpid has no preconditions.
            let pid = unsafe { libc::getpid() };
            while !stop.load(Ordering::Relaxed) {
                for task in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
                    let comm =
                        std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
                    if !comm.starts_with("weft") {
                        continue;
                    }
                    let tid: libc::c_long = task.file_name().to_string_lossy().parse().unwrap();
                    // SAFETY: tgkill to a thread of our own process; the
                    // handler installed above ignores the signal.
                    unsafe { libc::syscall(libc::SYS_tgkill, pid, tid, libc::SIGUSR1) };
                    signals.fetch_add(1, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let (round_trips, errors) = rt.block_on(|| {
        let addr = spawn_echo_server();
        let deadline = Instant::now() + Duration::from_secs(2);
        let clients: Vec<_> = (0..50)
            .map(|_| {
                weft::spawn(move || {
                    let mut conn = TcpStream::connect(addr).unwrap();
                    let (mut done, mut errors) = (0usize, 0usize);
                    let mut reply = [0u8; 64];
                    while Instant::now() < deadline {
                        let ok = conn.write_all(&[9u8; 64]).is_ok()
                            && conn.read_exact(&mut reply).is_ok();
                        if ok {
                            done += 1
                        } else {
                            errors += 1;
                            break;
                        }
                        // Mostly idle: the workers wait in epoll_wait,
                        // where the signals land.
                        weft::sleep(Duration::from_millis(2));
                    }
                    (done, errors)
                })
            })
            .collect();
        clients
            .into_iter()
            .map(|h| h.join().unwrap())
            .fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
    });
    stop.store(true, Ordering::Relaxed);
    storm.join().unwrap();
    println!(
        "eintr storm: {} signals to the workers; {round_trips} round trips over 50 connections, {errors} errors",
        signals.load(Ordering::Relaxed)
    );
    assert_eq!(errors, 0);
    assert!(round_trips > 1000, "{round_trips}");
    drop(rt);
    base.check("eintr storm", Duration::from_secs(2));
}

//! TCP through weft's reactor: echo at smoke size (TESTING.md 6.1 smoke),
//! many fibers on one `&TcpStream`, timeouts, sockets off the runtime and
//! after it, and conversions. Each test has its own runtime, a watchdog,
//! and checks the process's fd and thread counts afterwards. The
//! reactor's own edge cases under TCP load (6.10, 6.12, 6.13) are tested
//! in `net_reactor.rs`.

mod net_util;

use std::io::{ErrorKind, IoSlice, Read, Write};
use std::net::Shutdown;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use net_util::scenarios::{self, spawn_echo_server};
use net_util::{Baseline, runtime, serial, watchdog};
use weft::net::{TcpListener, TcpStream};

#[test]
fn echo_smoke_1000_conns_100_round_trips() {
    let _serial = serial();
    let _dog = watchdog("echo_smoke", Duration::from_secs(60));
    let base = Baseline::take();
    let elapsed = scenarios::echo_smoke();
    assert!(elapsed < Duration::from_secs(20), "took {elapsed:?}");
    base.check("echo smoke", Duration::from_secs(2));
}

#[test]
fn many_fibers_read_and_write_one_stream() {
    let _serial = serial();
    let _dog = watchdog("many_fibers", Duration::from_secs(30));
    let base = Baseline::take();
    const WRITERS: usize = 16;
    const READERS: usize = 16;
    const PER_WRITER: usize = 2000;
    let rt = runtime(2);
    let (read, sum_read, sum_written) = rt.block_on(|| {
        let addr = spawn_echo_server();
        let stream = Arc::new(TcpStream::connect(addr).unwrap());
        let total = (WRITERS * PER_WRITER * 8) as u64;
        let read = Arc::new(AtomicU64::new(0));
        let sum_read = Arc::new(AtomicU64::new(0));
        let sum_written = Arc::new(AtomicU64::new(0));
        let readers: Vec<_> = (0..READERS)
            .map(|_| {
                let (stream, read, sum_read) = (stream.clone(), read.clone(), sum_read.clone());
                weft::spawn(move || {
                    let mut buf = [0u8; 64];
                    while read.load(Ordering::Acquire) < total {
                        // Short timeouts: when the last bytes are read by
                        // another reader, this one wakes and re-checks.
                        match (&*stream).read(&mut buf) {
                            Ok(0) => break,
                            Ok(n) => {
                                let s: u64 = buf[..n].iter().map(|&b| u64::from(b)).sum();
                                sum_read.fetch_add(s, Ordering::Relaxed);
                                read.fetch_add(n as u64, Ordering::AcqRel);
                            }
                            Err(e) if e.kind() == ErrorKind::TimedOut => {}
                            Err(e) => panic!("read: {e}"),
                        }
                    }
                })
            })
            .collect();
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (stream, sum_written) = (stream.clone(), sum_written.clone());
                weft::spawn(move || {
                    for i in 0..PER_WRITER {
                        let msg = ((w * PER_WRITER + i) as u64).to_le_bytes();
                        (&*stream).write_all(&msg).unwrap();
                        let s: u64 = msg.iter().map(|&b| u64::from(b)).sum();
                        sum_written.fetch_add(s, Ordering::Relaxed);
                        if i % 64 == 0 {
                            weft::yield_now();
                        }
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        for r in readers {
            r.join().unwrap();
        }
        (
            read.load(Ordering::Relaxed),
            sum_read.load(Ordering::Relaxed),
            sum_written.load(Ordering::Relaxed),
        )
    });
    drop(rt);
    println!(
        "many fibers: {WRITERS} writers and {READERS} readers on one &TcpStream: {read} bytes, byte sums {sum_read} / {sum_written}"
    );
    assert_eq!(read, (WRITERS * PER_WRITER * 8) as u64);
    assert_eq!(sum_read, sum_written);
    base.check("many fibers", Duration::from_secs(2));
}

#[test]
fn read_write_and_connect_timeouts() {
    let _serial = serial();
    let _dog = watchdog("timeouts", Duration::from_secs(30));
    let base = Baseline::take();
    let rt = runtime(2);
    rt.block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(addr).unwrap();
        let (server, _) = listener.accept().unwrap();

        // Read timeout: nothing arrives.
        client
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let start = Instant::now();
        let err = client.read(&mut [0; 16]).unwrap_err();
        let took = start.elapsed();
        println!("read timeout 100 ms: {:?} after {took:.1?}", err.kind());
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        assert!(took >= Duration::from_millis(100) && took < Duration::from_millis(600));
        // Data that arrives before the timeout is read.
        (&server).write_all(b"x").unwrap();
        assert_eq!(client.read(&mut [0; 16]).unwrap(), 1);

        // Write timeout: the peer never reads, the buffers fill.
        client
            .set_write_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let chunk = vec![7u8; 256 * 1024];
        let start = Instant::now();
        let mut written = 0usize;
        let err = loop {
            match client.write(&chunk) {
                Ok(n) => written += n,
                Err(e) => break e,
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the buffers never filled"
            );
        };
        let took = start.elapsed();
        println!(
            "write timeout 100 ms: {:?} after {written} bytes, {took:.1?}",
            err.kind()
        );
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        drop(server);

        // Connect timeout: a listener whose accept queue is full drops SYNs.
        let full = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // SAFETY: listen on our own listening socket, backlog 0.
        assert_eq!(unsafe { libc::listen(full.as_raw_fd(), 0) }, 0);
        let full_addr = full.local_addr().unwrap();
        let mut fillers = Vec::new();
        let mut timed_out = None;
        for _ in 0..8 {
            let start = Instant::now();
            match TcpStream::connect_timeout(&full_addr, Duration::from_millis(150)) {
                Ok(s) => fillers.push(s),
                Err(e) => {
                    timed_out = Some((e.kind(), start.elapsed()));
                    break;
                }
            }
        }
        let (kind, took) = timed_out.expect("a connect to a full queue times out");
        println!(
            "connect timeout 150 ms: {kind:?} after {took:.1?} ({} connects filled the queue)",
            fillers.len()
        );
        assert_eq!(kind, ErrorKind::TimedOut);
        assert!(took >= Duration::from_millis(150) && took < Duration::from_millis(800));
        assert_eq!(
            TcpStream::connect_timeout(&full_addr, Duration::ZERO)
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );
        assert_eq!(
            client
                .set_read_timeout(Some(Duration::ZERO))
                .unwrap_err()
                .kind(),
            ErrorKind::InvalidInput
        );
    });
    drop(rt);
    base.check("timeouts", Duration::from_secs(2));
}

#[test]
fn a_refused_connect_fails() {
    let _serial = serial();
    let _dog = watchdog("refused", Duration::from_secs(10));
    let rt = runtime(1);
    rt.block_on(|| {
        let addr = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let err = TcpStream::connect(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    });
}

/// Host names resolve (on the blocking pool, see `weft::net::ToSocketAddrs`)
/// in every form std takes: `"host:port"`, `(host, port)`, a `String`.
#[test]
fn connect_and_bind_take_host_names() {
    let _serial = serial();
    let _dog = watchdog("host_names", Duration::from_secs(10));
    let rt = runtime(1);
    rt.block_on(|| {
        let listener = TcpListener::bind(("localhost", 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
        let server = weft::spawn(move || {
            for _ in 0..3 {
                let (mut conn, _) = listener.accept().unwrap();
                conn.write_all(b"hi").unwrap();
            }
        });
        let names: [&dyn weft::net::ToSocketAddrs; 3] = [
            &format!("localhost:{port}"),
            &("localhost", port),
            &(String::from("localhost"), port),
        ];
        for name in names {
            let mut conn = TcpStream::connect(name).unwrap();
            let mut reply = [0u8; 2];
            conn.read_exact(&mut reply).unwrap();
            assert_eq!(&reply, b"hi");
        }
        server.join().unwrap();
    });
}

#[test]
fn a_registered_socket_works_from_a_plain_thread() {
    let _serial = serial();
    let _dog = watchdog("plain_thread", Duration::from_secs(10));
    let base = Baseline::take();
    let rt = runtime(2);
    // Made in a fiber (so registered), then handed to a plain thread.
    let (mut client, addr) = rt.block_on(|| {
        let addr = spawn_echo_server();
        (TcpStream::connect(addr).unwrap(), addr)
    });
    let thread = std::thread::spawn(move || {
        let mut reply = [0u8; 5];
        for _ in 0..100 {
            client.write_all(b"hello").unwrap();
            client.read_exact(&mut reply).unwrap(); // parks the thread
            assert_eq!(&reply, b"hello");
        }
        client
    });
    let client = thread.join().unwrap();
    println!("plain thread: 100 round trips to {addr} on a registered socket");
    drop(client);
    drop(rt);
    base.check("plain thread", Duration::from_secs(2));
}

#[test]
fn without_a_runtime_sockets_are_std_sockets() {
    let _serial = serial();
    let _dog = watchdog("no_runtime", Duration::from_secs(10));
    let base = Baseline::take();
    // No runtime anywhere in this test: blocking std behaviour.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4];
        conn.read_exact(&mut buf).unwrap();
        conn.write_all(&buf).unwrap();
        // Hold the connection until the client closes it.
        assert_eq!(conn.read(&mut buf).unwrap(), 0);
    });
    let mut client = TcpStream::connect(addr).unwrap();
    client.write_all(b"ping").unwrap();
    let mut reply = [0u8; 4];
    client.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ping");
    // A timeout is std's SO_RCVTIMEO, reported as TimedOut.
    client
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let start = Instant::now();
    let err = client.read(&mut reply).unwrap_err();
    println!(
        "no runtime: a blocking read with a 50 ms timeout: {:?} after {:.1?}",
        err.kind(),
        start.elapsed()
    );
    assert_eq!(err.kind(), ErrorKind::TimedOut);
    assert!(weft::net::reactor_events().is_none());
    drop(client);
    server.join().unwrap();
    base.check("no runtime", Duration::from_secs(2));
}

#[test]
fn a_std_socket_made_off_the_runtime_parks_fibers_not_workers() {
    let _serial = serial();
    let _dog = watchdog("late_registration", Duration::from_secs(10));
    let base = Baseline::take();
    // Made in main, before any runtime; used by a fiber of a 1-worker
    // runtime: the read must park the fiber so the ticker can run.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let peer = std::net::TcpStream::connect(addr).unwrap();
    let (conn, _) = listener.accept().unwrap();
    let rt = runtime(1);
    let ticks = rt.block_on(move || {
        let ticks = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let ticker = {
            let (ticks, stop) = (ticks.clone(), stop.clone());
            weft::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    ticks.fetch_add(1, Ordering::Relaxed);
                    weft::sleep(Duration::from_millis(1));
                }
            })
        };
        let reader = weft::spawn(move || {
            let mut conn = conn;
            let mut buf = [0u8; 3];
            conn.read_exact(&mut buf).unwrap();
            buf
        });
        weft::sleep(Duration::from_millis(100));
        (&peer).write_all(b"abc").unwrap();
        assert_eq!(&reader.join().unwrap(), b"abc");
        stop.store(true, Ordering::Relaxed);
        ticker.join().unwrap();
        ticks.load(Ordering::Relaxed)
    });
    println!("late registration: the ticker ticked {ticks} times while the reader waited");
    assert!(ticks >= 20, "the worker was blocked: {ticks} ticks");
    drop(rt);
    drop(listener);
    base.check("late registration", Duration::from_secs(2));
}

#[test]
fn after_shutdown_a_thread_gets_an_error_not_a_hang() {
    let _serial = serial();
    let _dog = watchdog("after_shutdown", Duration::from_secs(10));
    let base = Baseline::take();
    let rt = runtime(2);
    let (mut client, server) = rt.block_on(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    });
    // A thread parked in a read while the runtime is dropped.
    let reader = std::thread::spawn(move || {
        let err = client.read(&mut [0; 4]).unwrap_err();
        (err, client)
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(rt);
    let (err, mut client) = reader.join().unwrap();
    println!("after shutdown: a parked thread's read: {err}");
    assert_eq!(err.kind(), ErrorKind::Other);
    // Operations that need no wait still work.
    client.write_all(b"still works").unwrap();
    drop((client, server));
    base.check("after shutdown", Duration::from_secs(2));
}

#[test]
fn conversions_to_and_from_std_and_fds() {
    let _serial = serial();
    let _dog = watchdog("conversions", Duration::from_secs(10));
    let base = Baseline::take();
    // A plain-thread echo server: the test blocks in std reads below.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = std_listener.local_addr().unwrap();
    let echo = std::thread::spawn(move || {
        let (mut conn, _) = std_listener.accept().unwrap();
        let mut buf = [0u8; 64];
        loop {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => conn.write_all(&buf[..n]).unwrap(),
            }
        }
    });
    let rt = runtime(1);
    rt.block_on(move || {
        let stream = TcpStream::connect(addr).unwrap();
        // Into std: blocking again.
        let mut std_stream = stream.into_std();
        std_stream.write_all(b"a").unwrap();
        let mut b = [0u8];
        std_stream.read_exact(&mut b).unwrap();
        // SAFETY: F_GETFL on our own fd.
        let flags = unsafe { libc::fcntl(std_stream.as_raw_fd(), libc::F_GETFL) };
        assert_eq!(
            flags & libc::O_NONBLOCK,
            0,
            "into_std gives a blocking socket"
        );
        // From std: registers on first use here.
        let mut stream = TcpStream::from(std_stream);
        stream.write_all(b"b").unwrap();
        stream.read_exact(&mut b).unwrap();
        // Raw fds both ways.
        let fd = stream.into_raw_fd();
        // SAFETY: `fd` was just given up by into_raw_fd; we own it.
        let mut stream = unsafe { TcpStream::from_raw_fd(fd) };
        stream.write_all(b"c").unwrap();
        stream.read_exact(&mut b).unwrap();
        // OwnedFd both ways.
        let owned: OwnedFd = stream.into();
        let mut stream = TcpStream::from(owned);
        // Vectored writes (sendmsg with MSG_NOSIGNAL).
        let n = stream
            .write_vectored(&[IoSlice::new(b"de"), IoSlice::new(b"f")])
            .unwrap();
        assert_eq!(n, 3);
        let mut three = [0u8; 3];
        stream.read_exact(&mut three).unwrap();
        assert_eq!(&three, b"def");
        // try_clone: another fd, its own registration.
        let mut clone = stream.try_clone().unwrap();
        assert_ne!(clone.as_raw_fd(), stream.as_raw_fd());
        clone.write_all(b"g").unwrap();
        stream.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"g");
        stream.shutdown(Shutdown::Write).unwrap();
        assert_eq!(
            clone.read(&mut b).unwrap(),
            0,
            "the echo closed after our FIN"
        );
        let listener = TcpListener::from(std::net::TcpListener::bind("127.0.0.1:0").unwrap());
        let std_listener: std::net::TcpListener = listener.into();
        assert!(std_listener.local_addr().is_ok());
    });
    drop(rt);
    echo.join().unwrap();
    base.check("conversions", Duration::from_secs(2));
}

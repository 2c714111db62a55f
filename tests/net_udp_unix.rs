//! UDP and Unix-domain sockets through the reactor: datagrams between
//! fibers, parked receivers, timeouts, connected UDP; a Unix echo server,
//! pairs, half-close and conversions; Unix datagrams.

mod net_util;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use net_util::{Baseline, runtime, serial, watchdog};
use weft::net::{UdpSocket, UnixDatagram, UnixListener, UnixStream};

#[test]
fn udp_datagrams_between_fibers() {
    let _serial = serial();
    let _dog = watchdog("udp", Duration::from_secs(20));
    let base = Baseline::take();
    const COUNT: usize = 1000;
    let rt = runtime(2);
    let (received, sum) = rt.block_on(|| {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        // A receiver parked before anything is sent.
        let receiver = weft::spawn(move || {
            let mut buf = [0u8; 64];
            let (mut received, mut sum) = (0, 0u64);
            while received < COUNT {
                let (n, from) = server.recv_from(&mut buf).unwrap();
                assert_eq!(n, 8);
                sum += u64::from_le_bytes(buf[..8].try_into().unwrap());
                received += 1;
                server.send_to(&buf[..n], from).unwrap(); // ack
            }
            (received, sum)
        });
        weft::sleep(Duration::from_millis(20));
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.connect(addr).unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut ack = [0u8; 64];
        for i in 0..COUNT as u64 {
            client.send(&i.to_le_bytes()).unwrap();
            assert_eq!(client.recv(&mut ack).unwrap(), 8); // one in flight: no loss on loopback
        }
        receiver.join().unwrap()
    });
    println!("udp: {received} datagrams acked, sum {sum}");
    assert_eq!(received, COUNT);
    assert_eq!(sum, (COUNT as u64 * (COUNT as u64 - 1)) / 2);
    drop(rt);
    base.check("udp", Duration::from_secs(2));
}

#[test]
fn udp_timeouts_peek_and_conversions() {
    let _serial = serial();
    let _dog = watchdog("udp_timeouts", Duration::from_secs(20));
    let base = Baseline::take();
    let rt = runtime(1);
    rt.block_on(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let start = Instant::now();
        let err = socket.recv_from(&mut [0u8; 8]).unwrap_err();
        println!(
            "udp read timeout 50 ms: {:?} after {:.1?}",
            err.kind(),
            start.elapsed()
        );
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        let me = socket.local_addr().unwrap();
        socket.send_to(b"abc", me).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(socket.peek_from(&mut buf).unwrap(), (3, me));
        assert_eq!(socket.recv_from(&mut buf).unwrap(), (3, me));
        let std_socket: std::net::UdpSocket = socket.into_std();
        let socket = UdpSocket::from(std_socket);
        let clone = socket.try_clone().unwrap();
        clone.send_to(b"d", me).unwrap();
        assert_eq!(socket.recv_from(&mut buf).unwrap().0, 1);
    });
    drop(rt);
    base.check("udp timeouts", Duration::from_secs(2));
}

fn socket_path(name: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("weft-net-{}-{name}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    path
}

#[test]
fn unix_echo_many_connections() {
    let _serial = serial();
    let _dog = watchdog("unix_echo", Duration::from_secs(30));
    let base = Baseline::take();
    const CONNS: usize = 200;
    const ROUNDS: usize = 50;
    let path = socket_path("echo");
    let rt = runtime(2);
    let ok = rt.block_on({
        let path = path.clone();
        move || {
            let listener = UnixListener::bind(&path).unwrap();
            weft::spawn(move || {
                for conn in listener.incoming() {
                    let mut conn = conn.unwrap();
                    weft::spawn(move || {
                        let mut buf = [0u8; 256];
                        while let Ok(n) = conn.read(&mut buf) {
                            if n == 0 || conn.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            let clients: Vec<_> = (0..CONNS)
                .map(|c| {
                    let path = path.clone();
                    weft::spawn(move || {
                        let mut conn = UnixStream::connect(&path).unwrap();
                        let mut reply = [0u8; 32];
                        for r in 0..ROUNDS {
                            let msg = [(c + r) as u8; 32];
                            conn.write_all(&msg).unwrap();
                            conn.read_exact(&mut reply).unwrap();
                            assert_eq!(reply, msg);
                        }
                    })
                })
                .collect();
            clients
                .into_iter()
                .filter(|_| true)
                .map(|h| h.join().is_ok())
                .filter(|&ok| ok)
                .count()
        }
    });
    println!("unix echo: {ok} of {CONNS} connections did {ROUNDS} round trips");
    assert_eq!(ok, CONNS);
    drop(rt);
    std::fs::remove_file(&path).unwrap();
    base.check("unix echo", Duration::from_secs(2));
}

#[test]
fn unix_pairs_half_close_and_timeouts() {
    let _serial = serial();
    let _dog = watchdog("unix_pairs", Duration::from_secs(20));
    let base = Baseline::take();
    let rt = runtime(2);
    rt.block_on(|| {
        let (a, b) = UnixStream::pair().unwrap();
        // A reader parked on &b while a writer on &a streams 4 MiB.
        let reader = weft::spawn(move || {
            let mut got = Vec::new();
            (&b).read_to_end(&mut got).unwrap();
            (got.len(), b)
        });
        let data = vec![5u8; 4 << 20];
        (&a).write_all(&data).unwrap();
        a.shutdown(Shutdown::Write).unwrap();
        let (len, b) = reader.join().unwrap();
        assert_eq!(len, 4 << 20);
        // After the peer's FIN: EOF at once, even with a timeout set.
        b.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        assert_eq!((&b).read(&mut [0u8; 4]).unwrap(), 0);
        // A silent peer: the timeout.
        let (c, _d) = UnixStream::pair().unwrap();
        c.set_read_timeout(Some(Duration::from_millis(30))).unwrap();
        let start = Instant::now();
        let err = (&c).read(&mut [0u8; 4]).unwrap_err();
        println!(
            "unix read timeout 30 ms: {:?} after {:.1?}",
            err.kind(),
            start.elapsed()
        );
        assert_eq!(err.kind(), ErrorKind::TimedOut);
        // Conversions.
        let std_c: std::os::unix::net::UnixStream = c.into_std();
        let c = UnixStream::from(std_c);
        assert!(c.peer_addr().is_ok());
    });
    drop(rt);
    base.check("unix pairs", Duration::from_secs(2));
}

/// Unix datagrams: receivers parked on one bound socket before anything
/// is sent (on one worker, so a receive that blocked the worker would
/// hang the test), senders from other fibers through `send_to`, every
/// datagram received once; then a connected pair, a timeout, and the fd
/// count back to the baseline.
#[test]
fn unix_datagrams_between_fibers() {
    let _serial = serial();
    let _dog = watchdog("unix_datagram", Duration::from_secs(20));
    let base = Baseline::take();
    const RECEIVERS: usize = 4;
    const PER_SENDER: usize = 250;
    let path = socket_path("dgram");
    let rt = runtime(1);
    let (count, sum) = rt.block_on({
        let path = path.clone();
        move || {
            let server = std::sync::Arc::new(UnixDatagram::bind(&path).unwrap());
            let receivers: Vec<_> = (0..RECEIVERS)
                .map(|_| {
                    let server = server.clone();
                    weft::spawn(move || {
                        let (mut count, mut sum) = (0usize, 0u64);
                        let mut buf = [0u8; 8];
                        loop {
                            let n = server.recv(&mut buf).unwrap();
                            if n == 0 {
                                return (count, sum); // the end marker
                            }
                            count += 1;
                            sum += u64::from_le_bytes(buf);
                        }
                    })
                })
                .collect();
            weft::yield_now(); // let every receiver park first
            let senders: Vec<_> = (0..4u64)
                .map(|s| {
                    let path = path.clone();
                    weft::spawn(move || {
                        let socket = UnixDatagram::unbound().unwrap();
                        for i in 0..PER_SENDER as u64 {
                            let value = s * 1_000 + i;
                            socket.send_to(&value.to_le_bytes(), &path).unwrap();
                        }
                    })
                })
                .collect();
            for s in senders {
                s.join().unwrap();
            }
            let end = UnixDatagram::unbound().unwrap();
            for _ in 0..RECEIVERS {
                end.send_to(&[], &path).unwrap();
            }
            receivers
                .into_iter()
                .map(|r| r.join().unwrap())
                .fold((0, 0), |(c, s), (rc, rs)| (c + rc, s + rs))
        }
    });
    let expected: u64 = (0..4u64)
        .flat_map(|s| (0..PER_SENDER as u64).map(move |i| s * 1_000 + i))
        .sum();
    assert_eq!((count, sum), (4 * PER_SENDER, expected));
    std::fs::remove_file(&path).unwrap();
    rt.block_on(|| {
        let (a, b) = UnixDatagram::pair().unwrap();
        let reader = weft::spawn(move || {
            let mut buf = [0u8; 4];
            let n = b.recv(&mut buf).unwrap();
            b.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
            let start = Instant::now();
            let err = b.recv(&mut buf).unwrap_err();
            (n, err.kind(), start.elapsed())
        });
        weft::sleep(Duration::from_millis(5));
        a.send(b"late").unwrap();
        let (n, kind, waited) = reader.join().unwrap();
        assert_eq!((n, kind), (4, ErrorKind::TimedOut));
        assert!(
            waited >= Duration::from_millis(20),
            "timed out after {waited:?}"
        );
    });
    drop(rt);
    base.check("unix datagrams", Duration::from_secs(2));
}

/// A `send_to` that finds the receiver's queue full (40 datagrams, more
/// than the kernel's `net.unix.max_dgram_qlen`, 10 by default, before the
/// receiver reads any) parks and is woken when the queue drains: the
/// kernel signals the sender's socket writable then, even unconnected.
#[test]
fn unix_datagram_sender_parks_on_a_full_queue() {
    let _serial = serial();
    let _dog = watchdog("unix_datagram_full", Duration::from_secs(10));
    let path = socket_path("full");
    let rt = runtime(1);
    let received = rt.block_on({
        let path = path.clone();
        move || {
            let server = UnixDatagram::bind(&path).unwrap();
            let reader = weft::spawn(move || {
                weft::sleep(Duration::from_millis(50));
                let mut buf = [0u8; 8];
                (0..40u64)
                    .map(|_| {
                        assert_eq!(server.recv(&mut buf).unwrap(), 8);
                        u64::from_le_bytes(buf)
                    })
                    .collect::<Vec<_>>()
            });
            let socket = UnixDatagram::unbound().unwrap();
            for i in 0..40u64 {
                socket.send_to(&i.to_le_bytes(), &path).unwrap();
            }
            reader.join().unwrap()
        }
    });
    assert_eq!(
        received,
        (0..40).collect::<Vec<_>>(),
        "every datagram, in order"
    );
    std::fs::remove_file(&path).unwrap();
}

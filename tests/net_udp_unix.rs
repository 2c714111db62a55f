//! UDP and Unix-domain sockets through the reactor: datagrams between
//! fibers, parked receivers, timeouts, connected UDP; a Unix echo server,
//! pairs, half-close and conversions.

mod net_util;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::{Duration, Instant};

use net_util::{Baseline, runtime, serial, watchdog};
use weft::net::{UdpSocket, UnixListener, UnixStream};

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

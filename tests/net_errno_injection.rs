//! TESTING.md 6.9 `errno_injection`: scripted errors in the accept, read
//! and write paths (Go's `socktest` style), handled by weft's real retry,
//! back-off and park logic; also in peeks and datagram sockets. Needs the `fault-injection` feature:
//!
//! ```text
//! cargo test --release --features fault-injection --test net_errno_injection
//! ```
//!
//! Each injector is armed on one socket's fd and dropped before that
//! socket closes, so the tests cannot disturb each other when the harness
//! runs them in parallel. The accept tests print weft's back-off log line
//! ("accept error: Too many open files ...") for the injected errors.

#![cfg(feature = "fault-injection")]

mod support;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::net::fault::{Fault, Injector, Op};
use weft::net::{TcpListener, TcpStream, UdpSocket, UnixDatagram};

/// The first step of `accept`'s back-off (`ACCEPT_BACKOFF_MIN` in
/// `src/net/mod.rs`); it doubles from there.
const FIRST_BACKOFF: Duration = Duration::from_millis(5);

/// How long a parked operation is watched for extra attempts (a fiber
/// that spins instead of parking makes thousands in this time).
const PARKED_WINDOW: Duration = Duration::from_millis(50);

fn runtime() -> weft::Runtime {
    weft::Runtime::builder()
        .workers(2)
        .build()
        .expect("start a runtime")
}

/// Waits (in a fiber) until `cond` holds; a hang guard, not a timing
/// assertion.
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "gave up waiting for: {what}"
        );
        weft::sleep(Duration::from_millis(1));
    }
}

/// Asserts that `op` is parked: its attempts do not move while nothing
/// happens on the socket, and the operation has not returned. Returns the
/// attempts so far.
fn assert_parked<T: Send + 'static>(
    injector: &Injector,
    op: Op,
    pending: &weft::JoinHandle<T>,
) -> usize {
    // Let a stray event of the fresh registration (the first EPOLLOUT)
    // land first: it may cost one more (real, EAGAIN) attempt.
    weft::sleep(PARKED_WINDOW);
    let before = injector.attempts(op);
    weft::sleep(PARKED_WINDOW);
    let after = injector.attempts(op);
    assert_eq!(
        before, after,
        "{op:?} kept trying without an event: it spins instead of parking"
    );
    assert!(!pending.is_finished(), "{op:?} returned instead of parking");
    after
}

/// ECONNABORTED and EINTR are retried at once (no back-off) and the accept
/// returns the real connection; EMFILE, ENFILE, ENOBUFS and ENOMEM each go
/// to the back-off once, then the accept returns the real connection.
#[test]
fn accept_errors_are_retried_or_backed_off() {
    support::bounded(|| {
        let rt = runtime();
        rt.block_on(|| {
            for (errno, backs_off) in [
                (libc::ECONNABORTED, false),
                (libc::EINTR, false),
                (libc::EMFILE, true),
                (libc::ENFILE, true),
                (libc::ENOBUFS, true),
                (libc::ENOMEM, true),
            ] {
                let name = std::io::Error::from_raw_os_error(errno);
                let listener = TcpListener::bind("127.0.0.1:0").unwrap();
                let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
                let injector = Injector::arm(&listener);
                injector.push(Op::Accept, [Fault::Errno(errno)]);
                let start = Instant::now();
                let (conn, peer) = listener
                    .accept()
                    .unwrap_or_else(|err| panic!("{name}: the accept failed: {err}"));
                let took = start.elapsed();
                println!("accept with {name} injected: {took:.2?}");
                assert_eq!(peer, client.local_addr().unwrap(), "{name}: the real peer");
                assert_eq!(conn.peer_addr().unwrap(), client.local_addr().unwrap());
                assert_eq!(injector.hits(Op::Accept, Fault::Errno(errno)), 1, "{name}");
                assert_eq!(injector.pending(Op::Accept), 0, "{name}");
                assert_eq!(
                    injector.attempts(Op::Accept),
                    2,
                    "{name}: the injected attempt, then the real accept"
                );
                if backs_off {
                    assert_eq!(injector.backoffs(), 1, "{name} goes to the back-off");
                    assert!(
                        took >= FIRST_BACKOFF,
                        "{name}: {took:?} < {FIRST_BACKOFF:?}"
                    );
                } else {
                    assert_eq!(
                        injector.backoffs(),
                        0,
                        "{name} is retried without a back-off"
                    );
                }
            }
        });
    });
}

/// TESTING.md's whole accept script in one accept, no connection pending:
/// ECONNABORTED and EINTR retried, four back-offs (5, 10, 20, 40 ms), then
/// EAGAIN parks the fiber until a client connects, and the accept returns
/// that client's connection.
#[test]
fn accept_error_script_then_eagain_parks() {
    let script = [
        Fault::Errno(libc::ECONNABORTED),
        Fault::Errno(libc::EINTR),
        Fault::Errno(libc::EMFILE),
        Fault::Errno(libc::ENFILE),
        Fault::Errno(libc::ENOBUFS),
        Fault::Errno(libc::ENOMEM),
        Fault::Errno(libc::EAGAIN),
    ];
    support::bounded(move || {
        let rt = runtime();
        rt.block_on(move || {
            let listener = Arc::new(TcpListener::bind("127.0.0.1:0").unwrap());
            let addr = listener.local_addr().unwrap();
            let injector = Injector::arm(&*listener);
            injector.push(Op::Accept, script);
            let start = Instant::now();
            let accept = {
                let listener = listener.clone();
                weft::spawn(move || {
                    let accepted = listener.accept().unwrap();
                    (accepted, start.elapsed())
                })
            };
            wait_for("the whole script consumed", || {
                injector.pending(Op::Accept) == 0
            });
            let attempts = assert_parked(&injector, Op::Accept, &accept);
            assert_eq!(attempts, script.len(), "one attempt per injected error");
            let client = TcpStream::connect(addr).unwrap();
            let ((_conn, peer), took) = accept.join().unwrap();
            println!("accept through the whole script: {took:.2?}");
            assert_eq!(peer, client.local_addr().unwrap(), "the real connection");
            for fault in script {
                assert_eq!(injector.hits(Op::Accept, fault), 1, "{fault:?}");
            }
            assert_eq!(injector.backoffs(), 4, "EMFILE, ENFILE, ENOBUFS, ENOMEM");
            assert_eq!(injector.attempts(Op::Accept), script.len() + 1);
            let backoffs = FIRST_BACKOFF * (1 + 2 + 4 + 8);
            assert!(took >= backoffs, "{took:?} < {backoffs:?} of back-off");
        });
    });
}

/// A connected pair on the current runtime: (client, server side).
fn pair() -> (TcpStream, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    let (server, _) = listener.accept().unwrap();
    (client, server)
}

/// Runs `test` in a fiber (under the hang guard) with a connected pair
/// whose server side is shared and armed; the injector goes before the
/// sockets close (see the module doc).
fn with_armed_server(
    test: impl FnOnce(&mut TcpStream, &Arc<TcpStream>, &Injector) + Send + 'static,
) {
    support::bounded(|| {
        let rt = runtime();
        rt.block_on(|| {
            let (mut client, server) = pair();
            let server = Arc::new(server);
            let injector = Injector::arm(&*server);
            test(&mut client, &server, &injector);
            drop(injector);
        });
    });
}

/// Reads: EINTR is retried and the read returns the data; EAGAIN parks
/// the fiber until data comes; EAGAIN with a spurious readiness makes the
/// fiber try again, find nothing, and park again without an error, until
/// data comes.
#[test]
fn read_eintr_retried_eagain_and_spurious_readiness_repark() {
    with_armed_server(|client, server, injector| {
        // One read of exactly the bytes the client sends: a short read
        // would mark the socket drained, and the next read would then
        // park before its first attempt, never meeting its script.
        let read = |server: &Arc<TcpStream>, len: usize| {
            let server = server.clone();
            weft::spawn(move || {
                let mut buf = vec![0u8; len];
                let n = (&*server)
                    .read(&mut buf)
                    .expect("no error reaches the reader");
                buf.truncate(n);
                buf
            })
        };

        // EINTR, data already there.
        client.write_all(b"first").unwrap();
        injector.push(Op::Read, [Fault::Errno(libc::EINTR)]);
        let before = injector.attempts(Op::Read);
        assert_eq!(read(server, 5).join().unwrap(), b"first");
        assert_eq!(injector.hits(Op::Read, Fault::Errno(libc::EINTR)), 1);
        assert_eq!(
            injector.attempts(Op::Read) - before,
            2,
            "EINTR, then the read"
        );

        // EAGAIN, nothing sent yet: the reader parks until data comes.
        injector.push(Op::Read, [Fault::Errno(libc::EAGAIN)]);
        let reader = read(server, 6);
        wait_for("EAGAIN injected", || {
            injector.hits(Op::Read, Fault::Errno(libc::EAGAIN)) == 1
        });
        assert_parked(injector, Op::Read, &reader);
        client.write_all(b"second").unwrap();
        assert_eq!(reader.join().unwrap(), b"second");

        // EAGAIN with a spurious readiness: one more attempt (the
        // kernel's own EAGAIN), then parked again.
        injector.push(Op::Read, [Fault::SpuriousReadiness]);
        let before = injector.attempts(Op::Read);
        let reader = read(server, 5);
        wait_for("the spurious readiness injected", || {
            injector.hits(Op::Read, Fault::SpuriousReadiness) == 1
        });
        let attempts = assert_parked(injector, Op::Read, &reader) - before;
        assert!(
            attempts >= 2,
            "the readiness was not acted on: {attempts} attempt(s)"
        );
        client.write_all(b"third").unwrap();
        assert_eq!(reader.join().unwrap(), b"third");
        println!(
            "reads: EINTR retried; EAGAIN parked; a spurious readiness took {attempts} attempts, then parked"
        );
        assert_eq!(injector.pending(Op::Read), 0);
    });
}

/// Writes: EINTR is retried (a single `write` returns the bytes, not the
/// error); a short write of 1 byte is reported as such; short writes and
/// EAGAIN with a spurious readiness in the middle of a `write_all` do not
/// stop it, and every byte arrives, in order.
#[test]
fn write_eintr_retried_short_writes_and_spurious_readiness_complete() {
    const SIZE: usize = 256 * 1024;
    let in_write_all = [
        Fault::ShortWrite,
        Fault::SpuriousReadiness,
        Fault::ShortWrite,
        Fault::ShortWrite,
    ];
    support::bounded(move || {
        let rt = runtime();
        rt.block_on(move || {
            let (client, mut server) = pair();
            let payload: Vec<u8> = (0..SIZE).map(|i| (i % 251) as u8).collect();
            let reader = weft::spawn(move || {
                let mut got = Vec::new();
                (&client).read_to_end(&mut got).unwrap();
                got
            });
            let injector = Injector::arm(&server);

            // Plain `write`s: `write_all` would hide an EINTR that leaked
            // out (std retries `Interrupted` itself).
            injector.push(Op::Write, [Fault::Errno(libc::EINTR)]);
            let sent = server.write(&payload[..1024]).expect("EINTR is retried");
            assert_eq!(sent, 1024);
            injector.push(Op::Write, [Fault::ShortWrite]);
            assert_eq!(server.write(&payload[sent..]).unwrap(), 1, "a 1-byte write");

            injector.push(Op::Write, in_write_all);
            server.write_all(&payload[sent + 1..]).expect("write_all completes");
            server.shutdown(Shutdown::Write).unwrap();
            let got = reader.join().unwrap();
            assert_eq!(got.len(), SIZE, "every byte delivered");
            assert!(got == payload, "the bytes arrive intact and in order");
            assert_eq!(injector.hits(Op::Write, Fault::Errno(libc::EINTR)), 1);
            assert_eq!(injector.hits(Op::Write, Fault::ShortWrite), 4);
            assert_eq!(injector.hits(Op::Write, Fault::SpuriousReadiness), 1);
            assert_eq!(injector.pending(Op::Write), 0);
            // Each injected outcome is one attempt; real sends carry the
            // rest: at least one after EINTR and one after the script.
            let attempts = injector.attempts(Op::Write);
            assert!(attempts >= 6 + 2, "{attempts} attempts");
            println!("writes: EINTR retried, 4 short writes and a spurious readiness: {SIZE} bytes intact in {attempts} attempts");
        });
    });
}

/// The vectored calls meet the same scripts: a `read_vectored` retries
/// EINTR and parks on EAGAIN until data comes; a `write_vectored` retries
/// EINTR, and a short write sends one byte (the first of the first
/// non-empty buffer) and reports it, so a caller that advances its
/// buffers by what each call returns delivers every byte, in order.
#[test]
fn vectored_reads_and_writes_meet_the_scripts() {
    use std::io::{IoSlice, IoSliceMut};
    with_armed_server(|client, server, injector| {
        // read_vectored: EINTR with data there, then EAGAIN with none.
        client.write_all(b"abcdef").unwrap();
        injector.push(Op::Read, [Fault::Errno(libc::EINTR)]);
        let (mut head, mut tail) = ([0u8; 2], [0u8; 4]);
        let n = (&**server)
            .read_vectored(&mut [IoSliceMut::new(&mut head), IoSliceMut::new(&mut tail)])
            .expect("EINTR is retried");
        assert_eq!((n, &head, &tail), (6, b"ab", b"cdef"));
        assert_eq!(injector.hits(Op::Read, Fault::Errno(libc::EINTR)), 1);

        injector.push(Op::Read, [Fault::Errno(libc::EAGAIN)]);
        let reader = {
            let server = server.clone();
            weft::spawn(move || {
                let (mut a, mut b) = ([0u8; 3], [0u8; 3]);
                let n = (&*server)
                    .read_vectored(&mut [IoSliceMut::new(&mut a), IoSliceMut::new(&mut b)])
                    .expect("no error reaches the reader");
                [a, b].concat()[..n].to_vec()
            })
        };
        wait_for("EAGAIN injected", || {
            injector.hits(Op::Read, Fault::Errno(libc::EAGAIN)) == 1
        });
        assert_parked(injector, Op::Read, &reader);
        client.write_all(b"ghijkl").unwrap();
        assert_eq!(reader.join().unwrap(), b"ghijkl");

        // write_vectored: EINTR, then short writes, with an empty
        // buffer first (the byte sent is the first of a non-empty one).
        let parts: [&[u8]; 3] = [b"", b"hello ", b"vectored world"];
        let whole: Vec<u8> = parts.concat();
        injector.push(
            Op::Write,
            [
                Fault::Errno(libc::EINTR),
                Fault::ShortWrite,
                Fault::ShortWrite,
            ],
        );
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut bufs: &mut [IoSlice<'_>] = &mut slices;
        let mut calls = Vec::new();
        while !bufs.is_empty() {
            let n = (&**server).write_vectored(bufs).expect("EINTR is retried");
            assert!(n > 0, "a vectored write sent nothing");
            calls.push(n);
            IoSlice::advance_slices(&mut bufs, n);
        }
        assert_eq!(&calls[..2], [1, 1], "the two short writes send a byte each");
        assert_eq!(calls.iter().sum::<usize>(), whole.len());
        let mut got = vec![0u8; whole.len()];
        client.read_exact(&mut got).unwrap();
        assert_eq!(got, whole, "the bytes arrive intact and in order");
        assert_eq!(injector.hits(Op::Write, Fault::Errno(libc::EINTR)), 1);
        assert_eq!(injector.hits(Op::Write, Fault::ShortWrite), 2);
        assert_eq!(injector.pending(Op::Write), 0);
        assert_eq!(injector.pending(Op::Read), 0);
    });
}

/// `peek` meets the read script: EINTR is retried and the peek returns
/// the data (which a read then takes); EAGAIN parks it until data comes.
#[test]
fn peek_eintr_retried_eagain_parks() {
    with_armed_server(|client, server, injector| {
        client.write_all(b"peek").unwrap();
        injector.push(Op::Read, [Fault::Errno(libc::EINTR)]);
        let mut buf = [0u8; 16];
        let n = server.peek(&mut buf).expect("EINTR is retried");
        assert_eq!(&buf[..n], b"peek");
        assert_eq!(injector.hits(Op::Read, Fault::Errno(libc::EINTR)), 1);
        let mut taken = [0u8; 4];
        (&**server).read_exact(&mut taken).unwrap();
        assert_eq!(&taken, b"peek", "the peek left the data queued");

        injector.push(Op::Read, [Fault::Errno(libc::EAGAIN)]);
        let peeker = {
            let server = server.clone();
            weft::spawn(move || {
                let mut buf = [0u8; 16];
                let n = server.peek(&mut buf).expect("no error reaches the peeker");
                buf[..n].to_vec()
            })
        };
        wait_for("EAGAIN injected", || {
            injector.hits(Op::Read, Fault::Errno(libc::EAGAIN)) == 1
        });
        assert_parked(injector, Op::Read, &peeker);
        client.write_all(b"late").unwrap();
        assert_eq!(peeker.join().unwrap(), b"late");
        assert_eq!(injector.pending(Op::Read), 0);
    });
}

/// UDP: a receive retries EINTR, parks on EAGAIN, and parks again after a
/// spurious readiness; a send retries EINTR, returns ENOBUFS to its
/// caller (a datagram that was not sent is the caller's to retry), and
/// goes through a spurious readiness. A `UnixDatagram` meets its script
/// the same way.
#[test]
fn datagram_calls_meet_the_scripts() {
    support::bounded(|| {
        let rt = runtime();
        rt.block_on(|| {
            let server = Arc::new(UdpSocket::bind("127.0.0.1:0").unwrap());
            let client = UdpSocket::bind("127.0.0.1:0").unwrap();
            let (to, from) = (server.local_addr().unwrap(), client.local_addr().unwrap());
            let receives = Injector::arm(&*server);
            let sends = Injector::arm(&client);
            let recv = |server: &Arc<UdpSocket>| {
                let server = server.clone();
                weft::spawn(move || {
                    let mut buf = [0u8; 16];
                    let (n, peer) = server
                        .recv_from(&mut buf)
                        .expect("no error reaches the receiver");
                    (buf[..n].to_vec(), peer)
                })
            };

            client.send_to(b"one", to).unwrap();
            receives.push(Op::Read, [Fault::Errno(libc::EINTR)]);
            assert_eq!(recv(&server).join().unwrap(), (b"one".to_vec(), from));
            assert_eq!(receives.hits(Op::Read, Fault::Errno(libc::EINTR)), 1);

            receives.push(Op::Read, [Fault::Errno(libc::EAGAIN)]);
            let receiver = recv(&server);
            wait_for("EAGAIN injected", || {
                receives.hits(Op::Read, Fault::Errno(libc::EAGAIN)) == 1
            });
            assert_parked(&receives, Op::Read, &receiver);
            client.send_to(b"two", to).unwrap();
            assert_eq!(receiver.join().unwrap(), (b"two".to_vec(), from));

            receives.push(Op::Read, [Fault::SpuriousReadiness]);
            let before = receives.attempts(Op::Read);
            let receiver = recv(&server);
            wait_for("the spurious readiness injected", || {
                receives.hits(Op::Read, Fault::SpuriousReadiness) == 1
            });
            let attempts = assert_parked(&receives, Op::Read, &receiver) - before;
            assert!(
                attempts >= 2,
                "the readiness was not acted on: {attempts} attempt(s)"
            );
            client.send_to(b"three", to).unwrap();
            assert_eq!(receiver.join().unwrap(), (b"three".to_vec(), from));

            sends.push(
                Op::Write,
                [Fault::Errno(libc::EINTR), Fault::Errno(libc::ENOBUFS)],
            );
            let err = client
                .send_to(b"lost", to)
                .expect_err("ENOBUFS reaches the caller");
            assert_eq!(err.raw_os_error(), Some(libc::ENOBUFS));
            assert_eq!(sends.hits(Op::Write, Fault::Errno(libc::EINTR)), 1);
            sends.push(Op::Write, [Fault::SpuriousReadiness]);
            assert_eq!(client.send_to(b"four", to).unwrap(), 4);
            assert_eq!(sends.hits(Op::Write, Fault::SpuriousReadiness), 1);
            let mut buf = [0u8; 16];
            let (n, _) = server.recv_from(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"four", "the datagram that failed was not sent");
            assert_eq!(
                (receives.pending(Op::Read), sends.pending(Op::Write)),
                (0, 0)
            );
            drop((receives, sends));

            let (a, b) = UnixDatagram::pair().unwrap();
            let unix = Injector::arm(&b);
            a.send(b"unix").unwrap();
            unix.push(Op::Read, [Fault::Errno(libc::EINTR)]);
            let n = b.recv(&mut buf).expect("EINTR is retried");
            assert_eq!(&buf[..n], b"unix");
            assert_eq!(unix.hits(Op::Read, Fault::Errno(libc::EINTR)), 1);
            drop(unix);
        });
    });
}

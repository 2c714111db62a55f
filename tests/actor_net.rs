//! A handler blocked on a `weft::net::TcpStream` read while 10,000
//! messages pile up in its mailbox: the worker goes on with other actors
//! meanwhile (there is only one), nothing queued is handled before the
//! read returns, and once the socket delivers every message is handled,
//! in order.
//!
//! Every test runs under the hang guard (`support::bounded`).

mod actor_util;
mod support;

use std::io::{Read, Write};
use std::time::Duration;

use actor_util::{Event, Log, Probe, runtime};
use weft::actor::{self, Actor, Context, StopReason};
use weft::chan;
use weft::net::{TcpListener, TcpStream};

/// Reads from its socket when asked, and records everything in order.
struct Reader {
    stream: TcpStream,
    log: Log,
    entered: chan::Sender<()>,
}

enum ReaderMsg {
    /// Read exactly these bytes (blocks the handler until they come).
    Read(&'static [u8]),
    Num(u64),
}

impl Actor for Reader {
    type Msg = ReaderMsg;

    fn handle(&mut self, msg: ReaderMsg, _: &mut Context<Self>) {
        match msg {
            ReaderMsg::Read(expected) => {
                let _ = self.entered.send(());
                let mut buf = vec![0; expected.len()];
                self.stream.read_exact(&mut buf).expect("read the bytes");
                assert_eq!(buf, expected);
                // Marks where the read returned among the numbers.
                self.log.push(Event::Num(u64::MAX));
            }
            ReaderMsg::Num(n) => self.log.push(Event::Num(n)),
        }
    }
}

#[test]
fn a_handler_blocked_on_a_socket_read_while_its_mailbox_fills() {
    support::bounded(|| {
        const N: u64 = 10_000;
        const PAYLOAD: &[u8] = b"the socket finally delivers";
        // One worker: the blocked handler must park its fiber, not the
        // worker, or nothing below could run.
        let rt = runtime(1);
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = weft::spawn(move || TcpStream::connect(addr).unwrap());
            let (server, _) = listener.accept().unwrap();
            let mut client = client.join().unwrap();

            let log = Log::new();
            let (entered_tx, entered_rx) = chan::unbounded();
            let reader = actor::spawn(Reader {
                stream: server,
                log: log.clone(),
                entered: entered_tx,
            });
            assert!(reader.send(ReaderMsg::Read(PAYLOAD)).is_ok());
            entered_rx.recv().unwrap();
            for i in 0..N {
                assert!(reader.send(ReaderMsg::Num(i)).is_ok());
            }
            // Another actor runs meanwhile, on the only worker.
            let other_log = Log::new();
            let other = actor::spawn(Probe::new(&other_log));
            for round in 0..100u64 {
                let got = other.ask(move |r| actor_util::job(move |_, _| r.send(round)));
                assert_eq!(got, Ok(round));
            }
            weft::sleep(Duration::from_millis(20));
            assert!(
                log.nums().is_empty(),
                "nothing is handled while the read blocks"
            );
            assert!(reader.is_alive());
            println!(
                "{N} messages queued behind a handler blocked on a socket read; \
                 another actor answered 100 asks on the same (only) worker meanwhile"
            );

            client.write_all(PAYLOAD).unwrap();
            log.wait_for("every message", |e| e.len() == N as usize + 1);
            let nums = log.nums();
            assert_eq!(nums[0], u64::MAX, "the read returned first");
            assert_eq!(&nums[1..], (0..N).collect::<Vec<_>>().as_slice());

            reader.stop();
            assert_eq!(reader.join(), StopReason::Normal);
            other.stop();
            other.join();
            drop(client);
        });
    });
}

/// The same with a peer that closes instead of writing: the read returns
/// 0 (end of file), and the 1,000 queued messages follow, in order.
#[test]
fn a_read_that_ends_at_eof_releases_the_queue_too() {
    support::bounded(|| {
        const N: u64 = 1_000;
        let rt = runtime(2);
        rt.block_on(|| {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let client = weft::spawn(move || TcpStream::connect(addr).unwrap());
            let (server, _) = listener.accept().unwrap();
            let client = client.join().unwrap();

            struct Eof(TcpStream, Log);
            impl Actor for Eof {
                type Msg = Option<u64>;
                fn handle(&mut self, msg: Option<u64>, _: &mut Context<Self>) {
                    match msg {
                        None => {
                            let mut buf = [0u8; 16];
                            let n = self.0.read(&mut buf).expect("EOF is not an error");
                            self.1.push(Event::Num(1_000_000 + n as u64));
                        }
                        Some(i) => self.1.push(Event::Num(i)),
                    }
                }
            }
            let log = Log::new();
            let eof = actor::spawn(Eof(server, log.clone()));
            eof.send(None).unwrap();
            for i in 0..N {
                eof.send(Some(i)).unwrap();
            }
            weft::sleep(Duration::from_millis(10));
            assert!(log.nums().is_empty());
            drop(client);
            log.wait_for("every message", |e| e.len() == N as usize + 1);
            let nums = log.nums();
            assert_eq!(nums[0], 1_000_000, "read returned 0 at EOF");
            assert_eq!(&nums[1..], (0..N).collect::<Vec<_>>().as_slice());
            eof.stop();
            eof.join();
        });
    });
}

//! A TCP echo server: one fiber per connection, each a plain blocking
//! read/write loop.
//!
//! Run: `cargo run --release --example echo_server -- [ADDR] [--workers N] [--migrate]`
//! (default `127.0.0.1:7000`, one worker per CPU). It serves until killed;
//! drive it with `cargo run --release --example loadgen -- echo 127.0.0.1:7000`.

use std::io::{Read, Write};

use weft::net::{TcpListener, TcpStream};

fn main() {
    let args = Args::parse();
    let mut builder = weft::Runtime::builder().workers(args.workers);
    if args.migrate {
        // SAFETY: the handlers keep no thread-local references, std guards
        // or !Send values across blocking points.
        builder = unsafe { builder.migrate_started_fibers(true) };
    }
    let rt = builder.build().expect("start the runtime");
    let listener = TcpListener::bind(&args.addr).expect("bind");
    println!(
        "echo server on {} ({} workers)",
        listener.local_addr().expect("local address"),
        args.workers
    );
    rt.block_on(move || {
        for conn in listener.incoming() {
            match conn {
                Ok(conn) => {
                    weft::spawn(move || serve(conn));
                }
                Err(err) => eprintln!("accept: {err}"),
            }
        }
    });
}

/// Echoes until the peer closes (or errs).
fn serve(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if conn.write_all(&buf[..n]).is_err() {
            return;
        }
    }
}

struct Args {
    addr: String,
    workers: usize,
    /// `--migrate`: the unsafe opt-in that lets started fibers move.
    migrate: bool,
}

impl Args {
    fn parse() -> Args {
        let mut args = Args {
            addr: "127.0.0.1:7000".to_owned(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            migrate: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--workers" => {
                    args.workers = it.next().and_then(|v| v.parse().ok()).expect("--workers N")
                }
                "--migrate" => args.migrate = true,
                _ => args.addr = arg,
            }
        }
        args
    }
}

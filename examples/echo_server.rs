//! A TCP echo server: one fiber per connection, each a plain blocking
//! read/write loop.
//!
//! Run: `cargo run --release --example echo_server -- [ADDR] [--workers N] [--migrate]`
//! (default `127.0.0.1:7000`, one worker per CPU). It serves until killed;
//! drive it with `cargo run --release --example loadgen -- echo 127.0.0.1:7000`.

mod server;

use std::io::{Read, Write};

use weft::net::TcpStream;

fn main() {
    let server = server::Server::start("127.0.0.1:7000");
    println!(
        "echo server on {} ({} workers)",
        server.local_addr(),
        server.workers()
    );
    server.serve(serve);
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

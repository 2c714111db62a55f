//! An HTTP/1.1 "hello world" server with keep-alive and pipelining:
//! minimal parsing (a request ends at its blank line; bodies are not
//! supported), enough for wrk and for weft's load generator.
//!
//! Run: `cargo run --release --example http_hello -- [ADDR] [--workers N] [--migrate]`
//! (default `127.0.0.1:8080`). Then `wrk -t2 -c100 -d10s http://127.0.0.1:8080/`
//! or `cargo run --release --example loadgen -- http 127.0.0.1:8080`.

mod server;

use std::io::{Read, Write};

use weft::net::TcpStream;

const RESPONSE: &[u8] =
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, world!";

fn main() {
    let server = server::Server::start("127.0.0.1:8080");
    println!(
        "http server on http://{}/ ({} workers)",
        server.local_addr(),
        server.workers()
    );
    server.serve(serve);
}

/// Answers every complete request in the buffer, then reads more, until
/// the peer closes or asks to (`Connection: close`).
fn serve(mut conn: TcpStream) {
    let _ = conn.set_nodelay(true);
    let mut buf = vec![0u8; 8 * 1024];
    let mut filled = 0;
    let mut out = Vec::with_capacity(4 * RESPONSE.len());
    loop {
        let n = match conn.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let mut start = 0;
        let mut close = false;
        while let Some(end) = find_blank_line(&buf[start..filled]) {
            let head = &buf[start..start + end];
            close |= wants_close(head);
            out.extend_from_slice(RESPONSE);
            start += end + 4;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
        if filled == buf.len() {
            return; // a request head larger than the buffer: refuse it
        }
        if !out.is_empty() {
            if conn.write_all(&out).is_err() {
                return;
            }
            out.clear();
        }
        if close {
            return;
        }
    }
}

fn find_blank_line(bytes: &[u8]) -> Option<usize> {
    bytes.windows(4).position(|w| w == b"\r\n\r\n")
}

fn wants_close(head: &[u8]) -> bool {
    let has = |needle: &[u8]| {
        head.windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
    };
    // HTTP/1.0 closes unless asked to keep alive; 1.1 keeps alive unless asked to close.
    if head.windows(8).any(|w| w == b"HTTP/1.0") {
        !has(b"connection: keep-alive")
    } else {
        has(b"connection: close")
    }
}

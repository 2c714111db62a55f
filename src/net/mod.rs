//! Sockets that block the fiber, not the worker: [`TcpListener`],
//! [`TcpStream`], [`UdpSocket`], [`UnixListener`], [`UnixStream`],
//! [`UnixDatagram`].
//!
//! They mirror `std::net` and `std::os::unix::net`, and implement
//! `std::io::Read`/`Write`, also for `&T`, so one fiber can read a socket
//! while another writes it (or many fibers read it). Under them is one
//! reactor per runtime (a `mio::Poll`, see `reactor.rs`): an operation
//! tries its syscall first and parks the calling fiber only when the
//! syscall says `WouldBlock` (or, for a stream, when the previous read or
//! write came back short, which says the same, and nothing happened
//! since); the reactor unparks it when the socket becomes ready.
//!
//! ```
//! use std::io::{Read, Write};
//! use weft::net::{TcpListener, TcpStream};
//!
//! weft::run(|| {
//!     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
//!     let addr = listener.local_addr().unwrap();
//!     let server = weft::spawn(move || {
//!         let (mut conn, _) = listener.accept().unwrap();
//!         let mut buf = [0; 5];
//!         conn.read_exact(&mut buf).unwrap();
//!         conn.write_all(&buf).unwrap(); // echo
//!     });
//!     let mut client = TcpStream::connect(addr).unwrap();
//!     client.write_all(b"hello").unwrap();
//!     let mut reply = [0; 5];
//!     client.read_exact(&mut reply).unwrap();
//!     assert_eq!(&reply, b"hello");
//!     server.join().unwrap();
//! });
//! ```
//!
//! # Where a socket can be used
//!
//! - **On a runtime** (in a fiber, or on one of its worker or blocking-pool
//!   threads): the socket registers itself with that runtime's reactor the
//!   first time it is used there, and from then on its operations park the
//!   fiber, never the worker.
//! - **From a plain thread while its runtime runs**: a registered socket
//!   parks the calling *thread* instead (`std::thread::park`), and the
//!   reactor unparks it. It still works; it just costs a thread.
//! - **With no runtime at all**: a socket made and used only off any
//!   runtime never registers; it is an ordinary blocking std socket and
//!   behaves exactly as std's does (this is weft's answer to "fiber I/O
//!   outside a fiber": the std behaviour, not a panic). So a listener may
//!   be bound in `main` and then moved into `Runtime::block_on`.
//! - **After its runtime shut down**: an operation that can complete at
//!   once still does; one that would have to wait fails with an error
//!   (`ErrorKind::Other`) saying the runtime has shut down.
//!
//! Name resolution does not block the worker: the sockets take weft's
//! [`ToSocketAddrs`], implemented for the same types as std's, which
//! resolves a host name (`"localhost:80"`, `("example.com", 443)`) on the
//! runtime's blocking pool and uses an address at once (see its doc).
//!
//! # Timeouts
//!
//! `set_read_timeout`/`set_write_timeout` and [`TcpStream::connect_timeout`]
//! are deadlines on the park (weft's timers): an operation that has not
//! completed when its timeout has passed since it started fails with
//! `ErrorKind::TimedOut` (std reports `WouldBlock` on Linux; weft says
//! what happened, in both modes). A timeout is per handle: a
//! [`try_clone`](TcpStream::try_clone) starts with the original's timeouts
//! and then has its own.
//!
//! # SIGPIPE
//!
//! Writing to a peer that has gone never kills the process: every stream
//! write, vectored or not, TCP or Unix, is a `send`/`sendmsg` with
//! `MSG_NOSIGNAL`, and fails with `BrokenPipe` or `ConnectionReset`.
//! (std's `write_vectored` is a plain `writev`, which raises SIGPIPE; weft
//! does not use it.) weft leaves the process's SIGPIPE disposition alone.
//!
//! # Running out of descriptors
//!
//! `accept` never returns `EMFILE`, `ENFILE`, `ENOBUFS` or `ENOMEM`: it logs
//! the error to stderr (at most once a second for the whole process),
//! sleeps (5 ms, doubling up to 1 s, as Go's `net/http` does) and tries
//! again, so an accept loop neither spins nor stops, and resumes by itself
//! when descriptors free up. The retry is a timer, not a readiness wait:
//! the connections waiting in the backlog produce no new edge for an
//! edge-triggered poller. `ECONNABORTED` and `EINTR` are retried at once.
//! A listener in non-blocking mode returns these errors instead.

mod addr;
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault;
mod macros;
mod reactor;
mod registration;
mod source;
mod sys;
mod tcp;
mod udp;
mod unix;
mod unix_datagram;

pub use self::addr::{Addrs, ToSocketAddrs};
pub(crate) use self::reactor::Reactor;
pub use self::tcp::{Incoming, TcpListener, TcpStream};
pub use self::udp::UdpSocket;
pub use self::unix::{UnixIncoming, UnixListener, UnixStream};
pub use self::unix_datagram::UnixDatagram;

use std::io;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use self::registration::Direction;
use self::source::Source;

/// The first back-off after a descriptor shortage in `accept`.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(5);
/// The longest back-off.
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// The accept loop shared by the listeners (see "Running out of
/// descriptors" in the module doc).
fn accept_with_backoff<L: std::os::fd::AsRawFd, T>(
    source: &Source<L>,
    mut accept: impl FnMut(&L) -> io::Result<T>,
) -> io::Result<T> {
    let nonblocking = source.is_nonblocking();
    let mut delay = ACCEPT_BACKOFF_MIN;
    loop {
        let accepted = source.do_io(Direction::Read, |listener| {
            #[cfg(feature = "fault-injection")]
            fault::accept(source)?;
            accept(listener)
        });
        match accepted {
            Ok(accepted) => return Ok(accepted),
            Err(err) if sys::is_connection_aborted(&err) => continue,
            Err(err) if sys::is_resource_exhausted(&err) && !nonblocking => {
                #[cfg(feature = "fault-injection")]
                fault::backoff(source);
                log_accept_backoff(&err, delay);
                crate::sleep(delay);
                if let Ok(Some(reg)) = source.registration()
                    && reg.reactor.is_shutdown()
                {
                    return Err(registration::after_shutdown());
                }
                delay = (delay * 2).min(ACCEPT_BACKOFF_MAX);
            }
            Err(err) => return Err(err),
        }
    }
}

/// Logs an accept back-off, at most once a second in the process.
fn log_accept_backoff(err: &io::Error, delay: Duration) {
    static LAST: Mutex<Option<Instant>> = Mutex::new(None);
    let mut last = LAST.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let now = Instant::now();
    if last.is_none_or(|at| now.duration_since(at) >= Duration::from_secs(1)) {
        *last = Some(now);
        eprintln!("weft: accept error: {err}; retrying in {delay:?}");
    }
}

/// The number of events the current runtime's reactor has dispatched
/// (`None` off a runtime): a window into the reactor for tests and
/// metrics.
///
/// ```
/// weft::run(|| {
///     assert!(weft::net::reactor_events().is_some());
/// });
/// assert!(weft::net::reactor_events().is_none());
/// ```
pub fn reactor_events() -> Option<u64> {
    Reactor::current().map(|r| r.events_dispatched())
}

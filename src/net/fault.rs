//! Scripted errno injection for the network tests (TESTING.md 6.9, in the
//! style of Go's `socktest`): compiled only with the `fault-injection`
//! cargo feature, which is off by default.
//!
//! **Not part of weft's API.** The module is `#[doc(hidden)] pub` only so
//! that integration tests (`tests/net_errno_injection.rs`) can reach it,
//! and it exists only under the feature: a build without the feature has
//! neither this module nor its hooks, which are `#[cfg]`-ed out at their
//! call sites.
//!
//! # How it works
//!
//! A test arms an [`Injector`] on one socket (by fd, so other sockets of
//! the same process, such as the client side of a loopback pair, are left
//! alone) and queues, per operation, the outcomes that the next attempts
//! of that operation get. The hooks sit inside the syscall closures that
//! the I/O loop runs, so an injected outcome meets exactly the code a real
//! one would:
//!
//! - [`Op::Accept`]: the closure `accept_with_backoff` (in `net/mod.rs`)
//!   hands to `Source::do_io`, for `TcpListener::accept` and
//!   `UnixListener::accept`. `EINTR` is retried by the I/O loop, `EAGAIN`
//!   clears the readiness and parks, `ECONNABORTED` is retried by
//!   `accept_with_backoff`, and `EMFILE`, `ENFILE`, `ENOBUFS` and `ENOMEM`
//!   go to its back-off (which the hook counts: [`Injector::backoffs`]).
//! - [`Op::Read`] and [`Op::Write`]: the closures of `Read::read`,
//!   `Read::read_vectored`, `Write::write` and `Write::write_vectored` on
//!   `TcpStream` and `UnixStream` (so also `read_exact`, `write_all`), run
//!   by `Source::do_stream_io`; and, through `Source::do_scripted_io`,
//!   `TcpStream::peek` ([`Op::Read`]) and the datagram sockets' calls
//!   (`UdpSocket` and `UnixDatagram`: `recv`, `recv_from`, `peek_from`
//!   are [`Op::Read`], `send` and `send_to` [`Op::Write`]). Connects are
//!   not hooked.
//!
//! An attempt of an armed operation whose queue is empty makes the real
//! syscall; every attempt, injected or real, is counted
//! ([`Injector::attempts`]), which is how a test sees a fiber parked
//! rather than spinning.
//!
//! # The outcomes
//!
//! - [`Fault::Errno`]: the syscall "fails" with that errno; nothing else
//!   happens. An injected `EAGAIN` is indistinguishable from the kernel's,
//!   so the operation parks until the next readiness event: a test injects
//!   it when no data (or connection) is pending, as the kernel would.
//! - [`Fault::SpuriousReadiness`]: the syscall fails with `EAGAIN`, and
//!   the socket is reported ready in that direction anyway, as a spurious
//!   epoll event would be: the dispatch the reactor does for an event
//!   (readiness bits, tick, waking the direction's waiters) runs for it.
//!   It lands between the I/O loop's readiness snapshot and its clear, so
//!   the loop must neither fail nor park on it, but try the syscall again,
//!   get the kernel's own `EAGAIN`, and park.
//! - [`Fault::ShortWrite`] (writes only): the write sends only the first
//!   byte of its buffer. A real short write means the send buffer is full,
//!   and the kernel reports write readiness once it has room again; the
//!   I/O loop relies on that (it marks the socket not writable after a
//!   short write). A 1-byte write out of a buffer with room would get no
//!   such event, so the injector also reports write readiness, as the
//!   kernel would have, instead of leaving the writer parked on an event
//!   the kernel has no reason to send.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicUsize, Ordering};

use parking_lot::Mutex;

use super::registration::Direction;
use super::source::Source;

/// An operation that can be scripted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `accept` on a listener.
    Accept,
    /// A stream's reads, a peek, a datagram's receives.
    Read,
    /// A stream's writes, a datagram's sends.
    Write,
}

impl Op {
    /// The readiness the operation waits for.
    fn direction(self) -> Direction {
        match self {
            Op::Accept | Op::Read => Direction::Read,
            Op::Write => Direction::Write,
        }
    }
}

/// One scripted outcome (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// The syscall fails with this errno (`libc::EINTR`, ...).
    Errno(i32),
    /// The syscall fails with `EAGAIN`, and a readiness event that no data
    /// backs is reported for the socket.
    SpuriousReadiness,
    /// The write sends one byte of its buffer (writes only).
    ShortWrite,
}

/// The script and counters of one armed socket.
#[derive(Debug, Default)]
struct Script {
    queues: HashMap<Op, VecDeque<Fault>>,
    attempts: HashMap<Op, usize>,
    hits: HashMap<(Op, Fault), usize>,
    backoffs: usize,
}

/// The armed sockets, by fd.
static SCRIPTS: Mutex<Option<HashMap<RawFd, Script>>> = Mutex::new(None);
/// How many sockets are armed: with none, a hook returns without locking.
static ARMED: AtomicUsize = AtomicUsize::new(0);

/// Runs `f` on the script of `fd`, if `fd` is armed.
fn with_script<R>(fd: RawFd, f: impl FnOnce(&mut Script) -> R) -> Option<R> {
    // Relaxed: a socket is armed before the operations it scripts start
    // (the test arms it, then starts them), and the lock orders the rest.
    if ARMED.load(Ordering::Relaxed) == 0 {
        return None;
    }
    SCRIPTS.lock().as_mut()?.get_mut(&fd).map(f)
}

/// Scripted faults for one socket, and what became of them. Dropping it
/// disarms the socket (its remaining script is discarded).
///
/// ```
/// use weft::net::fault::{Fault, Injector, Op};
///
/// let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
/// let injector = Injector::arm(&listener);
/// injector.push(Op::Accept, [Fault::Errno(libc::ECONNABORTED)]);
/// assert_eq!(injector.pending(Op::Accept), 1);
/// ```
#[derive(Debug)]
pub struct Injector {
    fd: RawFd,
}

impl Injector {
    /// Arms `socket` (an unarmed socket makes only real syscalls). The
    /// script follows the fd number: keep the socket open while it is
    /// armed.
    ///
    /// # Panics
    ///
    /// If the socket's fd is armed already.
    pub fn arm(socket: &impl AsRawFd) -> Injector {
        let fd = socket.as_raw_fd();
        let mut scripts = SCRIPTS.lock();
        let previous = scripts
            .get_or_insert_with(HashMap::new)
            .insert(fd, Script::default());
        assert!(previous.is_none(), "fd {fd} is armed already");
        ARMED.fetch_add(1, Ordering::Relaxed);
        Injector { fd }
    }

    /// Queues `faults`, in order, for the next attempts of `op`.
    ///
    /// # Panics
    ///
    /// If a [`Fault::ShortWrite`] is queued for an operation other than
    /// [`Op::Write`].
    pub fn push(&self, op: Op, faults: impl IntoIterator<Item = Fault>) {
        let faults: Vec<Fault> = faults.into_iter().collect();
        assert!(
            op == Op::Write || !faults.contains(&Fault::ShortWrite),
            "a short write is a write's outcome, not {op:?}'s"
        );
        self.with(|script| script.queues.entry(op).or_default().extend(faults));
    }

    /// How many attempts of `op` have met `fault`.
    pub fn hits(&self, op: Op, fault: Fault) -> usize {
        self.with(|script| script.hits.get(&(op, fault)).copied().unwrap_or(0))
    }

    /// How many times the I/O loop has attempted `op` (injected outcomes
    /// and real syscalls alike).
    pub fn attempts(&self, op: Op) -> usize {
        self.with(|script| script.attempts.get(&op).copied().unwrap_or(0))
    }

    /// How many queued faults of `op` are still to come.
    pub fn pending(&self, op: Op) -> usize {
        self.with(|script| script.queues.get(&op).map_or(0, VecDeque::len))
    }

    /// How many times `accept` backed off (slept before retrying) after a
    /// descriptor or memory shortage on this listener.
    pub fn backoffs(&self) -> usize {
        self.with(|script| script.backoffs)
    }

    fn with<R>(&self, f: impl FnOnce(&mut Script) -> R) -> R {
        let mut scripts = SCRIPTS.lock();
        let script = scripts
            .as_mut()
            .and_then(|scripts| scripts.get_mut(&self.fd))
            .expect("an Injector's fd stays armed until it is dropped");
        f(script)
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        if let Some(scripts) = SCRIPTS.lock().as_mut() {
            scripts.remove(&self.fd);
        }
        ARMED.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The hook of `accept`: the scripted error, if any.
pub(crate) fn accept<S: AsRawFd>(source: &Source<S>) -> io::Result<()> {
    strike(source, Op::Accept).map(drop)
}

/// The hook of `read`: the scripted error, if any.
pub(crate) fn read<S: AsRawFd>(source: &Source<S>) -> io::Result<()> {
    strike(source, Op::Read).map(drop)
}

/// The hook of `write`: the scripted error, or the part of `buf` to send
/// (its first byte, for a short write).
pub(crate) fn write<'a, S: AsRawFd>(source: &Source<S>, buf: &'a [u8]) -> io::Result<&'a [u8]> {
    Ok(match strike(source, Op::Write)? {
        Some(Fault::ShortWrite) => &buf[..buf.len().min(1)],
        _ => buf,
    })
}

/// The hook of `write_vectored`: the scripted error, or, for a short
/// write, the one byte to send instead of the buffers (the first byte of
/// the first non-empty one); `None`: send the buffers.
pub(crate) fn write_vectored<'b, S: AsRawFd>(
    source: &Source<S>,
    bufs: &'b [io::IoSlice<'_>],
) -> io::Result<Option<&'b [u8]>> {
    Ok(match strike(source, Op::Write)? {
        Some(Fault::ShortWrite) => bufs.iter().find(|buf| !buf.is_empty()).map(|buf| &buf[..1]),
        _ => None,
    })
}

/// The hook of a datagram's send or receive and of a peek
/// (`Source::do_scripted_io`): the scripted error, if any.
///
/// # Panics
///
/// On a [`Fault::ShortWrite`]: a datagram is sent whole or not at all.
pub(crate) fn message<S: AsRawFd>(source: &Source<S>, direction: Direction) -> io::Result<()> {
    let op = match direction {
        Direction::Read => Op::Read,
        Direction::Write => Op::Write,
    };
    match strike(source, op)? {
        Some(Fault::ShortWrite) => {
            panic!("Fault::ShortWrite is for streams: a datagram is sent whole")
        }
        _ => Ok(()),
    }
}

/// The hook of `accept_with_backoff`'s back-off.
pub(crate) fn backoff<S: AsRawFd>(source: &Source<S>) {
    with_script(source.fd(), |script| script.backoffs += 1);
}

/// Counts an attempt of `op` on `source` and plays its next scripted
/// fault: `Err` for an errno or a spurious readiness, `Ok(Some(..))` for a
/// short write (the caller cuts its buffer), `Ok(None)` for the real
/// syscall.
fn strike<S: AsRawFd>(source: &Source<S>, op: Op) -> io::Result<Option<Fault>> {
    let fault = with_script(source.fd(), |script| {
        *script.attempts.entry(op).or_default() += 1;
        let fault = script.queues.get_mut(&op)?.pop_front()?;
        *script.hits.entry((op, fault)).or_default() += 1;
        Some(fault)
    })
    .flatten();
    match fault {
        None => Ok(None),
        Some(Fault::Errno(errno)) => Err(io::Error::from_raw_os_error(errno)),
        Some(Fault::SpuriousReadiness) => {
            report_ready(source, op.direction());
            Err(io::Error::from_raw_os_error(libc::EAGAIN))
        }
        Some(Fault::ShortWrite) => {
            report_ready(source, Direction::Write);
            Ok(fault)
        }
    }
}

/// Does what the reactor does for an event saying `source` is ready in
/// `direction`: sets the readiness (moving the tick) and wakes the
/// direction's waiters.
fn report_ready<S: AsRawFd>(source: &Source<S>, direction: Direction) {
    if let Ok(Some(reg)) = source.registration() {
        let mut woken = Vec::new();
        reg.io.set_ready(direction.bits(), &mut woken);
        for fiber in woken {
            fiber.unpark();
        }
    }
}

//! [`Source`]: a std socket plus its (lazy) registration, timeouts and
//! the operation loop every socket type shares.
//!
//! # Two modes
//!
//! - *Registered*: the fd is non-blocking and registered with a runtime's
//!   reactor. An operation tries the syscall first and parks the caller
//!   (a fiber, or a plain thread) only on `WouldBlock`; timeouts are
//!   deadlines on the park. One refinement: when the last syscall in that
//!   direction already said the socket was drained (`WouldBlock`, or a
//!   short stream read or write) and no event has come since, the next
//!   operation parks first instead of asking again (see
//!   [`Source::do_stream_io`]).
//! - *Unregistered*: the socket was made, and so far only used, off any
//!   runtime. It is a plain blocking std socket and behaves exactly as
//!   std's (timeouts are `SO_RCVTIMEO`/`SO_SNDTIMEO`).
//!
//! A socket registers itself the first time it is used on a thread that
//! belongs to a runtime (a fiber, a worker, a blocking-pool thread): a
//! listener bound in `main` and moved into `Runtime::block_on` parks its
//! fibers, not its workers. It stays with that reactor until it is
//! dropped; after that runtime shuts down, an operation that would have
//! to wait fails with an error saying so.

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::reactor::Reactor;
use super::registration::{Direction, Registration, timed_out_error};
use super::sys;

/// A socket of type `S` and its registration.
#[derive(Debug)]
pub(crate) struct Source<S: AsRawFd> {
    /// Declared before `sock`: dropped (deregistered) before the fd closes.
    reg: OnceLock<Registration>,
    /// Serialises the first registration.
    registering: Mutex<()>,
    read_timeout: AtomicU64,
    write_timeout: AtomicU64,
    /// `set_nonblocking(true)`: operations return `WouldBlock`, never park.
    nonblocking: AtomicBool,
    sock: S,
}

/// Timeouts are stored as nanoseconds; 0 is "none" (std refuses a zero
/// timeout, so it never needs a representation).
fn encode(timeout: Option<Duration>) -> u64 {
    timeout.map_or(0, |t| {
        u64::try_from(t.as_nanos()).unwrap_or(u64::MAX).max(1)
    })
}

fn decode(nanos: u64) -> Option<Duration> {
    (nanos != 0).then(|| Duration::from_nanos(nanos))
}

/// std's error for a zero timeout, word for word.
pub(crate) fn check_timeout(timeout: Option<Duration>) -> io::Result<()> {
    if timeout == Some(Duration::ZERO) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

impl<S: AsRawFd> Source<S> {
    /// Wraps `sock` unregistered; it registers on first use on a runtime.
    pub(crate) fn new(sock: S) -> Source<S> {
        Source {
            reg: OnceLock::new(),
            registering: Mutex::new(()),
            read_timeout: AtomicU64::new(0),
            write_timeout: AtomicU64::new(0),
            nonblocking: AtomicBool::new(false),
            sock,
        }
    }

    /// Wraps `sock` and registers it with `reactor` at once (it must be
    /// non-blocking already, as a socket mid-connect is).
    pub(crate) fn registered(sock: S, reactor: std::sync::Arc<Reactor>) -> io::Result<Source<S>> {
        let source = Source::new(sock);
        let reg = Registration::new(reactor, source.sock.as_raw_fd())?;
        let _ = source.reg.set(reg);
        Ok(source)
    }

    /// The std socket.
    pub(crate) fn get(&self) -> &S {
        &self.sock
    }

    /// The registration, registering now if this thread is on a runtime
    /// and the socket is not registered yet.
    pub(crate) fn registration(&self) -> io::Result<Option<&Registration>> {
        if let Some(reg) = self.reg.get() {
            return Ok(Some(reg));
        }
        let Some(reactor) = Reactor::current() else {
            return Ok(None);
        };
        let _guard = self.registering.lock();
        if self.reg.get().is_none() {
            let fd = self.sock.as_raw_fd();
            sys::set_nonblocking(fd, true)?;
            match Registration::new(reactor, fd) {
                Ok(reg) => {
                    let _ = self.reg.set(reg);
                }
                Err(err) => {
                    let _ = sys::set_nonblocking(fd, self.nonblocking.load(Ordering::Relaxed));
                    return Err(err);
                }
            }
        }
        Ok(self.reg.get())
    }

    /// Runs `op` on the socket until it does not say `WouldBlock`, parking
    /// the caller in between (see the module doc); `EINTR` is retried.
    pub(crate) fn do_io<R>(
        &self,
        direction: Direction,
        op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.do_io_until_drained(direction, op, |_| false)
    }

    /// [`do_io`](Self::do_io) for a datagram's send or receive, or a peek:
    /// with the `fault-injection` feature, `op` meets the socket's
    /// scripted faults first (`net::fault`, TESTING.md 6.9), as the stream
    /// reads and writes do; without it, `do_io` itself.
    pub(crate) fn do_scripted_io<R>(
        &self,
        direction: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        self.do_io(direction, |s| {
            #[cfg(feature = "fault-injection")]
            super::fault::message(self, direction)?;
            op(s)
        })
    }

    /// [`do_io`](Self::do_io) for a stream read or write of `len` bytes: a
    /// short transfer (`0 < n < len`) is the kernel saying the receive
    /// buffer is now empty (or the send buffer full), so the direction is
    /// marked not ready, as `WouldBlock` would have; the next operation
    /// then parks at once, unless an event came since, instead of making a
    /// syscall that would only say `WouldBlock` (tokio and may do the same:
    /// it saves one `recv` per request-response round trip).
    pub(crate) fn do_stream_io(
        &self,
        direction: Direction,
        len: usize,
        op: impl FnMut(&S) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if len == 0 {
            // As std: an empty buffer transfers nothing, at once.
            return Ok(0);
        }
        self.do_io_until_drained(direction, op, |&n| n > 0 && n < len)
    }

    /// The operation loop. The syscall is tried first, unless the last
    /// one on this direction proved it not ready (`WouldBlock`, or a short
    /// stream transfer) and no event has come since: then the caller
    /// parks first. A fresh registration counts as ready.
    fn do_io_until_drained<R>(
        &self,
        direction: Direction,
        mut op: impl FnMut(&S) -> io::Result<R>,
        drained: impl Fn(&R) -> bool,
    ) -> io::Result<R> {
        let reg = loop {
            match self.registration()? {
                Some(reg) => break reg,
                None => match self.do_blocking(direction, &mut op) {
                    // Another thread registered the socket (made it
                    // non-blocking) while this one was using it as a std
                    // socket: go on in the registered mode.
                    Err(err)
                        if err.kind() == io::ErrorKind::WouldBlock && self.reg.get().is_some() => {}
                    result => return result,
                },
            }
        };
        let nonblocking = self.nonblocking.load(Ordering::Relaxed);
        let mut deadline: Option<Option<Instant>> = None;
        loop {
            let snapshot = reg.io.snapshot();
            if nonblocking || reg.io.is_ready_in(direction, snapshot) {
                match op(&self.sock) {
                    Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                    Ok(done) => {
                        if drained(&done) {
                            reg.io.clear(direction, snapshot);
                        }
                        return Ok(done);
                    }
                    Err(err) => return Err(err),
                }
                if nonblocking {
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                reg.io.clear(direction, snapshot);
            }
            let deadline = *deadline.get_or_insert_with(|| {
                self.timeout(direction)
                    .and_then(|t| Instant::now().checked_add(t))
            });
            reg.wait(direction, deadline)?;
        }
    }

    /// The unregistered mode: std's blocking call, with std's `WouldBlock`
    /// on a timeout reported as `TimedOut`, as the registered mode does.
    fn do_blocking<R>(
        &self,
        direction: Direction,
        op: &mut impl FnMut(&S) -> io::Result<R>,
    ) -> io::Result<R> {
        loop {
            match op(&self.sock) {
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // Registered meanwhile by another thread: the caller retries.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock && self.reg.get().is_some() => {
                    return Err(err);
                }
                Err(err)
                    if err.kind() == io::ErrorKind::WouldBlock
                        && !self.nonblocking.load(Ordering::Relaxed)
                        && self.timeout(direction).is_some() =>
                {
                    return Err(timed_out_error(direction));
                }
                result => return result,
            }
        }
    }

    /// After a check that found the socket not ready (`snapshot` taken
    /// before it), waits until `direction` is ready or `deadline` passes
    /// (used by connect).
    ///
    /// # Panics
    ///
    /// If the source is not registered (a broken invariant of connect).
    pub(crate) fn wait_ready(
        &self,
        direction: Direction,
        snapshot: usize,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        let reg = self.reg.get().expect("connect registers first");
        reg.io.clear(direction, snapshot);
        reg.wait(direction, deadline)
    }

    /// The readiness snapshot (registered sources only).
    pub(crate) fn snapshot(&self) -> usize {
        self.reg.get().map_or(0, |reg| reg.io.snapshot())
    }

    /// The timeout of `direction` (`None`: wait forever).
    pub(crate) fn timeout(&self, direction: Direction) -> Option<Duration> {
        decode(self.timeout_slot(direction).load(Ordering::Relaxed))
    }

    /// `set_read_timeout`/`set_write_timeout`: refuses a zero timeout (as
    /// std does), sets it on the fd with `set_on_fd` (std's setter:
    /// `SO_RCVTIMEO`/`SO_SNDTIMEO`, for the unregistered mode and for
    /// `into_std`), then records it for the parks of the registered mode.
    pub(crate) fn set_timeout(
        &self,
        direction: Direction,
        timeout: Option<Duration>,
        set_on_fd: impl FnOnce(&S) -> io::Result<()>,
    ) -> io::Result<()> {
        check_timeout(timeout)?;
        set_on_fd(&self.sock)?;
        self.timeout_slot(direction)
            .store(encode(timeout), Ordering::Relaxed);
        Ok(())
    }

    fn timeout_slot(&self, direction: Direction) -> &AtomicU64 {
        match direction {
            Direction::Read => &self.read_timeout,
            Direction::Write => &self.write_timeout,
        }
    }

    /// `set_nonblocking`: registered sockets keep `O_NONBLOCK` and only
    /// stop parking; unregistered ones change the fd's mode too.
    pub(crate) fn set_nonblocking(&self, nonblocking: bool) -> io::Result<()> {
        let _guard = self.registering.lock();
        if self.reg.get().is_none() {
            sys::set_nonblocking(self.sock.as_raw_fd(), nonblocking)?;
        }
        self.nonblocking.store(nonblocking, Ordering::Relaxed);
        Ok(())
    }

    /// Whether `set_nonblocking(true)` is in force.
    pub(crate) fn is_nonblocking(&self) -> bool {
        self.nonblocking.load(Ordering::Relaxed)
    }

    /// `try_clone`: another source on the socket `clone_sock` duplicates
    /// (std's `try_clone`), unregistered, starting with this one's
    /// timeouts and non-blocking flag.
    pub(crate) fn try_clone(
        &self,
        clone_sock: impl FnOnce(&S) -> io::Result<S>,
    ) -> io::Result<Source<S>> {
        let clone = Source::new(clone_sock(&self.sock)?);
        for direction in [Direction::Read, Direction::Write] {
            clone.timeout_slot(direction).store(
                self.timeout_slot(direction).load(Ordering::Relaxed),
                Ordering::Relaxed,
            );
        }
        clone
            .nonblocking
            .store(self.is_nonblocking(), Ordering::Relaxed);
        Ok(clone)
    }

    /// The source of a socket `accept` returned on this listening one:
    /// registered with the listener's reactor if the listener is
    /// registered, else a plain blocking std socket.
    pub(crate) fn accepted<T: AsRawFd>(&self, sock: T) -> io::Result<Source<T>> {
        match self.registration()? {
            Some(reg) => {
                sys::set_nonblocking(sock.as_raw_fd(), true)?;
                Source::registered(sock, reg.reactor.clone())
            }
            None => Ok(Source::new(sock)),
        }
    }

    /// Deregisters and returns the std socket, blocking again unless
    /// `set_nonblocking(true)` was asked for.
    pub(crate) fn into_inner(self) -> S {
        let Source {
            reg,
            sock,
            nonblocking,
            ..
        } = self;
        if reg.into_inner().is_some() {
            // The registration is dropped (deregistered) above; restore
            // the mode std code expects. fcntl on our own open fd cannot
            // fail in a way the caller could act on.
            let _ = sys::set_nonblocking(sock.as_raw_fd(), nonblocking.into_inner());
        }
        sock
    }

    /// The fd.
    pub(crate) fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

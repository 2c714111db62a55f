//! Per-socket readiness and the fibers waiting for it.
//!
//! # The readiness word
//!
//! A [`ScheduledIo`] keeps one atomic word: readiness bits in the low
//! byte (`READABLE`, `WRITABLE`, `READ_CLOSED`) and a *tick* above them
//! that every event for the socket moves on. mio is edge-triggered: an
//! event says "the socket became ready", once, and the next event comes
//! only after the socket was drained to `WouldBlock`. So:
//!
//! 1. an operation reads the word (a *snapshot*), then tries the syscall
//!    if the snapshot says its direction is ready (a fresh registration
//!    is ready both ways);
//! 2. on `WouldBlock` (or a short stream transfer, which says the same:
//!    see `source.rs`) it clears its direction's bit, but only if the tick
//!    is still the snapshot's: an event that arrived between the snapshot
//!    and the clear (after the syscall saw no data, before the fiber
//!    parks) has moved the tick, keeps its bit, and the operation retries
//!    instead of parking on a readiness that was already spent;
//! 3. then it waits: under the waiter lock, it checks the bit again and
//!    parks only if it is still clear, after adding itself to the list.
//!
//! The dispatcher sets the bits (moving the tick) *before* it takes the
//! waiter lock, and takes every waiter of that direction under it; a
//! waiter checks the bits *after* taking the lock. Either the dispatcher
//! finds the waiter in the list, or the waiter sees the bit: no wake-up is
//! lost. `READ_CLOSED` (the peer shut its side down) is never cleared: a
//! read then returns 0 at once, forever.
//!
//! # Waiters
//!
//! Several fibers may wait on one direction of one socket (a `&TcpStream`
//! shared by many fibers): each direction has a small list, and an event
//! wakes all of its waiters, who retry their syscalls. A waiter is a
//! [`Fiber`]: off a fiber, the calling thread, which the event unparks
//! like `std::thread::Thread::unpark`.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use mio::Token;
use parking_lot::Mutex;

use super::reactor::Reactor;
use crate::fiber::{self, Fiber};

/// Reads will not block.
pub(crate) const READABLE: usize = 1 << 0;
/// Writes will not block.
pub(crate) const WRITABLE: usize = 1 << 1;
/// The peer shut its writing side down: reads return 0 (sticky).
pub(crate) const READ_CLOSED: usize = 1 << 2;
/// The tick is the word above the readiness byte.
const TICK_ONE: usize = 1 << 8;
const READY_MASK: usize = TICK_ONE - 1;

/// Which way an operation moves data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// read, recv, accept.
    Read,
    /// write, send, connect.
    Write,
}

impl Direction {
    /// The bit an event sets for this direction.
    pub(crate) fn bits(self) -> usize {
        match self {
            Direction::Read => READABLE,
            Direction::Write => WRITABLE,
        }
    }

    /// The bits that make this direction ready.
    fn ready_mask(self) -> usize {
        match self {
            Direction::Read => READABLE | READ_CLOSED,
            Direction::Write => WRITABLE,
        }
    }
}

/// The readiness and waiters of one registered socket.
#[derive(Debug)]
pub(crate) struct ScheduledIo {
    readiness: AtomicUsize,
    waiters: Mutex<Waiters>,
}

#[derive(Debug, Default)]
struct Waiters {
    readers: Vec<Fiber>,
    writers: Vec<Fiber>,
}

impl Waiters {
    fn list(&mut self, direction: Direction) -> &mut Vec<Fiber> {
        match direction {
            Direction::Read => &mut self.readers,
            Direction::Write => &mut self.writers,
        }
    }
}

impl ScheduledIo {
    /// A fresh registration counts as ready both ways: nothing has said
    /// otherwise yet, so the first operation tries its syscall.
    pub(crate) fn new() -> ScheduledIo {
        ScheduledIo {
            readiness: AtomicUsize::new(READABLE | WRITABLE),
            waiters: Mutex::new(Waiters::default()),
        }
    }

    /// The readiness word now, to pass to [`clear`](Self::clear) after the
    /// syscall. Acquire: pairs with the AcqRel update in `set_ready`.
    pub(crate) fn snapshot(&self) -> usize {
        self.readiness.load(Ordering::Acquire)
    }

    /// Dispatch: marks `ready` bits and moves the tick, then moves the
    /// waiters of the directions that became ready into `woken`.
    pub(crate) fn set_ready(&self, ready: usize, woken: &mut Vec<Fiber>) {
        // AcqRel: the waiter's load under the lock (or a snapshot) that
        // reads this write sees the event.
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                Some((word & !READY_MASK).wrapping_add(TICK_ONE) | (word & READY_MASK) | ready)
            });
        let mut waiters = self.waiters.lock();
        if ready & Direction::Read.ready_mask() != 0 {
            woken.append(&mut waiters.readers);
        }
        if ready & Direction::Write.ready_mask() != 0 {
            woken.append(&mut waiters.writers);
        }
    }

    /// The syscall said `WouldBlock`: clear `direction`'s bit, unless an
    /// event came since `snapshot` (its tick moved).
    pub(crate) fn clear(&self, direction: Direction, snapshot: usize) {
        let _ = self
            .readiness
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |word| {
                (word & !READY_MASK == snapshot & !READY_MASK).then_some(word & !direction.bits())
            });
    }

    fn is_ready(&self, direction: Direction) -> bool {
        self.is_ready_in(direction, self.readiness.load(Ordering::Acquire))
    }

    /// Whether `snapshot` says `direction` is ready.
    pub(crate) fn is_ready_in(&self, direction: Direction, snapshot: usize) -> bool {
        snapshot & direction.ready_mask() != 0
    }

    /// Parks the caller until `direction` is ready, `deadline` passes
    /// (`TimedOut`) or the reactor shuts down. May return `Ok` early: the
    /// caller retries its syscall either way.
    pub(crate) fn wait(
        &self,
        direction: Direction,
        deadline: Option<Instant>,
        reactor: &Reactor,
    ) -> io::Result<()> {
        let me = fiber::current();
        let id = me.id();
        loop {
            let timed_out = deadline.and_then(|d| {
                let left = d.saturating_duration_since(Instant::now());
                (!left.is_zero()).then_some(left)
            });
            {
                let mut waiters = self.waiters.lock();
                let ready = self.is_ready(direction);
                let shutdown = reactor.is_shutdown();
                if ready || shutdown || (deadline.is_some() && timed_out.is_none()) {
                    let list = waiters.list(direction);
                    if let Some(at) = list.iter().position(|f| f.id() == id) {
                        list.swap_remove(at);
                    }
                    drop(waiters);
                    return if ready {
                        Ok(())
                    } else if shutdown {
                        Err(after_shutdown())
                    } else {
                        Err(timed_out_error(direction))
                    };
                }
                let list = waiters.list(direction);
                if !list.iter().any(|f| f.id() == id) {
                    list.push(me.clone());
                }
            }
            match timed_out {
                Some(left) => fiber::park_timeout(left),
                None => fiber::park(),
            }
        }
    }

    /// Takes every waiter (the reactor is shutting down).
    pub(crate) fn take_all_waiters(&self, woken: &mut Vec<Fiber>) {
        let mut waiters = self.waiters.lock();
        woken.append(&mut waiters.readers);
        woken.append(&mut waiters.writers);
    }
}

/// A socket's place in a reactor. Dropping it deregisters the fd, so it
/// must be dropped before the fd is closed (the socket types declare it
/// before the fd they hold).
#[derive(Debug)]
pub(crate) struct Registration {
    pub(crate) reactor: Arc<Reactor>,
    pub(crate) io: Arc<ScheduledIo>,
    token: Token,
    fd: std::os::fd::RawFd,
}

impl Registration {
    /// Registers `fd` (already non-blocking) with `reactor`.
    pub(crate) fn new(reactor: Arc<Reactor>, fd: std::os::fd::RawFd) -> io::Result<Registration> {
        let (token, io) = reactor.register(fd)?;
        Ok(Registration {
            reactor,
            io,
            token,
            fd,
        })
    }

    /// Waits for `direction` (see [`ScheduledIo::wait`]).
    pub(crate) fn wait(&self, direction: Direction, deadline: Option<Instant>) -> io::Result<()> {
        self.io.wait(direction, deadline, &self.reactor)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.reactor.deregister(self.fd, self.token);
    }
}

/// What a wait does once its reactor has shut down. A fiber parks: its
/// worker is about to unwind it, and an error returned instead could make
/// a loop that retries on errors spin and keep its worker from shutting
/// down. A fiber already being unwound (its destructors run) returns at
/// once from `park`, and a thread never parks here: both get the error.
pub(crate) fn after_shutdown() -> io::Error {
    if crate::sched::worker::with_current(|w| w.and_then(|w| w.current_task()).is_some()) {
        fiber::park();
    }
    shut_down()
}

/// The error of a wait that outlived its runtime.
pub(crate) fn shut_down() -> io::Error {
    io::Error::other(
        "weft: the runtime this socket was registered with has shut down; \
         sockets wait for readiness only while their runtime runs",
    )
}

/// The error of a wait that reached its deadline.
pub(crate) fn timed_out_error(direction: Direction) -> io::Error {
    let message = match direction {
        Direction::Read => "weft: the read timed out (the socket's read timeout passed)",
        Direction::Write => "weft: the write timed out (the socket's write timeout passed)",
    };
    io::Error::new(io::ErrorKind::TimedOut, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clear_after_a_new_event_keeps_the_bit() {
        let io = ScheduledIo::new();
        let mut woken = Vec::new();
        io.set_ready(READABLE, &mut woken);
        let snapshot = io.snapshot();
        // The syscall said WouldBlock, but an event came meanwhile:
        io.set_ready(READABLE, &mut woken);
        io.clear(Direction::Read, snapshot);
        assert!(io.is_ready(Direction::Read), "the new event is not lost");
        // Without a new event the clear goes through.
        io.clear(Direction::Read, io.snapshot());
        assert!(!io.is_ready(Direction::Read));
    }

    #[test]
    fn read_closed_stays_ready() {
        let io = ScheduledIo::new();
        io.clear(Direction::Write, io.snapshot());
        io.set_ready(READABLE | READ_CLOSED, &mut Vec::new());
        io.clear(Direction::Read, io.snapshot());
        assert!(io.is_ready(Direction::Read));
        assert!(!io.is_ready(Direction::Write));
    }

    #[test]
    fn a_fresh_registration_is_ready_both_ways() {
        let io = ScheduledIo::new();
        assert!(io.is_ready(Direction::Read) && io.is_ready(Direction::Write));
    }
}

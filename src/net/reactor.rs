//! The reactor: one `mio::Poll` per runtime, driven by the scheduler.
//!
//! # Who drives it
//!
//! The reactor is the runtime's [`Driver`]: one idle worker at a time owns
//! it (the scheduler's `DriverGate`) and sleeps in [`Driver::park`], which
//! is `mio::Poll::poll` with the worker's next timer deadline as timeout;
//! busy workers call [`Driver::poll`] (a zero timeout) every few dozen
//! scheduling rounds when nobody owns it, so I/O is never starved by a
//! runtime that never idles. [`Driver::unpark`] is `mio::Waker::wake`: it
//! interrupts the owner's `epoll_wait` when work arrives for it. Only the
//! owner touches the `Poll` (a lock it never contends for); registrations
//! go through a clone of the `Registry`, from any thread.
//!
//! # Registrations and tokens
//!
//! Each registered socket has a [`ScheduledIo`] (its readiness word and its
//! waiters) in a slab. The mio token is `generation << 32 | index`: when a
//! socket is deregistered its slot's generation moves on, so an event still
//! in flight for the old socket (already returned by `epoll_wait` to the
//! driving worker) finds a different generation and is dropped, and a
//! reused fd can never wake a stale waiter.
//!
//! # Dispatch
//!
//! For a batch of events the slab is locked once; each event sets the
//! readiness bits of its registration (which also moves its tick, see
//! `registration.rs`) and takes the fibers waiting for that direction.
//! They are unparked after the lock is released, from the driving worker:
//! the scheduler routes each wake to the fiber's home worker, or to the
//! thread that parked, for a socket used off the runtime.

use std::any::Any;
use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token};
use parking_lot::Mutex;

use super::registration::{Direction, ScheduledIo};
use crate::runtime::Handle;
use crate::sched::driver::Driver;

/// The token of the reactor's own `mio::Waker` (no slab index reaches it).
const WAKER: Token = Token(usize::MAX);

/// How many events one turn of the reactor takes at most.
const EVENTS_CAPACITY: usize = 1024;

/// One runtime's reactor.
pub(crate) struct Reactor {
    /// The poller and its event buffer; only the driver's owner locks it.
    poll: Mutex<(Poll, Events)>,
    /// A clone of the poller's registry, for (de)registration from anywhere.
    registry: mio::Registry,
    waker: mio::Waker,
    slab: Mutex<Slab>,
    /// The runtime is shutting down: waits end with an error.
    shutdown: AtomicBool,
    /// Events dispatched so far (observability).
    events: AtomicU64,
    /// How many sources are registered: with none, a busy worker's
    /// non-blocking turn skips its `epoll_wait` (a runtime that never
    /// touches a socket pays no syscall every few dozen rounds).
    registered: AtomicUsize,
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("registrations", &self.slab.lock().live)
            .field("events", &self.events.load(Ordering::Relaxed))
            .field("shutdown", &self.shutdown.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Reactor {
    /// A poller (an epoll fd, a dup of it for the registry, and an eventfd
    /// for the waker).
    pub(crate) fn new() -> io::Result<Reactor> {
        let poll = Poll::new()?;
        let registry = poll.registry().try_clone()?;
        let waker = mio::Waker::new(poll.registry(), WAKER)?;
        Ok(Reactor {
            poll: Mutex::new((poll, Events::with_capacity(EVENTS_CAPACITY))),
            registry,
            waker,
            slab: Mutex::new(Slab::default()),
            shutdown: AtomicBool::new(false),
            events: AtomicU64::new(0),
            registered: AtomicUsize::new(0),
        })
    }

    /// The reactor of the runtime this thread belongs to (a fiber, a
    /// worker or a blocking-pool thread), if any.
    pub(crate) fn current() -> Option<Arc<Reactor>> {
        let handle = Handle::try_current()?;
        let io: Arc<dyn Any + Send + Sync> = handle.shared().io.clone()?;
        io.downcast::<Reactor>().ok()
    }

    /// Registers `fd` for both directions, edge-triggered.
    pub(crate) fn register(&self, fd: RawFd) -> io::Result<(Token, Arc<ScheduledIo>)> {
        let io = Arc::new(ScheduledIo::new());
        let token = self.slab.lock().insert(Arc::clone(&io));
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(err) = self.registry.register(&mut SourceFd(&fd), token, interest) {
            self.slab.lock().remove(token);
            return Err(err);
        }
        self.registered.fetch_add(1, Ordering::Relaxed);
        Ok((token, io))
    }

    /// Deregisters `fd` (before it is closed) and frees its slot.
    pub(crate) fn deregister(&self, fd: RawFd, token: Token) {
        // An error means the fd is not registered (closed behind our back):
        // nothing to undo in epoll either way.
        let _ = self.registry.deregister(&mut SourceFd(&fd));
        self.slab.lock().remove(token);
        self.registered.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether the runtime is shutting down.
    pub(crate) fn is_shutdown(&self) -> bool {
        self.shutdown.load(Ordering::Acquire)
    }

    /// The runtime is shutting down: every wait, now and later, ends with
    /// an error. Wakes every waiter (threads blocked on a registered socket
    /// return that error; parked fibers are being unwound anyway).
    pub(crate) fn shutdown(&self) {
        // Release pairs with the Acquire load in `is_shutdown`, which
        // waiters make under their registration's lock after this store.
        self.shutdown.store(true, Ordering::Release);
        let mut woken = Vec::new();
        for io in self.slab.lock().iter() {
            io.take_all_waiters(&mut woken);
        }
        for fiber in woken {
            fiber.unpark();
        }
        let _ = self.waker.wake();
    }

    /// How many events the reactor has dispatched.
    pub(crate) fn events_dispatched(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// One turn: wait up to `timeout` for events, then dispatch them.
    fn turn(&self, timeout: Option<Duration>) {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        let mut guard = self.poll.lock();
        let (poll, events) = &mut *guard;
        let mut left = timeout;
        loop {
            match poll.poll(events, left) {
                Ok(()) => break,
                // mio does not retry EINTR: a signal landed on this worker.
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                    if let Some(deadline) = deadline {
                        left = Some(deadline.saturating_duration_since(Instant::now()));
                    }
                }
                Err(err) => {
                    // EBADF/EINVAL would be a bug in weft; do not spin on it.
                    eprintln!("weft: the reactor's epoll_wait failed: {err}");
                    events.clear();
                    break;
                }
            }
        }
        if events.is_empty() {
            return;
        }
        let mut woken = Vec::new();
        let mut count = 0;
        {
            let slab = self.slab.lock();
            for event in events.iter() {
                let token = event.token();
                if token == WAKER {
                    continue;
                }
                let Some(io) = slab.get(token) else { continue };
                count += 1;
                let mut ready = 0;
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    ready |= Direction::Read.bits();
                }
                if event.is_writable() || event.is_write_closed() || event.is_error() {
                    ready |= Direction::Write.bits();
                }
                if event.is_read_closed() {
                    ready |= super::registration::READ_CLOSED;
                }
                io.set_ready(ready, &mut woken);
            }
        }
        drop(guard);
        self.events.fetch_add(count, Ordering::Relaxed);
        for fiber in woken {
            fiber.unpark();
        }
    }
}

impl Driver for Reactor {
    fn park(&self, timeout: Option<Duration>) {
        self.turn(timeout);
    }

    /// Skipped while nothing is registered: there is nothing to find, and
    /// a waker's leftover event is for a `park`, which still sees it. A
    /// source registered meanwhile is seen by the next turn; its fiber
    /// tried the syscall before parking, so no readiness is lost.
    fn poll(&self) {
        if self.registered.load(Ordering::Relaxed) == 0 {
            return;
        }
        self.turn(Some(Duration::ZERO));
    }

    fn unpark(&self) {
        if let Err(err) = self.waker.wake() {
            eprintln!("weft: cannot wake the reactor: {err}");
        }
    }

    fn has_sources(&self) -> bool {
        self.registered.load(Ordering::Relaxed) != 0
    }
}

/// The registrations: slots with generations, and a free list.
#[derive(Default)]
struct Slab {
    slots: Vec<Slot>,
    free: Vec<u32>,
    live: usize,
}

struct Slot {
    generation: u32,
    io: Option<Arc<ScheduledIo>>,
}

impl Slab {
    fn insert(&mut self, io: Arc<ScheduledIo>) -> Token {
        self.live += 1;
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 sockets");
                self.slots.push(Slot {
                    generation: 0,
                    io: None,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.io = Some(io);
        token_of(index, slot.generation)
    }

    fn get(&self, token: Token) -> Option<&Arc<ScheduledIo>> {
        let (index, generation) = split(token);
        let slot = self.slots.get(index as usize)?;
        (slot.generation == generation)
            .then_some(slot.io.as_ref())
            .flatten()
    }

    fn remove(&mut self, token: Token) {
        let (index, generation) = split(token);
        let Some(slot) = self.slots.get_mut(index as usize) else {
            return;
        };
        if slot.generation != generation || slot.io.is_none() {
            return;
        }
        slot.io = None;
        // The next socket in this slot gets another token: events still in
        // flight for this one will not find it.
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(index);
        self.live -= 1;
    }

    fn iter(&self) -> impl Iterator<Item = &Arc<ScheduledIo>> {
        self.slots.iter().filter_map(|slot| slot.io.as_ref())
    }
}

fn token_of(index: u32, generation: u32) -> Token {
    Token(((generation as usize) << 32) | index as usize)
}

fn split(token: Token) -> (u32, u32) {
    // Truncations intended: the token is two 32-bit halves.
    (token.0 as u32, (token.0 >> 32) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_freed_slot_gets_a_new_generation() {
        let mut slab = Slab::default();
        let a = slab.insert(Arc::new(ScheduledIo::new()));
        slab.remove(a);
        let b = slab.insert(Arc::new(ScheduledIo::new()));
        assert_eq!(split(a).0, split(b).0, "the slot is reused");
        assert_ne!(a, b, "with another token");
        assert!(slab.get(a).is_none(), "the stale token finds nothing");
        assert!(slab.get(b).is_some());
        assert_ne!(b, WAKER);
    }
}

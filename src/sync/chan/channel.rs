//! The channel itself, shared by its senders and receivers: one lock over
//! a queue of values and two queues of waiters.
//!
//! # Invariants (under the lock)
//!
//! - `queue.len() <= cap`, except for values a dropped async receive
//!   gives back (see [`Chan::give_back`]).
//! - A live (WAITING) receiver entry exists only while `queue` is empty: a
//!   sender hands its value to the first live receiver instead of queueing
//!   it.
//! - A live sender entry exists only while the queue is full (for a
//!   rendezvous channel, `cap == 0`: always). A receiver that takes a value
//!   refills the queue from the first live sender, so senders are served
//!   in order.
//! - Entries that are no longer WAITING (aborted, or selected by another
//!   channel of a `select!`) are skipped and dropped by whoever pops them;
//!   their owners remove the rest.
//!
//! # Packets
//!
//! A waiting operation's value lives in a [`Packet`] owned by the waiter:
//! on its fiber's (or thread's) stack, which stays put while it is parked,
//! or in a boxed slot of an async receive. An entry holds a raw pointer to
//! it. Only the party that selected the entry's context touches the packet,
//! under this lock, before `set_ready`; the waiter touches it before
//! registering and after seeing READY (or after aborting). The waiter never
//! leaves (returns, unwinds, drops its future) while its context may still
//! be selected: see `waiter.rs`.
//!
//! # Disconnection
//!
//! When the last sender goes, every waiting receiver is selected with an
//! empty packet (it reports disconnection once the queue is drained). When
//! the last receiver goes, every waiting sender is selected with its value
//! still in its packet (it gets it back in the error), and the queued
//! values are dropped, outside the lock: their destructors may use the
//! channel.

use std::collections::VecDeque;
use std::pin::{Pin, pin};
use std::time::Instant;

use super::error::{RecvTimeoutError, SendTimeoutError, TryRecvError, TrySendError};
use crate::loom::cell::UnsafeCell;
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::loom::sync::{Mutex, MutexGuard};
use crate::sync::waiter::{self, Context, CxRef, Outcome, Queue, Wake};

/// A value slot owned by a waiting operation; see the module doc.
pub(crate) struct Packet<T>(UnsafeCell<Option<T>>);

impl<T> Packet<T> {
    pub(crate) fn new(value: Option<T>) -> Packet<T> {
        Packet(UnsafeCell::new(value))
    }

    /// Puts `value` in the packet.
    ///
    /// # Safety
    ///
    /// The caller has the packet to itself: it selected the entry's
    /// context and holds the channel's lock, or it owns the packet and its
    /// context is not registered (not yet, or READY, or aborted).
    pub(crate) unsafe fn put(&self, value: T) {
        // SAFETY: exclusive, by the caller's contract.
        self.0.with_mut(|slot| unsafe { *slot = Some(value) });
    }

    /// Takes the value out of the packet.
    ///
    /// # Safety
    ///
    /// As for [`put`](Self::put).
    pub(crate) unsafe fn take(&self) -> Option<T> {
        // SAFETY: exclusive, by the caller's contract.
        self.0.with_mut(|slot| unsafe { (*slot).take() })
    }
}

/// A waiting operation in one of the channel's waiter queues.
pub(crate) struct Entry<T> {
    pub(crate) cx: CxRef,
    /// Which operation of the waiter this is (the branch of a `select!`).
    pub(crate) oper: usize,
    pub(crate) packet: *const Packet<T>,
}

// SAFETY: the packet pointer is dereferenced only by the party that
// selected the context, under the channel's lock, while the owner waits
// for it (see the module doc); the value moved through it is `T: Send`.
unsafe impl<T: Send> Send for Entry<T> {}

/// A FIFO of waiting operations. The front one is kept inline: a channel
/// rarely has more than one waiter on a side, and the inline slot saves a
/// cache miss on the hand-off path (a ring of a million fibers touches a
/// different channel on every hop).
pub(crate) struct Waiters<T> {
    /// The oldest entry, when `rest` holds none older.
    head: Option<Entry<T>>,
    rest: VecDeque<Entry<T>>,
}

impl<T> Waiters<T> {
    fn new() -> Waiters<T> {
        Waiters {
            head: None,
            rest: VecDeque::new(),
        }
    }

    fn push(&mut self, entry: Entry<T>) {
        if self.head.is_none() && self.rest.is_empty() {
            self.head = Some(entry);
        } else {
            self.rest.push_back(entry);
        }
    }

    fn pop(&mut self) -> Option<Entry<T>> {
        self.head.take().or_else(|| self.rest.pop_front())
    }

    fn iter(&self) -> impl Iterator<Item = &Entry<T>> {
        self.head.iter().chain(self.rest.iter())
    }

    /// Pops entries until one whose context it can select; returns that
    /// one (selected, not yet READY).
    fn select_first(&mut self) -> Option<Entry<T>> {
        while let Some(entry) = self.pop() {
            if entry.cx.try_select(entry.oper) {
                return Some(entry);
            }
        }
        None
    }

    /// Whether a live entry of another context is queued (a hint, used
    /// while registering a `select!`).
    fn has_other(&self, cx: &Context) -> bool {
        self.iter().any(|e| !e.cx.is(cx) && e.cx.is_waiting())
    }

    fn remove(&mut self, cx: &Context) {
        if self.head.as_ref().is_some_and(|e| e.cx.is(cx)) {
            self.head = None;
        }
        self.rest.retain(|e| !e.cx.is(cx));
    }
}

/// What the lock protects.
pub(crate) struct Inner<T> {
    queue: VecDeque<T>,
    /// The last sender is gone.
    no_senders: bool,
    /// The last receiver is gone.
    no_receivers: bool,
    recvs: Waiters<T>,
    sends: Waiters<T>,
}

/// A channel's shared state.
pub(crate) struct Chan<T> {
    inner: Mutex<Inner<T>>,
    /// Capacity: 0 for a rendezvous, `usize::MAX` for unbounded.
    cap: usize,
    senders: AtomicUsize,
    receivers: AtomicUsize,
}

/// Wakes a selected waiter, after the lock is released.
fn wake(wake: Option<Wake>) {
    if let Some(wake) = wake {
        wake.wake();
    }
}

impl<T> Chan<T> {
    pub(crate) fn new(cap: usize) -> Chan<T> {
        Chan {
            inner: Mutex::new(Inner {
                queue: VecDeque::with_capacity(cap.min(64)),
                no_senders: false,
                no_receivers: false,
                recvs: Waiters::new(),
                sends: Waiters::new(),
            }),
            cap,
            senders: AtomicUsize::new(1),
            receivers: AtomicUsize::new(1),
        }
    }

    pub(crate) fn capacity(&self) -> Option<usize> {
        (self.cap != usize::MAX).then_some(self.cap)
    }

    pub(crate) fn len(&self) -> usize {
        self.inner.lock().queue.len()
    }

    /// Whether all receivers (for a sender) or senders (for a receiver)
    /// are gone.
    pub(crate) fn is_disconnected(&self, for_sender: bool) -> bool {
        let inner = self.inner.lock();
        if for_sender {
            inner.no_receivers
        } else {
            inner.no_senders
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<T>> {
        self.inner.lock()
    }

    /// Sends without waiting, under the lock. On success, returns the
    /// receiver to wake (if the value went straight to one).
    fn send_locked(&self, inner: &mut Inner<T>, value: T) -> Result<Option<Wake>, TrySendError<T>> {
        if inner.no_receivers {
            return Err(TrySendError::Disconnected(value));
        }
        if let Some(entry) = inner.recvs.select_first() {
            // SAFETY: we selected the entry's context, under the lock.
            unsafe { (*entry.packet).put(value) };
            return Ok(Some(entry.cx.complete()));
        }
        if inner.queue.len() < self.cap {
            inner.queue.push_back(value);
            return Ok(None);
        }
        Err(TrySendError::Full(value))
    }

    /// Receives without waiting, under the lock. On success, returns the
    /// sender to wake (whose value refilled the queue or came straight).
    fn recv_locked(&self, inner: &mut Inner<T>) -> Result<(T, Option<Wake>), TryRecvError> {
        if let Some(value) = inner.queue.pop_front() {
            let mut woken = None;
            if let Some(entry) = inner.sends.select_first() {
                // SAFETY: we selected the entry's context, under the lock.
                let refill = unsafe { (*entry.packet).take() }.expect("a waiting sender's value");
                inner.queue.push_back(refill);
                woken = Some(entry.cx.complete());
            }
            return Ok((value, woken));
        }
        if let Some(entry) = inner.sends.select_first() {
            // SAFETY: we selected the entry's context, under the lock.
            let value = unsafe { (*entry.packet).take() }.expect("a waiting sender's value");
            return Ok((value, Some(entry.cx.complete())));
        }
        if inner.no_senders {
            Err(TryRecvError::Disconnected)
        } else {
            Err(TryRecvError::Empty)
        }
    }

    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let mut inner = self.lock();
        let woken = self.send_locked(&mut inner, value)?;
        drop(inner);
        wake(woken);
        Ok(())
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut inner = self.lock();
        let (value, woken) = self.recv_locked(&mut inner)?;
        drop(inner);
        wake(woken);
        Ok(value)
    }

    /// Sends, waiting (until `deadline`, if any) while the channel is full.
    pub(crate) fn send(
        &self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        let mut inner = self.lock();
        let value = match self.send_locked(&mut inner, value) {
            Ok(woken) => {
                drop(inner);
                wake(woken);
                return Ok(());
            }
            Err(TrySendError::Disconnected(value)) => {
                return Err(SendTimeoutError::Disconnected(value));
            }
            Err(TrySendError::Full(value)) => value,
        };
        let packet = Packet::new(Some(value));
        let cx = pin!(Context::for_current());
        inner.sends.push(Entry {
            cx: CxRef::new(cx.as_ref()),
            oper: 0,
            packet: &packet,
        });
        drop(inner);
        let outcome = waiter::wait_on(&Side { chan: self }, &cx, deadline);
        // SAFETY: our context is READY or aborted and unregistered.
        let left = unsafe { packet.take() };
        match (outcome, left) {
            (Outcome::Selected(_), None) => Ok(()),
            (Outcome::TimedOut, Some(value)) => Err(SendTimeoutError::Timeout(value)),
            (_, Some(value)) => Err(SendTimeoutError::Disconnected(value)),
            (_, None) => unreachable!("an aborted send kept its value"),
        }
    }

    /// Receives, waiting (until `deadline`, if any) while the channel is
    /// empty.
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut inner = self.lock();
        match self.recv_locked(&mut inner) {
            Ok((value, woken)) => {
                drop(inner);
                wake(woken);
                return Ok(value);
            }
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        let packet = Packet::new(None);
        let cx = pin!(Context::for_current());
        inner.recvs.push(Entry {
            cx: CxRef::new(cx.as_ref()),
            oper: 0,
            packet: &packet,
        });
        drop(inner);
        let outcome = waiter::wait_on(&Side { chan: self }, &cx, deadline);
        // SAFETY: our context is READY or aborted and unregistered.
        match (outcome, unsafe { packet.take() }) {
            (_, Some(value)) => Ok(value),
            (Outcome::TimedOut, None) => Err(RecvTimeoutError::Timeout),
            (_, None) => Err(RecvTimeoutError::Disconnected),
        }
    }

    // ---- for `select!` and async receives ----

    /// Tries a receive for a waiter that is not registered: on success (a
    /// value, or disconnection) the outcome is in `packet`.
    pub(crate) fn try_recv_into(&self, packet: &Packet<T>) -> bool {
        match self.try_recv() {
            Ok(value) => {
                // SAFETY: the packet is ours, not registered.
                unsafe { packet.put(value) };
                true
            }
            Err(TryRecvError::Disconnected) => true,
            Err(TryRecvError::Empty) => false,
        }
    }

    /// Tries a send of the value in `packet` for a waiter that is not
    /// registered. True if done: sent (the packet is empty) or the channel
    /// is disconnected (the value is back in the packet).
    pub(crate) fn try_send_from(&self, packet: &Packet<T>) -> bool {
        // SAFETY: the packet is ours, not registered.
        let Some(value) = (unsafe { packet.take() }) else {
            return true;
        };
        match self.try_send(value) {
            Ok(()) => true,
            Err(TrySendError::Disconnected(value)) => {
                // SAFETY: as above.
                unsafe { packet.put(value) };
                true
            }
            Err(TrySendError::Full(value)) => {
                // SAFETY: as above.
                unsafe { packet.put(value) };
                false
            }
        }
    }

    /// Registers a receive. Returns false, without registering, if the
    /// receive looks ready now (then the caller aborts and tries again).
    pub(crate) fn register_recv(&self, cx: Pin<&Context>, oper: usize, packet: &Packet<T>) -> bool {
        let mut inner = self.lock();
        if !inner.queue.is_empty() || inner.no_senders || inner.sends.has_other(&cx) {
            return false;
        }
        inner.recvs.push(Entry {
            cx: CxRef::new(cx),
            oper,
            packet,
        });
        true
    }

    /// Registers a send of the value in `packet`; as
    /// [`register_recv`](Self::register_recv).
    pub(crate) fn register_send(&self, cx: Pin<&Context>, oper: usize, packet: &Packet<T>) -> bool {
        let mut inner = self.lock();
        if inner.queue.len() < self.cap || inner.no_receivers || inner.recvs.has_other(&cx) {
            return false;
        }
        inner.sends.push(Entry {
            cx: CxRef::new(cx),
            oper,
            packet,
        });
        true
    }

    /// Removes every entry of `cx`.
    pub(crate) fn unregister(&self, cx: &Context) {
        let mut inner = self.lock();
        inner.recvs.remove(cx);
        inner.sends.remove(cx);
    }

    /// Puts back a value an async receive was handed but never delivered
    /// (its future was dropped): to a waiting receiver, or at the front of
    /// the queue, so no value is lost.
    pub(crate) fn give_back(&self, value: T) {
        let mut inner = self.lock();
        if let Some(entry) = inner.recvs.select_first() {
            // SAFETY: we selected the entry's context, under the lock.
            unsafe { (*entry.packet).put(value) };
            let wake = entry.cx.complete();
            drop(inner);
            wake.wake();
            return;
        }
        inner.queue.push_front(value);
    }

    // ---- handles ----

    pub(crate) fn add_sender(&self) {
        self.senders.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add_receiver(&self) {
        self.receivers.fetch_add(1, Ordering::Relaxed);
    }

    /// A sender is gone; the last one disconnects the channel.
    pub(crate) fn drop_sender(&self) {
        // AcqRel: the last dropper sees every other sender's sends done.
        if self.senders.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let mut inner = self.lock();
        inner.no_senders = true;
        #[cfg(loom)]
        if crate::sync::tests::mutation::planted("chan_close_forgets_receivers") {
            // The planted bug: disconnect without waking the receivers.
            return;
        }
        let woken = Self::select_all(&mut inner.recvs);
        drop(inner);
        woken.into_iter().for_each(Wake::wake);
    }

    /// A receiver is gone; the last one disconnects the channel and drops
    /// the values left in it.
    pub(crate) fn drop_receiver(&self) {
        if self.receivers.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let mut inner = self.lock();
        inner.no_receivers = true;
        let left = std::mem::take(&mut inner.queue);
        let woken = Self::select_all(&mut inner.sends);
        drop(inner);
        woken.into_iter().for_each(Wake::wake);
        drop(left);
    }

    /// Selects every live waiter of `waiters`, leaving packets as they are.
    fn select_all(waiters: &mut Waiters<T>) -> Vec<Wake> {
        let mut woken = Vec::new();
        while let Some(entry) = waiters.select_first() {
            woken.push(entry.cx.complete());
        }
        woken
    }
}

/// The channel as a queue a blocking send or receive waits on.
struct Side<'a, T> {
    chan: &'a Chan<T>,
}

impl<T> Queue for Side<'_, T> {
    fn unregister(&self, cx: &Context) {
        self.chan.unregister(cx);
    }
    // `undo`: nothing. A value handed over to a receive that is being
    // unwound is dropped with its packet; a send that completed did.
}

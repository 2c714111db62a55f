//! The channel itself, shared by its senders and receivers: one lock (a
//! [`SpinLock`]: its critical sections never park) over
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
//! # Layout
//!
//! A ring of a million fibers touches a different, cold channel on every
//! hop, so what a hand-off reads is packed into the channel's first 64
//! bytes: the lock flag, the disconnection flags and the front waiter of
//! each side (an entry is two words; the rest of a side's queue is boxed,
//! allocated only when a second waiter comes). The value queue and the
//! capacity come next.
//!
//! The channel is not aligned to a cache line, so those bytes may span
//! two. It was aligned, and that cost more than it saved:
//! - an over-aligned allocation takes glibc's `memalign` path: a
//!   `bounded(1)` made, used once and dropped took 1,465 instructions,
//!   now 814 (one `Addr::ask` makes a oneshot);
//! - the fragments `memalign` leaves spread a ring's channels and tasks
//!   apart (448 to 512 bytes a fiber against 304 now, for closures of 32
//!   bytes), and gaps between a ring's heap objects cost every hop time
//!   (the README, on the ring rows). Whether the ring's hop itself got
//!   faster could not be told: the two builds differ by less than builds
//!   that differ only in where their code lies do, and callgrind's cache
//!   model, which has no prefetcher, counts one miss a hop more now.
//!
//! A channel of capacity 0 or 1 (a rendezvous, `bounded(1)`, a oneshot)
//! makes no queue buffer until a value has to wait in it: most of its
//! values go straight to a waiting receiver.
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
use super::waiters::{Entry, Packet, Waiters};
use crate::loom::sync::atomic::{AtomicUsize, Ordering};
use crate::sync::spin::{SpinGuard, SpinLock};
use crate::sync::waiter::{self, Context, Outcome, Queue, Wake};

/// A blocking send's or receive's context and packet, side by side (a
/// selector touches both).
#[repr(C)]
struct Slot<T> {
    cx: Context,
    packet: Packet<T>,
}

impl<T> Slot<T> {
    #[inline]
    fn new(value: Option<T>) -> Slot<T> {
        Slot {
            cx: Context::for_current_exclusive(),
            packet: Packet::new(value),
        }
    }

    #[inline]
    fn parts(self: Pin<&Self>) -> (Pin<&Context>, &Packet<T>) {
        let slot = self.get_ref();
        // SAFETY: structural pinning: the context is never moved out of a
        // pinned slot, nor is a `&mut` to it handed out.
        (unsafe { Pin::new_unchecked(&slot.cx) }, &slot.packet)
    }
}

/// What the lock protects. `repr(C)`: the fields a hand-off reads come
/// first, in the channel's first cache line (see the module doc).
#[repr(C)]
pub(crate) struct Inner<T> {
    /// The last sender is gone.
    no_senders: bool,
    /// The last receiver is gone.
    no_receivers: bool,
    /// Whether `queue` holds values: a receive reads this, in the first
    /// line, rather than the queue's length.
    queued: bool,
    recvs: Waiters<T>,
    sends: Waiters<T>,
    queue: VecDeque<T>,
}

impl<T> Inner<T> {
    #[inline]
    fn pop_value(&mut self) -> Option<T> {
        if !self.queued {
            return None;
        }
        let value = self.queue.pop_front();
        self.queued = !self.queue.is_empty();
        value
    }

    #[inline]
    fn push_value(&mut self, value: T) {
        self.queue.push_back(value);
        self.queued = true;
    }
}

/// A channel's shared state; see the module doc for the layout.
#[repr(C)]
pub(crate) struct Chan<T> {
    inner: SpinLock<Inner<T>>,
    /// Capacity: 0 for a rendezvous, `usize::MAX` for unbounded.
    cap: usize,
    senders: AtomicUsize,
    receivers: AtomicUsize,
}

/// What a receive found under the lock.
enum Took<T> {
    /// A value (and the sender to wake, if one waited).
    Value(T, Option<Wake>),
    Empty,
    Disconnected,
}

impl<T> Chan<T> {
    pub(crate) fn new(cap: usize) -> Chan<T> {
        // See "Layout" in the module doc.
        let queue = if cap <= 1 {
            VecDeque::new()
        } else {
            VecDeque::with_capacity(cap.min(64))
        };
        Chan {
            inner: SpinLock::new(Inner {
                queued: false,
                queue,
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

    #[inline]
    fn lock(&self) -> SpinGuard<'_, Inner<T>> {
        self.inner.lock()
    }

    /// Sends without waiting, under the lock: to the first waiting
    /// receiver (the lock is released before it is woken), or into the
    /// queue. Gives the value back, and the lock, if neither can take it.
    #[inline]
    fn send_locked<'a>(
        &'a self,
        mut inner: SpinGuard<'a, Inner<T>>,
        value: T,
    ) -> Result<(), (TrySendError<T>, SpinGuard<'a, Inner<T>>)> {
        if inner.no_receivers {
            return Err((TrySendError::Disconnected(value), inner));
        }
        if let Some(entry) = inner.recvs.select_first() {
            // SAFETY: we selected the entry's context, under the lock.
            unsafe { (*entry.packet).put(value) };
            drop(inner);
            entry.cx.complete().wake();
            return Ok(());
        }
        if inner.queue.len() < self.cap {
            inner.push_value(value);
            return Ok(());
        }
        Err((TrySendError::Full(value), inner))
    }

    /// Receives without waiting, under the lock. With a value, returns the
    /// sender to wake (whose value refilled the queue or came straight).
    #[inline]
    fn recv_locked(&self, inner: &mut Inner<T>) -> Took<T> {
        if let Some(value) = inner.pop_value() {
            let mut woken = None;
            if let Some(entry) = inner.sends.select_first() {
                // SAFETY: we selected the entry's context, under the lock.
                let refill = unsafe { (*entry.packet).take() }.expect("a waiting sender's value");
                inner.push_value(refill);
                woken = Some(entry.cx.complete());
            }
            return Took::Value(value, woken);
        }
        if let Some(entry) = inner.sends.select_first() {
            // SAFETY: we selected the entry's context, under the lock.
            let value = unsafe { (*entry.packet).take() }.expect("a waiting sender's value");
            return Took::Value(value, Some(entry.cx.complete()));
        }
        if inner.no_senders {
            Took::Disconnected
        } else {
            Took::Empty
        }
    }

    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.send_locked(self.lock(), value).map_err(|(e, _)| e)
    }

    pub(crate) fn try_recv(&self) -> Result<T, TryRecvError> {
        let mut inner = self.lock();
        match self.recv_locked(&mut inner) {
            Took::Value(value, woken) => {
                drop(inner);
                if let Some(woken) = woken {
                    woken.wake();
                }
                Ok(value)
            }
            Took::Empty => Err(TryRecvError::Empty),
            Took::Disconnected => Err(TryRecvError::Disconnected),
        }
    }

    /// Sends, waiting (until `deadline`, if any) while the channel is full.
    ///
    /// The waiting part is a function of its own, never inlined: its
    /// frame (packet, context) would otherwise widen the caller's on the
    /// hand-off path too, and a ring of a hundred thousand fibers pays for
    /// every cold stack line (measured: 250 -> 340 ns per hop).
    #[inline]
    pub(crate) fn send(
        &self,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        match self.send_locked(self.lock(), value) {
            Ok(()) => Ok(()),
            Err((TrySendError::Disconnected(value), _)) => {
                Err(SendTimeoutError::Disconnected(value))
            }
            Err((TrySendError::Full(value), inner)) => self.send_wait(inner, value, deadline),
        }
    }

    /// The rest of [`send`](Self::send): registers and waits.
    #[inline(never)]
    fn send_wait(
        &self,
        mut inner: SpinGuard<'_, Inner<T>>,
        value: T,
        deadline: Option<Instant>,
    ) -> Result<(), SendTimeoutError<T>> {
        let slot = pin!(Slot::new(Some(value)));
        let (cx, packet) = slot.as_ref().parts();
        inner.sends.push(Entry::new(cx, packet));
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
    /// empty. The waiting part is apart, as in [`send`](Self::send).
    #[inline]
    pub(crate) fn recv(&self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut inner = self.lock();
        match self.recv_locked(&mut inner) {
            Took::Value(value, woken) => {
                drop(inner);
                if let Some(woken) = woken {
                    woken.wake();
                }
                Ok(value)
            }
            Took::Disconnected => Err(RecvTimeoutError::Disconnected),
            Took::Empty => self.recv_wait(inner, deadline),
        }
    }

    /// The rest of [`recv`](Self::recv): registers and waits.
    #[inline(never)]
    fn recv_wait(
        &self,
        mut inner: SpinGuard<'_, Inner<T>>,
        deadline: Option<Instant>,
    ) -> Result<T, RecvTimeoutError> {
        let slot = pin!(Slot::new(None));
        let (cx, packet) = slot.as_ref().parts();
        inner.recvs.push(Entry::new(cx, packet));
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
        if inner.queued || inner.no_senders || inner.sends.has_other(&cx) {
            return false;
        }
        packet.oper.set(oper);
        inner.recvs.push(Entry::new(cx, packet));
        true
    }

    /// Registers a send of the value in `packet`; as
    /// [`register_recv`](Self::register_recv).
    pub(crate) fn register_send(&self, cx: Pin<&Context>, oper: usize, packet: &Packet<T>) -> bool {
        let mut inner = self.lock();
        if inner.queue.len() < self.cap || inner.no_receivers || inner.recvs.has_other(&cx) {
            return false;
        }
        packet.oper.set(oper);
        inner.sends.push(Entry::new(cx, packet));
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
        inner.queued = true;
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
        if crate::loom::mutation::planted("chan_close_forgets_receivers") {
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
        inner.queued = false;
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

    /// Blocking sends and receives register exclusive contexts: they abort
    /// under the channel's lock, so selecting them needs no CAS.
    fn abort(&self, cx: &Context) -> bool {
        #[cfg(loom)]
        if crate::loom::mutation::planted("chan_abort_skips_the_lock") {
            // The planted bug: abort outside the lock, racing a selector.
            let aborted = cx.abort_locked();
            if aborted {
                self.chan.unregister(cx);
            }
            return aborted;
        }
        let mut inner = self.chan.lock();
        if !cx.abort_locked() {
            return false;
        }
        inner.recvs.remove(cx);
        inner.sends.remove(cx);
        true
    }
    // `undo`: nothing. A value handed over to a receive that is being
    // unwound is dropped with its packet; a send that completed did.
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    /// The fields a hand-off reads are in the channel's first 64 bytes,
    /// and the channel takes a plain allocation (no `memalign`).
    #[test]
    fn a_hand_off_reads_the_first_64_bytes() {
        assert!(std::mem::align_of::<Chan<u64>>() <= 16);
        assert_eq!(std::mem::offset_of!(Chan<u64>, inner), 0);
        // The lock's flag, then `Inner` at the lock's first aligned word.
        let inner = std::mem::align_of::<Inner<u64>>();
        let sends_end =
            inner + std::mem::offset_of!(Inner<u64>, sends) + std::mem::size_of::<Waiters<u64>>();
        assert!(sends_end <= 64, "the waiters end at byte {sends_end}");
        assert_eq!(std::mem::offset_of!(Inner<u64>, no_senders), 0);
    }

    /// A channel of capacity 0 or 1 makes its queue buffer only when a
    /// value waits in it; a larger one makes it at once.
    #[test]
    fn a_small_channel_allocates_its_queue_only_when_a_value_waits() {
        for cap in [0, 1] {
            assert_eq!(Chan::<u64>::new(cap).lock().queue.capacity(), 0);
        }
        let one = Chan::<u64>::new(1);
        assert!(one.try_send(7).is_ok());
        assert!(one.lock().queue.capacity() >= 1);
        assert_eq!(one.try_recv(), Ok(7));
        assert!(Chan::<u64>::new(8).lock().queue.capacity() >= 8);
    }
}

//! The waiting side of a channel: the [`Packet`] a waiting operation's
//! value lives in, the [`Entry`] a waiter queue holds for it, and
//! [`Waiters`], the FIFO of them whose front entry sits in the channel's
//! first cache line. The rules for who touches a packet when are in
//! `channel.rs`, "Packets".

use std::cell::Cell;
use std::collections::VecDeque;
use std::pin::Pin;

use crate::loom::cell::UnsafeCell;
use crate::sync::waiter::{Context, CxRef};

/// A value slot owned by a waiting operation; see `channel.rs`, "Packets".
pub(crate) struct Packet<T> {
    value: UnsafeCell<Option<T>>,
    /// Which operation of the waiter this is (the branch of a `select!`;
    /// 0 for a plain send or receive). Set by the owner before it
    /// registers, under the channel's lock; read by selectors under it.
    pub(super) oper: Cell<usize>,
}

impl<T> Packet<T> {
    #[inline]
    pub(crate) fn new(value: Option<T>) -> Packet<T> {
        Packet {
            value: UnsafeCell::new(value),
            oper: Cell::new(0),
        }
    }

    /// Puts `value` in the packet.
    ///
    /// # Safety
    ///
    /// The caller has the packet to itself: it selected the entry's
    /// context and holds the channel's lock, or it owns the packet and its
    /// context is not registered (not yet, or READY, or aborted).
    #[inline]
    pub(crate) unsafe fn put(&self, value: T) {
        // SAFETY: exclusive, by the caller's contract.
        self.value.with_mut(|slot| unsafe { *slot = Some(value) });
    }

    /// Takes the value out of the packet.
    ///
    /// # Safety
    ///
    /// As for [`put`](Self::put).
    #[inline]
    pub(crate) unsafe fn take(&self) -> Option<T> {
        // SAFETY: exclusive, by the caller's contract.
        self.value.with_mut(|slot| unsafe { (*slot).take() })
    }
}

/// A waiting operation in one of the channel's waiter queues.
pub(crate) struct Entry<T> {
    pub(crate) cx: CxRef,
    pub(crate) packet: *const Packet<T>,
}

impl<T> Entry<T> {
    #[inline]
    pub(super) fn new(cx: Pin<&Context>, packet: &Packet<T>) -> Entry<T> {
        Entry {
            cx: CxRef::new(cx),
            packet,
        }
    }

    /// Which operation of its waiter this is.
    #[inline]
    pub(super) fn oper(&self) -> usize {
        // SAFETY: the packet lives while its entry is queued (the pointer
        // invariant of `waiter.rs`), and its owner wrote `oper` before it
        // registered the entry under the lock we hold.
        unsafe { (*self.packet).oper.get() }
    }
}

// SAFETY: the packet pointer is dereferenced only by the party that
// selected the context, under the channel's lock, while the owner waits
// for it (see `channel.rs`, "Packets"); the value moved through it is `T: Send`.
unsafe impl<T: Send> Send for Entry<T> {}

/// A FIFO of waiting operations. The front one is kept inline, in the
/// channel's first cache line (see `channel.rs`, "Layout"); the others in a box,
/// made when a second waiter comes and kept. `head` is empty only when
/// `rest` is, so "anybody waiting?" is one test, and popping the only
/// waiter reads nothing else.
pub(crate) struct Waiters<T> {
    /// The oldest entry.
    head: Option<Entry<T>>,
    /// The others, oldest first. Boxed on purpose: one word here, where
    /// a `VecDeque` takes four of the first cache line.
    #[allow(
        clippy::box_collection,
        reason = "one word in the first cache line, not four"
    )]
    rest: Option<Box<VecDeque<Entry<T>>>>,
}

impl<T> Waiters<T> {
    pub(super) fn new() -> Waiters<T> {
        Waiters {
            head: None,
            rest: None,
        }
    }

    #[inline]
    pub(super) fn push(&mut self, entry: Entry<T>) {
        if self.head.is_none() {
            self.head = Some(entry);
        } else {
            self.rest.get_or_insert_default().push_back(entry);
        }
    }

    #[inline]
    fn pop(&mut self) -> Option<Entry<T>> {
        // Tested before `take`, which would write the empty head back.
        self.head.as_ref()?;
        let first = self.head.take()?;
        if let Some(rest) = &mut self.rest {
            self.head = rest.pop_front();
        }
        Some(first)
    }

    fn iter(&self) -> impl Iterator<Item = &Entry<T>> {
        self.head
            .iter()
            .chain(self.rest.iter().flat_map(|r| r.iter()))
    }

    /// Pops entries until one whose context it can select; returns that
    /// one (selected, not yet READY).
    #[inline]
    pub(super) fn select_first(&mut self) -> Option<Entry<T>> {
        while let Some(entry) = self.pop() {
            if entry.cx.try_select(entry.oper()) {
                return Some(entry);
            }
        }
        None
    }

    /// Whether a live entry of another context is queued (a hint, used
    /// while registering a `select!`).
    pub(super) fn has_other(&self, cx: &Context) -> bool {
        self.iter().any(|e| !e.cx.is(cx) && e.cx.is_waiting())
    }

    pub(super) fn remove(&mut self, cx: &Context) {
        if let Some(rest) = &mut self.rest {
            rest.retain(|e| !e.cx.is(cx));
        }
        if self.head.as_ref().is_some_and(|e| e.cx.is(cx)) {
            self.head = self.rest.as_mut().and_then(|r| r.pop_front());
        }
    }
}

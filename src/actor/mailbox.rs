//! An actor's mailbox: its messages and system signals in arrival order,
//! the actors linked to it or watching it, and the senders waiting for
//! room in a bounded mailbox, all behind one short lock.
//!
//! Everything an idle actor keeps lives here, so it is small: a
//! `VecDeque` that allocates when a message arrives and hands its buffer
//! to the actor's batch when the actor takes the whole queue (so an idle
//! actor holds no buffer), and boxes, made on first use, for the rarer
//! parts (relations, waiting senders). The actor takes a batch under one
//! lock and handles it outside the lock.

use std::collections::VecDeque;
use std::fmt;

use super::link::Relations;
use super::{ActorId, StopReason};
use crate::fiber::Fiber;
use crate::loom::sync::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicU8, Ordering};

/// What arrives in a mailbox.
pub(crate) enum Envelope<M> {
    /// A message for `Actor::handle`.
    Message(M),
    /// A system signal.
    Signal(Signal),
}

/// System signals, delivered in order with the messages. The rare ones
/// are boxed, so that an envelope is no bigger than the message type
/// needs (a `StopReason` inline made every envelope 48 bytes).
#[derive(Debug)]
pub(crate) enum Signal {
    /// `Addr::stop`: stop after the messages sent before it.
    Stop,
    /// A linked actor stopped with this reason.
    Exit(Box<(ActorId, StopReason)>),
    /// A monitored actor stopped with this reason.
    Down(Box<(ActorId, StopReason)>),
}

/// Who killed an actor: the reason it stops with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kill {
    /// `Addr::kill`: [`StopReason::Killed`].
    ByKill = 1,
    /// Its supervisor stopped it: [`StopReason::Supervisor`].
    BySupervisor = 2,
}

const NOT_KILLED: u8 = 0;

/// The state behind the mailbox's lock.
pub(crate) struct Inner<M> {
    pub(crate) queue: VecDeque<Envelope<M>>,
    /// Closed when the actor stops: sends fail from then on.
    pub(crate) closed: bool,
    /// For a bounded mailbox, its capacity (0: unbounded).
    capacity: u32,
    /// Messages (not signals) in the queue of a bounded mailbox.
    messages: u32,
    /// Senders parked until a bounded mailbox has room.
    #[allow(
        clippy::box_collection,
        reason = "8 bytes in every idle actor instead of a 24-byte VecDeque"
    )]
    waiting_senders: Option<Box<VecDeque<Fiber>>>,
    /// Links, monitors, registered names, stop waiters; made on first use.
    pub(crate) relations: Option<Box<Relations>>,
}

/// See the module doc.
pub(crate) struct Mailbox<M> {
    inner: Mutex<Inner<M>>,
    /// Set by `Addr::kill`, or by a supervisor stopping its child (under
    /// the lock, while open; the first kill wins): stop before handling
    /// anything else, with the [`Kill`] it holds. Outside the lock so that
    /// the actor can look at it before each envelope of a batch without
    /// taking the lock.
    killed: AtomicU8,
}

/// Why a message was not delivered.
pub(crate) enum Refused<M> {
    /// The actor has stopped.
    Closed(M),
    /// A bounded mailbox is full.
    Full(M),
}

impl<M> Mailbox<M> {
    /// A mailbox; `capacity` 0 means unbounded.
    pub(crate) fn new(capacity: u32) -> Mailbox<M> {
        Mailbox {
            killed: AtomicU8::new(NOT_KILLED),
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                closed: false,
                capacity,
                messages: 0,
                waiting_senders: None,
                relations: None,
            }),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner<M>> {
        self.inner.lock()
    }

    /// Enqueues a message unless the actor stopped or (bounded) is full.
    pub(crate) fn push(&self, msg: M) -> Result<(), Refused<M>> {
        let mut inner = self.lock();
        if inner.closed {
            return Err(Refused::Closed(msg));
        }
        if inner.capacity != 0 && inner.messages >= inner.capacity {
            return Err(Refused::Full(msg));
        }
        if inner.queue.capacity() == 0 {
            // An idle actor has no buffer (see `take_batch`); most get one
            // message at a time, so make room for exactly one (a
            // `VecDeque` would make room for four).
            inner.queue.reserve_exact(1);
        }
        inner.queue.push_back(Envelope::Message(msg));
        if inner.capacity != 0 {
            inner.messages += 1;
        }
        Ok(())
    }

    /// Enqueues a signal (never refused while open; returns false if the
    /// actor has stopped).
    pub(crate) fn push_signal(&self, signal: Signal) -> bool {
        let mut inner = self.lock();
        if inner.closed {
            return false;
        }
        inner.queue.push_back(Envelope::Signal(signal));
        true
    }

    /// Registers `sender` to be unparked when a bounded mailbox has room;
    /// false if it has room (or closed) already.
    pub(crate) fn wait_for_room(&self, sender: Fiber) -> bool {
        let mut inner = self.lock();
        if inner.closed || inner.capacity == 0 || inner.messages < inner.capacity {
            return false;
        }
        inner
            .waiting_senders
            .get_or_insert_with(Default::default)
            .push_back(sender);
        true
    }

    /// Whether anything waits for the actor: an envelope, or a kill.
    pub(crate) fn has_work(&self) -> bool {
        let inner = self.lock();
        !inner.queue.is_empty() || self.killed().is_some()
    }

    /// Marks the actor killed; false if it has stopped (or was killed
    /// already: the first kill's reason stands).
    pub(crate) fn kill(&self, kill: Kill) -> bool {
        let inner = self.lock();
        if inner.closed {
            return false;
        }
        // Release: pairs with the Acquire in `killed` (the flag carries no
        // data, but a kill seen is a kill that happened before).
        self.killed
            .compare_exchange(NOT_KILLED, kill as u8, Ordering::Release, Ordering::Relaxed)
            .is_ok()
    }

    /// Why the actor must stop at once, if it was killed.
    pub(crate) fn killed(&self) -> Option<StopReason> {
        match self.killed.load(Ordering::Acquire) {
            NOT_KILLED => None,
            k if k == Kill::BySupervisor as u8 => Some(StopReason::Supervisor),
            _ => Some(StopReason::Killed),
        }
    }

    /// Moves up to `max` envelopes into `batch` (which must be empty);
    /// returns why, if the actor was killed. Wakes senders waiting for
    /// room. The caller checks [`killed`](Self::killed) again before each
    /// envelope.
    ///
    /// When the whole queue fits, its buffer moves into `batch` with it,
    /// and the mailbox is left with none: an idle actor keeps no buffer
    /// (a `VecDeque` keeps its capacity when drained, which cost every
    /// actor that had ever had a message about 200 bytes).
    pub(crate) fn take_batch(
        &self,
        batch: &mut VecDeque<Envelope<M>>,
        max: usize,
    ) -> Option<StopReason> {
        debug_assert!(batch.is_empty(), "take_batch fills an empty batch");
        let mut inner = self.lock();
        let n = inner.queue.len().min(max);
        if n == inner.queue.len() {
            std::mem::swap(batch, &mut inner.queue);
        } else {
            batch.extend(inner.queue.drain(..n));
        }
        if inner.capacity != 0 {
            let taken = batch
                .iter()
                .filter(|e| matches!(e, Envelope::Message(_)))
                .count();
            inner.messages -= taken as u32;
        }
        let killed = self.killed();
        let woken = if n > 0 {
            inner
                .waiting_senders
                .as_mut()
                .map(|w| std::mem::take(&mut **w))
        } else {
            None
        };
        drop(inner);
        for sender in woken.into_iter().flatten() {
            sender.unpark();
        }
        killed
    }
}

impl<M> Inner<M> {
    /// Takes the senders waiting for room (the actor stopped).
    pub(crate) fn drain_waiting_senders(&mut self) -> Vec<crate::fiber::Fiber> {
        self.waiting_senders
            .take()
            .map(|w| w.into_iter().collect())
            .unwrap_or_default()
    }
}

impl<M> fmt::Debug for Mailbox<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("Mailbox")
            .field("queued", &inner.queue.len())
            .field("closed", &inner.closed)
            .finish()
    }
}

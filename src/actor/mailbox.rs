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

use std::collections::{HashMap, VecDeque};
use std::fmt;

use super::link::Relations;
use super::{ActorId, StopReason};
use crate::fiber::Fiber;
use crate::loom::sync::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

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

/// What [`Mailbox::has_work`] does with the queue's spare buffer when
/// nothing waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IfNone {
    /// Keep it: the actor looks again soon.
    KeepBuffer,
    /// Free it: the actor is going idle.
    DropBuffer,
}

/// The state behind the mailbox's lock.
pub(crate) struct Inner<M> {
    pub(crate) queue: VecDeque<Envelope<M>>,
    /// Closed when the actor stops: sends fail from then on.
    pub(crate) closed: bool,
    /// A bounded mailbox's count and waiting senders; `None`: unbounded.
    /// Boxed so that an unbounded one (the default) pays 8 bytes for it.
    bounded: Option<Box<Bounded>>,
    /// Links, monitors, registered names, stop waiters; made on first use.
    pub(crate) relations: Option<Box<Relations>>,
    /// How the actor stopped, for an actor that stopped without a
    /// relations box and for a reason without a payload (see
    /// [`record_stop`](Self::record_stop)); 0 until then. Fits in padding.
    ended: u8,
}

/// What only a bounded mailbox needs.
struct Bounded {
    capacity: u32,
    /// Messages (not signals) in the queue.
    messages: u32,
    /// Senders parked until the mailbox has room.
    waiting_senders: VecDeque<Fiber>,
}

impl Bounded {
    fn is_full(&self) -> bool {
        self.messages >= self.capacity
    }
}

/// `Inner::ended`: the stop is over (set with the reason's code).
const ENDED_FINISHED: u8 = 0x80;

/// The code of a reason without a payload, for `Inner::ended`.
fn reason_code(reason: &StopReason) -> Option<u8> {
    match reason {
        StopReason::Normal => Some(1),
        StopReason::Killed => Some(2),
        StopReason::Supervisor => Some(3),
        StopReason::Shutdown => Some(4),
        _ => None,
    }
}

fn reason_of(code: u8) -> Option<StopReason> {
    match code & !ENDED_FINISHED {
        1 => Some(StopReason::Normal),
        2 => Some(StopReason::Killed),
        3 => Some(StopReason::Supervisor),
        4 => Some(StopReason::Shutdown),
        _ => None,
    }
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
    /// Exit signals from linked actors arrive as calls to
    /// `Actor::linked_exit` instead of stopping the actor. Claimant-only
    /// state (the running actor's `Context` carries it), kept here because
    /// it fits beside `killed` for free; atomic only so that the mailbox
    /// stays `Sync`, hence `Relaxed`.
    trap_exit: AtomicBool,
}

/// Why a message was not delivered.
pub(crate) enum Refused<M> {
    /// The actor has stopped, or was killed (it will handle nothing
    /// more).
    Closed(M),
    /// A bounded mailbox is full.
    Full(M),
}

impl<M> Mailbox<M> {
    /// A mailbox; `capacity` 0 means unbounded.
    pub(crate) fn new(capacity: u32) -> Mailbox<M> {
        Mailbox {
            killed: AtomicU8::new(NOT_KILLED),
            trap_exit: AtomicBool::new(false),
            inner: Mutex::new(Inner {
                queue: VecDeque::new(),
                closed: false,
                bounded: (capacity != 0).then(|| {
                    Box::new(Bounded {
                        capacity,
                        messages: 0,
                        waiting_senders: VecDeque::new(),
                    })
                }),
                relations: None,
                ended: 0,
            }),
        }
    }

    /// Whether the actor traps exits; see the field.
    pub(crate) fn trap_exit(&self) -> bool {
        self.trap_exit.load(Ordering::Relaxed)
    }

    pub(crate) fn set_trap_exit(&self, trap: bool) {
        self.trap_exit.store(trap, Ordering::Relaxed);
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner<M>> {
        self.inner.lock()
    }

    /// Enqueues a message unless the actor stopped or was killed, or
    /// (bounded) is full.
    ///
    /// A killed actor refuses like a stopped one: it handles nothing more,
    /// so a message accepted now would be dropped unseen at its stop while
    /// the sender was told it went in. (A sender parked on the full
    /// mailbox, woken when the stopping actor took its queue, did exactly
    /// that before the mailbox closed.)
    pub(crate) fn push(&self, msg: M) -> Result<(), Refused<M>> {
        let mut inner = self.lock();
        if inner.closed || self.killed().is_some() {
            return Err(Refused::Closed(msg));
        }
        if let Some(bounded) = &mut inner.bounded {
            if bounded.is_full() {
                return Err(Refused::Full(msg));
            }
            bounded.messages += 1;
        }
        inner.push(Envelope::Message(msg));
        Ok(())
    }

    /// Enqueues a signal (never refused while open; returns false if the
    /// actor has stopped).
    pub(crate) fn push_signal(&self, signal: Signal) -> bool {
        let mut inner = self.lock();
        if inner.closed {
            return false;
        }
        inner.push(Envelope::Signal(signal));
        true
    }

    /// Registers `sender` to be unparked when a bounded mailbox has room;
    /// false if it has room already, or refuses everything (closed or
    /// killed: see [`push`](Self::push)).
    pub(crate) fn wait_for_room(&self, sender: Fiber) -> bool {
        let mut inner = self.lock();
        if inner.closed || self.killed().is_some() {
            return false;
        }
        match &mut inner.bounded {
            Some(bounded) if bounded.is_full() => {
                bounded.waiting_senders.push_back(sender);
                true
            }
            _ => false,
        }
    }

    /// Whether anything waits for the actor: an envelope, or a kill. If
    /// nothing does, `if_none` says whether the queue's spare buffer goes
    /// (the actor is going idle, and an idle actor keeps no buffer: see
    /// [`take_batch`](Self::take_batch)).
    pub(crate) fn has_work(&self, if_none: IfNone) -> bool {
        let mut inner = self.lock();
        if !inner.queue.is_empty() || self.killed().is_some() {
            return true;
        }
        if if_none == IfNone::DropBuffer && inner.queue.capacity() > 0 {
            let spare = std::mem::take(&mut inner.queue);
            drop(inner);
            drop(spare);
        }
        false
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
    /// and the mailbox gets `batch`'s (empty) buffer in exchange: an actor
    /// handling one message at a time swaps two buffers back and forth
    /// and allocates none. It has none when it is new, and frees the
    /// spare one when it goes idle ([`has_work`](Self::has_work)):
    /// an idle actor keeps no buffer (a `VecDeque` keeps its capacity when
    /// drained, which cost every actor that had ever had a message about
    /// 200 bytes).
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
        let killed = self.killed();
        let mut woken = VecDeque::new();
        if let Some(bounded) = &mut inner.bounded {
            let taken = batch
                .iter()
                .filter(|e| matches!(e, Envelope::Message(_)))
                .count();
            bounded.messages -= taken as u32;
            if n > 0 {
                woken = std::mem::take(&mut bounded.waiting_senders);
            }
        }
        drop(inner);
        for sender in woken {
            sender.unpark();
        }
        killed
    }
}

impl<M> Inner<M> {
    fn push(&mut self, envelope: Envelope<M>) {
        if self.queue.capacity() == 0 {
            // An idle actor has no buffer (see `take_batch`); most get one
            // envelope at a time, so make room for exactly one (a
            // `VecDeque` would make room for four).
            self.queue.reserve_exact(1);
        }
        self.queue.push_back(envelope);
    }

    /// Records why the actor stopped (late links, monitors and joins get
    /// it), and takes the links, monitors and names to tell. Most actors
    /// stop with no relations box and a reason without a payload: the
    /// reason then goes in a byte instead of a new box (a stopped actor's
    /// `Addr` may be kept for long; a box per actor made stopping a
    /// million of them cost 144 MB).
    pub(crate) fn record_stop(
        &mut self,
        reason: &StopReason,
    ) -> (
        HashMap<ActorId, super::link::ActorRef>,
        Vec<super::link::ActorRef>,
        Vec<String>,
    ) {
        if self.relations.is_none()
            && let Some(code) = reason_code(reason)
        {
            self.ended = code;
            return Default::default();
        }
        let relations = self.relations.get_or_insert_with(Default::default);
        relations.stopped = Some(reason.clone());
        (
            std::mem::take(&mut relations.links),
            std::mem::take(&mut relations.monitors),
            std::mem::take(&mut relations.names),
        )
    }

    /// Marks the stop over (joins return at once from now on) and takes
    /// the joiners to wake.
    pub(crate) fn finish_stop(&mut self, reason: &StopReason) -> Vec<Fiber> {
        match self.relations.as_mut() {
            Some(relations) => {
                // Made by a join that came after `record_stop`.
                relations.stopped.get_or_insert_with(|| reason.clone());
                relations.finished = true;
                std::mem::take(&mut relations.joiners)
            }
            None => {
                self.ended |= ENDED_FINISHED;
                Vec::new()
            }
        }
    }

    /// Why the actor stopped, once that is recorded.
    pub(crate) fn stop_reason(&self) -> Option<StopReason> {
        match &self.relations {
            Some(relations) if relations.stopped.is_some() => relations.stopped.clone(),
            _ => reason_of(self.ended),
        }
    }

    /// Whether the stop is over (see `finish_stop`).
    pub(crate) fn stop_finished(&self) -> bool {
        match &self.relations {
            Some(relations) => relations.finished,
            None => self.ended & ENDED_FINISHED != 0,
        }
    }

    /// Takes the senders waiting for room (the actor stopped).
    pub(crate) fn drain_waiting_senders(&mut self) -> Vec<crate::fiber::Fiber> {
        self.bounded
            .as_mut()
            .map(|b| std::mem::take(&mut b.waiting_senders).into())
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

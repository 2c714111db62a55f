//! The runtime behind [`select!`](crate::select): not for direct use.
//!
//! `select!` builds one [`Op`] per branch on the caller's stack and calls
//! [`select`], which:
//!
//! 1. tries every operation once without waiting, starting at a random
//!    branch (so ready branches are chosen fairly);
//! 2. if none is ready (and the select may wait), registers one context in
//!    every channel, in the same rotated order. A channel that looks ready
//!    while registering stops the registration: the context is aborted,
//!    unregistered everywhere, and the round starts over at step 1;
//! 3. parks until a channel selects the context (it completes that
//!    branch's operation on the select's behalf, see `waiter.rs`) or the
//!    deadline passes, then unregisters from every channel.
//!
//! The values of all send branches are evaluated before anything else,
//! as Go does; the ones not sent are dropped when the select ends.

use std::cell::Cell;
use std::fmt;
use std::pin::{Pin, pin};
use std::time::Instant;

use super::channel::Chan;
use super::waiters::Packet;
use super::{Receiver, RecvError, SendError, Sender};
use crate::sync::waiter::{Context, Outcome};

/// A select's waiting context, as the branches see it.
pub struct Selector<'a> {
    cx: Pin<&'a Context>,
}

impl fmt::Debug for Selector<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Selector").finish_non_exhaustive()
    }
}

/// One branch's operation.
pub trait Op {
    /// Tries the operation without waiting; true if it completed (its
    /// outcome, a value or an error, is kept for the branch).
    fn try_now(&self) -> bool;
    /// Registers the select's context for this operation as `oper`; false,
    /// without registering, if the operation looks ready.
    fn register(&self, sel: &Selector<'_>, oper: usize) -> bool;
    /// Removes the select's entries from this operation's channel.
    fn unregister(&self, sel: &Selector<'_>);
    /// Marks this branch as the one the select chose.
    fn set_chosen(&self);
}

/// A `recv(rx)` branch.
pub struct RecvOp<'a, T> {
    chan: &'a Chan<T>,
    packet: Packet<T>,
    chosen: Cell<bool>,
}

impl<'a, T> RecvOp<'a, T> {
    /// The branch for a receive from `rx`.
    pub fn new(rx: &'a Receiver<T>) -> RecvOp<'a, T> {
        RecvOp {
            chan: &rx.chan,
            packet: Packet::new(None),
            chosen: Cell::new(false),
        }
    }

    /// Whether the select chose this branch.
    pub fn is_chosen(&self) -> bool {
        self.chosen.get()
    }

    /// The outcome of the chosen branch.
    pub fn into_result(self) -> Result<T, RecvError> {
        // SAFETY: the select has ended: the packet is not registered.
        unsafe { self.packet.take() }.ok_or(RecvError)
    }
}

impl<T> Op for RecvOp<'_, T> {
    fn try_now(&self) -> bool {
        self.chan.try_recv_into(&self.packet)
    }
    fn register(&self, sel: &Selector<'_>, oper: usize) -> bool {
        self.chan.register_recv(sel.cx, oper, &self.packet)
    }
    fn unregister(&self, sel: &Selector<'_>) {
        self.chan.unregister(&sel.cx);
    }
    fn set_chosen(&self) {
        self.chosen.set(true);
    }
}

/// A `send(tx, value)` branch.
pub struct SendOp<'a, T> {
    chan: &'a Chan<T>,
    packet: Packet<T>,
    chosen: Cell<bool>,
}

impl<'a, T> SendOp<'a, T> {
    /// The branch for a send of `value` on `tx`.
    pub fn new(tx: &'a Sender<T>, value: T) -> SendOp<'a, T> {
        SendOp {
            chan: &tx.chan,
            packet: Packet::new(Some(value)),
            chosen: Cell::new(false),
        }
    }

    /// Whether the select chose this branch.
    pub fn is_chosen(&self) -> bool {
        self.chosen.get()
    }

    /// The outcome of the chosen branch: sent, or the value back.
    pub fn into_result(self) -> Result<(), SendError<T>> {
        // SAFETY: the select has ended: the packet is not registered.
        match unsafe { self.packet.take() } {
            None => Ok(()),
            Some(value) => Err(SendError(value)),
        }
    }
}

impl<T> Op for SendOp<'_, T> {
    fn try_now(&self) -> bool {
        self.chan.try_send_from(&self.packet)
    }
    fn register(&self, sel: &Selector<'_>, oper: usize) -> bool {
        self.chan.register_send(sel.cx, oper, &self.packet)
    }
    fn unregister(&self, sel: &Selector<'_>) {
        self.chan.unregister(&sel.cx);
    }
    fn set_chosen(&self) {
        self.chosen.set(true);
    }
}

impl<T> fmt::Debug for RecvOp<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvOp")
            .field("chosen", &self.chosen.get())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for SendOp<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendOp")
            .field("chosen", &self.chosen.get())
            .finish_non_exhaustive()
    }
}

/// Whether, and how long, a select may wait.
#[derive(Debug, Clone, Copy)]
pub enum Mode {
    /// Until a branch is ready.
    Block,
    /// Until the deadline (`None`: it is too far to count, so no limit).
    Deadline(Option<Instant>),
    /// Not at all (a `default` branch).
    NonBlocking,
}

impl Mode {
    /// A timeout from now.
    pub fn timeout(timeout: std::time::Duration) -> Mode {
        Mode::Deadline(Instant::now().checked_add(timeout))
    }
}

/// Runs a select over `ops`; true if a branch was chosen (see its
/// `is_chosen`), false if the timeout passed or, for `NonBlocking`, no
/// branch was ready.
///
/// A select whose fiber is being unwound at runtime shutdown, and that
/// would have to wait, chooses its first branch as if its channel were
/// disconnected (a receive gets `RecvError`, a send its value back).
pub fn select(ops: &[&dyn Op], mode: Mode) -> bool {
    let n = ops.len();
    let start = if n > 1 { random() % n } else { 0 };
    let order = move || (0..n).map(move |i| (start + i) % n);
    loop {
        for i in order() {
            if ops[i].try_now() {
                ops[i].set_chosen();
                return true;
            }
        }
        let deadline = match mode {
            Mode::NonBlocking => return false,
            Mode::Block => None,
            Mode::Deadline(deadline) => deadline,
        };
        let cx = pin!(Context::for_current());
        let sel = Selector { cx: cx.as_ref() };
        let mut registered = 0;
        let all = order().all(|i| {
            let ok = ops[i].register(&sel, i);
            registered += usize::from(ok);
            ok
        });
        let unregister_all = |sel: &Selector<'_>| {
            for i in order().take(registered) {
                ops[i].unregister(sel);
            }
        };
        let outcome = if all {
            /// Runs only if the wait unwinds (runtime shutdown).
            struct Unwinding<'a, 'b, F: Fn(&Selector<'b>)>(&'a Selector<'b>, &'a F);
            impl<'b, F: Fn(&Selector<'b>)> Drop for Unwinding<'_, 'b, F> {
                fn drop(&mut self) {
                    // A branch that completed meanwhile has its value in
                    // its packet, which is dropped with the select.
                    let _ = self.0.cx.abort_or_complete();
                    (self.1)(self.0);
                }
            }
            let unwinding = Unwinding(&sel, &unregister_all);
            let outcome = sel.cx.wait(deadline, || sel.cx.try_abort());
            std::mem::forget(unwinding);
            outcome
        } else {
            match sel.cx.abort_or_complete() {
                Some(oper) => Outcome::Selected(oper),
                None => {
                    // Something looked ready: start over.
                    unregister_all(&sel);
                    continue;
                }
            }
        };
        unregister_all(&sel);
        return match outcome {
            Outcome::Selected(oper) => {
                ops[oper].set_chosen();
                true
            }
            Outcome::TimedOut => false,
            Outcome::Cancelled => {
                ops[start].set_chosen();
                true
            }
        };
    }
}

/// A cheap per-thread random number, for the start of each select.
#[cfg(not(loom))]
#[inline(never)]
fn random() -> usize {
    thread_local! {
        static STATE: Cell<u32> = const { Cell::new(0) };
    }
    STATE
        .try_with(|state| {
            let mut x = state.get();
            if x == 0 {
                // Seed from the thread's slot address and the clock.
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.subsec_nanos());
                x = (state as *const Cell<u32> as usize as u32) ^ nanos | 1;
            }
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            state.set(x);
            x as usize
        })
        .unwrap_or(0)
}

/// Models are deterministic: always start at the first branch.
#[cfg(loom)]
fn random() -> usize {
    0
}

//! Receiving from async code: [`RecvFuture`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};

use super::RecvError;
use super::channel::Chan;
use super::waiters::Packet;
use crate::sync::waiter::Context;

/// A receive, as a future; see [`Receiver::recv_async`](super::Receiver::recv_async).
///
/// The future waits by registering its task's waker in the channel, with a
/// boxed packet a sender hands the value to. Dropped before it completes,
/// it unregisters, and gives back a value handed to it meanwhile (to a
/// waiting receiver, or to the front of the queue), so no value is lost.
///
/// ```
/// let (tx, rx) = weft::chan::unbounded();
/// tx.send(1).unwrap();
/// assert_eq!(weft::block_on(rx.recv_async()), Ok(1));
/// ```
#[must_use = "futures do nothing unless polled"]
pub struct RecvFuture<'a, T> {
    chan: &'a Chan<T>,
    state: AsyncRecv<T>,
}

impl<'a, T> RecvFuture<'a, T> {
    pub(super) fn new(chan: &'a Chan<T>) -> RecvFuture<'a, T> {
        RecvFuture {
            chan,
            state: AsyncRecv::new(),
        }
    }
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.state.poll(this.chan, task)
    }
}

impl<T> Drop for RecvFuture<'_, T> {
    fn drop(&mut self) {
        self.state.cancel(self.chan);
    }
}

impl<T> fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvFuture")
            .field("waiting", &self.state.waiting.is_some())
            .field("done", &self.state.done)
            .finish()
    }
}

/// The state of an async receive, apart from the channel it receives from
/// (a borrowed one for [`RecvFuture`], an owned one for a oneshot receiver).
pub(super) struct AsyncRecv<T> {
    /// While registered: the context and the packet its entry points to,
    /// boxed so that they stay put while the future moves.
    waiting: Option<Pin<Box<Waiting<T>>>>,
    done: bool,
}

struct Waiting<T> {
    cx: Context,
    packet: Packet<T>,
}

impl<T> Waiting<T> {
    fn cx(self: Pin<&Self>) -> Pin<&Context> {
        // SAFETY: structural pinning: `cx` is never moved out of a pinned
        // `Waiting`, nor is a `&mut` to it handed out.
        unsafe { self.map_unchecked(|w| &w.cx) }
    }
}

/// The outcome left in a packet by a completed receive.
fn outcome<T>(packet: &Packet<T>) -> Result<T, RecvError> {
    // SAFETY: the receive completed: the packet is not registered, or its
    // context is READY.
    unsafe { packet.take() }.ok_or(RecvError)
}

impl<T> AsyncRecv<T> {
    pub(super) fn new() -> AsyncRecv<T> {
        AsyncRecv {
            waiting: None,
            done: false,
        }
    }

    pub(super) fn poll(
        &mut self,
        chan: &Chan<T>,
        task: &mut TaskContext<'_>,
    ) -> Poll<Result<T, RecvError>> {
        assert!(
            !self.done,
            "a weft receive future was polled after it completed"
        );
        if let Some(waiting) = &self.waiting {
            if waiting.cx.update_waker(task.waker()).is_none() {
                return Poll::Pending;
            }
            let result = outcome(&waiting.packet);
            self.waiting = None;
            self.done = true;
            return Poll::Ready(result);
        }
        let waiting = Box::pin(Waiting {
            cx: Context::for_waker(task.waker().clone()),
            packet: Packet::new(None),
        });
        loop {
            if chan.try_recv_into(&waiting.packet) {
                self.done = true;
                return Poll::Ready(outcome(&waiting.packet));
            }
            if chan.register_recv(waiting.as_ref().cx(), 0, &waiting.packet) {
                self.waiting = Some(waiting);
                return Poll::Pending;
            }
            // It looked ready while registering: try again.
        }
    }

    /// Unregisters a pending receive; a value handed to it meanwhile goes
    /// back to the channel.
    pub(super) fn cancel(&mut self, chan: &Chan<T>) {
        let Some(waiting) = self.waiting.take() else {
            return;
        };
        match waiting.cx.abort_or_complete() {
            None => chan.unregister(&waiting.cx),
            Some(_) => {
                // SAFETY: READY: the sender is done with the packet.
                if let Some(value) = unsafe { waiting.packet.take() } {
                    chan.give_back(value);
                }
            }
        }
    }
}

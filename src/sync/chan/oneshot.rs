//! A channel for one value: [`oneshot()`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use super::channel::Chan;
use super::recv_future::AsyncRecv;
use super::{RecvError, RecvTimeoutError, TryRecvError};
use crate::loom::sync::Arc;

/// A channel for exactly one value: the reply slot of a request. Sending
/// never waits; the receiver can wait for it from a fiber, a thread, or
/// async code (it is a `Future`). If the sender is dropped without
/// sending, the receiver gets [`RecvError`].
///
/// ```
/// let answer = weft::run(|| {
///     let (reply, answer) = weft::chan::oneshot();
///     weft::spawn(move || reply.send(6 * 7).unwrap());
///     answer.recv().unwrap()
/// });
/// assert_eq!(answer, 42);
/// ```
pub fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(1));
    (
        Sender { chan: chan.clone() },
        Receiver {
            chan,
            state: AsyncRecv::new(),
        },
    )
}

/// The sending half of a [`oneshot()`] channel.
///
/// ```
/// let (tx, rx) = weft::chan::oneshot();
/// tx.send("done").unwrap();
/// assert_eq!(rx.recv(), Ok("done"));
/// ```
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a [`oneshot()`] channel; awaiting it receives.
///
/// ```
/// let (tx, rx) = weft::chan::oneshot();
/// std::thread::spawn(move || tx.send(1).unwrap());
/// assert_eq!(weft::block_on(rx), Ok(1));
/// ```
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
    state: AsyncRecv<T>,
}

impl<T> Sender<T> {
    /// Sends the value; never waits.
    ///
    /// # Errors
    ///
    /// The receiver is gone: the value comes back.
    ///
    /// ```
    /// let (tx, rx) = weft::chan::oneshot();
    /// drop(rx);
    /// assert_eq!(tx.send(5), Err(5));
    /// ```
    pub fn send(self, value: T) -> Result<(), T> {
        self.chan.try_send(value).map_err(|e| e.into_inner())
    }

    /// Whether the receiver is gone.
    ///
    /// ```
    /// let (tx, rx) = weft::chan::oneshot::<u8>();
    /// assert!(!tx.is_closed());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.chan.is_disconnected(true)
    }
}

impl<T> Receiver<T> {
    /// Waits for the value.
    ///
    /// # Errors
    ///
    /// The sender was dropped without sending (or the runtime is shutting
    /// down and this would wait).
    ///
    /// ```
    /// let (tx, rx) = weft::chan::oneshot::<u8>();
    /// drop(tx);
    /// assert_eq!(rx.recv(), Err(weft::chan::RecvError));
    /// ```
    pub fn recv(self) -> Result<T, RecvError> {
        self.chan.recv(None).map_err(|_| RecvError)
    }

    /// Takes the value if it is there.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] if not sent yet, [`TryRecvError::Disconnected`]
    /// if it never will be (or was taken already).
    ///
    /// ```
    /// use weft::chan::TryRecvError;
    /// let (tx, rx) = weft::chan::oneshot();
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// Waits for the value, no longer than `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`], or as [`recv`](Self::recv).
    ///
    /// ```
    /// use std::time::Duration;
    /// let (_tx, rx) = weft::chan::oneshot::<u8>();
    /// assert!(rx.recv_timeout(Duration::from_millis(5)).is_err());
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.recv(super::deadline(timeout))
    }
}

impl<T> Future for Receiver<T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, task: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.state.poll(&this.chan, task)
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.state.cancel(&self.chan);
        self.chan.drop_receiver();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Sender").finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("oneshot::Receiver").finish_non_exhaustive()
    }
}

//! Channels: multi-producer, multi-consumer queues between fibers and
//! threads.
//!
//! - [`bounded(n)`](bounded): at most `n` values wait in the channel; a
//!   send to a full channel waits. `bounded(0)` is a *rendezvous*: each
//!   send waits for a receiver to take its value.
//! - [`unbounded()`](unbounded): sends never wait.
//! - [`oneshot()`](oneshot()): one value, once; its receiver can be awaited.
//! - [`select!`](crate::select): wait on several sends and receives at once.
//!
//! Both ends can be cloned. A waiting operation parks the *fiber* (its
//! worker runs other fibers meanwhile); on a plain thread it blocks the
//! thread, so fibers and threads can talk over one channel.
//!
//! ```
//! let total = weft::run(|| {
//!     let (tx, rx) = weft::chan::bounded(16);
//!     for i in 0..4u64 {
//!         let tx = tx.clone();
//!         weft::spawn(move || (0..100).for_each(|n| tx.send(i * 1000 + n).unwrap()));
//!     }
//!     drop(tx); // the loop below ends when the last sender is gone
//!     rx.iter().sum::<u64>()
//! });
//! assert_eq!(total, 4 * 4950 + 1000 * 100 * 6);
//! ```
//!
//! # Disconnection
//!
//! When the last [`Sender`] is dropped, receives drain what is queued and
//! then fail with [`RecvError`]; receivers waiting at that moment wake up
//! with it. When the last [`Receiver`] is dropped, sends fail with
//! [`SendError`], which gives the value back, senders waiting at that
//! moment wake up with it, and the values still queued are dropped there
//! and then. Every value is dropped exactly once: by its receiver, with the
//! channel, or returned in an error.
//!
//! # Order and fairness
//!
//! Values come out in the order they went in. Waiting senders and waiting
//! receivers are each served first come, first served.
//!
//! # At runtime shutdown
//!
//! A fiber parked in a channel operation when its runtime shuts down is
//! unwound from there: its destructors run, and the value it was sending
//! is dropped. An operation called while the fiber is being unwound (in a
//! destructor) does not wait: what it can do at once it does, otherwise it
//! reports disconnection ([`RecvError`], [`SendError`]), since waiting would
//! never end.
//!
//! # Cost
//!
//! One short lock per operation. A receiver that waits is handed the value
//! directly by the sender that arrives next (no second trip through the
//! queue); when both are fibers of one worker, the receiver runs next on
//! that worker (the scheduler's LIFO slot).

mod channel;
mod error;
mod macros;
pub mod oneshot;
mod recv_future;
#[doc(hidden)]
pub mod select;
mod waiters;

use std::fmt;
use std::time::{Duration, Instant};

use self::channel::Chan;
pub use self::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
pub use self::oneshot::oneshot;
pub use self::recv_future::RecvFuture;
use crate::loom::sync::Arc;

/// A channel that holds at most `cap` values; `cap == 0` makes a
/// rendezvous channel, where each send waits for a receive.
///
/// ```
/// let (tx, rx) = weft::chan::bounded(0);
/// let got = weft::run(move || {
///     let receiver = weft::spawn(move || rx.recv().unwrap());
///     tx.send("hello").unwrap(); // returns once the receiver has it
///     receiver.join().unwrap()
/// });
/// assert_eq!(got, "hello");
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    assert!(cap < usize::MAX, "weft::chan::bounded: use unbounded()");
    new(cap)
}

/// A channel with no limit on the values it holds: sends never wait.
///
/// ```
/// let (tx, rx) = weft::chan::unbounded();
/// for i in 0..3 {
///     tx.send(i).unwrap();
/// }
/// drop(tx);
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    new(usize::MAX)
}

fn new<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan::new(cap));
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending end of a channel; clone it for more senders.
///
/// ```
/// let (tx, rx) = weft::chan::unbounded();
/// let tx2 = tx.clone();
/// tx.send(1).unwrap();
/// tx2.send(2).unwrap();
/// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
/// ```
pub struct Sender<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

/// The receiving end of a channel; clone it for more receivers (each value
/// goes to one of them).
///
/// ```
/// let (tx, rx) = weft::chan::unbounded();
/// let rx2 = rx.clone();
/// tx.send(1).unwrap();
/// tx.send(2).unwrap();
/// assert_eq!(rx.recv(), Ok(1));
/// assert_eq!(rx2.recv(), Ok(2));
/// ```
pub struct Receiver<T> {
    pub(crate) chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `value`, waiting while the channel is full (for a rendezvous
    /// channel: until a receiver takes it).
    ///
    /// # Errors
    ///
    /// Every receiver is gone (also if the last one goes while this
    /// waits), or the runtime is shutting down and this would wait: the
    /// value comes back in the error.
    ///
    /// ```
    /// let (tx, rx) = weft::chan::bounded(1);
    /// tx.send(1).unwrap();
    /// drop(rx);
    /// assert_eq!(tx.send(2), Err(weft::chan::SendError(2)));
    /// ```
    pub fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.chan
            .send(value, None)
            .map_err(|e| SendError(e.into_inner()))
    }

    /// Sends `value` if that needs no waiting.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Disconnected`], with the
    /// value.
    ///
    /// ```
    /// let (tx, _rx) = weft::chan::bounded(1);
    /// assert!(tx.try_send(1).is_ok());
    /// assert!(tx.try_send(2).unwrap_err().is_full());
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan.try_send(value)
    }

    /// [`send`](Self::send), waiting no longer than `timeout`.
    ///
    /// # Errors
    ///
    /// [`SendTimeoutError::Timeout`] if the channel stayed full, else as
    /// `send`; the value comes back in the error.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, _rx) = weft::chan::bounded(1);
    /// tx.send_timeout(1, Duration::from_millis(5)).unwrap();
    /// assert!(tx.send_timeout(2, Duration::from_millis(5)).unwrap_err().is_timeout());
    /// ```
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(value, deadline(timeout))
    }

    /// [`send`](Self::send), waiting no later than `deadline`.
    ///
    /// # Errors
    ///
    /// As [`send_timeout`](Self::send_timeout).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (tx, _rx) = weft::chan::bounded(0);
    /// let at = Instant::now() + Duration::from_millis(5);
    /// assert!(tx.send_deadline(1, at).unwrap_err().is_timeout());
    /// ```
    pub fn send_deadline(&self, value: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        self.chan.send(value, Some(deadline))
    }

    /// How many values are queued.
    ///
    /// ```
    /// let (tx, _rx) = weft::chan::unbounded();
    /// tx.send(()).unwrap();
    /// assert_eq!(tx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no value is queued.
    ///
    /// ```
    /// let (tx, _rx) = weft::chan::unbounded::<()>();
    /// assert!(tx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity: `None` for an unbounded channel.
    ///
    /// ```
    /// assert_eq!(weft::chan::bounded::<u8>(4).0.capacity(), Some(4));
    /// assert_eq!(weft::chan::unbounded::<u8>().0.capacity(), None);
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// Whether every receiver is gone.
    ///
    /// ```
    /// let (tx, rx) = weft::chan::unbounded::<u8>();
    /// drop(rx);
    /// assert!(tx.is_disconnected());
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.chan.is_disconnected(true)
    }

    /// Whether `self` and `other` send to the same channel.
    ///
    /// ```
    /// let (tx, _rx) = weft::chan::unbounded::<u8>();
    /// assert!(tx.same_channel(&tx.clone()));
    /// ```
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Receiver<T> {
    /// Receives a value, waiting while the channel is empty.
    ///
    /// # Errors
    ///
    /// The channel is empty and every sender is gone (also if the last one
    /// goes while this waits), or the runtime is shutting down and this
    /// would wait.
    ///
    /// ```
    /// let (tx, rx) = weft::chan::unbounded();
    /// std::thread::spawn(move || tx.send(5).unwrap());
    /// assert_eq!(rx.recv(), Ok(5));
    /// assert_eq!(rx.recv(), Err(weft::chan::RecvError));
    /// ```
    pub fn recv(&self) -> Result<T, RecvError> {
        self.chan.recv(None).map_err(|_| RecvError)
    }

    /// Receives a value if one is there now.
    ///
    /// # Errors
    ///
    /// [`TryRecvError::Empty`] or [`TryRecvError::Disconnected`].
    ///
    /// ```
    /// let (tx, rx) = weft::chan::unbounded();
    /// assert!(rx.try_recv().is_err());
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        self.chan.try_recv()
    }

    /// [`recv`](Self::recv), waiting no longer than `timeout`.
    ///
    /// # Errors
    ///
    /// [`RecvTimeoutError::Timeout`] if nothing came, else as `recv`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use weft::chan::RecvTimeoutError;
    /// let (tx, rx) = weft::chan::unbounded::<u8>();
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Timeout));
    /// drop(tx);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(5)), Err(RecvTimeoutError::Disconnected));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        self.chan.recv(deadline(timeout))
    }

    /// [`recv`](Self::recv), waiting no later than `deadline`.
    ///
    /// # Errors
    ///
    /// As [`recv_timeout`](Self::recv_timeout).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (_tx, rx) = weft::chan::unbounded::<u8>();
    /// assert!(rx.recv_deadline(Instant::now() + Duration::from_millis(5)).is_err());
    /// ```
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        self.chan.recv(Some(deadline))
    }

    /// A future that receives a value: for async code waiting on a weft
    /// channel. Dropping it before it completes loses no value.
    ///
    /// ```
    /// let (tx, rx) = weft::chan::bounded(0);
    /// let got = weft::run(move || {
    ///     weft::spawn(move || tx.send(3).unwrap());
    ///     weft::block_on(async { rx.recv_async().await })
    /// });
    /// assert_eq!(got, Ok(3));
    /// ```
    pub fn recv_async(&self) -> RecvFuture<'_, T> {
        RecvFuture::new(&self.chan)
    }

    /// An iterator that receives until the channel is empty and
    /// disconnected (it waits meanwhile).
    ///
    /// ```
    /// let (tx, rx) = weft::chan::unbounded();
    /// std::thread::spawn(move || (1..=3).for_each(|i| tx.send(i).unwrap()));
    /// assert_eq!(rx.iter().sum::<i32>(), 6);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the values queued now; it never waits.
    ///
    /// ```
    /// let (tx, rx) = weft::chan::unbounded();
    /// tx.send(1).unwrap();
    /// tx.send(2).unwrap();
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// How many values are queued.
    ///
    /// ```
    /// let (tx, rx) = weft::chan::bounded(2);
    /// tx.send(1).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether no value is queued.
    ///
    /// ```
    /// let (_tx, rx) = weft::chan::bounded::<u8>(2);
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The capacity: `None` for an unbounded channel.
    ///
    /// ```
    /// assert_eq!(weft::chan::bounded::<u8>(0).1.capacity(), Some(0));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        self.chan.capacity()
    }

    /// Whether every sender is gone (values may still be queued).
    ///
    /// ```
    /// let (tx, rx) = weft::chan::unbounded();
    /// tx.send(1).unwrap();
    /// drop(tx);
    /// assert!(rx.is_disconnected());
    /// assert_eq!(rx.recv(), Ok(1));
    /// ```
    pub fn is_disconnected(&self) -> bool {
        self.chan.is_disconnected(false)
    }

    /// Whether `self` and `other` receive from the same channel.
    ///
    /// ```
    /// let (_tx, rx) = weft::chan::unbounded::<u8>();
    /// assert!(rx.same_channel(&rx.clone()));
    /// ```
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

/// `Instant::now() + timeout`, or no deadline if that overflows.
fn deadline(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Sender<T> {
        self.chan.add_sender();
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Receiver<T> {
        self.chan.add_receiver();
        Receiver {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.drop_receiver();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.capacity())
            .finish_non_exhaustive()
    }
}

/// A waiting iterator over received values; see [`Receiver::iter`].
///
/// ```
/// let (tx, rx) = weft::chan::unbounded();
/// tx.send('a').unwrap();
/// drop(tx);
/// let mut it = rx.iter();
/// assert_eq!(it.next(), Some('a'));
/// assert_eq!(it.next(), None);
/// ```
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

/// A non-waiting iterator; see [`Receiver::try_iter`].
///
/// ```
/// let (_tx, rx) = weft::chan::unbounded::<u8>();
/// assert_eq!(rx.try_iter().next(), None);
/// ```
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

/// An owning waiting iterator; see `impl IntoIterator for Receiver`.
///
/// ```
/// let (tx, rx) = weft::chan::unbounded();
/// tx.send(1).unwrap();
/// drop(tx);
/// assert_eq!(rx.into_iter().collect::<Vec<_>>(), [1]);
/// ```
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}

//! [`block_on`]: a fiber waits for a `Future`.

use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use crate::fiber::Fiber;

/// Wakes a fiber (or thread) parked in [`block_on`].
struct FiberWaker(Fiber);

impl Wake for FiberWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `future` to completion on the calling fiber and returns its
/// output: the future is polled with a waker that unparks this fiber, and
/// between polls the fiber parks (its worker runs other fibers). Any
/// future works, weft's own ([`JoinHandle`](crate::JoinHandle),
/// [`Receiver::recv_async`](crate::chan::Receiver::recv_async), a
/// [`oneshot`](crate::chan::oneshot()) receiver) or another library's,
/// as long as it needs no particular executor's reactor (a tokio socket
/// needs tokio's). Off a fiber, it blocks the calling thread the same way.
///
/// # Panics
///
/// If the future panics; or if it is still pending when the runtime shuts
/// down while this fiber is being unwound (parks then return at once, so
/// waiting would spin forever).
///
/// ```
/// let n = weft::run(|| {
///     let fiber = weft::spawn(|| 20);
///     weft::block_on(async move { fiber.await.unwrap() + 1 })
/// });
/// assert_eq!(n, 21);
/// ```
pub fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    let waker = Waker::from(Arc::new(FiberWaker(crate::fiber::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        if let Poll::Ready(output) = future.as_mut().poll(&mut cx) {
            return output;
        }
        if crate::fiber::current::is_cancelled() {
            super::waiter::cancelled_panic("block_on");
        }
        // A wake since the poll left the token: this returns at once.
        crate::fiber::park();
    }
}

//! The async bridge, with futures that are not weft's: a fiber waits for a
//! `futures` channel with `weft::block_on`; an async task (run by the
//! `futures` executor on a plain thread) awaits weft `JoinHandle`s and
//! channel receives.

mod support;
mod sync_util;

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::channel::{mpsc, oneshot as fut_oneshot};
use futures::executor::block_on as futures_block_on;
use futures::{SinkExt, StreamExt};
use sync_util::{runtime, watchdog};
use weft::chan::{RecvError, bounded, oneshot, unbounded};

const LIMIT: Duration = Duration::from_secs(30);

#[test]
fn a_fiber_blocks_on_a_futures_oneshot_filled_by_a_thread() {
    let _w = watchdog(
        "a_fiber_blocks_on_a_futures_oneshot_filled_by_a_thread",
        LIMIT,
    );
    // One worker: block_on must park the fiber, not the worker, so the
    // other fiber still runs.
    let rt = runtime(1);
    let got = rt.block_on(|| {
        let (tx, rx) = fut_oneshot::channel::<u32>();
        let ticker = weft::spawn(|| {
            for _ in 0..10 {
                weft::sleep(Duration::from_millis(1));
            }
        });
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tx.send(7).unwrap();
        });
        let got = weft::block_on(rx).unwrap();
        ticker.join().unwrap();
        got
    });
    assert_eq!(got, 7);
}

#[test]
fn fibers_stream_through_a_futures_mpsc() {
    let _w = watchdog("fibers_stream_through_a_futures_mpsc", LIMIT);
    let rt = runtime(2);
    let sum = rt.block_on(|| {
        let (mut tx, mut rx) = mpsc::channel::<u64>(4);
        let producer = weft::spawn(move || {
            for i in 0..1000 {
                weft::block_on(tx.send(i)).unwrap();
            }
        });
        let mut sum = 0;
        while let Some(v) = weft::block_on(rx.next()) {
            sum += v;
        }
        producer.join().unwrap();
        sum
    });
    assert_eq!(sum, 999 * 1000 / 2);
}

#[test]
fn an_async_task_awaits_fibers_and_weft_channels() {
    let _w = watchdog("an_async_task_awaits_fibers_and_weft_channels", LIMIT);
    let rt = runtime(2);
    let fiber = rt.spawn(|| {
        weft::sleep(Duration::from_millis(10));
        40
    });
    let (tx, rx) = bounded::<u32>(0);
    let (reply_tx, reply_rx) = oneshot::<u32>();
    rt.spawn(move || {
        weft::sleep(Duration::from_millis(5));
        tx.send(1).unwrap();
        reply_tx.send(1).unwrap();
    });
    // The futures executor on this (plain) thread.
    let total = futures_block_on(async move {
        let a = fiber.await.unwrap();
        let b = rx.recv_async().await.unwrap();
        let c = reply_rx.await.unwrap();
        let d = rx.recv_async().await;
        assert_eq!(d, Err(RecvError), "the sender fiber is gone");
        a + b + c
    });
    assert_eq!(total, 42);
}

#[test]
fn a_join_handle_awaited_after_the_fiber_panicked_reports_it() {
    let _w = watchdog(
        "a_join_handle_awaited_after_the_fiber_panicked_reports_it",
        LIMIT,
    );
    let rt = runtime(1);
    let h = rt.spawn(|| -> u8 { panic!("boom") });
    let err = futures_block_on(h).unwrap_err();
    assert!(err.is_panic());
}

#[test]
fn a_join_handle_used_after_it_was_awaited_panics_with_the_reason() {
    let _w = watchdog(
        "a_join_handle_used_after_it_was_awaited_panics_with_the_reason",
        LIMIT,
    );
    let rt = runtime(1);
    let mut h = rt.spawn(|| 7u8);
    assert_eq!(futures_block_on(&mut h).unwrap(), 7);
    let names_the_misuse = |payload: Box<dyn std::any::Any + Send>| {
        support::panic_message(&*payload).is_some_and(|m| m.contains("awaited to completion"))
    };
    let polled = catch_unwind(AssertUnwindSafe(|| futures_block_on(&mut h)))
        .expect_err("a second poll after Ready panics");
    assert!(names_the_misuse(polled), "the panic names the misuse");
    let joined = catch_unwind(AssertUnwindSafe(move || h.join()))
        .expect_err("a join after the result was awaited panics");
    assert!(names_the_misuse(joined));
}

/// Polls a future once, then drops it; its output if it was ready.
struct PollOnce<F>(Option<F>);

impl<F: Future + Unpin> Future for PollOnce<F> {
    type Output = Option<F::Output>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut f = self.0.take().expect("polled once");
        let output = match Pin::new(&mut f).poll(cx) {
            Poll::Ready(output) => Some(output),
            Poll::Pending => None,
        };
        drop(f);
        Poll::Ready(output)
    }
}

#[test]
fn a_dropped_receive_future_loses_no_value() {
    let _w = watchdog("a_dropped_receive_future_loses_no_value", LIMIT);
    let rt = runtime(2);
    for round in 0..200 {
        let (tx, rx) = unbounded::<u32>();
        let sender = rt.spawn(move || {
            tx.send(round).unwrap();
            tx
        });
        // Register (or find the value at once), then drop the future; a
        // value handed to it meanwhile goes back to the channel.
        let polled = futures_block_on(PollOnce(Some(rx.recv_async())));
        let _tx = sender.join().unwrap();
        match polled {
            Some(got) => assert_eq!(got, Ok(round)),
            None => assert_eq!(
                rx.try_recv(),
                Ok(round),
                "round {round}: the value went back"
            ),
        }
        assert!(rx.try_recv().is_err(), "round {round}: received once");
    }
}

#[test]
fn many_fibers_and_async_tasks_wait_for_each_other() {
    let _w = watchdog("many_fibers_and_async_tasks_wait_for_each_other", LIMIT);
    let rt = runtime(2);
    let (tx, rx) = unbounded::<u32>();
    let fibers: Vec<_> = (0..100)
        .map(|i| {
            let tx = tx.clone();
            rt.spawn(move || {
                weft::yield_now();
                tx.send(i).unwrap();
                i
            })
        })
        .collect();
    drop(tx);
    let (sum_joined, sum_received) = futures_block_on(async move {
        let mut joined = 0;
        for f in fibers {
            joined += f.await.unwrap();
        }
        let mut received = 0;
        while let Ok(v) = rx.recv_async().await {
            received += v;
        }
        (joined, received)
    });
    assert_eq!(sum_joined, 4950);
    assert_eq!(sum_received, 4950);
}

#[test]
fn a_value_handed_to_a_pending_receive_future_goes_back_when_it_is_dropped() {
    let _w = watchdog(
        "a_value_handed_to_a_pending_receive_future_goes_back_when_it_is_dropped",
        LIMIT,
    );
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let (tx, rx) = bounded::<String>(0);
    let mut fut = rx.recv_async();
    assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
    // The future waits: a rendezvous send hands the value straight to it.
    tx.try_send("handed".to_owned()).unwrap();
    drop(fut);
    assert_eq!(
        rx.try_recv().as_deref(),
        Ok("handed"),
        "given back, not lost"
    );
    // Polled to completion, it takes the value.
    let mut fut = rx.recv_async();
    assert!(Pin::new(&mut fut).poll(&mut cx).is_pending());
    tx.try_send("kept".to_owned()).unwrap();
    assert_eq!(
        Pin::new(&mut fut).poll(&mut cx),
        Poll::Ready(Ok("kept".to_owned()))
    );
}

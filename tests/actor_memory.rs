//! What an idle actor costs, from the process's RSS: the target
//! is at most 256 bytes per idle actor beyond the user's own state, and
//! an actor that has handled messages must go back to that (it keeps no
//! mailbox buffer while idle).
//!
//! Each test runs in a child process (`support::run_child_test`), so that
//! other tests' memory does not blur the figures; the child prints them.

mod support;

use std::time::Duration;

use weft::actor::{self, Actor, Addr, Context, Reply};

/// 16 bytes of user state, as in `examples/million_actors.rs`.
struct Node {
    next: Option<Addr<Node>>,
    seen: u64,
}

enum Msg {
    Hello(Reply<u64>),
}

impl Actor for Node {
    type Msg = Msg;

    fn handle(&mut self, msg: Msg, _: &mut Context<Self>) {
        match msg {
            Msg::Hello(reply) => {
                self.seen += 1;
                reply.send(self.seen + self.next.as_ref().map_or(0, |_| 1));
            }
        }
    }
}

/// The budget beyond the user's state.
const TARGET: f64 = 256.0;

fn rss() -> f64 {
    support::rss_bytes() as f64
}

#[test]
fn an_idle_actor_costs_at_most_256_bytes_beyond_its_state() {
    if !support::is_child() {
        support::run_child_test(
            "an_idle_actor_costs_at_most_256_bytes_beyond_its_state",
            &[],
        );
        return;
    }
    let n = support::scaled(50_000, 200_000);
    let rt = weft::Runtime::builder().workers(2).build().unwrap();
    let (spawned, after_messages) = rt.block_on(move || {
        // Warm up: one actor through its whole life.
        let warm = actor::spawn(Node {
            next: None,
            seen: 0,
        });
        warm.ask(Msg::Hello).unwrap();
        warm.stop();
        warm.join();
        let mut addrs: Vec<Addr<Node>> = Vec::with_capacity(n);
        let before = rss();
        for _ in 0..n {
            addrs.push(actor::spawn(Node {
                next: None,
                seen: 0,
            }));
        }
        // Each actor runs once when spawned (started, then idle); the
        // first ask makes sure every one of them has (the spawning fiber's
        // deque is LIFO, so the first actor spawned runs last).
        addrs[0].ask(Msg::Hello).unwrap();
        weft::sleep(Duration::from_millis(10));
        let spawned = rss() - before;
        // Then ask them all, one at a time, twice each: at most one
        // conversation is going on at a time, so what stays is what an
        // idle actor keeps. (The second ask finds the actor still on its
        // fiber, which swaps its mailbox's buffer with its batch's: the
        // mailbox then holds a spare buffer until the actor goes idle.)
        for addr in &addrs {
            addr.ask(Msg::Hello).unwrap();
            addr.ask(Msg::Hello).unwrap();
        }
        weft::sleep(Duration::from_millis(10));
        let after_messages = rss() - before;
        for addr in &addrs {
            addr.stop();
        }
        for addr in &addrs {
            addr.join();
        }
        (spawned, after_messages)
    });
    let state = std::mem::size_of::<Node>() as f64;
    let addr = std::mem::size_of::<Addr<Node>>() as f64;
    let per = |bytes: f64| bytes / n as f64 - state - addr;
    println!(
        "{n} idle actors, user state {state} bytes, Addr kept by the test {addr} bytes: \
         {:.0} bytes each beyond them when spawned, {:.0} after each handled a message \
         (target {TARGET})",
        per(spawned),
        per(after_messages)
    );
    assert!(
        per(spawned) <= TARGET,
        "an idle actor costs {:.0} bytes beyond its state",
        per(spawned)
    );
    assert!(
        per(after_messages) <= TARGET,
        "an idle actor that handled a message costs {:.0} bytes beyond its state",
        per(after_messages)
    );
    assert!(
        per(after_messages) - per(spawned) <= 24.0,
        "an idle actor keeps {:.0} bytes more after a message than before \
         (a mailbox buffer kept while idle?)",
        per(after_messages) - per(spawned)
    );
}

/// A queued message costs about its own size: 100,000 small messages
/// queued behind a blocked handler take at most 40 bytes each (a 16-byte
/// envelope plus the queue's spare room), not the size of the rare system
/// signals (48 bytes per envelope before they were boxed).
#[test]
fn a_queued_message_costs_about_its_size() {
    if !support::is_child() {
        support::run_child_test("a_queued_message_costs_about_its_size", &[]);
        return;
    }
    enum SinkMsg {
        Hold(weft::chan::Receiver<()>, weft::chan::Sender<()>),
        Nop,
        Ping(Reply<()>),
    }
    struct Sink;
    impl Actor for Sink {
        type Msg = SinkMsg;
        fn handle(&mut self, msg: SinkMsg, _: &mut Context<Self>) {
            match msg {
                SinkMsg::Hold(rx, entered) => {
                    let _ = entered.send(());
                    let _ = rx.recv();
                }
                SinkMsg::Nop => {}
                SinkMsg::Ping(r) => r.send(()),
            }
        }
    }
    const N: usize = 100_000;
    let rt = weft::Runtime::builder().workers(2).build().unwrap();
    let per_message = rt.block_on(|| {
        let sink = actor::spawn(Sink);
        let (tx, rx) = weft::chan::unbounded();
        let (entered_tx, entered_rx) = weft::chan::unbounded();
        // The first round warms the allocator up; the second is measured.
        let mut grown = 0.0;
        for _ in 0..2 {
            assert!(
                sink.send(SinkMsg::Hold(rx.clone(), entered_tx.clone()))
                    .is_ok()
            );
            entered_rx.recv().unwrap();
            let before = rss();
            for _ in 0..N {
                assert!(sink.send(SinkMsg::Nop).is_ok());
            }
            grown = rss() - before;
            tx.send(()).unwrap();
            sink.ask(SinkMsg::Ping).unwrap();
        }
        sink.stop();
        sink.join();
        grown / N as f64
    });
    println!(
        "{N} queued messages of {} bytes: {per_message:.1} bytes each",
        std::mem::size_of::<SinkMsg>()
    );
    assert!(
        per_message <= 40.0,
        "{per_message:.1} bytes per queued message"
    );
}

/// An actor that has stopped, whose `Addr` is still held, costs no more
/// than it did idle: its stop reason is kept in a byte, not in a new box
/// (which cost 144 bytes per stopped actor). Late joins, links and
/// monitors still get the reason.
#[test]
fn a_stopped_actor_costs_no_more_than_an_idle_one() {
    if !support::is_child() {
        support::run_child_test("a_stopped_actor_costs_no_more_than_an_idle_one", &[]);
        return;
    }
    use std::sync::atomic::{AtomicUsize, Ordering};
    static STOPPED: AtomicUsize = AtomicUsize::new(0);
    struct Quiet;
    impl Actor for Quiet {
        type Msg = ();
        fn handle(&mut self, (): (), _: &mut Context<Self>) {}
        fn stopped(&mut self, _: &weft::actor::StopReason, _: &mut Context<Self>) {
            STOPPED.fetch_add(1, Ordering::SeqCst);
        }
    }
    let n = support::scaled(50_000, 200_000);
    let rt = weft::Runtime::builder().workers(2).build().unwrap();
    let grown = rt.block_on(move || {
        let addrs: Vec<Addr<Quiet>> = (0..n).map(|_| actor::spawn(Quiet)).collect();
        addrs[0]
            .ask(|r: Reply<()>| {
                r.send(());
            })
            .ok();
        weft::sleep(Duration::from_millis(10));
        let idle = rss();
        // In batches: each stop queues its actor, and a run queue that
        // held all 50,000 at once would leave its buffer (up to 21 bytes
        // per actor, kept by the allocator after use) in the figure,
        // which is about what a stopped actor keeps.
        for (i, a) in addrs.iter().enumerate() {
            if i % 2 == 0 {
                a.stop()
            } else {
                a.kill()
            }
            if i % 1_000 == 999 {
                weft::sleep(Duration::from_millis(1));
            }
        }
        while STOPPED.load(Ordering::SeqCst) < n {
            weft::sleep(Duration::from_millis(1));
        }
        weft::sleep(Duration::from_millis(10));
        let stopped = rss();
        // Late joins, monitors and links still learn the reason.
        use weft::actor::StopReason;
        assert_eq!(addrs[0].join(), StopReason::Normal);
        assert_eq!(addrs[1].join(), StopReason::Killed);
        struct Watcher(weft::chan::Sender<(u64, StopReason)>);
        impl Actor for Watcher {
            type Msg = (Addr<Quiet>, bool);
            fn handle(&mut self, (a, link): Self::Msg, ctx: &mut Context<Self>) {
                if link {
                    ctx.set_trap_exit(true);
                    ctx.link(&a);
                } else {
                    ctx.monitor(&a);
                }
            }
            fn down(&mut self, from: weft::actor::ActorId, r: &StopReason, _: &mut Context<Self>) {
                let _ = self.0.send((from.as_u64(), r.clone()));
            }
            fn linked_exit(
                &mut self,
                from: weft::actor::ActorId,
                r: &StopReason,
                _: &mut Context<Self>,
            ) {
                let _ = self.0.send((from.as_u64(), r.clone()));
            }
        }
        let (tx, rx) = weft::chan::unbounded();
        let w = actor::spawn(Watcher(tx));
        for (i, link) in [(2, false), (3, true)] {
            assert!(w.send((addrs[i].clone(), link)).is_ok());
            let (from, reason) = rx.recv().unwrap();
            assert_eq!(from, addrs[i].id().as_u64());
            assert_eq!(
                reason,
                if i % 2 == 0 {
                    StopReason::Normal
                } else {
                    StopReason::Killed
                }
            );
        }
        w.stop();
        w.join();
        (stopped - idle) / n as f64
    });
    println!("{n} stopped actors whose Addr is kept: {grown:.1} bytes each more than idle");
    assert!(
        grown <= 24.0,
        "a stopped actor costs {grown:.1} bytes more than an idle one"
    );
}

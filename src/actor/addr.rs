//! [`Addr`]: how the world reaches an actor.

use std::fmt;
use std::hash::{Hash, Hasher};

use super::cell::ActorCell;
use super::error::{AskError, SendError, TrySendError};
use super::link::{ActorRef, Control, StopReason};
use super::mailbox::{Kill, Refused, Signal};
use super::{Actor, ActorId};
use crate::fiber::task_ref::{TaskArc, erase_task};

/// The address of an actor: send it messages, stop it, wait for it.
/// Cheap to clone (one reference count), `Send` and `Sync`, compared and
/// hashed by the actor's id, printed with its id and name.
///
/// ```
/// use weft::actor::{self, Actor, Context};
///
/// struct Counter(u64);
///
/// impl Actor for Counter {
///     type Msg = u64;
///     fn handle(&mut self, n: u64, ctx: &mut Context<Self>) {
///         self.0 += n;
///         if self.0 >= 10 {
///             ctx.stop();
///         }
///     }
/// }
///
/// let reason = weft::run(|| {
///     let counter = actor::spawn(Counter(0));
///     for n in 1..=4 {
///         counter.send(n).unwrap();
///     }
///     counter.join()
/// });
/// assert!(!reason.is_abnormal());
/// ```
pub struct Addr<A: Actor> {
    cell: TaskArc<ActorCell<A>>,
}

impl<A: Actor> Addr<A> {
    pub(crate) fn from_cell(cell: TaskArc<ActorCell<A>>) -> Addr<A> {
        Addr { cell }
    }

    /// The actor's id (unique in the process).
    pub fn id(&self) -> ActorId {
        self.cell.body.id()
    }

    /// The name given with [`Builder::name`](super::Builder::name).
    pub fn name(&self) -> Option<&str> {
        self.cell.header.name()
    }

    /// Whether the caller is this actor itself (one of its hooks or
    /// handlers, on its fiber): then a wait for the actor to do something
    /// would never end.
    fn called_by_itself(&self) -> bool {
        crate::fiber::current().id().as_u64() == self.id().as_u64()
    }

    /// Wakes the actor to handle what arrived.
    fn wake(&self) {
        crate::sched::wake_by(&*self.cell);
    }

    /// Sends a message. With an unbounded mailbox (the default) this never
    /// blocks; with a bounded one it parks the caller (fiber or thread)
    /// while the mailbox is full.
    ///
    /// # Errors
    ///
    /// The message back if the actor has stopped; also if the mailbox is
    /// full and the caller is a fiber being cancelled (its runtime is
    /// shutting down and unwinding it), which cannot wait: its parks
    /// return at once (a channel's `send` reports disconnection then).
    ///
    /// # Panics
    ///
    /// If the actor sends to its own bounded mailbox while it is full:
    /// only the actor itself could make room, so it would wait forever
    /// (use [`try_send`](Self::try_send) there).
    pub fn send(&self, msg: A::Msg) -> Result<(), SendError<A::Msg>> {
        let mut msg = msg;
        loop {
            match self.cell.body.mailbox.push(msg) {
                Ok(()) => {
                    self.wake();
                    return Ok(());
                }
                Err(Refused::Closed(back)) => return Err(SendError(back)),
                Err(Refused::Full(back)) => {
                    msg = back;
                    if self.called_by_itself() {
                        panic!(
                            "{self} sent to its own full mailbox: only it could make room, so \
                             it would wait forever (use try_send, or a larger capacity)"
                        );
                    }
                    if crate::fiber::current::is_cancelled() {
                        return Err(SendError(msg));
                    }
                    if self
                        .cell
                        .body
                        .mailbox
                        .wait_for_room(crate::fiber::current())
                    {
                        crate::fiber::park();
                    }
                }
            }
        }
    }

    /// Sends a message unless the bounded mailbox is full.
    ///
    /// # Errors
    ///
    /// [`TrySendError::Full`] or [`TrySendError::Stopped`], with the
    /// message.
    pub fn try_send(&self, msg: A::Msg) -> Result<(), TrySendError<A::Msg>> {
        match self.cell.body.mailbox.push(msg) {
            Ok(()) => {
                self.wake();
                Ok(())
            }
            Err(Refused::Closed(back)) => Err(TrySendError::Stopped(back)),
            Err(Refused::Full(back)) => Err(TrySendError::Full(back)),
        }
    }

    /// Sends the message `make` builds around a [`Reply`] and waits for the
    /// actor's answer (request/reply through a oneshot channel). Parks a
    /// fiber; blocks a plain thread.
    ///
    /// # Errors
    ///
    /// [`AskError::Stopped`] if the actor stopped before answering (it
    /// had stopped already, the request was still queued when it stopped,
    /// it kept the `Reply` in its state, or a handler panicked with the
    /// `Reply` in hand), [`AskError::NoReply`] if it dropped the `Reply`
    /// unanswered and went on.
    ///
    /// # Panics
    ///
    /// If the actor asks itself: the request would queue behind the
    /// handler that waits for the answer. (`ask_timeout` times out.)
    ///
    /// ```
    /// use weft::actor::{self, Actor, Context, Reply};
    ///
    /// struct Store(Vec<String>);
    ///
    /// enum Msg {
    ///     Put(String),
    ///     Len(Reply<usize>),
    /// }
    ///
    /// impl Actor for Store {
    ///     type Msg = Msg;
    ///     fn handle(&mut self, msg: Msg, _: &mut Context<Self>) {
    ///         match msg {
    ///             Msg::Put(s) => self.0.push(s),
    ///             Msg::Len(reply) => reply.send(self.0.len()),
    ///         }
    ///     }
    /// }
    ///
    /// let len = weft::run(|| {
    ///     let store = actor::spawn(Store(Vec::new()));
    ///     store.send(Msg::Put("a".into())).unwrap();
    ///     store.ask(Msg::Len).unwrap()
    /// });
    /// assert_eq!(len, 1);
    /// ```
    pub fn ask<R: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<R>) -> A::Msg,
    ) -> Result<R, AskError> {
        if self.called_by_itself() {
            panic!(
                "{self} cannot ask itself: the request would wait behind the handler that \
                 waits for its answer (call the code directly, or send a message)"
            );
        }
        let (tx, rx) = crate::chan::oneshot();
        self.send(make(Reply(Some(tx))))
            .map_err(|_| AskError::Stopped)?;
        match rx.recv() {
            Ok(answer) => answer,
            Err(_) => Err(self.no_answer()),
        }
    }

    /// [`ask`](Self::ask), giving up after `timeout`.
    ///
    /// # Errors
    ///
    /// As `ask`, and [`AskError::Timeout`]. A reply that comes after the
    /// timeout is dropped.
    pub fn ask_timeout<R: Send + 'static>(
        &self,
        make: impl FnOnce(Reply<R>) -> A::Msg,
        timeout: std::time::Duration,
    ) -> Result<R, AskError> {
        let (tx, rx) = crate::chan::oneshot();
        self.send(make(Reply(Some(tx))))
            .map_err(|_| AskError::Stopped)?;
        match rx.recv_timeout(timeout) {
            Ok(answer) => answer,
            Err(crate::chan::RecvTimeoutError::Timeout) => Err(AskError::Timeout),
            Err(crate::chan::RecvTimeoutError::Disconnected) => Err(self.no_answer()),
        }
    }

    /// Why a reply channel closed unanswered. A stopping actor closes its
    /// mailbox before it drops its queue, its state and its hook's
    /// values, so a `Reply` dropped by its stop is seen as `Stopped`.
    fn no_answer(&self) -> AskError {
        if self.is_alive() {
            AskError::NoReply
        } else {
            AskError::Stopped
        }
    }

    /// Asks the actor to stop once it has handled the messages sent before
    /// this call (reason [`StopReason::Normal`]). Does not wait: see
    /// [`join`](Self::join).
    pub fn stop(&self) {
        if self.cell.body.mailbox.push_signal(Signal::Stop) {
            self.wake();
        }
    }

    /// Stops the actor before it handles anything else; queued messages
    /// are dropped (reason [`StopReason::Killed`]), and sends from now on
    /// fail with the message back, as to a stopped actor. Does not wait.
    pub fn kill(&self) {
        self.erased().kill(Kill::ByKill);
    }

    /// Waits until the actor has stopped and returns why. Parks a fiber;
    /// blocks a plain thread.
    ///
    /// A fiber being cancelled (its runtime is shutting down and unwinding
    /// it: a destructor joins, say) cannot wait, since its parks return at
    /// once; if the actor has not stopped, the join gives up at once and
    /// returns [`StopReason::Shutdown`]. For an actor of the same runtime
    /// that is how it ends: the runtime runs it no more (see the
    /// [module doc](super#runtime-shutdown)); an actor of another runtime
    /// may still be running.
    ///
    /// # Panics
    ///
    /// If called by the actor itself (its stop cannot come while it
    /// waits): use [`Context::stop`](super::Context::stop).
    pub fn join(&self) -> StopReason {
        if self.called_by_itself() {
            panic!("{self} cannot join itself: it would wait forever (use ctx.stop() to stop)");
        }
        self.erased().join()
    }

    /// Whether the actor is still running (it may stop right after).
    pub fn is_alive(&self) -> bool {
        !self.cell.body.mailbox.lock().closed
    }

    /// Records a registered name on the actor (released when it stops);
    /// false if it has stopped.
    pub(crate) fn remember_name(&self, name: String) -> bool {
        let mut inner = self.cell.body.mailbox.lock();
        if inner.closed {
            return false;
        }
        inner
            .relations
            .get_or_insert_with(Default::default)
            .names
            .push(name);
        true
    }

    /// The type-erased reference links and monitors keep.
    pub(crate) fn erased(&self) -> ActorRef {
        ActorRef(erase_task!(self.cell.clone() => dyn Control))
    }
}

impl<A: Actor> Clone for Addr<A> {
    fn clone(&self) -> Self {
        Addr {
            cell: self.cell.clone(),
        }
    }
}

impl<A: Actor> PartialEq for Addr<A> {
    fn eq(&self, other: &Self) -> bool {
        self.id() == other.id()
    }
}

impl<A: Actor> Eq for Addr<A> {}

impl<A: Actor> Hash for Addr<A> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.id().hash(state);
    }
}

impl<A: Actor> fmt::Debug for Addr<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "Addr({} '{name}')", self.id()),
            None => write!(f, "Addr({})", self.id()),
        }
    }
}

impl<A: Actor> fmt::Display for Addr<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "actor {} '{name}'", self.id()),
            None => write!(f, "actor {}", self.id()),
        }
    }
}

/// The answer half of an [`Addr::ask`]: the actor sends its reply with it.
///
/// Dropped unanswered, the asker gets [`AskError::NoReply`]; dropped by a
/// panic (the handler that had it panicked, which stops the actor), the
/// asker gets [`AskError::Stopped`].
pub struct Reply<R>(Option<crate::chan::oneshot::Sender<Result<R, AskError>>>);

impl<R> Reply<R> {
    /// Answers. If the asker gave up (timed out, or stopped), the value is
    /// dropped.
    pub fn send(mut self, value: R) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(Ok(value));
        }
    }
}

impl<R> Drop for Reply<R> {
    fn drop(&mut self) {
        // Unwinding drops the reply before the actor's stop closes its
        // mailbox; the asker, woken by the drop, would see the actor still
        // alive and report `NoReply`. Say what happened instead.
        if let Some(tx) = self.0.take()
            && std::thread::panicking()
        {
            let _ = tx.send(Err(AskError::Stopped));
        }
    }
}

impl<R> fmt::Debug for Reply<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Reply(..)")
    }
}

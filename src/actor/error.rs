//! Errors of sending to actors and asking them.

use std::fmt;

/// The actor has stopped; the message comes back.
#[derive(PartialEq, Eq)]
pub struct SendError<M>(pub M);

/// Why [`Addr::try_send`](super::Addr::try_send) did not deliver.
#[derive(PartialEq, Eq)]
pub enum TrySendError<M> {
    /// The bounded mailbox is full; the message comes back.
    Full(M),
    /// The actor has stopped; the message comes back.
    Stopped(M),
}

/// Why [`Addr::ask`](super::Addr::ask) got no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AskError {
    /// The actor had stopped, or stopped before answering.
    Stopped,
    /// The actor dropped the reply without answering.
    NoReply,
    /// No answer came in time (`ask_timeout`).
    Timeout,
}

impl<M> fmt::Debug for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendError(..)")
    }
}

impl<M> fmt::Display for SendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("sending to an actor that has stopped")
    }
}

impl<M> std::error::Error for SendError<M> {}

impl<M> fmt::Debug for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("TrySendError::Full(..)"),
            TrySendError::Stopped(_) => f.write_str("TrySendError::Stopped(..)"),
        }
    }
}

impl<M> fmt::Display for TrySendError<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySendError::Full(_) => f.write_str("the actor's bounded mailbox is full"),
            TrySendError::Stopped(_) => f.write_str("sending to an actor that has stopped"),
        }
    }
}

impl<M> std::error::Error for TrySendError<M> {}

impl fmt::Display for AskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AskError::Stopped => "the actor stopped before answering",
            AskError::NoReply => "the actor dropped the reply without answering",
            AskError::Timeout => "no answer from the actor in time",
        })
    }
}

impl std::error::Error for AskError {}

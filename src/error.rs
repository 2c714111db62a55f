//! Public error types. OS failures stay `std::io::Error`.

use std::any::Any;
use std::fmt;

use crate::stack_pool::StackError;

/// Why a fiber has no result to give its [`JoinHandle`](crate::JoinHandle).
///
/// ```
/// let err = weft::run(|| weft::spawn(|| -> u32 { panic!("boom") }).join().unwrap_err());
/// assert!(err.is_panic());
/// assert_eq!(err.into_panic().downcast_ref::<&str>(), Some(&"boom"));
/// ```
pub struct JoinError {
    repr: Repr,
}

enum Repr {
    /// The body panicked; the payload, as `catch_unwind` returned it.
    Panic(Payload),
    /// The runtime shut down before the body finished (or started).
    Cancelled,
    /// The fiber never ran: no stack could be had for it.
    NoStack(StackError),
}

/// A panic payload. Like any `Box<dyn Any + Send>` it is `Send` but may
/// not be `Sync`; this wrapper makes [`JoinError`] `Sync` (so that it fits
/// in a `Box<dyn Error + Send + Sync>`, as `?` into `anyhow` or
/// `io::Error::other` need) by never handing out a shared reference to
/// the value itself: through `&Payload`, only [`message`](Self::message)
/// looks at it. tokio's `JoinError` does the same (its `SyncWrapper`).
struct Payload(Box<dyn Any + Send + 'static>);

// SAFETY: a `&Payload` reaches the boxed value only in `message`, which
// calls `Any::type_id` (std's blanket impl, the only one there can be:
// it returns a constant of the type and reads no data) and then hands out
// a `&str` or a `&String`, both `Sync`. Everything else moves the payload
// out by value (`into_panic`, `try_into_panic`), which needs only `Send`.
unsafe impl Sync for Payload {}

impl Payload {
    /// The message, when the payload is a string.
    fn message(&self) -> Option<&str> {
        panic_message(self.0.as_ref())
    }
}

impl JoinError {
    pub(crate) fn panic(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panic(Payload(payload)),
        }
    }

    pub(crate) fn cancelled() -> JoinError {
        JoinError {
            repr: Repr::Cancelled,
        }
    }

    pub(crate) fn no_stack(err: StackError) -> JoinError {
        JoinError {
            repr: Repr::NoStack(err),
        }
    }

    /// The fiber's body panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self.repr, Repr::Panic(_))
    }

    /// The runtime shut down before the fiber finished: its stack was
    /// unwound (every destructor on it ran), or it never started.
    pub fn is_cancelled(&self) -> bool {
        matches!(self.repr, Repr::Cancelled)
    }

    /// The fiber never ran because no stack could be had (the stack budget
    /// or the kernel's limits); [`stack_error`](Self::stack_error) says which.
    pub fn is_no_stack(&self) -> bool {
        matches!(self.repr, Repr::NoStack(_))
    }

    /// The stack pool's error, for [`is_no_stack`](Self::is_no_stack).
    pub fn stack_error(&self) -> Option<&StackError> {
        match &self.repr {
            Repr::NoStack(err) => Some(err),
            _ => None,
        }
    }

    /// The panic payload.
    ///
    /// # Panics
    ///
    /// If the error is not a panic; see [`try_into_panic`](Self::try_into_panic).
    pub fn into_panic(self) -> Box<dyn Any + Send + 'static> {
        match self.try_into_panic() {
            Ok(payload) => payload,
            Err(err) => panic!("JoinError::into_panic on an error that is not a panic: {err}"),
        }
    }

    /// The panic payload, or the error back if it is not a panic.
    pub fn try_into_panic(self) -> Result<Box<dyn Any + Send + 'static>, JoinError> {
        match self.repr {
            Repr::Panic(payload) => Ok(payload.0),
            repr => Err(JoinError { repr }),
        }
    }
}

/// The message of a panic payload, when it is a string.
fn panic_message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

impl fmt::Display for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panic(payload) => match payload.message() {
                Some(message) => write!(f, "the fiber panicked: {message}"),
                None => f.write_str("the fiber panicked"),
            },
            Repr::Cancelled => f.write_str("the fiber was cancelled: its runtime shut down"),
            Repr::NoStack(err) => write!(f, "the fiber could not start: {err}"),
        }
    }
}

impl fmt::Debug for JoinError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.repr {
            Repr::Panic(payload) => f
                .debug_tuple("JoinError::Panic")
                .field(&payload.message().unwrap_or("..."))
                .finish(),
            Repr::Cancelled => f.write_str("JoinError::Cancelled"),
            Repr::NoStack(err) => f.debug_tuple("JoinError::NoStack").field(err).finish(),
        }
    }
}

impl std::error::Error for JoinError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.repr {
            Repr::NoStack(err) => Some(err),
            _ => None,
        }
    }
}

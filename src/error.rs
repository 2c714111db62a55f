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
    Panic(Box<dyn Any + Send + 'static>),
    /// The runtime shut down before the body finished (or started).
    Cancelled,
    /// The fiber never ran: no stack could be had for it.
    NoStack(StackError),
}

impl JoinError {
    pub(crate) fn panic(payload: Box<dyn Any + Send + 'static>) -> JoinError {
        JoinError {
            repr: Repr::Panic(payload),
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
            Repr::Panic(payload) => Ok(payload),
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
            Repr::Panic(payload) => match panic_message(payload.as_ref()) {
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
                .field(&panic_message(payload.as_ref()).unwrap_or("..."))
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

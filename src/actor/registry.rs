//! The name registry: find an actor by name, as Erlang's `register` and
//! `whereis` do. One registry per process; a name is released when its
//! actor stops.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Mutex, MutexGuard, OnceLock};

use super::{Actor, ActorId, Addr};

struct Entry {
    id: ActorId,
    /// The `Addr<A>`, for `whereis::<A>`.
    addr: Box<dyn Any + Send + Sync>,
}

fn names() -> MutexGuard<'static, HashMap<String, Entry>> {
    static NAMES: OnceLock<Mutex<HashMap<String, Entry>>> = OnceLock::new();
    NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Why [`register`] refused a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterError {
    /// Another live actor has the name.
    Taken(ActorId),
    /// The actor has stopped.
    Stopped,
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterError::Taken(id) => write!(f, "the name is registered to actor {id}"),
            RegisterError::Stopped => f.write_str("the actor has stopped"),
        }
    }
}

impl std::error::Error for RegisterError {}

/// Registers `addr` under `name` until the actor stops (or
/// [`unregister`]). An actor may have several names.
///
/// # Errors
///
/// [`RegisterError::Taken`] if another live actor has the name,
/// [`RegisterError::Stopped`] if this one has stopped.
///
/// ```
/// use weft::actor::{self, Actor, Context};
///
/// struct Logger;
/// impl Actor for Logger {
///     type Msg = String;
///     fn handle(&mut self, line: String, _: &mut Context<Self>) {
///         eprintln!("{line}");
///     }
/// }
///
/// weft::run(|| {
///     let logger = actor::spawn(Logger);
///     actor::register("doc-logger", &logger).unwrap();
///     let found = actor::whereis::<Logger>("doc-logger").unwrap();
///     assert_eq!(found, logger);
///     logger.stop();
///     logger.join();
///     assert!(actor::whereis::<Logger>("doc-logger").is_none(), "released at stop");
/// });
/// ```
pub fn register<A: Actor>(name: impl Into<String>, addr: &Addr<A>) -> Result<(), RegisterError> {
    let name = name.into();
    let id = addr.id();
    {
        let mut names = names();
        if let Some(entry) = names.get(&name) {
            if entry.id != id {
                return Err(RegisterError::Taken(entry.id));
            }
            return Ok(());
        }
        names.insert(
            name.clone(),
            Entry {
                id,
                addr: Box::new(addr.clone()),
            },
        );
    }
    // Record the name on the actor, so that its stop releases it; if it
    // stopped meanwhile, release it here.
    if !addr.remember_name(name.clone()) {
        forget(id, &[name]);
        return Err(RegisterError::Stopped);
    }
    Ok(())
}

/// The actor registered under `name`, if any and if it is an `A`.
pub fn whereis<A: Actor>(name: &str) -> Option<Addr<A>> {
    names().get(name)?.addr.downcast_ref::<Addr<A>>().cloned()
}

/// Releases `name`; returns whether it was registered.
pub fn unregister(name: &str) -> bool {
    names().remove(name).is_some()
}

/// Releases the names of actor `id`, which stopped.
pub(crate) fn forget(id: ActorId, released: &[String]) {
    if released.is_empty() {
        return;
    }
    let mut names = names();
    for name in released {
        if names.get(name).is_some_and(|e| e.id == id) {
            names.remove(name);
        }
    }
}

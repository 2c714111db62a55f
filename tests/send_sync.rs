//! Compile-time checks of the auto traits of weft's public types, in the
//! manner of tokio's `tests/async_send_sync.rs`: this file only has to
//! compile. A type that loses `Send` or `Sync` (or gains `Send` where it
//! must not have it) breaks the build here, not a user's build later.
//!
//! The negative checks use the ambiguity trick of `static_assertions`
//! (`assert_not_impl_any!`), without the dependency: if `$type: Send`,
//! both impls of `AmbiguousIfSend` apply and the call cannot be resolved.

#![allow(dead_code, reason = "only the types matter: nothing here runs")]

use std::cell::Cell;
use std::error::Error;
use std::fmt::Debug;
use std::hash::Hash;

/// Marker for the second impl of the ambiguity traits.
struct Invalid;

trait AmbiguousIfSend<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSend<()> for T {}
impl<T: ?Sized + Send> AmbiguousIfSend<Invalid> for T {}

trait AmbiguousIfSync<A> {
    fn some_item() {}
}
impl<T: ?Sized> AmbiguousIfSync<()> for T {}
impl<T: ?Sized + Sync> AmbiguousIfSync<Invalid> for T {}

macro_rules! assert_value {
    ($type:ty: Send & Sync) => {
        const _: fn() = || {
            fn is<T: ?Sized + Send + Sync>() {}
            is::<$type>();
        };
    };
    ($type:ty: Send & !Sync) => {
        const _: fn() = || {
            fn is<T: ?Sized + Send>() {}
            is::<$type>();
            let _ = <$type as AmbiguousIfSync<_>>::some_item;
        };
    };
    ($type:ty: !Send & !Sync) => {
        const _: fn() = || {
            let _ = <$type as AmbiguousIfSend<_>>::some_item;
            let _ = <$type as AmbiguousIfSync<_>>::some_item;
        };
    };
}

/// Other traits a type must keep.
macro_rules! assert_impl {
    ($type:ty: $($bound:tt)+) => {
        const _: fn() = || {
            fn is<T: ?Sized + $($bound)+>() {}
            is::<$type>();
        };
    };
}

// The runtime: moved to and shared between threads (a Handle is cloned
// into every thread that spawns; a Runtime may be kept in an Arc).
assert_value!(weft::Runtime: Send & Sync);
assert_value!(weft::runtime::Handle: Send & Sync);
assert_value!(weft::runtime::Builder: Send & Sync);
assert_impl!(weft::Runtime: Unpin + Debug);
assert_impl!(weft::runtime::Handle: Clone + Unpin + Debug);
assert_impl!(weft::runtime::Builder: Clone + Default + Debug);

// JoinHandle<T> is Send + Sync for every T a fiber may return (T: Send),
// even a T that is not Sync: `&JoinHandle` only reads `is_finished` and
// the fiber's id and name, never the value (std's JoinHandle is the same).
assert_value!(weft::JoinHandle<u32>: Send & Sync);
assert_value!(weft::JoinHandle<Cell<u8>>: Send & Sync);
assert_value!(weft::JoinHandle<Box<dyn std::any::Any + Send>>: Send & Sync);
assert_impl!(weft::JoinHandle<u32>: Unpin + Debug);

// JoinError is Send + Sync + 'static, like tokio's, so that it converts
// into Box<dyn Error + Send + Sync> (and anyhow::Error, io::Error::other).
assert_value!(weft::JoinError: Send & Sync);
assert_impl!(weft::JoinError: Error + Debug + 'static);
fn join_error_into_a_boxed_error(err: weft::JoinError) -> Box<dyn Error + Send + Sync> {
    err.into()
}
fn join_error_with_question_mark() -> Result<u32, Box<dyn Error + Send + Sync>> {
    Ok(weft::spawn(|| 1).join()?)
}

// Fibers and their ids travel to whatever thread unparks or logs them.
assert_value!(weft::fiber::Fiber: Send & Sync);
assert_impl!(weft::fiber::Fiber: Clone + Eq + Debug);
assert_value!(weft::fiber::FiberId: Send & Sync);
assert_impl!(weft::fiber::FiberId: Copy + Eq + Ord + Hash + Debug + std::fmt::Display);
assert_value!(weft::fiber::Builder: Send & Sync);
assert_impl!(weft::fiber::Builder: Clone + Default + Debug);

// A fiber-local key lives in a static, so it must be Sync, whatever its
// value type (each fiber or thread has its own value).
assert_value!(weft::fiber::FiberLocal<Cell<u8>>: Send & Sync);
assert_value!(weft::fiber::FiberLocal<std::rc::Rc<u8>>: Send & Sync);

// The stack pool is shared by the workers.
assert_value!(weft::stack_pool::StackPool: Send & Sync);
assert_value!(weft::stack_pool::StackError: Send & Sync);
assert_impl!(weft::stack_pool::StackError: Error + 'static);

// A coroutine (and its yielder) must never cross threads on its own:
// values on its stack (thread-local references, MutexGuards, Rcs) would
// go with it. The scheduler decides where fibers run (DESIGN.md, "Where a
// fiber runs").
assert_value!(weft::coroutine::Coroutine<(), (), ()>: !Send & !Sync);
assert_value!(weft::coroutine::Coroutine<u32, u32, u32>: !Send & !Sync);
assert_value!(weft::coroutine::Yielder<(), ()>: !Send & !Sync);

#[test]
fn auto_traits_are_checked_at_compile_time() {
    // Everything above is checked when this file compiles; this test
    // only makes `cargo test` list it.
}

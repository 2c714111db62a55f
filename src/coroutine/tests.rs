//! Unit tests of the coroutine internals; behaviour is tested in
//! `tests/coroutine.rs`.

use std::collections::HashSet;
use std::ptr::NonNull;

use std::mem::{align_of, size_of};

use super::entry::{Finish, Slot, TYPE_WORD_SIZE, type_word};
use super::next_fiber_id;
use crate::arch::{ROOT_SIZE, STACK_ALIGNMENT};

#[repr(align(64))]
#[expect(dead_code, reason = "only its size and alignment matter")]
struct Aligned64([u8; 100]);

/// The slot of closure type F and return type R fits under the root and
/// the type word, holds both, and is aligned for both and for a call.
fn check_slot<F, R>() {
    let base = NonNull::new(0x7f00_0010_0000usize as *mut u8).unwrap();
    // The slot starts below the root and the sanitizer's record (none
    // without the feature).
    let root = 0x7f00_0010_0000 - ROOT_SIZE - super::sanitizer::RECORD_SIZE;
    let slot = Slot::<F, R>::at(base).as_ptr() as usize;
    assert_eq!(slot % STACK_ALIGNMENT, 0);
    assert_eq!(slot % align_of::<F>(), 0);
    assert_eq!(slot % align_of::<Finish<R>>(), 0);
    let word = type_word(base).as_ptr() as usize;
    assert!(word + size_of::<usize>() <= root);
    assert_eq!(word % align_of::<usize>(), 0);
    assert!(slot + size_of::<F>() <= word);
    assert!(slot + size_of::<Finish<R>>() <= word);
    assert!(
        root - slot < size_of::<F>().max(size_of::<Finish<R>>()) + TYPE_WORD_SIZE + 64,
        "no more than the type word and alignment padding"
    );
}

#[test]
fn the_slot_fits_below_the_root_for_every_shape() {
    check_slot::<(), ()>();
    check_slot::<u64, [u8; 3]>();
    check_slot::<Aligned64, u8>();
    check_slot::<u8, Aligned64>();
    check_slot::<[u64; 40], ()>();
}

#[test]
fn fiber_ids_are_unique_across_threads() {
    let ids: Vec<Vec<u64>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| s.spawn(|| (0..5000).map(|_| next_fiber_id()).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let all: HashSet<u64> = ids.iter().flatten().copied().collect();
    assert_eq!(all.len(), 20_000);
    assert!(!all.contains(&0));
}

/// Coroutines that hand the thread to one another, as the scheduler's
/// fibers do: `(), &str, &str` keeps the values visible.
type Raw = super::RawCoroutine<(), &'static str, &'static str>;

/// Pointers to the coroutines under test, for their bodies.
type Peers = std::rc::Rc<std::cell::Cell<[*mut Raw; 2]>>;

fn stack() -> crate::stack_pool::Stack {
    crate::stack_pool::StackPool::builder()
        .stack_size(64 * 1024)
        .build()
        .unwrap()
        .get()
        .unwrap()
}

fn raw<F>(body: F) -> Box<Raw>
where
    F: FnOnce(&super::Yielder<(), &'static str>, ()) -> &'static str + 'static,
{
    // SAFETY: no name to keep alive.
    Box::new(unsafe { Raw::with_owner(stack(), 1, None, body) }.unwrap())
}

/// Enters `entered`, then lands on `lands`, which must be the coroutine
/// that came back.
fn enter_and_land(
    entered: *mut Raw,
    lands: *mut Raw,
) -> super::CoroutineResult<&'static str, &'static str> {
    // SAFETY: both are live boxes of the test, not running, not borrowed;
    // the test says which one comes back.
    unsafe {
        let landing = Raw::enter(entered);
        (*lands).land(landing)
    }
}

#[test]
fn a_switch_hands_the_thread_over_and_the_resumer_lands_on_the_other() {
    use super::CoroutineResult::{Return, Yield};
    let peers: Peers = Default::default();
    let for_a = peers.clone();
    let mut a = raw(move |y, ()| {
        y.suspend("a started");
        let [a, b] = for_a.get();
        // SAFETY: we are `a`, running; `b` is suspended in its first
        // suspend; the test lands on `b` when it comes back.
        unsafe { Raw::switch(a, b) };
        y.suspend("a back after its switch");
        "a done"
    });
    let mut b = raw(|y, ()| {
        y.suspend("b started");
        y.suspend("b entered by a's switch");
        "b done"
    });
    let (a, b): (*mut Raw, *mut Raw) = (&raw mut *a, &raw mut *b);
    peers.set([a, b]);
    assert_eq!(enter_and_land(a, a), Yield("a started"));
    assert_eq!(enter_and_land(b, b), Yield("b started"));
    assert_eq!(
        enter_and_land(a, b),
        Yield("b entered by a's switch"),
        "entering a lands on b"
    );
    assert_eq!(enter_and_land(a, a), Yield("a back after its switch"));
    assert_eq!(enter_and_land(a, a), Return("a done"));
    assert_eq!(enter_and_land(b, b), Return("b done"));
}

#[test]
fn a_coroutine_switched_to_may_exit_and_one_left_in_a_switch_unwinds_on_drop() {
    use super::CoroutineResult::{Return, Yield};
    let peers: Peers = Default::default();
    let for_a = peers.clone();
    let dropped = std::rc::Rc::new(std::cell::Cell::new(false));
    let guard_dropped = dropped.clone();
    let mut a = raw(move |y, ()| {
        struct Guard(std::rc::Rc<std::cell::Cell<bool>>);
        impl Drop for Guard {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let _guard = Guard(guard_dropped);
        y.suspend("a started");
        let [a, b] = for_a.get();
        // SAFETY: as in the test above.
        unsafe { Raw::switch(a, b) };
        unreachable!("nobody enters a again: it is dropped");
    });
    let mut b = raw(|y, ()| {
        y.suspend("b started");
        "b done, entered by a's switch"
    });
    let (a_ptr, b_ptr): (*mut Raw, *mut Raw) = (&raw mut *a, &raw mut *b);
    peers.set([a_ptr, b_ptr]);
    assert_eq!(enter_and_land(a_ptr, a_ptr), Yield("a started"));
    assert_eq!(enter_and_land(b_ptr, b_ptr), Yield("b started"));
    assert_eq!(
        enter_and_land(a_ptr, b_ptr),
        Return("b done, entered by a's switch")
    );
    assert!(!dropped.get());
    drop(a);
    assert!(dropped.get(), "a was unwound from its switch");
    drop(b);
}

//! Unit tests of the coroutine internals; behaviour is tested in
//! `tests/coroutine.rs`.

use std::collections::HashSet;
use std::ptr::NonNull;

use std::mem::{align_of, size_of};

use super::entry::{Finish, Slot};
use super::next_fiber_id;
use crate::arch::{ROOT_SIZE, STACK_ALIGNMENT};

#[repr(align(64))]
#[expect(dead_code, reason = "only its size and alignment matter")]
struct Aligned64([u8; 100]);

/// The slot of closure type F and return type R fits under the root, holds
/// both, and is aligned for both and for a call.
fn check_slot<F, R>() {
    let base = NonNull::new(0x7f00_0010_0000usize as *mut u8).unwrap();
    let root = 0x7f00_0010_0000 - ROOT_SIZE;
    let slot = Slot::<F, R>::at(base).as_ptr() as usize;
    assert_eq!(slot % STACK_ALIGNMENT, 0);
    assert_eq!(slot % align_of::<F>(), 0);
    assert_eq!(slot % align_of::<Finish<R>>(), 0);
    assert!(slot + size_of::<F>() <= root);
    assert!(slot + size_of::<Finish<R>>() <= root);
    assert!(
        root - slot < size_of::<F>().max(size_of::<Finish<R>>()) + 64,
        "no more than alignment padding"
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

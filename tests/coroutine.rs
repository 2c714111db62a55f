//! Coroutine behaviour: values across the switch, panics, forced unwinding
//! on drop, and stack recycling.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind, panic_any};
use std::rc::Rc;

use weft::coroutine::{Builder, Coroutine, CoroutineResult, Yielder};

/// Counts its drops in a shared cell.
struct DropCounter(Rc<Cell<u32>>);

impl Drop for DropCounter {
    fn drop(&mut self) {
        self.0.set(self.0.get() + 1);
    }
}

#[test]
fn values_flow_in_and_out() {
    let mut c = Coroutine::new(|y: &Yielder<u32, u32>, a: u32| {
        let b = y.suspend(a + 1);
        let c = y.suspend(b * 2);
        a + b + c
    });
    assert!(!c.is_started());
    assert_eq!(c.resume(1), CoroutineResult::Yield(2));
    assert!(c.is_started() && !c.is_done());
    assert_eq!(c.resume(10), CoroutineResult::Yield(20));
    assert_eq!(c.resume(100), CoroutineResult::Return(111));
    assert!(c.is_done());
    assert!(
        c.stack().is_none(),
        "the stack is released when the body returns"
    );
}

#[test]
fn owned_values_cross_without_copies_or_leaks() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut c = Coroutine::new(move |y: &Yielder<String, Vec<String>>, first: String| {
        let _guard = DropCounter(d);
        let mut seen = vec![first];
        for _ in 0..3 {
            let next = y.suspend(seen.clone());
            seen.push(next);
        }
        seen.join(",")
    });
    assert_eq!(
        c.resume("a".into()),
        CoroutineResult::Yield(vec!["a".to_string()])
    );
    assert_eq!(c.resume("b".into()).as_yield().unwrap().len(), 2);
    assert_eq!(c.resume("c".into()).as_yield().unwrap().len(), 3);
    assert_eq!(
        c.resume("d".into()),
        CoroutineResult::Return("a,b,c,d".to_string())
    );
    assert_eq!(drops.get(), 1);
}

#[test]
fn large_and_overaligned_closures_arrive_intact() {
    #[repr(align(64))]
    struct Block([u64; 256]);
    let block = Block(std::array::from_fn(|i| i as u64 * 3));
    let mut c = Coroutine::new(move |_: &Yielder<(), ()>, ()| {
        assert_eq!(&block as *const Block as usize % 64, 0);
        block.0.iter().sum::<u64>()
    });
    assert_eq!(c.resume(()), CoroutineResult::Return(3 * 255 * 256 / 2));
}

#[test]
fn a_closure_too_large_for_its_stack_is_refused() {
    let pool = weft::stack_pool::StackPool::builder()
        .stack_size(16 * 1024)
        .build()
        .unwrap();
    let huge = [7u8; 12 * 1024];
    let err = Builder::new()
        .pool(&pool)
        .build(move |_: &Yielder<(), ()>, ()| huge[0])
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("box the large captures"), "{err}");
}

#[test]
fn coroutines_nest() {
    let mut outer = Coroutine::new(|y: &Yielder<(), u32>, ()| {
        let mut inner = Coroutine::new(|yi: &Yielder<(), u32>, ()| {
            yi.suspend(1);
            yi.suspend(2);
            3
        });
        while let CoroutineResult::Yield(v) = inner.resume(()) {
            y.suspend(v * 10);
        }
        0
    });
    let mut seen = Vec::new();
    while let CoroutineResult::Yield(v) = outer.resume(()) {
        seen.push(v);
    }
    assert_eq!(seen, [10, 20]);
}

#[test]
fn panic_comes_out_of_resume_with_its_payload() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut c = Coroutine::new(move |y: &Yielder<(), ()>, ()| {
        let _guard = DropCounter(d);
        y.suspend(());
        panic!("boom");
    });
    assert_eq!(c.resume(()), CoroutineResult::Yield(()));
    let payload = catch_unwind(AssertUnwindSafe(|| c.resume(()))).unwrap_err();
    assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
    assert_eq!(
        drops.get(),
        1,
        "the body's locals were dropped before resume re-raised"
    );
    assert!(c.is_done());
    assert!(c.stack().is_none());
    // The thread is fine: more coroutines run.
    for i in 0..1000u32 {
        let mut c = Coroutine::new(move |_: &Yielder<(), ()>, ()| i);
        assert_eq!(c.resume(()), CoroutineResult::Return(i));
    }
}

#[test]
fn non_str_payloads_survive() {
    let mut c = Coroutine::new(|_: &Yielder<(), ()>, ()| -> () { panic_any(42u64) });
    let payload = catch_unwind(AssertUnwindSafe(|| c.resume(()))).unwrap_err();
    assert_eq!(*payload.downcast::<u64>().unwrap(), 42);
}

#[test]
#[should_panic(expected = "whose body has already returned")]
fn resume_after_return_panics_clearly() {
    let mut c = Coroutine::new(|_: &Yielder<(), ()>, ()| {});
    c.resume(());
    c.resume(());
}

#[test]
fn dropping_an_unstarted_coroutine_drops_its_closure_only() {
    let drops = Rc::new(Cell::new(0));
    let ran = Rc::new(Cell::new(false));
    let (d, r) = (DropCounter(drops.clone()), ran.clone());
    let c = Coroutine::new(move |_: &Yielder<(), ()>, ()| {
        r.set(true);
        drop(d);
    });
    drop(c);
    assert_eq!(drops.get(), 1);
    assert!(!ran.get());
}

#[test]
fn dropping_a_suspended_coroutine_runs_every_destructor() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut c = Coroutine::new(move |y: &Yielder<(), u32>, ()| {
        let _a = DropCounter(d.clone());
        deeper(y, &d, 5);
        unreachable!("the drop unwinds through every frame");
    });
    fn deeper(y: &Yielder<(), u32>, d: &Rc<Cell<u32>>, depth: u32) {
        let _b = DropCounter(d.clone());
        if depth == 0 {
            y.suspend(7);
        } else {
            deeper(y, d, depth - 1);
        }
    }
    assert_eq!(c.resume(()), CoroutineResult::Yield(7));
    assert_eq!(drops.get(), 0);
    drop(c);
    assert_eq!(
        drops.get(),
        7,
        "one guard in the body and one per recursion level"
    );
}

#[test]
fn forced_unwind_still_works_through_catch_unwind_in_the_body() {
    let drops = Rc::new(Cell::new(0));
    let caught = Rc::new(Cell::new(0));
    let (d, k) = (drops.clone(), caught.clone());
    let mut c = Coroutine::new(move |y: &Yielder<(), u32>, ()| {
        let _outer = DropCounter(d.clone());
        let r = catch_unwind(AssertUnwindSafe(|| {
            let _inner = DropCounter(d.clone());
            y.suspend(1);
        }));
        assert!(
            r.is_err(),
            "the drop's unwind reached the body's catch_unwind"
        );
        k.set(k.get() + 1);
        // Suspending again unwinds again instead of switching.
        let r = catch_unwind(AssertUnwindSafe(|| y.suspend(2)));
        assert!(r.is_err());
        k.set(k.get() + 1);
        y.suspend(3);
        unreachable!("the third suspend unwinds out of the body");
    });
    assert_eq!(c.resume(()), CoroutineResult::Yield(1));
    drop(c);
    assert_eq!(caught.get(), 2);
    assert_eq!(drops.get(), 2, "inner and outer guards both ran");
}

#[test]
fn a_body_that_catches_the_unwind_may_return() {
    let finished = Rc::new(Cell::new(false));
    let f = finished.clone();
    let mut c = Coroutine::new(move |y: &Yielder<(), ()>, ()| {
        let _ = catch_unwind(AssertUnwindSafe(|| y.suspend(())));
        f.set(true);
        String::from("returned normally")
    });
    c.resume(());
    drop(c);
    assert!(finished.get());
}

#[test]
fn a_panic_while_being_dropped_reaches_the_dropper() {
    let mut c = Coroutine::new(|y: &Yielder<(), ()>, ()| {
        let _ = catch_unwind(AssertUnwindSafe(|| y.suspend(())));
        panic!("after the forced unwind");
    });
    c.resume(());
    let payload = catch_unwind(AssertUnwindSafe(|| drop(c))).unwrap_err();
    assert_eq!(
        payload.downcast_ref::<&str>(),
        Some(&"after the forced unwind")
    );
}

#[test]
fn dropping_nested_suspended_coroutines_unwinds_both() {
    let drops = Rc::new(Cell::new(0));
    let d = drops.clone();
    let mut outer = Coroutine::new(move |y: &Yielder<(), ()>, ()| {
        let d2 = d.clone();
        let mut inner = Coroutine::new(move |yi: &Yielder<(), ()>, ()| {
            let _g = DropCounter(d2);
            yi.suspend(());
        });
        inner.resume(());
        let _g = DropCounter(d);
        y.suspend(());
        drop(inner);
    });
    outer.resume(());
    drop(outer);
    assert_eq!(drops.get(), 2);
}

#[test]
fn a_million_create_run_drop_cycles_reuse_pooled_stacks() {
    let pool = weft::stack_pool::StackPool::builder()
        .stack_size(64 * 1024)
        .build()
        .unwrap();
    let mut total = 0u64;
    for i in 0..1_000_000u64 {
        let mut c = Builder::new()
            .pool(&pool)
            .build(move |y: &Yielder<u64, u64>, a: u64| y.suspend(a + i) * 2)
            .unwrap();
        let v = c.resume(1).as_yield().unwrap();
        total += c.resume(v).as_return().unwrap();
    }
    assert_eq!(total, (0..1_000_000u64).map(|i| (1 + i) * 2).sum::<u64>());
    let stats = pool.stats();
    assert!(
        stats.carved <= 64,
        "stacks were recycled, not carved anew: {stats:?}"
    );
    assert_eq!(stats.live, 0, "{stats:?}");
}

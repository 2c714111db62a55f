//! The x86_64 (System V ABI) context switch: the reference implementation.
//!
//! Asymmetric model: a *resumer* switches into a fiber with [`resume`]; the
//! fiber switches back with [`suspend`], or by returning from its entry
//! function, after which the trampoline performs the final exit. Each switch
//! is a handful of instructions: push what LLVM will not let us name as
//! clobbered (rbx, rbp), swap rsp, jump through a saved return address.
//!
//! A fiber may also hand the thread straight to another suspended fiber
//! with [`switch`]: it suspends the way [`suspend`] does, then enters the
//! other fiber exactly as its own resumer's `resume` would have (the
//! resumer's stack and frame pointer, read from the first fiber's root).
//! The other fiber cannot tell the difference: it copies the resumer's
//! frame record into its root, and its next `suspend` (or exit) returns
//! from the resumer's `resume`, which therefore must find out *which* fiber
//! came back by other means (the scheduler tracks it).
//!
//! # The root frame record
//!
//! The top [`ROOT_SIZE`] bytes of a fiber stack are the *root*. Every resume
//! copies the resumer's frame pointer (rbp) and return address into the root
//! before any fiber code runs, and the trampoline keeps rbp pointing at that
//! copy while the entry function runs. The root is therefore an ordinary
//! frame record `[saved rbp, return address]`, and a frame-pointer walk from
//! inside the fiber goes
//!
//! ```text
//! fiber frames -> entry function -> trampoline -> the function that called
//! resume -> its callers -> ... -> main / thread start -> rbp == 0
//! ```
//!
//! and follows the fiber to whichever thread resumed it last. This is what
//! `perf record --call-graph fp` sees.
//!
//! # Stack layout
//!
//! Example addresses for a stack whose `base` (highest usable address,
//! 16-byte aligned; the stack pool keeps a small header above it) is
//! `0x7f00_0010_0000`:
//!
//! Just initialised by [`init`], never resumed:
//!
//! ```text
//! 0x7f00_0010_0000  +------------------------+ <- base
//! 0x7f00_000f_fff8  | root: return address   |  0, written by every resume
//! 0x7f00_000f_fff0  | root: saved rbp        |  0, written by every resume
//! 0x7f00_000f_ffe8  | resumer's rsp          |  0, written by every resume
//! 0x7f00_000f_ffe0  | entry function         |  taken (left 0) by the trampoline
//!                   +------------------------+ <- base - ROOT_SIZE
//!                   | object reserved by the |  (the coroutine's closure),
//!                   | caller of init, if any |  down to `top`
//!                   +------------------------+ <- top (16-byte aligned)
//!        top - 0x8  | address of trampoline  | <- initial StackPointer
//!                   +------------------------+
//! ```
//!
//! Running (the fiber is executing; rbp chain shown on the right):
//!
//! ```text
//! resumer's stack                          fiber stack
//! |  resumer's frame  |<----------+        +------------------------+ <- base
//! +-------------------+           |        | root: return address   |---> into resume()
//! | resumer's rbx     |           +--------| root: saved rbp        | <- trampoline's rbp
//! | return address    | <---------------- | resumer's rsp          |
//! +-------------------+  (parent sp)       | entry function         |
//!                                          | object                 |
//!                                          +------------------------+ <- top
//!                                          | return into trampoline |
//!                                          | entry's saved rbp      |---> the root record
//!                                          | ... fiber frames ...   |
//! ```
//!
//! Suspended (inside [`suspend`], waiting for the next resume):
//!
//! ```text
//! +------------------------+ <- base
//! | root (stale copy)      |  rewritten before the fiber runs again
//! | ... fiber frames ...   |
//! +------------------------+
//! | fiber's rbp            |
//! | fiber's rbx            |
//! | resume point (label 2) | <- StackPointer handed to the resumer
//! +------------------------+
//! ```
//!
//! # Registers
//!
//! | register        | `resume` in      | `resume` out        | `suspend` in | `suspend` out |
//! |-----------------|------------------|---------------------|--------------|---------------|
//! | rdi             | word to fiber    | word from fiber     | word out     | word in       |
//! | rcx             | flag to fiber    | clobbered           | clobbered    | flag in       |
//! | rsi             | stack base       | fiber sp, 0 on exit | clobbered    | clobbered     |
//! | rdx             | fiber sp         | clobbered           | stack base   | clobbered     |
//! | rbx             | pushed on the resumer's stack      || pushed on the fiber's stack ||
//! | rbp             | copied into the root record        || pushed on the fiber's stack ||
//! | r12-r15         | declared clobbered: the compiler saves only what is live  ||||
//! | everything else | caller-saved, declared with `clobber_abi("sysv64")`        ||||
//!
//! rbx and rbp are LLVM-reserved (rbp is the frame pointer, rbx the base
//! pointer of some frames) and cannot be named as clobbers, so the assembly
//! saves them itself. Declaring r12-r15 as clobbered instead of pushing them
//! lets a tight resume loop that keeps nothing in them skip the saves.
//!
//! # Floating-point control state
//!
//! The MXCSR control bits and the x87 control word are callee-saved in the
//! System V ABI (§3.2.1), and boost.context saves them on every switch.
//! weft does **not**, as corosensei and wasmtime do not: Rust code runs with
//! the default floating-point environment (LLVM assumes it everywhere;
//! changing the rounding mode or exception masks from Rust is undefined
//! behaviour), so a fiber cannot change them soundly in the first place, and
//! `ldmxcsr`/`fldcw` would roughly double the cost of a round trip. A fiber
//! that calls C code which changes them must restore them before it
//! suspends.
//!
//! # Unwinding
//!
//! The trampoline carries DWARF CFI whose CFA is computed through the root
//! (`.cfi_escape` below), so `std::backtrace`, gdb and panic backtraces walk
//! from fiber frames into the resumer. Unwinding itself never crosses: the
//! entry function is `extern "C"` and the coroutine layer catches every
//! panic inside it.

use std::arch::{asm, naked_asm};
use std::num::NonZeroUsize;
use std::ptr::NonNull;

use super::{EntryFn, StackPointer, Word};

/// Bytes at the top of a fiber stack owned by the switch (see the diagram).
pub(crate) const ROOT_SIZE: usize = 0x20;

/// How many bytes above a suspended fiber's stack pointer [`prefetch`]
/// asks for: the switch's own frame and the frames it returns through
/// (the scheduler's hand-off and park), four cache lines.
const PREFETCH_FRAMES: usize = 256;

/// Asks the cache for what switching into a suspended fiber touches first:
/// the frames at and above its saved stack pointer `sp`, which the entry
/// pops and returns through, and its root below `base`, which the entry
/// writes. A fiber that last ran a million switches ago has all of them
/// in memory, not in cache: the first load after the switch was measured
/// to be most of a hop in a ring of 100,000 fibers. Issued when the
/// scheduler knows which fiber runs next, it overlaps with the work left
/// before the switch. Only a hint: a prefetch never faults and changes
/// nothing the program can see.
#[inline(always)]
pub(crate) fn prefetch(sp: StackPointer, base: NonNull<u8>) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    let root = base.as_ptr().wrapping_sub(ROOT_SIZE).cast::<i8>();
    // SAFETY: SSE, which `prefetcht0` belongs to, is part of the x86_64
    // baseline; a prefetch never faults and reads nothing the program
    // sees, whatever the address.
    unsafe {
        let mut line = sp.get();
        while line < sp.get() + PREFETCH_FRAMES {
            _mm_prefetch::<_MM_HINT_T0>(line as *const i8);
            line += 64;
        }
        _mm_prefetch::<_MM_HINT_T0>(root);
    }
}

/// How many bytes below a parked waiter's context [`prefetch_around`]
/// asks for: three cache lines, the frames of the calls it made to park.
const PREFETCH_BELOW: usize = 192;

/// How many bytes above a parked waiter's context [`prefetch_around`]
/// asks for: six cache lines, the rest of the wait's frame and its
/// callers' (a channel's `recv`, its iterator, the loop around it), which
/// the woken fiber returns through next. Measured on a ring of 100,000
/// fibers on one worker (ns/hop): 0 bytes 230, 128 221, 256 216, 320
/// 193, 384 195, 448 210, 512 224, 1,024 238. Past the frames the ring's
/// loop uses, the lines only compete with the ones it waits for.
const PREFETCH_ABOVE: usize = 384;

/// Asks the cache for the frames around `at`, a parked waiter's context
/// on a suspended fiber's stack: [`PREFETCH_BELOW`] bytes below it and
/// [`PREFETCH_ABOVE`] above. Only a hint, as [`prefetch`].
#[inline(always)]
pub(crate) fn prefetch_around(at: *const u8) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: as in `prefetch`: a prefetch never faults, whatever the
    // address.
    unsafe {
        let mut line = at.wrapping_sub(PREFETCH_BELOW);
        let end = at.wrapping_add(PREFETCH_ABOVE);
        while line < end {
            _mm_prefetch::<_MM_HINT_T0>(line.cast::<i8>());
            line = line.wrapping_add(64);
        }
    }
}

/// Stack alignment the System V ABI requires at a call site.
pub(crate) const STACK_ALIGNMENT: usize = 16;

/// Writes the initial frame so that the first [`resume`] enters the
/// trampoline, which jumps to `entry`.
///
/// The bytes between `base - ROOT_SIZE` and `top` are left to the caller
/// (the coroutine keeps its closure there).
///
/// # Safety
///
/// 1. `base` and `top` are `STACK_ALIGNMENT`-aligned, `top <= base -
///    ROOT_SIZE`, and `[top - 8, base)` is writable memory of one stack that
///    nothing else uses while the fiber exists.
/// 2. Below `top` there is enough stack for `entry` to run.
pub(crate) unsafe fn init(base: NonNull<u8>, top: NonNull<u8>, entry: EntryFn) -> StackPointer {
    debug_assert_eq!(base.as_ptr() as usize % STACK_ALIGNMENT, 0);
    debug_assert_eq!(top.as_ptr() as usize % STACK_ALIGNMENT, 0);
    debug_assert!(top.as_ptr() as usize <= base.as_ptr() as usize - ROOT_SIZE);
    let root = base.as_ptr().cast::<usize>();
    let slot = top.as_ptr().cast::<usize>();
    // SAFETY: fact 1 makes the four root words below `base` and the word
    // below `top` writable and aligned, and nothing else uses them.
    unsafe {
        root.sub(1).write(0);
        root.sub(2).write(0);
        root.sub(3).write(0);
        root.sub(4).write(entry as usize);
        slot.sub(1).write(fiber_trampoline as *const () as usize);
    }
    // `top - 8` lies inside a stack, so it is not zero.
    StackPointer(NonZeroUsize::new(slot as usize - 8).expect("stack address is not null"))
}

/// Whether the fiber on the stack with base `base` has been entered: the
/// trampoline clears the entry-function word of the root when it starts.
///
/// # Safety
///
/// `base` is the base of a stack that [`init`] prepared, and the fiber is
/// not running.
pub(crate) unsafe fn entered(base: NonNull<u8>) -> bool {
    // SAFETY: the root word lies in the stack `init` prepared.
    unsafe { base.as_ptr().cast::<usize>().sub(4).read() == 0 }
}

/// Switches into the fiber whose saved stack pointer is `sp`, handing it
/// `word` and `flag`. Returns when the fiber suspends (with its new stack
/// pointer) or exits (with `None`), together with the word it handed back
/// (meaningless on exit).
///
/// Inlining is left to the compiler: the `call` here is matched by the
/// fiber's `ret`, so the return-stack predictor stays balanced either way.
///
/// # Safety
///
/// 1. `sp` came from [`init`] on the stack whose base is `base`, or from
///    the previous `resume` of that fiber, and has not been used since.
/// 2. The fiber is not running (on this or any other thread).
/// 3. The stack stays mapped and untouched by anything else until the fiber
///    exits or is never resumed again.
#[inline]
pub(crate) unsafe fn resume(
    word: Word,
    flag: usize,
    sp: StackPointer,
    base: NonNull<u8>,
) -> (Word, Option<StackPointer>) {
    let back: Word;
    let new_sp: usize;
    // SAFETY: facts 1-3 give a valid saved frame at `sp` whose return
    // address is the trampoline or label 2 of `suspend`; both of those save
    // our rbp and return address into the root, run the fiber, and come
    // back through the `ret` that pops the address `call` pushed here, with
    // rsp, rbx and rbp exactly as they were.
    unsafe {
        asm!(
            // rbx is LLVM-reserved: keep it on our stack across the switch.
            "push rbx",
            // Push our return point and jump to the fiber's saved rip. The
            // fiber comes back with a `ret` matching this `call`.
            "call qword ptr [rdx]",
            // The fiber's switch-out left rsp pointing at rbx. This pop also
            // keeps the return address off the end of the asm block: the
            // trampoline is a signal frame, so unwinders look up the CFI of
            // the return address itself, not the byte before it.
            "pop rbx",
            inlateout("rdi") word => back,
            inlateout("rsi") base.as_ptr() as usize => new_sp,
            in("rdx") sp.get(),
            in("rcx") flag,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    (back, NonZeroUsize::new(new_sp).map(StackPointer))
}

/// Switches from the running fiber back to its resumer, handing it `word`,
/// and returns the word and flag passed to the next [`resume`].
///
/// Always inlined: the `ret` here is predicted from the `call` in `resume`
/// only if no call of our own sits between them on the return-stack buffer;
/// a non-inlined `suspend` costs two mispredicted returns per round trip.
///
/// # Safety
///
/// The caller runs on a fiber stack whose base is `base`, entered through
/// [`resume`] (so the root holds the current resumer's rsp and rbp).
#[inline(always)]
pub(crate) unsafe fn suspend(word: Word, base: NonNull<u8>) -> (Word, usize) {
    let back: Word;
    let flag: usize;
    // SAFETY: the root below `base` holds the resumer's rsp (pointing at the
    // return address its `call` pushed) and rbp, written when it resumed
    // us. We leave a frame of our own (rbp, rbx, resume point) that the next
    // `resume` enters at label 2.
    unsafe {
        asm!(
            // Save our reserved registers and the point to resume at.
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "push rax",
            // Our stack pointer is what `resume` returns to the resumer.
            "mov rsi, rsp",
            // Back onto the resumer's stack, with its frame pointer.
            "mov rbp, [rdx - 0x10]",
            "mov rsp, [rdx - 0x18]",
            "ret",
            // Resumed: rsp is the new resumer's stack ([return address, rbx]),
            // rdi the word, rcx the flag, rsi the stack base, rdx our saved
            // stack pointer.
            "2:",
            // Copy the resumer's frame record into the root, and keep its rsp.
            "mov [rsi - 0x10], rbp",
            "mov rax, [rsp]",
            "mov [rsi - 0x08], rax",
            "mov [rsi - 0x18], rsp",
            // Back onto our stack, past the resume point.
            "lea rsp, [rdx + 8]",
            "pop rbx",
            "pop rbp",
            inlateout("rdi") word => back,
            in("rdx") base.as_ptr(),
            lateout("rcx") flag,
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    (back, flag)
}

/// Switches from the running fiber (stack base `base`) straight into the
/// suspended fiber whose saved stack pointer is `to_sp` and stack base
/// `to_base`, handing it `word` and `flag` as a `resume` would. Our own
/// stack pointer is written to `save_sp` before we leave, for whoever
/// enters us next (with `resume` or `switch`, both pass the same
/// registers). Returns the word and flag of that next entry, like
/// [`suspend`].
///
/// The resumer's `resume` returns only when some fiber suspends or exits,
/// with that fiber's stack pointer: not necessarily ours.
///
/// # Safety
///
/// 1. The caller runs on a fiber stack whose base is `base`, entered
///    through [`resume`] or [`switch`] (so its root holds the current
///    resumer's rsp and rbp).
/// 2. `to_sp` came from [`init`] on the stack whose base is `to_base`, or
///    from the last switch-out of that fiber, and has not been used since;
///    that fiber is not running, and its stack stays mapped until it exits.
/// 3. `save_sp` is valid for an aligned `usize` write, and nothing reads it
///    before the write (nobody can enter us before we have left).
#[inline(always)]
pub(crate) unsafe fn switch(
    word: Word,
    flag: usize,
    base: NonNull<u8>,
    save_sp: *mut usize,
    to_sp: StackPointer,
    to_base: NonNull<u8>,
) -> (Word, usize) {
    let back: Word;
    let flag_in: usize;
    // SAFETY: fact 1 gives the resumer's rsp (pointing at the return
    // address its `call` pushed, then its rbx) and rbp in our root. We
    // leave a frame of our own (rbp, rbx, resume point, as `suspend` does)
    // and publish its address through `save_sp` (fact 3), then enter the
    // other fiber with the registers `resume` would have set, on the
    // resumer's stack (fact 2: a valid saved frame whose return address is
    // the trampoline or a resume point, both of which copy the resumer's
    // frame record into their own root first).
    unsafe {
        asm!(
            "push rbp",
            "push rbx",
            "lea rax, [rip + 2f]",
            "push rax",
            "mov [r8], rsp",
            // The resumer's frame pointer and stack, from our root.
            "mov rbp, [r9 - 0x10]",
            "mov rsp, [r9 - 0x18]",
            // Enter the other fiber as `resume` would: rdi word, rcx flag,
            // rsi its base, rdx its stack pointer.
            "jmp qword ptr [rdx]",
            // Entered again, by a `resume` or a `switch`: the same protocol
            // as `suspend`'s label 2.
            "2:",
            "mov [rsi - 0x10], rbp",
            "mov rax, [rsp]",
            "mov [rsi - 0x08], rax",
            "mov [rsi - 0x18], rsp",
            "lea rsp, [rdx + 8]",
            "pop rbx",
            "pop rbp",
            inlateout("rdi") word => back,
            inlateout("rcx") flag => flag_in,
            inlateout("rsi") to_base.as_ptr() as usize => _,
            inlateout("rdx") to_sp.get() => _,
            in("r8") save_sp,
            in("r9") base.as_ptr(),
            lateout("r12") _, lateout("r13") _, lateout("r14") _, lateout("r15") _,
            clobber_abi("sysv64"),
        );
    }
    (back, flag_in)
}

/// The first frame of every fiber, entered by the first [`resume`] through
/// the address [`init`] left at the initial stack pointer. It never returns
/// in the usual sense: it switches back to the resumer for the last time.
///
/// Register state on entry, from `resume`: rsp is the resumer's stack (the
/// return address of its `call`, then its rbx), rdi the word, rcx the flag,
/// rsi the stack base, rdx the fiber's initial stack pointer. The entry
/// function gets (word, base, flag) in (rdi, rsi, rdx).
#[unsafe(naked)]
unsafe extern "C" fn fiber_trampoline() {
    naked_asm!(
        ".cfi_startproc simple",
        // GDB refuses a caller frame at a lower address than its callee
        // unless the callee is a signal frame (sigaltstack switches stacks
        // too), and a fiber stack may lie above or below its resumer's.
        ".cfi_signal_frame",
        // Until rbp is set up, we are a function just called by `resume`:
        // CFA = rsp + 16, return address at CFA - 16, rbx at CFA - 8.
        ".cfi_def_cfa rsp, 16",
        ".cfi_offset rip, -16",
        ".cfi_offset rbx, -8",
        // Root record = the resumer's [rbp, return address]; keep its rsp.
        "mov [rsi - 0x10], rbp",
        "mov rax, [rsp]",
        "mov [rsi - 0x08], rax",
        "mov [rsi - 0x18], rsp",
        // rbp -> root record: the frame record of this frame.
        "lea rbp, [rsi - 0x10]",
        // From here the CFA is the resumer's rsp after its asm block, read
        // through the root, wherever the resumer's stack is:
        //   0x0f        DW_CFA_def_cfa_expression
        //   5           length of the expression
        //   0x76 0x78   DW_OP_breg6 -8     (rbp - 8: the saved resumer rsp)
        //   0x06        DW_OP_deref
        //   0x23 0x10   DW_OP_plus_uconst 16  (skip return address and rbx)
        ".cfi_escape 0x0f, 5, 0x76, 0x78, 0x06, 0x23, 0x10",
        // The resumer's rbp is saved at rbp + 0 (the root copy):
        //   0x10        DW_CFA_expression
        //   0x06        register 6 (rbp)
        //   2           length of the expression
        //   0x76 0x00   DW_OP_breg6 0
        // The return address (CFA - 16) and rbx (CFA - 8) rules still hold.
        ".cfi_escape 0x10, 0x06, 2, 0x76, 0x00",
        // Onto the fiber stack, past the slot holding our own address; the
        // flag becomes the entry function's third argument.
        "lea rsp, [rdx + 8]",
        "mov rdx, rcx",
        // Take the entry function out of the root, leaving 0 there: that
        // is how `entered` tells a fiber that has run from one that has not.
        // (Not `xchg`: with a memory operand it is a locked instruction.)
        "mov rax, [rbp - 0x10]",
        "mov qword ptr [rbp - 0x10], 0",
        // Call the entry function (rsp is 16-byte aligned here, as a call
        // site needs). A real `call`, so that the entry's return and then
        // our final `ret` each pop the return-stack-buffer entry they
        // match: a fiber that never suspends (most short fibers) mispredicts
        // no return. A fiber that suspends pays one mispredicted return at
        // its first suspend. Measured: create+run 47.6 ns with push+jmp,
        // 36.4 ns with call; the round trip is unchanged.
        "call rax",
        // The entry function returned here; rbp is the root again
        // (callee-saved).
        // Switch to the resumer for the last time, with a stack pointer of
        // 0: this fiber can never be resumed.
        "1:",
        "xor esi, esi",
        "mov rsp, [rbp - 0x08]",
        ".cfi_def_cfa rsp, 16",
        "mov rbp, [rbp]",
        ".cfi_same_value rbp",
        "ret",
        ".cfi_endproc",
    )
}

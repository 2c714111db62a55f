//! [`StackPoolBuilder`]: sizes, guard policy and budgets, validated at
//! `build()`.

use std::sync::Arc;

use super::budget::Budget;
use super::pool::Shared;
use super::slab::{self, Geometry};
use super::{GuardMode, GuardPolicy, StackError, StackPool, guard, os};

/// Smallest stack a fiber gets: room for its entry frames, a few calls, and
/// the panic machinery (`catch_unwind` at the fiber entry formats and
/// hands over a payload).
pub(crate) const MIN_STACK_SIZE: usize = 16 * 1024;
/// Largest stack (and largest guard) weft carves: 1 GiB.
pub(crate) const MAX_STACK_SIZE: usize = 1 << 30;
const DEFAULT_STACK_SIZE: usize = 256 * 1024;
const DEFAULT_GUARD_SIZE: usize = 16 * 1024;
const DEFAULT_MAX_CACHED: usize = 1024;

/// The environment variable that overrides [`GuardPolicy::Auto`].
pub(crate) const GUARD_ENV: &str = "WEFT_STACK_GUARD";

/// Configures and builds a [`StackPool`]; get one with
/// [`StackPool::builder`].
///
/// ```
/// use weft::stack_pool::{GuardPolicy, StackPool};
///
/// let pool = StackPool::builder()
///     .stack_size(64 * 1024)
///     .guard_size(4096)
///     .guard_policy(GuardPolicy::Auto)
///     .max_stacks(10_000)
///     .max_cached(256)
///     .build()?;
/// assert_eq!(pool.stack_size(), 64 * 1024);
/// # Ok::<(), weft::stack_pool::StackError>(())
/// ```
#[derive(Debug, Clone)]
pub struct StackPoolBuilder {
    stack_size: usize,
    guard_size: usize,
    policy: GuardPolicy,
    max_stacks: Option<usize>,
    /// A budget shared with other pools; overrides `max_stacks`.
    budget: Option<Arc<Budget>>,
    max_cached: usize,
}

impl Default for StackPoolBuilder {
    fn default() -> Self {
        StackPoolBuilder {
            stack_size: DEFAULT_STACK_SIZE,
            guard_size: DEFAULT_GUARD_SIZE,
            policy: GuardPolicy::Auto,
            max_stacks: None,
            budget: None,
            max_cached: DEFAULT_MAX_CACHED,
        }
    }
}

impl StackPoolBuilder {
    /// Usable bytes per stack, the 64-byte header included. Default
    /// 256 KiB; rounded up to whole pages at [`build`](Self::build), which
    /// refuses 0, anything below 16 KiB, and anything above 1 GiB.
    ///
    /// ```
    /// let pool = weft::stack_pool::StackPool::builder().stack_size(16 * 1024 + 1).build()?;
    /// assert_eq!(pool.stack_size(), 20 * 1024);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Bytes of guard below each stack. Default 16 KiB; at least one page
    /// (0 means one page); rounded up to whole pages; at most 1 GiB.
    ///
    /// Rust code needs one page: rustc emits stack probes for frames over
    /// 4 KiB. C code built without `-fstack-clash-protection` can jump
    /// over a small guard, hence the larger default.
    ///
    /// ```
    /// let pool = weft::stack_pool::StackPool::builder().guard_size(0).build()?;
    /// assert_eq!(pool.guard_size(), 4096);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn guard_size(mut self, bytes: usize) -> Self {
        self.guard_size = bytes;
        self
    }

    /// How guards are installed; default [`GuardPolicy::Auto`].
    ///
    /// ```
    /// use weft::stack_pool::{GuardMode, GuardPolicy, StackPool};
    ///
    /// let pool = StackPool::builder().guard_policy(GuardPolicy::Mprotect).build()?;
    /// assert_eq!(pool.guard_mode(), GuardMode::Mprotect);
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn guard_policy(mut self, policy: GuardPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The stack budget: how many stacks may be in use at once (handed out
    /// and not yet dropped; idle stacks in caches do not count). Default:
    /// unlimited, though in mprotect mode the process's `vm.max_map_count`
    /// caps it anyway (see the module doc, "Budgets"). A `get` past the
    /// budget is an `OutOfMemory` error that names it; `build` refuses a
    /// budget of 0.
    ///
    /// ```
    /// let pool = weft::stack_pool::StackPool::builder().max_stacks(1).build()?;
    /// let first = pool.get()?;
    /// assert!(pool.get().is_err());
    /// drop(first);
    /// assert!(pool.get().is_ok());
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn max_stacks(mut self, n: usize) -> Self {
        self.max_stacks = Some(n);
        self
    }

    /// Shares `budget` with the other pools built with it (a runtime's
    /// pools of every stack size), instead of a budget of this pool's own.
    pub(crate) fn budget(mut self, budget: Option<Arc<Budget>>) -> Self {
        self.budget = budget;
        self
    }

    /// How many idle stacks the shared pool keeps committed; beyond that
    /// the oldest are given back to the kernel (`MADV_DONTNEED`) in a
    /// batch, and kept as address space. Default 1024.
    ///
    /// ```
    /// let pool = weft::stack_pool::StackPool::builder().max_cached(0).build()?;
    /// # Ok::<(), weft::stack_pool::StackError>(())
    /// ```
    pub fn max_cached(mut self, n: usize) -> Self {
        self.max_cached = n;
        self
    }

    /// Validates the configuration and builds the pool. Maps nothing yet:
    /// slabs are mapped on the first `get` that needs one.
    ///
    /// The first pool built in a process also installs weft's SIGSEGV and
    /// SIGBUS handler (chained to the previous ones) and fixes the
    /// process's mapping budget.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use weft::stack_pool::StackPool;
    ///
    /// let err = StackPool::builder().stack_size(8 * 1024).build().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// assert!(err.to_string().contains("use at least 16 KiB"));
    /// ```
    pub fn build(self) -> Result<StackPool, StackError> {
        let budget = match (self.budget, self.max_stacks) {
            (Some(shared), _) => Some(shared),
            (None, Some(0)) => return Err(StackError::ZeroBudget),
            (None, Some(max)) => Some(Arc::new(Budget::new(max))),
            (None, None) => None,
        };
        let stack_size = validate_stack_size(self.stack_size)?;
        let guard_size = validate_guard_size(self.guard_size)?;
        let stride = stack_size
            .checked_add(guard_size)
            .expect("both sizes are at most 1 GiB");
        let os_error = |op, source| StackError::Os {
            op,
            stack_size,
            guard_size,
            source,
        };
        let mode = match effective_policy(self.policy, std::env::var_os(GUARD_ENV)) {
            GuardPolicy::Mprotect => GuardMode::Mprotect,
            GuardPolicy::Auto => match os::guard_install_supported() {
                Ok(true) => GuardMode::GuardInstall,
                Ok(false) => GuardMode::Mprotect,
                Err(e) => return Err(os_error("probe for MADV_GUARD_INSTALL", e)),
            },
        };
        slab::init_map_budget();
        guard::install().map_err(|e| os_error("install the stack overflow handler", e))?;
        let geometry = Geometry {
            stack_size,
            guard_size,
            stride,
            mode,
        };
        Ok(StackPool {
            shared: Arc::new(Shared::new(geometry, budget, self.max_cached)),
        })
    }
}

fn validate_stack_size(requested: usize) -> Result<usize, StackError> {
    match requested {
        0 => Err(StackError::ZeroStackSize),
        n if n < MIN_STACK_SIZE => Err(StackError::StackSizeTooSmall {
            requested: n,
            minimum: MIN_STACK_SIZE,
        }),
        n if n > MAX_STACK_SIZE => Err(StackError::StackSizeTooLarge {
            requested: n,
            maximum: MAX_STACK_SIZE,
        }),
        n => Ok(os::round_up_to_page(n).expect("at most 1 GiB, so no overflow")),
    }
}

fn validate_guard_size(requested: usize) -> Result<usize, StackError> {
    if requested > MAX_STACK_SIZE {
        return Err(StackError::GuardSizeTooLarge {
            requested,
            maximum: MAX_STACK_SIZE,
        });
    }
    Ok(os::round_up_to_page(requested.max(1)).expect("at most 1 GiB, so no overflow"))
}

/// Applies `WEFT_STACK_GUARD` to an `Auto` policy: `mprotect` forces the
/// fallback; `guard-install`, unset, or any other value (ignored) keeps
/// `Auto`. An explicit `Mprotect` policy is never overridden.
fn effective_policy(policy: GuardPolicy, env: Option<std::ffi::OsString>) -> GuardPolicy {
    match (policy, env) {
        (GuardPolicy::Auto, Some(value)) if value == "mprotect" => GuardPolicy::Mprotect,
        (policy, _) => policy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_auto_only() {
        let m = || Some("mprotect".into());
        assert_eq!(
            effective_policy(GuardPolicy::Auto, m()),
            GuardPolicy::Mprotect
        );
        assert_eq!(effective_policy(GuardPolicy::Auto, None), GuardPolicy::Auto);
        assert_eq!(
            effective_policy(GuardPolicy::Auto, Some("guard-install".into())),
            GuardPolicy::Auto
        );
        assert_eq!(
            effective_policy(GuardPolicy::Auto, Some("bogus".into())),
            GuardPolicy::Auto
        );
        assert_eq!(
            effective_policy(GuardPolicy::Mprotect, None),
            GuardPolicy::Mprotect
        );
    }
}

//! [`StackError`]: every way getting a stack or building a pool can fail.
//!
//! Each message names the cause and the fix, because the person reading it
//! is usually an operator looking at a log line, not the code.

use std::fmt;
use std::io;

use super::GuardMode;

/// Why a [`StackPool`](super::StackPool) could not be built or could not
/// hand out a stack.
///
/// Nothing in the pool panics or crashes on a bad size, an exhausted budget
/// or a failing system call: it returns one of these. [`kind`](Self::kind)
/// maps each to the [`io::ErrorKind`] a caller would expect, and
/// `io::Error::from` converts it for code that speaks `io::Result`.
///
/// ```
/// use std::io::ErrorKind;
/// use weft::stack_pool::StackPool;
///
/// let err = StackPool::builder().stack_size(0).build().unwrap_err();
/// assert_eq!(err.kind(), ErrorKind::InvalidInput);
/// assert!(err.to_string().contains("16 KiB"));
/// let io: std::io::Error = err.into();
/// assert_eq!(io.kind(), ErrorKind::InvalidInput);
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum StackError {
    /// `stack_size(0)` was asked for.
    ZeroStackSize,
    /// The stack size asked for is below the minimum a fiber needs.
    #[non_exhaustive]
    StackSizeTooSmall {
        /// The size asked for, in bytes.
        requested: usize,
        /// The smallest size accepted, in bytes.
        minimum: usize,
    },
    /// The stack size asked for is above the largest one weft carves.
    #[non_exhaustive]
    StackSizeTooLarge {
        /// The size asked for, in bytes.
        requested: usize,
        /// The largest size accepted, in bytes.
        maximum: usize,
    },
    /// The guard size asked for is above the largest one weft installs.
    #[non_exhaustive]
    GuardSizeTooLarge {
        /// The size asked for, in bytes.
        requested: usize,
        /// The largest size accepted, in bytes.
        maximum: usize,
    },
    /// Every stack the `max_stacks` budget allows is in use.
    #[non_exhaustive]
    BudgetExhausted {
        /// The budget (`StackPoolBuilder::max_stacks`).
        max_stacks: usize,
    },
    /// A budget of zero stacks, which would let no fiber run.
    ZeroBudget,
    /// Carving another stack would take the process too close to
    /// `vm.max_map_count`, after which every `mmap` in the process fails.
    #[non_exhaustive]
    MapCountLimit {
        /// The guard mechanism of the pool that was refused.
        guard_mode: GuardMode,
        /// The kernel's limit, read from `/proc/sys/vm/max_map_count`.
        max_map_count: usize,
        /// Mappings all weft pools in the process hold now.
        weft_mappings: usize,
        /// Stacks this pool has carved so far.
        carved: usize,
        /// The pool's usable stack size, in bytes.
        stack_size: usize,
        /// The pool's guard size, in bytes.
        guard_size: usize,
    },
    /// The process-wide registry of stack slabs (read by the overflow
    /// handler) has no free entry.
    #[non_exhaustive]
    RegistryFull {
        /// How many slabs the registry holds.
        capacity: usize,
    },
    /// A system call failed (`mmap`, `madvise`, `mprotect`, `sigaction`).
    #[non_exhaustive]
    Os {
        /// What weft was doing, e.g. "map a stack slab".
        op: &'static str,
        /// The pool's usable stack size, in bytes.
        stack_size: usize,
        /// The pool's guard size, in bytes.
        guard_size: usize,
        /// The error the kernel answered.
        source: io::Error,
    },
}

impl StackError {
    /// The [`io::ErrorKind`] that fits this error: `InvalidInput` for a
    /// bad size, `OutOfMemory` for an exhausted budget or map count, the
    /// errno's kind for a failed system call.
    ///
    /// ```
    /// use std::io::ErrorKind;
    /// use weft::stack_pool::StackPool;
    ///
    /// let err = StackPool::builder().stack_size(usize::MAX).build().unwrap_err();
    /// assert_eq!(err.kind(), ErrorKind::InvalidInput);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Self::ZeroStackSize
            | Self::StackSizeTooSmall { .. }
            | Self::StackSizeTooLarge { .. }
            | Self::GuardSizeTooLarge { .. }
            | Self::ZeroBudget => io::ErrorKind::InvalidInput,
            Self::BudgetExhausted { .. }
            | Self::MapCountLimit { .. }
            | Self::RegistryFull { .. } => io::ErrorKind::OutOfMemory,
            Self::Os { source, .. } => source.kind(),
        }
    }
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ZeroStackSize => f.write_str(
                "stack size 0 is invalid: a fiber needs a stack to run on; \
                 use at least 16 KiB (the default is 256 KiB)",
            ),
            Self::StackSizeTooLarge { requested, maximum } => write!(
                f,
                "stack size of {} is above the maximum of {} per fiber stack; \
                 use a smaller stack_size, or run work that needs a deeper stack on a thread",
                Bytes(*requested),
                Bytes(*maximum)
            ),
            Self::StackSizeTooSmall { requested, minimum } => write!(
                f,
                "stack size of {} is too small to run a fiber: it needs room for its \
                 entry frames and the panic machinery; use at least {}",
                Bytes(*requested),
                Bytes(*minimum)
            ),
            Self::GuardSizeTooLarge { requested, maximum } => write!(
                f,
                "guard size of {} is above the maximum of {} per fiber stack; \
                 use a smaller guard_size",
                Bytes(*requested),
                Bytes(*maximum)
            ),
            Self::BudgetExhausted { max_stacks } => write!(
                f,
                "stack budget exhausted: {} stacks are in use (by running or parked \
                 fibers), all that max_stacks allows; raise max_stacks (the runtime's \
                 stack budget) or run fewer live fibers",
                Grouped(*max_stacks)
            ),
            Self::ZeroBudget => f.write_str(
                "max_stacks(0) would let no fiber run: use a budget of at least 1, \
                 or leave it unset for no budget",
            ),
            Self::MapCountLimit {
                guard_mode,
                max_map_count,
                weft_mappings,
                carved,
                stack_size,
                guard_size,
            } => {
                write!(
                    f,
                    "cannot carve another fiber stack ({} KiB + {} KiB guard) after {} in this \
                     pool: weft's stacks hold {} memory mappings and the process must keep \
                     room below vm.max_map_count={}; ",
                    stack_size / 1024,
                    guard_size / 1024,
                    Grouped(*carved),
                    Grouped(*weft_mappings),
                    max_map_count
                )?;
                match guard_mode {
                    GuardMode::Mprotect => write!(
                        f,
                        "guard pages in mprotect mode cost 2 memory mappings per stack and \
                         vm.max_map_count={} allows about {} live stacks; raise it \
                         (`sysctl -w vm.max_map_count=262144`), run fewer live fibers, or use \
                         Linux 6.13+ where MADV_GUARD_INSTALL guards without extra mappings",
                        max_map_count,
                        Grouped(max_map_count / 2)
                    ),
                    GuardMode::GuardInstall => f.write_str(
                        "raise it (`sysctl -w vm.max_map_count=262144`) or use fewer stack pools",
                    ),
                }
            }
            Self::RegistryFull { capacity } => write!(
                f,
                "the registry of fiber stack slabs is full ({capacity} slabs of up to 1 GiB \
                 each, shared by all pools in the process); drop unused StackPools or share \
                 one pool instead of building many"
            ),
            Self::Os {
                op,
                stack_size,
                guard_size,
                source,
            } => {
                write!(
                    f,
                    "failed to {op} for fiber stacks of {} KiB + {} KiB guard: {source}",
                    stack_size / 1024,
                    guard_size / 1024
                )?;
                if source.raw_os_error() == Some(libc::ENOMEM) {
                    f.write_str(
                        "; the machine is out of memory or the process reached \
                         vm.max_map_count: run fewer live fibers, use smaller stacks, or raise \
                         it (`sysctl -w vm.max_map_count=262144`)",
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for StackError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Os { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<StackError> for io::Error {
    fn from(err: StackError) -> Self {
        io::Error::new(err.kind(), err)
    }
}

/// Displays a size: whole KiB, MiB or GiB when exact, else bytes
/// (`16 KiB`, `1 GiB`, `1 byte`, `20,481 bytes`).
struct Bytes(usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0;
        for (shift, unit) in [(30, "GiB"), (20, "MiB"), (10, "KiB")] {
            if n >= 1 << shift && n.is_multiple_of(1 << shift) {
                return write!(f, "{} {unit}", Grouped(n >> shift));
            }
        }
        match n {
            1 => f.write_str("1 byte"),
            n => write!(f, "{} bytes", Grouped(n)),
        }
    }
}

/// Displays a count with thousands separators: `32,223`.
struct Grouped(usize);

impl fmt::Display for Grouped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let digits = self.0.to_string();
        for (i, digit) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                f.write_str(",")?;
            }
            write!(f, "{digit}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::{Bytes, Grouped};

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(Bytes(1).to_string(), "1 byte");
        assert_eq!(Bytes(15 * 1024 + 1).to_string(), "15,361 bytes");
        assert_eq!(Bytes(16 * 1024).to_string(), "16 KiB");
        assert_eq!(Bytes(1 << 30).to_string(), "1 GiB");
        assert_eq!(Bytes((1 << 30) + 1).to_string(), "1,073,741,825 bytes");
    }

    #[test]
    fn grouped_inserts_separators() {
        assert_eq!(Grouped(0).to_string(), "0");
        assert_eq!(Grouped(999).to_string(), "999");
        assert_eq!(Grouped(1000).to_string(), "1,000");
        assert_eq!(Grouped(32_223).to_string(), "32,223");
        assert_eq!(Grouped(1_000_000).to_string(), "1,000,000");
    }
}

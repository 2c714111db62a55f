//! The few syscalls weft makes itself rather than through std.
//!
//! - Stream writes go through `send`/`sendmsg` with `MSG_NOSIGNAL`: std's
//!   `write_vectored` on a socket is a plain `writev`, and std's
//!   `UnixStream::write` a plain `write`, either of which raises SIGPIPE
//!   on a closed peer and kills a process whose SIGPIPE disposition is
//!   still the default (TESTING.md, section 0, finding 3).
//! - `O_NONBLOCK` is toggled with `ioctl(FIONBIO)`, on any socket type.
//! - A listener's backlog is raised after std's `bind` (which listens with
//!   128) by calling `listen` again, which Linux allows.

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

/// Sets or clears `O_NONBLOCK` on the socket `fd` (`ioctl(FIONBIO)`, as
/// std's `set_nonblocking` does: one syscall).
pub(crate) fn set_nonblocking(fd: RawFd, nonblocking: bool) -> io::Result<()> {
    let mut on = libc::c_int::from(nonblocking);
    // SAFETY: FIONBIO reads one int through the pointer, which is valid for
    // the call; `fd` is a descriptor the caller owns (an invalid one only
    // yields EBADF).
    if unsafe { libc::ioctl(fd, libc::FIONBIO, &mut on) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `send(fd, buf, MSG_NOSIGNAL)`.
pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the call.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.cast_unsigned())
    }
}

/// `sendmsg(fd, bufs, MSG_NOSIGNAL)`: a vectored write without SIGPIPE.
pub(crate) fn send_vectored(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // IoSlice is guaranteed ABI-compatible with `struct iovec` on Unix.
    let iovlen = bufs.len().min(1024);
    // SAFETY: an all-zero msghdr is valid (no name, no control data).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = bufs.as_ptr().cast_mut().cast();
    msg.msg_iovlen = iovlen;
    // SAFETY: `msg` points at `iovlen` iovecs (the IoSlices), each valid
    // for reads of its length for the duration of the call; sendmsg does
    // not write through them.
    let n = unsafe { libc::sendmsg(fd, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n.cast_unsigned())
    }
}

/// Calls `listen` again with a larger backlog (the kernel caps it at
/// `net.core.somaxconn`).
pub(crate) fn raise_backlog(fd: RawFd) -> io::Result<()> {
    // SAFETY: `listen` on a descriptor we own; it only changes the queue
    // length of a socket that is already listening.
    if unsafe { libc::listen(fd, 4096) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether an `accept` error means "out of descriptors or memory": the
/// listener backs off and retries instead of failing or spinning.
pub(crate) fn is_resource_exhausted(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Whether an `accept` error concerns only the connection being accepted
/// (it was reset while queued): retry at once.
pub(crate) fn is_connection_aborted(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::ECONNABORTED | libc::EPROTO | libc::EPERM)
    ) || err.kind() == io::ErrorKind::Interrupted
}

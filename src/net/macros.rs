//! What every socket type would otherwise write out by hand, as macros
//! its file invokes: trait impls (`socket_traits!`, `stream_io!`) and
//! inherent methods (`socket_methods!`).
//!
//! The methods' doc comments stay with each type, above the method's
//! name, since their examples differ from type to type: a macro takes
//! them as attributes and puts them on the method it generates. The
//! logic behind the methods is [`Source`](super::source::Source)'s.

/// Implements the traits of a socket type `$weft` that wraps the std type
/// `$std` in its field `source`: the fd conversions, `From` either way,
/// and `Debug` (the std socket's).
macro_rules! socket_traits {
    ($weft:ident, $std:ty) => {
        impl std::os::fd::AsRawFd for $weft {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                self.source.fd()
            }
        }

        impl std::os::fd::AsFd for $weft {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                self.source.get().as_fd()
            }
        }

        impl std::os::fd::FromRawFd for $weft {
            /// Takes ownership of `fd`, which must be an open socket of the
            /// right type, as for the std type.
            unsafe fn from_raw_fd(fd: std::os::fd::RawFd) -> $weft {
                // SAFETY: the caller passes ownership of an open socket fd
                // of this type (the trait's contract).
                $weft::from(unsafe { <$std as std::os::fd::FromRawFd>::from_raw_fd(fd) })
            }
        }

        impl std::os::fd::IntoRawFd for $weft {
            /// Deregisters the socket and gives its fd up, in blocking mode
            /// (unless `set_nonblocking(true)` was asked for).
            fn into_raw_fd(self) -> std::os::fd::RawFd {
                self.source.into_inner().into_raw_fd()
            }
        }

        impl From<std::os::fd::OwnedFd> for $weft {
            fn from(fd: std::os::fd::OwnedFd) -> $weft {
                $weft::from(<$std>::from(fd))
            }
        }

        impl From<$weft> for std::os::fd::OwnedFd {
            fn from(socket: $weft) -> std::os::fd::OwnedFd {
                socket.source.into_inner().into()
            }
        }

        impl From<$std> for $weft {
            /// Wraps a std socket. It registers with a runtime's reactor
            /// (and becomes non-blocking inside) the first time it is used
            /// on one; until then it behaves as the std socket.
            fn from(socket: $std) -> $weft {
                $weft {
                    source: $crate::net::source::Source::new(socket),
                }
            }
        }

        impl From<$weft> for $std {
            /// The std socket, deregistered and blocking again (see
            /// `into_std`).
            fn from(socket: $weft) -> $std {
                socket.source.into_inner()
            }
        }

        impl std::fmt::Debug for $weft {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                std::fmt::Debug::fmt(self.source.get(), f)
            }
        }
    };
}
pub(super) use socket_traits;

/// Implements `Read` and `Write` for a stream type and its reference.
macro_rules! stream_io {
    ($weft:ident) => {
        impl std::io::Read for &$weft {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                let len = buf.len();
                self.source
                    .do_stream_io($crate::net::registration::Direction::Read, len, |s| {
                        #[cfg(feature = "fault-injection")]
                        $crate::net::fault::read(&self.source)?;
                        std::io::Read::read(&mut &*s, buf)
                    })
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                let len = bufs.iter().map(|b| b.len()).sum();
                self.source
                    .do_stream_io($crate::net::registration::Direction::Read, len, |s| {
                        #[cfg(feature = "fault-injection")]
                        $crate::net::fault::read(&self.source)?;
                        std::io::Read::read_vectored(&mut &*s, bufs)
                    })
            }
        }

        impl std::io::Write for &$weft {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                let fd = self.source.fd();
                self.source.do_stream_io(
                    $crate::net::registration::Direction::Write,
                    buf.len(),
                    |_| {
                        #[cfg(feature = "fault-injection")]
                        let buf = $crate::net::fault::write(&self.source, buf)?;
                        $crate::net::sys::send(fd, buf)
                    },
                )
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                let fd = self.source.fd();
                let len = bufs.iter().map(|b| b.len()).sum();
                self.source
                    .do_stream_io($crate::net::registration::Direction::Write, len, |_| {
                        #[cfg(feature = "fault-injection")]
                        if let Some(first) = $crate::net::fault::write_vectored(&self.source, bufs)?
                        {
                            return $crate::net::sys::send(fd, first);
                        }
                        $crate::net::sys::send_vectored(fd, bufs)
                    })
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        impl std::io::Read for $weft {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                (&*self).read(buf)
            }

            fn read_vectored(
                &mut self,
                bufs: &mut [std::io::IoSliceMut<'_>],
            ) -> std::io::Result<usize> {
                (&*self).read_vectored(bufs)
            }
        }

        impl std::io::Write for $weft {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                (&*self).write(buf)
            }

            fn write_vectored(&mut self, bufs: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
                (&*self).write_vectored(bufs)
            }

            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
    };
}
pub(super) use stream_io;

/// Generates inherent methods of a socket type. Each is written as its
/// doc comment and then either
///
/// - its signature, `pub fn name(&self, arg: Type) -> Ret;`: the method
///   only calls the std socket's method of the same name; or
/// - `fn name;` (`fn name -> Type;` for `try_clone` and `into_std`, which
///   name the type they return): one of the methods whose logic is
///   weft's, in `Source`, and the same for every socket type that has it
///   (`set_read_timeout`, `set_write_timeout`, `read_timeout`,
///   `write_timeout`, `try_clone`, `set_nonblocking`, `into_std`); its
///   signature is the `@name` rule's, below.
macro_rules! socket_methods {
    () => {};
    (
        $(#[$attr:meta])*
        pub fn $name:ident(&self $(, $arg:ident: $ty:ty)*) -> $ret:ty;
        $($rest:tt)*
    ) => {
        $(#[$attr])*
        pub fn $name(&self $(, $arg: $ty)*) -> $ret {
            self.source.get().$name($($arg),*)
        }
        $crate::net::macros::socket_methods!($($rest)*);
    };
    (
        $(#[$attr:meta])*
        fn $name:ident $(-> $ret:ty)?;
        $($rest:tt)*
    ) => {
        $crate::net::macros::socket_methods!(@$name [$(#[$attr])*] $($ret)?);
        $crate::net::macros::socket_methods!($($rest)*);
    };

    // The timeouts: each name is the setter or the getter of a direction.
    (@set_read_timeout $attrs:tt) => {
        $crate::net::macros::socket_methods!(@set_timeout $attrs set_read_timeout Read);
    };
    (@set_write_timeout $attrs:tt) => {
        $crate::net::macros::socket_methods!(@set_timeout $attrs set_write_timeout Write);
    };
    (@read_timeout $attrs:tt) => {
        $crate::net::macros::socket_methods!(@timeout $attrs read_timeout Read);
    };
    (@write_timeout $attrs:tt) => {
        $crate::net::macros::socket_methods!(@timeout $attrs write_timeout Write);
    };
    (@set_timeout [$(#[$attr:meta])*] $name:ident $direction:ident) => {
        $(#[$attr])*
        pub fn $name(&self, timeout: Option<std::time::Duration>) -> std::io::Result<()> {
            let direction = $crate::net::registration::Direction::$direction;
            self.source.set_timeout(direction, timeout, |s| s.$name(timeout))
        }
    };
    (@timeout [$(#[$attr:meta])*] $name:ident $direction:ident) => {
        $(#[$attr])*
        pub fn $name(&self) -> std::io::Result<Option<std::time::Duration>> {
            Ok(self.source.timeout($crate::net::registration::Direction::$direction))
        }
    };

    (@set_nonblocking [$(#[$attr:meta])*]) => {
        $(#[$attr])*
        pub fn set_nonblocking(&self, nonblocking: bool) -> std::io::Result<()> {
            self.source.set_nonblocking(nonblocking)
        }
    };

    (@try_clone [$(#[$attr:meta])*] $weft:ty) => {
        $(#[$attr])*
        pub fn try_clone(&self) -> std::io::Result<$weft> {
            Ok(Self {
                source: self.source.try_clone(|s| s.try_clone())?,
            })
        }
    };

    (@into_std [$(#[$attr:meta])*] $std:ty) => {
        $(#[$attr])*
        pub fn into_std(self) -> $std {
            self.source.into_inner()
        }
    };
}
pub(super) use socket_methods;

//! [`UnixListener`] and [`UnixStream`]: `std::os::unix::net`'s, parking
//! the fiber.

use std::io;
use std::net::Shutdown;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::macros::{socket_methods, socket_traits, stream_io};
use super::reactor::Reactor;
use super::source::Source;
use super::{accept_with_backoff, sys};

/// A Unix-domain socket server: `std::os::unix::net::UnixListener` whose
/// [`accept`](Self::accept) parks the fiber.
///
/// ```
/// use std::io::{Read, Write};
/// use weft::net::{UnixListener, UnixStream};
///
/// let dir = std::env::temp_dir().join(format!("weft-doc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("listener.sock");
/// # let _ = std::fs::remove_file(&path);
/// let reply = weft::run({
///     let path = path.clone();
///     move || {
///         let listener = UnixListener::bind(&path).unwrap();
///         weft::spawn(move || {
///             let (mut conn, _) = listener.accept().unwrap();
///             conn.write_all(b"hello").unwrap();
///         });
///         let mut reply = String::new();
///         UnixStream::connect(&path).unwrap().read_to_string(&mut reply).unwrap();
///         reply
///     }
/// });
/// assert_eq!(reply, "hello");
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
pub struct UnixListener {
    source: Source<std::os::unix::net::UnixListener>,
}

/// A Unix-domain stream: `std::os::unix::net::UnixStream` whose reads and
/// writes park the fiber; `Read` and `Write` are implemented for
/// `&UnixStream` too.
///
/// ```
/// use std::io::{Read, Write};
///
/// weft::run(|| {
///     let (mut a, mut b) = weft::net::UnixStream::pair().unwrap();
///     let reader = weft::spawn(move || {
///         let mut buf = [0; 4];
///         b.read_exact(&mut buf).unwrap(); // parks until a writes
///         buf
///     });
///     a.write_all(b"ping").unwrap();
///     assert_eq!(&reader.join().unwrap(), b"ping");
/// });
/// ```
pub struct UnixStream {
    source: Source<std::os::unix::net::UnixStream>,
}

/// An endless iterator over a Unix listener's connections
/// ([`UnixListener::incoming`]).
///
/// ```
/// let dir = std::env::temp_dir().join(format!("weft-doc-inc-{}", std::process::id()));
/// std::fs::create_dir_all(&dir).unwrap();
/// let path = dir.join("s");
/// # let _ = std::fs::remove_file(&path);
/// let listener = weft::net::UnixListener::bind(&path).unwrap();
/// let _client = std::os::unix::net::UnixStream::connect(&path).unwrap();
/// let incoming: weft::net::UnixIncoming<'_> = listener.incoming();
/// assert!(incoming.take(1).next().unwrap().is_ok());
/// std::fs::remove_dir_all(&dir).unwrap();
/// ```
#[derive(Debug)]
pub struct UnixIncoming<'a> {
    listener: &'a UnixListener,
}

impl UnixListener {
    /// Binds to the filesystem path `path` and listens (backlog 4096,
    /// capped by `net.core.somaxconn`). The path must not exist.
    ///
    /// # Errors
    ///
    /// As std's (`AddrInUse` if the path exists).
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("weft-doc-bind-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = weft::net::UnixListener::bind(&path)?;
    /// assert_eq!(listener.local_addr()?.as_pathname(), Some(path.as_path()));
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixListener> {
        let listener = std::os::unix::net::UnixListener::bind(path)?;
        sys::raise_backlog(listener.as_raw_fd())?;
        Ok(UnixListener::from(listener))
    }

    /// Waits for a connection, parking the fiber; out of descriptors it
    /// backs off and retries, as [`TcpListener::accept`](super::TcpListener::accept).
    ///
    /// # Errors
    ///
    /// As std's, except the descriptor shortages.
    ///
    /// ```
    /// weft::run(|| {
    ///     let path = std::env::temp_dir().join(format!("weft-doc-acc-{}", std::process::id()));
    ///     # let _ = std::fs::remove_file(&path);
    ///     let listener = weft::net::UnixListener::bind(&path).unwrap();
    ///     let client = {
    ///         let path = path.clone();
    ///         weft::spawn(move || weft::net::UnixStream::connect(path).unwrap())
    ///     };
    ///     let (_conn, _addr) = listener.accept().unwrap();
    ///     client.join().unwrap();
    ///     std::fs::remove_file(&path).unwrap();
    /// });
    /// ```
    pub fn accept(&self) -> io::Result<(UnixStream, SocketAddr)> {
        let (stream, addr) =
            accept_with_backoff(&self.source, std::os::unix::net::UnixListener::accept)?;
        let stream = UnixStream {
            source: self.source.accepted(stream)?,
        };
        Ok((stream, addr))
    }

    /// An endless iterator of [`accept`](Self::accept)'s connections.
    ///
    /// ```
    /// let path = std::env::temp_dir().join(format!("weft-doc-incoming-{}", std::process::id()));
    /// # let _ = std::fs::remove_file(&path);
    /// let listener = weft::net::UnixListener::bind(&path)?;
    /// let _client = std::os::unix::net::UnixStream::connect(&path)?;
    /// for conn in listener.incoming().take(1) {
    ///     conn?;
    /// }
    /// std::fs::remove_file(&path)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn incoming(&self) -> UnixIncoming<'_> {
        UnixIncoming { listener: self }
    }

    socket_methods! {
        /// The address the listener is bound to.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let path = std::env::temp_dir().join(format!("weft-doc-la-{}", std::process::id()));
        /// # let _ = std::fs::remove_file(&path);
        /// let listener = weft::net::UnixListener::bind(&path)?;
        /// assert!(listener.local_addr()?.as_pathname().is_some());
        /// std::fs::remove_file(&path)?;
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn local_addr(&self) -> io::Result<SocketAddr>;

        /// Another handle to the same listening socket.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let path = std::env::temp_dir().join(format!("weft-doc-tc-{}", std::process::id()));
        /// # let _ = std::fs::remove_file(&path);
        /// let listener = weft::net::UnixListener::bind(&path)?;
        /// let clone = listener.try_clone()?;
        /// assert!(clone.local_addr()?.as_pathname().is_some());
        /// std::fs::remove_file(&path)?;
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn try_clone -> UnixListener;

        /// Takes the pending `SO_ERROR` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let path = std::env::temp_dir().join(format!("weft-doc-te-{}", std::process::id()));
        /// # let _ = std::fs::remove_file(&path);
        /// let listener = weft::net::UnixListener::bind(&path)?;
        /// assert!(listener.take_error()?.is_none());
        /// std::fs::remove_file(&path)?;
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn take_error(&self) -> io::Result<Option<io::Error>>;

        /// In non-blocking mode `accept` returns `WouldBlock` instead of
        /// parking.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let path = std::env::temp_dir().join(format!("weft-doc-nb-{}", std::process::id()));
        /// # let _ = std::fs::remove_file(&path);
        /// let listener = weft::net::UnixListener::bind(&path)?;
        /// listener.set_nonblocking(true)?;
        /// assert_eq!(listener.accept().unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
        /// std::fs::remove_file(&path)?;
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn set_nonblocking;

        /// The std listener, deregistered and blocking again.
        ///
        /// ```
        /// let path = std::env::temp_dir().join(format!("weft-doc-is-{}", std::process::id()));
        /// # let _ = std::fs::remove_file(&path);
        /// let listener = weft::net::UnixListener::bind(&path)?.into_std();
        /// assert!(listener.local_addr().is_ok());
        /// std::fs::remove_file(&path)?;
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn into_std -> std::os::unix::net::UnixListener;
    }
}

impl<'a> Iterator for UnixIncoming<'a> {
    type Item = io::Result<UnixStream>;

    fn next(&mut self) -> Option<io::Result<UnixStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

impl UnixStream {
    /// Connects to the socket at `path`. On a runtime the connect is
    /// non-blocking; a full backlog makes the fiber sleep and retry (1 ms,
    /// doubling up to 100 ms) where std's would block the thread.
    ///
    /// # Errors
    ///
    /// As std's (`NotFound`, `ConnectionRefused`).
    ///
    /// ```
    /// weft::run(|| {
    ///     let missing = std::env::temp_dir().join("weft-doc-no-such-socket");
    ///     assert!(weft::net::UnixStream::connect(missing).is_err());
    /// });
    /// ```
    pub fn connect<P: AsRef<Path>>(path: P) -> io::Result<UnixStream> {
        let Some(reactor) = Reactor::current() else {
            return Ok(UnixStream::from(std::os::unix::net::UnixStream::connect(
                path,
            )?));
        };
        let mut delay = Duration::from_millis(1);
        let started = loop {
            match mio::net::UnixStream::connect(path.as_ref()) {
                Ok(stream) => break stream,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    crate::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(100));
                    if reactor.is_shutdown() {
                        return Err(super::registration::after_shutdown());
                    }
                }
                Err(err) => return Err(err),
            }
        };
        let stream = std::os::unix::net::UnixStream::from(OwnedFd::from(started));
        let source = Source::registered(stream, reactor)?;
        if let Some(err) = source.get().take_error()? {
            return Err(err);
        }
        Ok(UnixStream { source })
    }

    /// A connected pair of streams.
    ///
    /// # Errors
    ///
    /// As std's.
    ///
    /// ```
    /// use std::io::{Read, Write};
    ///
    /// let (mut a, mut b) = weft::net::UnixStream::pair()?;
    /// a.write_all(b"x")?;
    /// let mut byte = [0];
    /// b.read_exact(&mut byte)?;
    /// assert_eq!(&byte, b"x");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pair() -> io::Result<(UnixStream, UnixStream)> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        Ok((UnixStream::from(a), UnixStream::from(b)))
    }

    socket_methods! {
        /// The peer's address.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let (a, _b) = weft::net::UnixStream::pair()?;
        /// assert!(a.peer_addr()?.is_unnamed());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn peer_addr(&self) -> io::Result<SocketAddr>;

        /// The local address.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let (a, _b) = weft::net::UnixStream::pair()?;
        /// assert!(a.local_addr()?.is_unnamed());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn local_addr(&self) -> io::Result<SocketAddr>;

        /// Shuts the read, write or both halves down (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// use std::io::Read;
        ///
        /// let (a, mut b) = weft::net::UnixStream::pair()?;
        /// a.shutdown(std::net::Shutdown::Write)?;
        /// assert_eq!(b.read(&mut [0; 4])?, 0);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn shutdown(&self, how: Shutdown) -> io::Result<()>;

        /// A read that has not completed `timeout` after it started fails with
        /// `TimedOut`.
        ///
        /// # Errors
        ///
        /// `InvalidInput` for a zero duration, as std's.
        ///
        /// ```
        /// use std::io::Read;
        /// use std::time::Duration;
        ///
        /// weft::run(|| {
        ///     let (mut a, _b) = weft::net::UnixStream::pair().unwrap();
        ///     a.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        ///     assert_eq!(a.read(&mut [0; 4]).unwrap_err().kind(), std::io::ErrorKind::TimedOut);
        /// });
        /// ```
        fn set_read_timeout;

        /// As [`set_read_timeout`](Self::set_read_timeout), for writes.
        ///
        /// # Errors
        ///
        /// `InvalidInput` for a zero duration, as std's.
        ///
        /// ```
        /// use std::time::Duration;
        ///
        /// let (a, _b) = weft::net::UnixStream::pair()?;
        /// a.set_write_timeout(Some(Duration::from_secs(2)))?;
        /// assert_eq!(a.write_timeout()?, Some(Duration::from_secs(2)));
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn set_write_timeout;

        /// The read timeout.
        ///
        /// # Errors
        ///
        /// Never (the `Result` mirrors std's).
        ///
        /// ```
        /// let (a, _b) = weft::net::UnixStream::pair()?;
        /// assert_eq!(a.read_timeout()?, None);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn read_timeout;

        /// The write timeout.
        ///
        /// # Errors
        ///
        /// Never (the `Result` mirrors std's).
        ///
        /// ```
        /// let (a, _b) = weft::net::UnixStream::pair()?;
        /// assert_eq!(a.write_timeout()?, None);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn write_timeout;

        /// Another handle to the same stream (a duplicated fd with its own
        /// registration, starting with this handle's timeouts).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let (a, _b) = weft::net::UnixStream::pair()?;
        /// assert!(a.try_clone()?.peer_addr().is_ok());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn try_clone -> UnixStream;

        /// Takes the pending `SO_ERROR` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let (a, _b) = weft::net::UnixStream::pair()?;
        /// assert!(a.take_error()?.is_none());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn take_error(&self) -> io::Result<Option<io::Error>>;

        /// In non-blocking mode reads and writes return `WouldBlock` instead of
        /// parking.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// use std::io::Read;
        ///
        /// let (mut a, _b) = weft::net::UnixStream::pair()?;
        /// a.set_nonblocking(true)?;
        /// assert_eq!(a.read(&mut [0; 1]).unwrap_err().kind(), std::io::ErrorKind::WouldBlock);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn set_nonblocking;

        /// The std stream, deregistered and blocking again.
        ///
        /// ```
        /// let (a, _b) = weft::net::UnixStream::pair()?;
        /// let std_stream: std::os::unix::net::UnixStream = a.into_std();
        /// assert!(std_stream.peer_addr().is_ok());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn into_std -> std::os::unix::net::UnixStream;
    }
}

socket_traits!(UnixListener, std::os::unix::net::UnixListener);
socket_traits!(UnixStream, std::os::unix::net::UnixStream);
stream_io!(UnixStream);

//! [`UnixDatagram`]: `std::os::unix::net`'s, parking the fiber.

use std::io;
use std::net::Shutdown;
use std::os::unix::net::SocketAddr;
use std::path::Path;

use super::macros::{socket_methods, socket_traits};
use super::registration::Direction;
use super::source::Source;

/// A Unix-domain datagram socket: `std::os::unix::net::UnixDatagram`
/// whose receives (and, when the peer's queue is full, sends) park the
/// fiber. All methods take `&self`, so fibers may share one socket.
///
/// ```
/// use weft::net::UnixDatagram;
///
/// weft::run(|| {
///     let (a, b) = UnixDatagram::pair().unwrap();
///     let receiver = weft::spawn(move || {
///         let mut buf = [0; 8];
///         let n = b.recv(&mut buf).unwrap(); // parks until a sends
///         buf[..n].to_vec()
///     });
///     a.send(b"ping").unwrap();
///     assert_eq!(receiver.join().unwrap(), b"ping");
/// });
/// ```
pub struct UnixDatagram {
    source: Source<std::os::unix::net::UnixDatagram>,
}

impl UnixDatagram {
    /// Binds a socket to `path` (as std's).
    ///
    /// # Errors
    ///
    /// As std's (`AddrInUse` if the path exists).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("weft-doc-dgram-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("bound.sock");
    /// # let _ = std::fs::remove_file(&path);
    /// let socket = weft::net::UnixDatagram::bind(&path)?;
    /// assert_eq!(socket.local_addr()?.as_pathname(), Some(path.as_path()));
    /// std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind<P: AsRef<Path>>(path: P) -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from(std::os::unix::net::UnixDatagram::bind(
            path,
        )?))
    }

    /// A socket bound to no address (as std's): it can send to bound
    /// sockets, and receive only once [`connect`](Self::connect)ed.
    ///
    /// # Errors
    ///
    /// As std's.
    ///
    /// ```
    /// let socket = weft::net::UnixDatagram::unbound()?;
    /// assert!(socket.local_addr()?.is_unnamed());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn unbound() -> io::Result<UnixDatagram> {
        Ok(UnixDatagram::from(
            std::os::unix::net::UnixDatagram::unbound()?,
        ))
    }

    /// Two sockets connected to each other (as std's).
    ///
    /// # Errors
    ///
    /// As std's.
    ///
    /// ```
    /// let (a, b) = weft::net::UnixDatagram::pair()?;
    /// a.send(b"x")?;
    /// assert_eq!(b.recv(&mut [0; 4])?, 1);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn pair() -> io::Result<(UnixDatagram, UnixDatagram)> {
        let (a, b) = std::os::unix::net::UnixDatagram::pair()?;
        Ok((UnixDatagram::from(a), UnixDatagram::from(b)))
    }

    /// Sets the default peer for [`send`](Self::send) and filters what
    /// [`recv`](Self::recv) gets (as std's; it never blocks).
    ///
    /// # Errors
    ///
    /// As std's (`ConnectionRefused` if nothing is bound at `path`).
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("weft-doc-dgram-c-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir)?;
    /// let path = dir.join("server.sock");
    /// # let _ = std::fs::remove_file(&path);
    /// let server = weft::net::UnixDatagram::bind(&path)?;
    /// let client = weft::net::UnixDatagram::unbound()?;
    /// client.connect(&path)?;
    /// client.send(b"hi")?;
    /// assert_eq!(server.recv(&mut [0; 4])?, 2);
    /// std::fs::remove_dir_all(&dir)?;
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect<P: AsRef<Path>>(&self, path: P) -> io::Result<()> {
        self.source.get().connect(path)
    }

    /// Sends a datagram to the socket bound at `path`, parking while the
    /// receiver's queue is full.
    ///
    /// # Errors
    ///
    /// As std's; `TimedOut` after the write timeout.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("weft-doc-dgram-s-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let path = dir.join("sink.sock");
    /// # let _ = std::fs::remove_file(&path);
    /// weft::run({
    ///     let path = path.clone();
    ///     move || {
    ///         let sink = weft::net::UnixDatagram::bind(&path).unwrap();
    ///         let sender = weft::net::UnixDatagram::unbound().unwrap();
    ///         assert_eq!(sender.send_to(b"hello", &path).unwrap(), 5);
    ///         assert_eq!(sink.recv(&mut [0; 8]).unwrap(), 5);
    ///     }
    /// });
    /// std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn send_to<P: AsRef<Path>>(&self, buf: &[u8], path: P) -> io::Result<usize> {
        let path = path.as_ref();
        self.source
            .do_scripted_io(Direction::Write, |s| s.send_to(buf, path))
    }

    /// Sends to the connected peer, parking while its queue is full.
    ///
    /// # Errors
    ///
    /// As std's (`NotConnected`); `TimedOut` after the write timeout.
    ///
    /// ```
    /// weft::run(|| {
    ///     let (a, b) = weft::net::UnixDatagram::pair().unwrap();
    ///     assert_eq!(a.send(b"abc").unwrap(), 3);
    ///     assert_eq!(b.recv(&mut [0; 4]).unwrap(), 3);
    /// });
    /// ```
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.source
            .do_scripted_io(Direction::Write, |s| s.send(buf))
    }

    /// Receives a datagram and its sender's address, parking until one
    /// arrives.
    ///
    /// # Errors
    ///
    /// As std's; `TimedOut` after the read timeout.
    ///
    /// ```
    /// weft::run(|| {
    ///     let (a, b) = weft::net::UnixDatagram::pair().unwrap();
    ///     a.send(b"x").unwrap();
    ///     let (n, from) = b.recv_from(&mut [0; 4]).unwrap();
    ///     assert_eq!(n, 1);
    ///     assert!(from.is_unnamed());
    /// });
    /// ```
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.source
            .do_scripted_io(Direction::Read, |s| s.recv_from(buf))
    }

    /// Receives a datagram, parking until one arrives.
    ///
    /// # Errors
    ///
    /// As std's; `TimedOut` after the read timeout.
    ///
    /// ```
    /// weft::run(|| {
    ///     let (a, b) = weft::net::UnixDatagram::pair().unwrap();
    ///     a.send(b"xy").unwrap();
    ///     assert_eq!(b.recv(&mut [0; 4]).unwrap(), 2);
    /// });
    /// ```
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source.do_scripted_io(Direction::Read, |s| s.recv(buf))
    }

    socket_methods! {
        /// The address the socket is bound to.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let (a, _b) = weft::net::UnixDatagram::pair()?;
        /// assert!(a.local_addr()?.is_unnamed());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn local_addr(&self) -> io::Result<SocketAddr>;

        /// The connected peer's address.
        ///
        /// # Errors
        ///
        /// `NotConnected` before [`connect`](Self::connect).
        ///
        /// ```
        /// let socket = weft::net::UnixDatagram::unbound()?;
        /// assert!(socket.peer_addr().is_err());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn peer_addr(&self) -> io::Result<SocketAddr>;

        /// Shuts down reads, writes or both (as std's): a receive after a
        /// read shutdown returns 0 at once instead of parking.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let (a, _b) = weft::net::UnixDatagram::pair()?;
        /// a.shutdown(std::net::Shutdown::Write)?;
        /// assert!(a.send(b"x").is_err());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn shutdown(&self, how: Shutdown) -> io::Result<()>;

        /// A receive that has not completed `timeout` after it started fails
        /// with `TimedOut`.
        ///
        /// # Errors
        ///
        /// `InvalidInput` for a zero duration, as std's.
        ///
        /// ```
        /// use std::time::Duration;
        ///
        /// weft::run(|| {
        ///     let (a, _b) = weft::net::UnixDatagram::pair().unwrap();
        ///     a.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        ///     let err = a.recv(&mut [0; 4]).unwrap_err();
        ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        /// });
        /// ```
        fn set_read_timeout;

        /// As [`set_read_timeout`](Self::set_read_timeout), for sends.
        ///
        /// # Errors
        ///
        /// `InvalidInput` for a zero duration, as std's.
        ///
        /// ```
        /// use std::time::Duration;
        ///
        /// let socket = weft::net::UnixDatagram::unbound()?;
        /// socket.set_write_timeout(Some(Duration::from_secs(1)))?;
        /// assert_eq!(socket.write_timeout()?, Some(Duration::from_secs(1)));
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
        /// let socket = weft::net::UnixDatagram::unbound()?;
        /// assert_eq!(socket.read_timeout()?, None);
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
        /// let socket = weft::net::UnixDatagram::unbound()?;
        /// assert_eq!(socket.write_timeout()?, None);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn write_timeout;

        /// Takes the pending `SO_ERROR` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let socket = weft::net::UnixDatagram::unbound()?;
        /// assert!(socket.take_error()?.is_none());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn take_error(&self) -> io::Result<Option<io::Error>>;

        /// Another handle to the same socket (a duplicated fd with its own
        /// registration, starting with this handle's timeouts).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let (a, b) = weft::net::UnixDatagram::pair()?;
        /// a.try_clone()?.send(b"x")?;
        /// assert_eq!(b.recv(&mut [0; 4])?, 1);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn try_clone -> UnixDatagram;

        /// In non-blocking mode operations return `WouldBlock` instead of
        /// parking.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// weft::run(|| {
        ///     let (a, _b) = weft::net::UnixDatagram::pair().unwrap();
        ///     a.set_nonblocking(true).unwrap();
        ///     let err = a.recv(&mut [0; 4]).unwrap_err();
        ///     assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        /// });
        /// ```
        fn set_nonblocking;

        /// The std socket, deregistered and blocking again (unless
        /// `set_nonblocking(true)` was asked for).
        ///
        /// ```
        /// let socket = weft::net::UnixDatagram::unbound()?;
        /// let std_socket: std::os::unix::net::UnixDatagram = socket.into_std();
        /// assert!(std_socket.local_addr().is_ok());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn into_std -> std::os::unix::net::UnixDatagram;
    }
}

socket_traits!(UnixDatagram, std::os::unix::net::UnixDatagram);

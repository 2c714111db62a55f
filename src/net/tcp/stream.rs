//! [`TcpStream`]: std's, its connects, reads and writes parking the fiber.

use std::io;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use crate::net::ToSocketAddrs;
use crate::net::addr::each_addr;
use crate::net::macros::{socket_methods, socket_traits, stream_io};
use crate::net::reactor::Reactor;
use crate::net::registration::Direction;
use crate::net::source::{Source, check_timeout};

/// A TCP connection: `std::net::TcpStream` whose reads, writes and connects
/// park the fiber. `Read` and `Write` are implemented for `&TcpStream`
/// too, so fibers may share one stream (one reading while another writes,
/// or several reading).
///
/// ```
/// use std::io::{Read, Write};
/// use std::sync::Arc;
/// use weft::net::{TcpListener, TcpStream};
///
/// weft::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     weft::spawn(move || {
///         let (conn, _) = listener.accept().unwrap();
///         std::io::copy(&mut &conn, &mut &conn).unwrap(); // echo until EOF
///     });
///     let stream = Arc::new(TcpStream::connect(addr).unwrap());
///     let writer = {
///         let stream = stream.clone();
///         weft::spawn(move || {
///             (&*stream).write_all(b"ping").unwrap();
///             stream.shutdown(std::net::Shutdown::Write).unwrap();
///         })
///     };
///     let mut echoed = Vec::new();
///     (&*stream).read_to_end(&mut echoed).unwrap();
///     writer.join().unwrap();
///     assert_eq!(echoed, b"ping");
/// });
/// ```
pub struct TcpStream {
    source: Source<std::net::TcpStream>,
}

impl TcpStream {
    /// Opens a connection to `addr`, trying each address it resolves to in
    /// turn, as std's does; the fiber parks while the handshake runs.
    ///
    /// # Errors
    ///
    /// The last address's error (`ConnectionRefused`, ...), or
    /// `InvalidInput` if `addr` resolves to nothing.
    ///
    /// ```
    /// weft::run(|| {
    ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let stream = weft::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    ///     assert_eq!(stream.peer_addr().unwrap(), listener.local_addr().unwrap());
    /// });
    /// ```
    pub fn connect<A: ToSocketAddrs>(addr: A) -> io::Result<TcpStream> {
        each_addr(addr, |addr| TcpStream::connect_one(&addr, None))
    }

    /// Opens a connection to `addr`, failing with `TimedOut` if it is not
    /// established within `timeout`.
    ///
    /// # Errors
    ///
    /// `TimedOut`; `InvalidInput` for a zero timeout (as std's); or the
    /// connect's own error.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// weft::run(|| {
    ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = listener.local_addr().unwrap();
    ///     let stream = weft::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    ///     assert!(stream.is_ok());
    /// });
    /// ```
    pub fn connect_timeout(addr: &SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
        check_timeout(Some(timeout))?;
        TcpStream::connect_one(addr, Some(timeout))
    }

    fn connect_one(addr: &SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let Some(reactor) = Reactor::current() else {
            // Off any runtime: std's blocking connect.
            let stream = match timeout {
                Some(timeout) => std::net::TcpStream::connect_timeout(addr, timeout)?,
                None => std::net::TcpStream::connect(addr)?,
            };
            return Ok(TcpStream::from(stream));
        };
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        // mio makes the socket non-blocking and starts the handshake.
        let started = mio::net::TcpStream::connect(*addr)?;
        let stream = std::net::TcpStream::from(OwnedFd::from(started));
        let source = Source::registered(stream, reactor)?;
        loop {
            let snapshot = source.snapshot();
            if let Some(err) = source.get().take_error()? {
                return Err(err);
            }
            match source.get().peer_addr() {
                Ok(_) => return Ok(TcpStream { source }),
                Err(err) if err.raw_os_error() == Some(libc::ENOTCONN) => {}
                Err(err) => return Err(err),
            }
            source
                .wait_ready(Direction::Write, snapshot, deadline)
                .map_err(|err| {
                    if err.kind() == io::ErrorKind::TimedOut {
                        io::Error::new(io::ErrorKind::TimedOut, "weft: connect timed out")
                    } else {
                        err
                    }
                })?;
        }
    }

    /// A stream `accept` returned: registered with the listener's reactor
    /// if the listener is registered, else a plain blocking std stream.
    pub(super) fn accepted(
        stream: std::net::TcpStream,
        listener: &Source<std::net::TcpListener>,
    ) -> io::Result<TcpStream> {
        Ok(TcpStream {
            source: listener.accepted(stream)?,
        })
    }

    socket_methods! {
        /// The remote address.
        ///
        /// # Errors
        ///
        /// As std's (`NotConnected`).
        ///
        /// ```
        /// weft::run(|| {
        ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ///     let addr = listener.local_addr().unwrap();
        ///     let stream = weft::net::TcpStream::connect(addr).unwrap();
        ///     assert_eq!(stream.peer_addr().unwrap(), addr);
        /// });
        /// ```
        pub fn peer_addr(&self) -> io::Result<SocketAddr>;

        /// The local address.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// weft::run(|| {
        ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ///     let stream = weft::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        ///     assert!(stream.local_addr().unwrap().ip().is_loopback());
        /// });
        /// ```
        pub fn local_addr(&self) -> io::Result<SocketAddr>;

        /// Shuts the read, write or both halves down (as std's). A fiber
        /// parked in a read of this stream wakes and reads 0.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// use std::io::Read;
        ///
        /// weft::run(|| {
        ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ///     let addr = listener.local_addr().unwrap();
        ///     let client = weft::net::TcpStream::connect(addr).unwrap();
        ///     let (mut server, _) = listener.accept().unwrap();
        ///     client.shutdown(std::net::Shutdown::Write).unwrap();
        ///     assert_eq!(server.read(&mut [0; 8]).unwrap(), 0);
        /// });
        /// ```
        pub fn shutdown(&self, how: Shutdown) -> io::Result<()>;

        /// Sets `TCP_NODELAY` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// weft::run(|| {
        ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ///     let stream = weft::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        ///     stream.set_nodelay(true).unwrap();
        ///     assert!(stream.nodelay().unwrap());
        /// });
        /// ```
        pub fn set_nodelay(&self, nodelay: bool) -> io::Result<()>;

        /// Reads `TCP_NODELAY` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// weft::run(|| {
        ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ///     let stream = weft::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        ///     assert!(!stream.nodelay().unwrap());
        /// });
        /// ```
        pub fn nodelay(&self) -> io::Result<bool>;

        /// A read that has not completed `timeout` after it started fails with
        /// `TimedOut` (`None`: reads wait forever). Per handle; see the
        /// [module documentation](crate::net).
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
        ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ///     let mut stream = weft::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        ///     stream.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        ///     let err = stream.read(&mut [0; 8]).unwrap_err();
        ///     assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
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
        /// weft::run(|| {
        ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ///     let stream = weft::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        ///     stream.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
        ///     assert_eq!(stream.write_timeout().unwrap(), Some(Duration::from_secs(1)));
        /// });
        /// ```
        fn set_write_timeout;

        /// The read timeout.
        ///
        /// # Errors
        ///
        /// Never (the `Result` mirrors std's).
        ///
        /// ```
        /// let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
        /// let stream = weft::net::TcpStream::connect(listener.local_addr()?)?;
        /// assert_eq!(stream.read_timeout()?, None);
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
        /// let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
        /// let stream = weft::net::TcpStream::connect(listener.local_addr()?)?;
        /// assert_eq!(stream.write_timeout()?, None);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn write_timeout;

        /// Another handle to the same connection: a duplicated fd with its own
        /// registration, starting with this handle's timeouts.
        ///
        /// # Errors
        ///
        /// As std's (`EMFILE` when out of descriptors).
        ///
        /// ```
        /// use std::io::{Read, Write};
        ///
        /// weft::run(|| {
        ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ///     let mut a = weft::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        ///     let (mut server, _) = listener.accept().unwrap();
        ///     let mut b = a.try_clone().unwrap();
        ///     b.write_all(b"x").unwrap();
        ///     server.write_all(b"y").unwrap();
        ///     let mut byte = [0];
        ///     a.read_exact(&mut byte).unwrap();
        ///     assert_eq!(&byte, b"y");
        /// });
        /// ```
        fn try_clone -> TcpStream;
    }

    /// Reads without consuming, parking until data is there (as std's
    /// `peek`).
    ///
    /// # Errors
    ///
    /// As [`Read::read`](std::io::Read::read).
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// weft::run(|| {
    ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let mut client = weft::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    ///     let (server, _) = listener.accept().unwrap();
    ///     client.write_all(b"abc").unwrap();
    ///     let mut buf = [0; 3];
    ///     assert_eq!(server.peek(&mut buf).unwrap(), 3);
    /// });
    /// ```
    pub fn peek(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.source.do_scripted_io(Direction::Read, |s| s.peek(buf))
    }

    socket_methods! {
        /// Sets `IP_TTL` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
        /// let stream = weft::net::TcpStream::connect(listener.local_addr()?)?;
        /// stream.set_ttl(7)?;
        /// assert_eq!(stream.ttl()?, 7);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn set_ttl(&self, ttl: u32) -> io::Result<()>;

        /// Reads `IP_TTL` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
        /// let stream = weft::net::TcpStream::connect(listener.local_addr()?)?;
        /// assert!(stream.ttl()? > 0);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn ttl(&self) -> io::Result<u32>;

        /// Takes the pending `SO_ERROR` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
        /// let stream = weft::net::TcpStream::connect(listener.local_addr()?)?;
        /// assert!(stream.take_error()?.is_none());
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
        /// weft::run(|| {
        ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ///     let mut stream = weft::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        ///     stream.set_nonblocking(true).unwrap();
        ///     let err = stream.read(&mut [0; 4]).unwrap_err();
        ///     assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        /// });
        /// ```
        fn set_nonblocking;

        /// The std stream, deregistered and in blocking mode again (unless
        /// `set_nonblocking(true)` was asked for). Its `SO_RCVTIMEO` and
        /// `SO_SNDTIMEO` are the timeouts set here.
        ///
        /// ```
        /// weft::run(|| {
        ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ///     let stream = weft::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        ///     let std_stream: std::net::TcpStream = stream.into_std();
        ///     assert!(std_stream.peer_addr().is_ok());
        /// });
        /// ```
        fn into_std -> std::net::TcpStream;
    }
}

socket_traits!(TcpStream, std::net::TcpStream);
stream_io!(TcpStream);

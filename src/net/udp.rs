//! [`UdpSocket`]: std's, parking the fiber.

use std::io;
use std::net::SocketAddr;

use super::ToSocketAddrs;
use super::addr::each_addr;
use super::macros::{socket_methods, socket_traits};
use super::registration::Direction;
use super::source::Source;

/// A UDP socket: `std::net::UdpSocket` whose receives (and, when the send
/// buffer is full, sends) park the fiber. All methods take `&self`, so
/// fibers may share one socket.
///
/// ```
/// use weft::net::UdpSocket;
///
/// weft::run(|| {
///     let a = UdpSocket::bind("127.0.0.1:0").unwrap();
///     let b = UdpSocket::bind("127.0.0.1:0").unwrap();
///     a.send_to(b"ping", b.local_addr().unwrap()).unwrap();
///     let mut buf = [0; 16];
///     let (n, from) = b.recv_from(&mut buf).unwrap();
///     assert_eq!((&buf[..n], from), (&b"ping"[..], a.local_addr().unwrap()));
/// });
/// ```
pub struct UdpSocket {
    source: Source<std::net::UdpSocket>,
}

impl UdpSocket {
    /// Binds to `addr` (as std's).
    ///
    /// # Errors
    ///
    /// As std's.
    ///
    /// ```
    /// let socket = weft::net::UdpSocket::bind("127.0.0.1:0")?;
    /// assert!(socket.local_addr()?.port() != 0);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<UdpSocket> {
        Ok(UdpSocket::from(each_addr(addr, std::net::UdpSocket::bind)?))
    }

    /// Sends a datagram to `addr` (the first address it resolves to).
    ///
    /// # Errors
    ///
    /// As std's; `TimedOut` after the write timeout.
    ///
    /// ```
    /// weft::run(|| {
    ///     let socket = weft::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let me = socket.local_addr().unwrap();
    ///     assert_eq!(socket.send_to(b"to myself", me).unwrap(), 9);
    /// });
    /// ```
    pub fn send_to<A: ToSocketAddrs>(&self, buf: &[u8], addr: A) -> io::Result<usize> {
        let addr = addr.to_socket_addrs()?.next().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no addresses to send data to")
        })?;
        self.source
            .do_scripted_io(Direction::Write, |s| s.send_to(buf, addr))
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
    ///     let socket = weft::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let me = socket.local_addr().unwrap();
    ///     socket.send_to(b"x", me).unwrap();
    ///     let mut buf = [0; 4];
    ///     assert_eq!(socket.recv_from(&mut buf).unwrap(), (1, me));
    /// });
    /// ```
    pub fn recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.source
            .do_scripted_io(Direction::Read, |s| s.recv_from(buf))
    }

    /// As [`recv_from`](Self::recv_from), leaving the datagram queued.
    ///
    /// # Errors
    ///
    /// As std's.
    ///
    /// ```
    /// weft::run(|| {
    ///     let socket = weft::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let me = socket.local_addr().unwrap();
    ///     socket.send_to(b"x", me).unwrap();
    ///     let mut buf = [0; 4];
    ///     assert_eq!(socket.peek_from(&mut buf).unwrap(), (1, me));
    ///     assert_eq!(socket.recv_from(&mut buf).unwrap(), (1, me));
    /// });
    /// ```
    pub fn peek_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        self.source
            .do_scripted_io(Direction::Read, |s| s.peek_from(buf))
    }

    /// Sets the default peer for [`send`](Self::send) and filters what
    /// [`recv`](Self::recv) gets (as std's; it never blocks).
    ///
    /// # Errors
    ///
    /// As std's.
    ///
    /// ```
    /// let a = weft::net::UdpSocket::bind("127.0.0.1:0")?;
    /// let b = weft::net::UdpSocket::bind("127.0.0.1:0")?;
    /// a.connect(b.local_addr()?)?;
    /// assert_eq!(a.peer_addr()?, b.local_addr()?);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn connect<A: ToSocketAddrs>(&self, addr: A) -> io::Result<()> {
        each_addr(addr, |addr| self.source.get().connect(addr))
    }

    /// Sends to the connected peer.
    ///
    /// # Errors
    ///
    /// As std's (`NotConnected`, `ConnectionRefused` from an earlier ICMP
    /// error); `TimedOut` after the write timeout.
    ///
    /// ```
    /// weft::run(|| {
    ///     let a = weft::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = weft::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     a.connect(b.local_addr().unwrap()).unwrap();
    ///     a.send(b"hi").unwrap();
    ///     let mut buf = [0; 2];
    ///     assert_eq!(b.recv(&mut buf).unwrap(), 2);
    /// });
    /// ```
    pub fn send(&self, buf: &[u8]) -> io::Result<usize> {
        self.source
            .do_scripted_io(Direction::Write, |s| s.send(buf))
    }

    /// Receives from the connected peer, parking until a datagram arrives.
    ///
    /// # Errors
    ///
    /// As std's; `TimedOut` after the read timeout.
    ///
    /// ```
    /// weft::run(|| {
    ///     let a = weft::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     let b = weft::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    ///     b.connect(a.local_addr().unwrap()).unwrap();
    ///     let b_addr = b.local_addr().unwrap();
    ///     let receiver = weft::spawn(move || {
    ///         let mut buf = [0; 8];
    ///         let n = b.recv(&mut buf).unwrap(); // parks until the send below
    ///         buf[..n].to_vec()
    ///     });
    ///     weft::sleep(std::time::Duration::from_millis(5));
    ///     a.send_to(b"late", b_addr).unwrap();
    ///     assert_eq!(receiver.join().unwrap(), b"late");
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
        /// let socket = weft::net::UdpSocket::bind("127.0.0.1:0")?;
        /// assert!(socket.local_addr()?.ip().is_loopback());
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
        /// let socket = weft::net::UdpSocket::bind("127.0.0.1:0")?;
        /// assert!(socket.peer_addr().is_err());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn peer_addr(&self) -> io::Result<SocketAddr>;

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
        ///     let socket = weft::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        ///     socket.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        ///     let err = socket.recv_from(&mut [0; 4]).unwrap_err();
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
        /// let socket = weft::net::UdpSocket::bind("127.0.0.1:0")?;
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
        /// let socket = weft::net::UdpSocket::bind("127.0.0.1:0")?;
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
        /// let socket = weft::net::UdpSocket::bind("127.0.0.1:0")?;
        /// assert_eq!(socket.write_timeout()?, None);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn write_timeout;

        /// Sets `SO_BROADCAST` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let socket = weft::net::UdpSocket::bind("127.0.0.1:0")?;
        /// socket.set_broadcast(true)?;
        /// assert!(socket.broadcast()?);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn set_broadcast(&self, on: bool) -> io::Result<()>;

        /// Reads `SO_BROADCAST` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let socket = weft::net::UdpSocket::bind("127.0.0.1:0")?;
        /// assert!(!socket.broadcast()?);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn broadcast(&self) -> io::Result<bool>;

        /// Takes the pending `SO_ERROR` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let socket = weft::net::UdpSocket::bind("127.0.0.1:0")?;
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
        /// let socket = weft::net::UdpSocket::bind("127.0.0.1:0")?;
        /// assert_eq!(socket.try_clone()?.local_addr()?, socket.local_addr()?);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn try_clone -> UdpSocket;

        /// In non-blocking mode operations return `WouldBlock` instead of
        /// parking.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// weft::run(|| {
        ///     let socket = weft::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        ///     socket.set_nonblocking(true).unwrap();
        ///     let err = socket.recv(&mut [0; 4]).unwrap_err();
        ///     assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        /// });
        /// ```
        fn set_nonblocking;

        /// The std socket, deregistered and blocking again (unless
        /// `set_nonblocking(true)` was asked for).
        ///
        /// ```
        /// let socket = weft::net::UdpSocket::bind("127.0.0.1:0")?;
        /// let std_socket: std::net::UdpSocket = socket.into_std();
        /// assert!(std_socket.local_addr().is_ok());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn into_std -> std::net::UdpSocket;
    }
}

socket_traits!(UdpSocket, std::net::UdpSocket);

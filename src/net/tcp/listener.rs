//! [`TcpListener`]: std's, its accepts parking the fiber.

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use super::TcpStream;
use crate::net::ToSocketAddrs;
use crate::net::addr::each_addr;
use crate::net::macros::{socket_methods, socket_traits};
use crate::net::source::Source;
use crate::net::{accept_with_backoff, sys};

/// A TCP socket server, listening for connections: `std::net::TcpListener`
/// whose [`accept`](Self::accept) parks the fiber.
///
/// ```
/// use std::io::{Read, Write};
/// use weft::net::{TcpListener, TcpStream};
///
/// weft::run(|| {
///     let listener = TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     weft::spawn(move || {
///         for conn in listener.incoming().take(1) {
///             conn.unwrap().write_all(b"hi").unwrap();
///         }
///     });
///     let mut reply = String::new();
///     TcpStream::connect(addr).unwrap().read_to_string(&mut reply).unwrap();
///     assert_eq!(reply, "hi");
/// });
/// ```
pub struct TcpListener {
    source: Source<std::net::TcpListener>,
}

/// An endless iterator over a listener's connections
/// ([`TcpListener::incoming`]).
///
/// ```
/// weft::run(|| {
///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
///     let addr = listener.local_addr().unwrap();
///     weft::spawn(move || weft::net::TcpStream::connect(addr).unwrap());
///     let incoming: weft::net::Incoming<'_> = listener.incoming();
///     let conn = incoming.take(1).next().unwrap().unwrap();
///     assert_eq!(conn.local_addr().unwrap(), addr);
/// });
/// ```
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a TcpListener,
}

impl TcpListener {
    /// Binds to `addr` and listens, as `std::net::TcpListener::bind` does
    /// (with `SO_REUSEADDR`), but with a backlog of 4096 (capped by
    /// `net.core.somaxconn`) instead of std's 128, so bursts of connects
    /// are not dropped.
    ///
    /// # Errors
    ///
    /// As std's: the address is in use, cannot be resolved, and so on.
    ///
    /// ```
    /// weft::run(|| {
    ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     assert!(listener.local_addr().unwrap().port() != 0);
    /// });
    /// ```
    pub fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<TcpListener> {
        let listener = each_addr(addr, std::net::TcpListener::bind)?;
        sys::raise_backlog(listener.as_raw_fd())?;
        Ok(TcpListener::from(listener))
    }

    /// Waits for a connection and returns it with the peer's address.
    /// The fiber parks while none is pending. Out of descriptors
    /// (`EMFILE` and kin), it backs off and retries instead of failing
    /// (see the [module documentation](crate::net)).
    ///
    /// # Errors
    ///
    /// As std's, except the descriptor shortages above; in non-blocking
    /// mode, `WouldBlock` when no connection is pending.
    ///
    /// ```
    /// weft::run(|| {
    ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = listener.local_addr().unwrap();
    ///     let client = weft::spawn(move || weft::net::TcpStream::connect(addr).unwrap());
    ///     let (_conn, peer) = listener.accept().unwrap();
    ///     assert_eq!(peer, client.join().unwrap().local_addr().unwrap());
    /// });
    /// ```
    pub fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        let (stream, peer) = accept_with_backoff(&self.source, std::net::TcpListener::accept)?;
        Ok((TcpStream::accepted(stream, &self.source)?, peer))
    }

    /// An endless iterator of [`accept`](Self::accept)'s connections.
    ///
    /// ```
    /// use std::io::Write;
    ///
    /// weft::run(|| {
    ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
    ///     let addr = listener.local_addr().unwrap();
    ///     let clients: Vec<_> = (0..3)
    ///         .map(|_| weft::spawn(move || weft::net::TcpStream::connect(addr).unwrap()))
    ///         .collect();
    ///     for conn in listener.incoming().take(3) {
    ///         conn.unwrap().write_all(b"welcome").unwrap();
    ///     }
    ///     for client in clients {
    ///         client.join().unwrap();
    ///     }
    /// });
    /// ```
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    socket_methods! {
        /// The address the listener is bound to.
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
        /// assert!(listener.local_addr()?.ip().is_loopback());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn local_addr(&self) -> io::Result<SocketAddr>;

        /// Another handle to the same listening socket (a duplicated fd, with
        /// its own registration).
        ///
        /// # Errors
        ///
        /// As std's (`EMFILE` when out of descriptors).
        ///
        /// ```
        /// let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
        /// let other = listener.try_clone()?;
        /// assert_eq!(listener.local_addr()?, other.local_addr()?);
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn try_clone -> TcpListener;

        /// Sets `IP_TTL` (as std's).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
        /// listener.set_ttl(42)?;
        /// assert_eq!(listener.ttl()?, 42);
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
        /// assert!(listener.ttl()? > 0);
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
        /// assert!(listener.take_error()?.is_none());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        pub fn take_error(&self) -> io::Result<Option<io::Error>>;

        /// In non-blocking mode `accept` returns `WouldBlock` instead of
        /// parking (and descriptor shortages instead of backing off).
        ///
        /// # Errors
        ///
        /// As std's.
        ///
        /// ```
        /// weft::run(|| {
        ///     let listener = weft::net::TcpListener::bind("127.0.0.1:0").unwrap();
        ///     listener.set_nonblocking(true).unwrap();
        ///     let err = listener.accept().unwrap_err();
        ///     assert_eq!(err.kind(), std::io::ErrorKind::WouldBlock);
        /// });
        /// ```
        fn set_nonblocking;

        /// The std listener, deregistered and in blocking mode again (unless
        /// `set_nonblocking(true)` was asked for).
        ///
        /// ```
        /// let listener = weft::net::TcpListener::bind("127.0.0.1:0")?;
        /// let std_listener: std::net::TcpListener = listener.into_std();
        /// assert!(std_listener.local_addr().is_ok());
        /// # Ok::<(), std::io::Error>(())
        /// ```
        fn into_std -> std::net::TcpListener;
    }
}

impl<'a> Iterator for Incoming<'a> {
    type Item = io::Result<TcpStream>;

    fn next(&mut self) -> Option<io::Result<TcpStream>> {
        Some(self.listener.accept().map(|(stream, _)| stream))
    }
}

socket_traits!(TcpListener, std::net::TcpListener);

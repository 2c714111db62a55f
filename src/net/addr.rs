//! [`ToSocketAddrs`]: the addresses weft's sockets take, resolved without
//! blocking the worker (see the trait's doc).

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::{option, vec};

/// Something that names one or more socket addresses, resolved without
/// blocking the worker.
///
/// std's `ToSocketAddrs` resolves a host name with `getaddrinfo`, which
/// blocks its thread for as long as the resolver takes (a DNS round trip,
/// or its timeouts): on a worker, every fiber queued there would wait. So
/// weft's sockets take this trait instead. It is implemented for the same
/// types as std's, and behaves the same, except where it resolves a host
/// name: an address, or a string that parses as one, is used at once; any
/// other string (`"localhost:80"`, `("example.com", 443)`) is resolved on
/// the runtime's blocking pool ([`weft::blocking`](crate::blocking)),
/// parking the calling fiber, as tokio's `lookup_host` does. Off a runtime
/// it resolves on the calling thread, as std does.
///
/// ```
/// use weft::net::ToSocketAddrs;
///
/// weft::run(|| {
///     let mut addrs = ("localhost", 80).to_socket_addrs().unwrap();
///     assert!(addrs.any(|a| a.ip().is_loopback() && a.port() == 80));
///     let literal: Vec<_> = "127.0.0.1:80".to_socket_addrs().unwrap().collect();
///     assert_eq!(literal, ["127.0.0.1:80".parse().unwrap()]);
/// });
/// ```
pub trait ToSocketAddrs {
    /// The addresses, in the resolver's order.
    ///
    /// # Errors
    ///
    /// As std's: a string that is neither an address nor a resolvable
    /// `host:port`.
    fn to_socket_addrs(&self) -> io::Result<Addrs>;
}

/// The addresses a [`ToSocketAddrs`] names.
#[derive(Debug, Clone)]
pub struct Addrs(Inner);

#[derive(Debug, Clone)]
enum Inner {
    One(option::IntoIter<SocketAddr>),
    Many(vec::IntoIter<SocketAddr>),
}

impl Addrs {
    fn one(addr: SocketAddr) -> Addrs {
        Addrs(Inner::One(Some(addr).into_iter()))
    }

    fn many(addrs: Vec<SocketAddr>) -> Addrs {
        Addrs(Inner::Many(addrs.into_iter()))
    }
}

impl Iterator for Addrs {
    type Item = SocketAddr;

    fn next(&mut self) -> Option<SocketAddr> {
        match &mut self.0 {
            Inner::One(it) => it.next(),
            Inner::Many(it) => it.next(),
        }
    }
}

/// Resolves `name` with std's resolver on the blocking pool (or here, off
/// a runtime).
fn resolve<N>(name: N) -> io::Result<Addrs>
where
    N: std::net::ToSocketAddrs + Send + 'static,
{
    crate::blocking(move || Ok(Addrs::many(name.to_socket_addrs()?.collect())))
}

macro_rules! at_once {
    ($($ty:ty),* $(,)?) => {$(
        impl ToSocketAddrs for $ty {
            fn to_socket_addrs(&self) -> io::Result<Addrs> {
                Ok(Addrs::one(SocketAddr::from(*self)))
            }
        }
    )*};
}

at_once!(
    SocketAddr,
    SocketAddrV4,
    SocketAddrV6,
    (IpAddr, u16),
    (Ipv4Addr, u16),
    (Ipv6Addr, u16),
);

impl ToSocketAddrs for str {
    fn to_socket_addrs(&self) -> io::Result<Addrs> {
        match self.parse::<SocketAddr>() {
            Ok(addr) => Ok(Addrs::one(addr)),
            Err(_) => resolve(self.to_owned()),
        }
    }
}

impl ToSocketAddrs for String {
    fn to_socket_addrs(&self) -> io::Result<Addrs> {
        self.as_str().to_socket_addrs()
    }
}

impl ToSocketAddrs for (&str, u16) {
    fn to_socket_addrs(&self) -> io::Result<Addrs> {
        let (host, port) = *self;
        match host.parse::<IpAddr>() {
            Ok(ip) => Ok(Addrs::one(SocketAddr::new(ip, port))),
            Err(_) => resolve((host.to_owned(), port)),
        }
    }
}

impl ToSocketAddrs for (String, u16) {
    fn to_socket_addrs(&self) -> io::Result<Addrs> {
        (self.0.as_str(), self.1).to_socket_addrs()
    }
}

impl ToSocketAddrs for [SocketAddr] {
    fn to_socket_addrs(&self) -> io::Result<Addrs> {
        Ok(Addrs::many(self.to_vec()))
    }
}

impl<T: ToSocketAddrs + ?Sized> ToSocketAddrs for &T {
    fn to_socket_addrs(&self) -> io::Result<Addrs> {
        (**self).to_socket_addrs()
    }
}

/// Tries `op` on each address `addr` names, in order, until one works;
/// the last error otherwise (std's `each_addr`).
pub(crate) fn each_addr<A, T>(
    addr: A,
    mut op: impl FnMut(SocketAddr) -> io::Result<T>,
) -> io::Result<T>
where
    A: ToSocketAddrs,
{
    let mut last = None;
    for addr in addr.to_socket_addrs()? {
        match op(addr) {
            Ok(value) => return Ok(value),
            Err(err) => last = Some(err),
        }
    }
    Err(last.unwrap_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "could not resolve to any addresses",
        )
    }))
}

#[cfg(test)]
mod tests {
    use std::thread::{self, ThreadId};

    use super::*;

    /// A name whose resolution records the thread it ran on.
    struct Recorded(std::sync::mpsc::Sender<ThreadId>);

    impl std::net::ToSocketAddrs for Recorded {
        type Iter = option::IntoIter<SocketAddr>;
        fn to_socket_addrs(&self) -> io::Result<Self::Iter> {
            self.0.send(thread::current().id()).unwrap();
            Ok(Some(SocketAddr::from(([127, 0, 0, 1], 9))).into_iter())
        }
    }

    #[test]
    fn a_host_name_resolves_off_the_worker_and_an_address_at_once() {
        let (tx, rx) = std::sync::mpsc::channel();
        let (worker, addrs) = crate::Runtime::builder()
            .workers(1)
            .build()
            .unwrap()
            .block_on(move || {
                let addrs: Vec<_> = resolve(Recorded(tx)).unwrap().collect();
                (thread::current().id(), addrs)
            });
        assert_ne!(rx.recv().unwrap(), worker, "resolved on the blocking pool");
        assert_eq!(addrs, [SocketAddr::from(([127, 0, 0, 1], 9))]);
        let literal: Vec<_> = ("::1", 8).to_socket_addrs().unwrap().collect();
        assert_eq!(literal, [SocketAddr::from((Ipv6Addr::LOCALHOST, 8))]);
        let slice = [
            SocketAddr::from(([10, 0, 0, 1], 1)),
            SocketAddr::from(([10, 0, 0, 2], 2)),
        ];
        assert_eq!(
            slice[..].to_socket_addrs().unwrap().collect::<Vec<_>>(),
            slice
        );
    }

    #[test]
    fn a_string_that_is_not_host_and_port_is_refused_as_by_std() {
        let err = crate::run(|| "no port here".to_socket_addrs().unwrap_err());
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}

//! [`TcpListener`] and [`TcpStream`]: std's, parking the fiber.

mod listener;
mod stream;

pub use self::listener::{Incoming, TcpListener};
pub use self::stream::TcpStream;

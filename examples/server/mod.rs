//! What the example servers (`echo_server.rs`, `http_hello.rs`) share:
//! the command line, the runtime and the accept loop. Each includes it
//! with `mod server;`; this directory has no `main.rs`, so cargo does not
//! take it for an example of its own.

use std::net::SocketAddr;

use weft::net::{TcpListener, TcpStream};

/// A server bound and ready to serve.
pub(crate) struct Server {
    rt: weft::Runtime,
    listener: TcpListener,
    workers: usize,
}

impl Server {
    /// Reads `[ADDR] [--workers N] [--migrate]` from the command line
    /// (`ADDR` defaults to `default_addr`, `N` to one worker per CPU),
    /// starts the runtime and binds.
    ///
    /// # Panics
    ///
    /// On a malformed command line, or if the runtime cannot start or the
    /// address cannot be bound: an example has no better answer.
    pub(crate) fn start(default_addr: &str) -> Server {
        let args = Args::parse(default_addr);
        let mut builder = weft::Runtime::builder().workers(args.workers);
        if args.migrate {
            // SAFETY: the handlers keep no thread-local references, std guards
            // or !Send values across blocking points.
            builder = unsafe { builder.migrate_started_fibers(true) };
        }
        let rt = builder.build().expect("start the runtime");
        let listener = TcpListener::bind(&args.addr).expect("bind");
        Server {
            rt,
            listener,
            workers: args.workers,
        }
    }

    /// The address the server listens on.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("local address")
    }

    /// The number of workers.
    pub(crate) fn workers(&self) -> usize {
        self.workers
    }

    /// Runs `handler` on every connection, each in a fiber of its own,
    /// until the process is killed; an accept error is printed and the
    /// loop goes on.
    pub(crate) fn serve<F>(self, handler: F)
    where
        F: FnOnce(TcpStream) + Copy + Send + 'static,
    {
        let Server { rt, listener, .. } = self;
        rt.block_on(move || {
            for conn in listener.incoming() {
                match conn {
                    Ok(conn) => {
                        weft::spawn(move || handler(conn));
                    }
                    Err(err) => eprintln!("accept: {err}"),
                }
            }
        });
    }
}

struct Args {
    addr: String,
    workers: usize,
    /// `--migrate`: the unsafe opt-in that lets started fibers move.
    migrate: bool,
}

impl Args {
    fn parse(default_addr: &str) -> Args {
        let mut args = Args {
            addr: default_addr.to_owned(),
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            migrate: false,
        };
        let mut it = std::env::args().skip(1);
        while let Some(arg) = it.next() {
            match arg.as_str() {
                "--workers" => {
                    args.workers = it.next().and_then(|v| v.parse().ok()).expect("--workers N")
                }
                "--migrate" => args.migrate = true,
                _ => args.addr = arg,
            }
        }
        args
    }
}

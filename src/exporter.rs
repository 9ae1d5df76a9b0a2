//! Metrics for Prometheus, from the `jvmalloc` thread: `GET /metrics` on
//! `JVMALLOC_METRICS_ADDR`, and the file `JVMALLOC_METRICS_FILE` for node_exporter's
//! textfile collector (rewritten every `JVMALLOC_METRICS_INTERVAL_S`, whole, by rename).
//!
//! No thread per request: the `jvmalloc` thread accepts connections between its other
//! work, one at a time, each with 200 ms to send its request and 200 ms to read the answer
//! (rendering the metrics, once per round, does not count against a client), and at most
//! [`MAX_PER_ROUND`] per round, so that slow or hostile clients delay purging and dumps by
//! about 2 s at most. A child of `fork` closes the inherited socket and serves nothing; if
//! the program closes the socket's descriptor, metrics stop (one line says so). Requests other than `GET /metrics` (and `GET /`) get
//! 404; a request line or headers over 8 KiB get 431.

use crate::config::Config;
use core::sync::atomic::{AtomicBool, AtomicI32, Ordering::Relaxed};
use std::io::{self, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Connections served per round of the `jvmalloc` thread's loop.
pub const MAX_PER_ROUND: usize = 5;
/// How long one client may take.
const DEADLINE: Duration = Duration::from_millis(200);

/// The listening socket's descriptor (-1: none), for the fork child handler: a child of
/// `fork` must not keep the parent's port (see [`after_fork_child`]).
static LISTEN_FD: AtomicI32 = AtomicI32::new(-1);
/// In a child of `fork` (without exec): the port is the parent's; serve nothing.
static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// In the child of `fork`, from the fork handler: closes the inherited listening socket
/// (async-signal-safe: one `close`) and keeps the child from binding the same port.
pub fn after_fork_child() {
    IN_CHILD.store(true, Relaxed);
    let fd = LISTEN_FD.swap(-1, Relaxed);
    if fd >= 0 {
        // SAFETY: our own listening socket's copy in this process; closed once.
        unsafe { libc::close(fd) };
    }
}

pub struct Exporter {
    listener: Option<TcpListener>,
    /// The listener's (device, inode), to notice that the program closed the descriptor
    /// and reused its number.
    id: (u64, u64),
}

fn identity(fd: i32) -> Option<(u64, u64)> {
    // SAFETY: stat is plain data; fstat writes it for a valid descriptor or fails.
    unsafe {
        let mut st: libc::stat = core::mem::zeroed();
        (libc::fstat(fd, &mut st) == 0).then_some((st.st_dev, st.st_ino))
    }
}

impl Exporter {
    /// Binds `JVMALLOC_METRICS_ADDR` if set (not in a forked child); says once on stderr
    /// when it cannot.
    pub fn new(cfg: &Config) -> Exporter {
        let addr = cfg.stats.metrics_addr.filter(|_| !IN_CHILD.load(Relaxed));
        let listener = addr.and_then(|addr| {
            match TcpListener::bind(addr).and_then(|l| l.set_nonblocking(true).map(|_| l)) {
                Ok(l) => Some(l),
                Err(e) => {
                    crate::diag::say!(
                        "cannot serve metrics on {addr} ({e}); JVMALLOC_METRICS_ADDR is ignored"
                    );
                    None
                }
            }
        });
        let fd = listener.as_ref().map_or(-1, |l| l.as_raw_fd());
        LISTEN_FD.store(fd, Relaxed);
        Exporter {
            id: identity(fd).unwrap_or((0, 0)),
            listener,
        }
    }

    /// Whether a listener is open (then the thread polls it instead of sleeping on its
    /// futex alone).
    pub fn listening(&self) -> bool {
        self.listener.is_some()
    }

    /// Stops serving when the program closed our descriptor (its number may now be one of
    /// the program's own): says so once.
    fn check(&mut self) -> bool {
        let Some(l) = &self.listener else {
            return false;
        };
        if identity(l.as_raw_fd()) == Some(self.id) {
            return true;
        }
        // Not ours any more: forget it without closing the program's descriptor.
        if let Some(l) = self.listener.take() {
            core::mem::forget(l);
        }
        LISTEN_FD.store(-1, Relaxed);
        crate::diag::say!(
            "the metrics socket's descriptor was closed by the program; metrics are no longer served"
        );
        false
    }

    /// Waits up to `timeout_ms` for a connection.
    pub fn poll(&mut self, timeout_ms: i32) {
        if !self.check() {
            return;
        }
        let Some(l) = &self.listener else { return };
        let mut p = libc::pollfd {
            fd: l.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for our own listening socket.
        unsafe { libc::poll(&mut p, 1, timeout_ms) };
    }

    /// Serves the connections waiting now (at most [`MAX_PER_ROUND`]); `metrics` renders the
    /// answer once, when the first `GET /metrics` comes, and its time does not count
    /// against the clients' deadlines.
    pub fn serve(&mut self, metrics: &mut dyn FnMut() -> String) {
        if !self.check() {
            return;
        }
        let Some(l) = &self.listener else { return };
        let mut text: Option<String> = None;
        for _ in 0..MAX_PER_ROUND {
            let Ok((conn, _)) = l.accept() else { return };
            let _ = serve_one(conn, &mut || text.get_or_insert_with(&mut *metrics).clone());
        }
    }
}

fn serve_one(mut conn: TcpStream, metrics: &mut dyn FnMut() -> String) -> io::Result<()> {
    let start = Instant::now();
    conn.set_nonblocking(false)?;
    let mut req = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") && !req.windows(2).any(|w| w == b"\n\n") {
        if req.len() > 8192 {
            return reply(conn, "431 Request Header Fields Too Large", "");
        }
        let left = DEADLINE.saturating_sub(start.elapsed());
        if left.is_zero() {
            return Ok(());
        }
        conn.set_read_timeout(Some(left))?;
        let n = conn.read(&mut buf)?;
        if n == 0 {
            break;
        }
        req.extend_from_slice(&buf[..n]);
    }
    if req.len() > 8192 {
        return reply(conn, "431 Request Header Fields Too Large", "");
    }
    let line = req.split(|&b| b == b'\n').next().unwrap_or(b"");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (words.next().unwrap_or(b""), words.next().unwrap_or(b""));
    let path = path.split(|&b| b == b'?').next().unwrap_or(b"");
    match (method, path) {
        (b"GET", b"/metrics") => {
            let body = metrics();
            reply(conn, "200 OK", &body)
        }
        (b"GET", b"/") => reply(conn, "200 OK", "jvmalloc: metrics at /metrics\n"),
        _ => reply(conn, "404 Not Found", "not found; try /metrics\n"),
    }
}

/// Sends the answer within [`DEADLINE`] in all, however slowly the client reads.
fn reply(conn: TcpStream, status: &str, body: &str) -> io::Result<()> {
    conn.set_nonblocking(true)?;
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    crate::deadline::write_with_deadline(&conn, &out, DEADLINE)
}

//! Metrics for Prometheus, from the `jvmalloc` thread: `GET /metrics` on
//! `JVMALLOC_METRICS_ADDR`, and the file `JVMALLOC_METRICS_FILE` for node_exporter's
//! textfile collector (rewritten every `JVMALLOC_METRICS_INTERVAL_S`, whole, by rename).
//!
//! No thread per request: the `jvmalloc` thread accepts connections between its other
//! work, one at a time, each with a 200 ms deadline to send its request and read the
//! answer, and at most [`MAX_PER_ROUND`] per round, so that a slow or hostile client delays
//! purging and dumps by 1 s at most. Requests other than `GET /metrics` (and `GET /`) get
//! 404; a request line or headers over 8 KiB get 431.

use crate::config::Config;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// Connections served per round of the `jvmalloc` thread's loop.
pub const MAX_PER_ROUND: usize = 5;
/// How long one client may take.
const DEADLINE: Duration = Duration::from_millis(200);

pub struct Exporter {
    listener: Option<TcpListener>,
}

impl Exporter {
    /// Binds `JVMALLOC_METRICS_ADDR` if set; says once on stderr when it cannot.
    pub fn new(cfg: &Config) -> Exporter {
        let listener = cfg.stats.metrics_addr.and_then(|addr| {
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
        Exporter { listener }
    }

    /// Whether a listener is open (then the thread polls it instead of sleeping on its
    /// futex alone).
    pub fn listening(&self) -> bool {
        self.listener.is_some()
    }

    /// Waits up to `timeout_ms` for a connection.
    pub fn poll(&self, timeout_ms: i32) {
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
    /// answer once, when the first `GET /metrics` comes.
    pub fn serve(&self, metrics: &mut dyn FnMut() -> String) {
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
            return reply(&mut conn, "431 Request Header Fields Too Large", "", start);
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
        return reply(&mut conn, "431 Request Header Fields Too Large", "", start);
    }
    let line = req.split(|&b| b == b'\n').next().unwrap_or(b"");
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut words = line.split(|&b| b == b' ');
    let (method, path) = (words.next().unwrap_or(b""), words.next().unwrap_or(b""));
    let path = path.split(|&b| b == b'?').next().unwrap_or(b"");
    match (method, path) {
        (b"GET", b"/metrics") => reply(&mut conn, "200 OK", &metrics(), start),
        (b"GET", b"/") => reply(
            &mut conn,
            "200 OK",
            "jvmalloc: metrics at /metrics\n",
            start,
        ),
        _ => reply(
            &mut conn,
            "404 Not Found",
            "not found; try /metrics\n",
            start,
        ),
    }
}

fn reply(conn: &mut TcpStream, status: &str, body: &str, start: Instant) -> io::Result<()> {
    let left = DEADLINE
        .saturating_sub(start.elapsed())
        .max(Duration::from_millis(1));
    conn.set_write_timeout(Some(left))?;
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    conn.write_all(body.as_bytes())
}

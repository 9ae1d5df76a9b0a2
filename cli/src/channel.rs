//! The command's side of the request channel ([`crate::request`], the library's side, holds
//! the protocol): ask a running process for a dump or its metrics and receive the answer
//! here, whatever its `JVMALLOC_STATS_*` say.
//!
//! 1. Listen on `\0jvmalloc-request-<token>`, an abstract Unix socket (nothing in the file
//!    system; gone when closed), the token 64 random bits.
//! 2. Send the statistics signal with the token as its value ([`Target::send`]): the
//!    kernel's permission check lets only the process's user (or root) send it.
//! 3. Accept only a connection whose `SO_PEERCRED` pid is the target's (anyone in the
//!    network namespace could connect to an abstract name), while the target is alive (so
//!    the pid is still its); others are closed at once, and the wait goes on.
//! 4. Send `jvmalloc/1 <what>\n`; read `ok\n` and the payload up to EOF, or
//!    `error <reason>\n`.

use crate::request;
use crate::target::Target;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::time::{Duration, Instant};

/// Most bytes of an answer: a dump of a million threads is about 100 MiB.
const MAX_ANSWER: u64 = 1 << 30;

/// How waiting for the target's connection ended, when it did not come.
#[derive(Debug, PartialEq, Eq)]
pub enum NoAnswer {
    /// The time was up; `refused` connections from other processes were closed.
    TimedOut { refused: usize },
    /// The target exited (or the caller gave up: see [`ask`]'s `gone`).
    Gone,
}

/// A deadline; None waits for as long as it takes (a timeout too far away to represent).
#[derive(Clone, Copy)]
pub struct Deadline(Option<Instant>);

impl Deadline {
    pub fn after(timeout: Duration) -> Deadline {
        Deadline(Instant::now().checked_add(timeout))
    }

    /// Time left: None for no limit, Some(ZERO) when it is up.
    fn left(self) -> Option<Duration> {
        self.0.map(|d| d.saturating_duration_since(Instant::now()))
    }

    fn passed(self) -> bool {
        self.left() == Some(Duration::ZERO)
    }
}

/// A listening socket with a fresh random name.
pub struct Listener {
    sock: UnixListener,
    pub token: u64,
}

fn random_token() -> Result<u64, String> {
    loop {
        let mut buf = [0u8; 8];
        // SAFETY: getrandom writes at most `buf.len()` bytes into `buf`.
        let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n == buf.len() as isize {
            let t = u64::from_ne_bytes(buf);
            if t != 0 {
                return Ok(t);
            }
        } else if n < 0 && std::io::Error::last_os_error().kind() != ErrorKind::Interrupted {
            return Err(format!(
                "cannot get random bytes: {}",
                std::io::Error::last_os_error()
            ));
        }
    }
}

impl Listener {
    pub fn new() -> Result<Listener, String> {
        let err = |e: std::io::Error| format!("cannot listen on a request socket: {e}");
        let token = random_token()?;
        let addr = SocketAddr::from_abstract_name(request::socket_name(token)).map_err(err)?;
        let sock = UnixListener::bind_addr(&addr).map_err(err)?;
        sock.set_nonblocking(true).map_err(err)?;
        Ok(Listener { sock, token })
    }

    /// Waits for a connection from process `pid` until `deadline`, or until `gone()`
    /// (looked at every 100 ms, and after each connection from `pid`: while the target is
    /// alive, its pid is its own). Connections from other processes are closed.
    pub fn accept_from(
        &self,
        pid: u32,
        deadline: Deadline,
        gone: &dyn Fn() -> bool,
    ) -> Result<UnixStream, NoAnswer> {
        let mut refused = 0;
        loop {
            if gone() {
                return Err(NoAnswer::Gone);
            }
            match self.sock.accept() {
                Ok((sock, _)) => {
                    if crate::request::peer_credentials(&sock).is_ok_and(|c| c.pid as u32 == pid) {
                        if gone() {
                            return Err(NoAnswer::Gone);
                        }
                        return Ok(sock);
                    }
                    refused += 1;
                    continue;
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                // ECONNABORTED, EMFILE and the like: the next try may do (not at once: a
                // connection left pending keeps the socket readable).
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
            let slice = deadline.left().map_or(Duration::from_millis(100), |l| {
                l.min(Duration::from_millis(100))
            });
            if deadline.passed() {
                return Err(NoAnswer::TimedOut { refused });
            }
            let mut p = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; an interruption (EINTR) just ends this slice.
            unsafe { libc::poll(&mut p, 1, slice.as_millis().max(1) as i32) };
        }
    }
}

/// Sends the request line on an accepted connection and reads the answer before
/// `deadline`.
pub fn exchange(mut sock: UnixStream, what: &str, deadline: Deadline) -> Result<Vec<u8>, String> {
    let late = || "the answer did not come in time".to_string();
    let io = |e: std::io::Error| {
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            late()
        } else {
            format!("the connection failed: {e}")
        }
    };
    // Time left for the next step (a timeout of zero would mean none at all).
    let left = || match deadline.left() {
        Some(Duration::ZERO) => Err(late()),
        l => Ok(l),
    };
    sock.set_nonblocking(false).map_err(io)?;
    sock.set_write_timeout(left()?).map_err(io)?;
    sock.write_all(format!("{} {what}\n", request::PROTOCOL).as_bytes())
        .map_err(io)?;
    let mut answer = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        sock.set_read_timeout(left()?).map_err(io)?;
        match sock.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        }
        if answer.len() as u64 > MAX_ANSWER {
            return Err(format!(
                "the answer is longer than {} MiB; not reading further",
                MAX_ANSWER >> 20
            ));
        }
    }
    let Some(nl) = answer.iter().position(|&b| b == b'\n') else {
        return Err(format!(
            "unexpected answer {:?}",
            String::from_utf8_lossy(&answer[..answer.len().min(200)])
        ));
    };
    match &answer[..nl] {
        b"ok" => {
            answer.drain(..=nl);
            Ok(answer)
        }
        line => match line.strip_prefix(b"error ") {
            Some(reason) => Err(format!(
                "it answered: {}",
                String::from_utf8_lossy(&reason[..reason.len().min(500)])
            )),
            None => Err(format!(
                "unexpected answer {:?}",
                String::from_utf8_lossy(&line[..line.len().min(200)])
            )),
        },
    }
}

/// Asks `target` for `what` (`dump text`, `dump json`, `metrics`) after checking that the
/// signal is safe and will be answered. Gives up after `timeout`, or when `gone()` (the
/// target exited, or the caller was interrupted).
pub fn ask(
    target: &Target,
    what: &str,
    timeout: Duration,
    gone: &dyn Fn() -> bool,
) -> Result<Vec<u8>, String> {
    let pid = target.pid;
    let sig = target.check()?;
    let listener = Listener::new()?;
    let deadline = Deadline::after(timeout);
    target.send(sig, listener.token)?;
    let sock = match listener.accept_from(pid, deadline, gone) {
        Ok(s) => s,
        Err(NoAnswer::Gone) => return Err(format!("process {pid} exited before answering")),
        Err(NoAnswer::TimedOut { refused }) => {
            let others = match refused {
                0 => String::new(),
                n => format!(" ({n} connection(s) from other processes refused)"),
            };
            return Err(format!(
                "process {pid} did not answer within {timeout:?}{others}; a libjvmalloc.so \
                 older than this command would have written a plain dump to its configured \
                 destination (JVMALLOC_STATS_FILE or its stderr) instead"
            ));
        }
    };
    exchange(sock, what, deadline).map_err(|e| format!("asking process {pid}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Connects to the listener's name, as the target's `jvmalloc` thread does.
    fn connect(token: u64) -> UnixStream {
        let addr = SocketAddr::from_abstract_name(request::socket_name(token)).unwrap();
        UnixStream::connect_addr(&addr).unwrap()
    }

    #[test]
    fn a_connection_from_the_target_is_accepted_and_answered() {
        let l = Listener::new().unwrap();
        let token = l.token;
        let server = std::thread::spawn(move || {
            let mut c = connect(token);
            let mut line = [0u8; 21];
            c.read_exact(&mut line).unwrap();
            assert_eq!(&line, b"jvmalloc/1 dump json\n");
            c.write_all(b"ok\n{\"jvmalloc_stats\":1}\n").unwrap();
        });
        // This process plays the target.
        let s = l
            .accept_from(
                std::process::id(),
                Deadline::after(Duration::from_secs(30)),
                &|| false,
            )
            .unwrap();
        let answer = exchange(s, "dump json", Deadline::after(Duration::from_secs(30)));
        server.join().unwrap();
        assert_eq!(answer.unwrap(), b"{\"jvmalloc_stats\":1}\n");
    }

    #[test]
    fn a_connection_from_another_process_is_refused() {
        let l = Listener::new().unwrap();
        // An impostor (this process) connects and offers a fake answer before the target
        // (pid 1, which never will) does: it is closed without being read, and the wait
        // goes on until the time is up.
        let mut impostor = connect(l.token);
        impostor.write_all(b"ok\nfake\n").unwrap();
        let start = Instant::now();
        let r = l.accept_from(1, Deadline::after(Duration::from_millis(300)), &|| false);
        assert_eq!(r.unwrap_err(), NoAnswer::TimedOut { refused: 1 });
        assert!(start.elapsed() >= Duration::from_millis(300));
        let mut rest = Vec::new();
        assert!(
            impostor.read_to_end(&mut rest).is_err() || rest.is_empty(),
            "the impostor was sent nothing"
        );
        // The caller giving up ends the wait too.
        let r = l.accept_from(1, Deadline::after(Duration::from_secs(30)), &|| true);
        assert_eq!(r.unwrap_err(), NoAnswer::Gone);
    }

    #[test]
    fn errors_and_odd_answers_are_reported() {
        let answer = |bytes: &'static [u8]| {
            let l = Listener::new().unwrap();
            let token = l.token;
            let t = std::thread::spawn(move || {
                let mut c = connect(token);
                let mut line = [0u8; 19];
                c.read_exact(&mut line).unwrap();
                assert_eq!(&line, b"jvmalloc/1 metrics\n");
                c.write_all(bytes).unwrap();
            });
            let s = l
                .accept_from(
                    std::process::id(),
                    Deadline::after(Duration::from_secs(30)),
                    &|| false,
                )
                .unwrap();
            let r = exchange(s, "metrics", Deadline::after(Duration::from_secs(30)));
            t.join().unwrap();
            r
        };
        assert_eq!(
            answer(b"error unknown request \"x\"\n").unwrap_err(),
            "it answered: unknown request \"x\""
        );
        assert!(answer(b"").unwrap_err().contains("unexpected answer"));
        assert!(answer(b"HTTP/1.1 200\n")
            .unwrap_err()
            .contains("unexpected answer"));
        assert_eq!(answer(b"ok\n").unwrap(), b"");
    }

    #[test]
    fn tokens_are_random_and_not_zero() {
        let (a, b) = (random_token().unwrap(), random_token().unwrap());
        assert!(a != 0 && b != 0 && a != b);
    }
}

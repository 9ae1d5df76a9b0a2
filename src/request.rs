//! The request channel: how the `jvmalloc` command asks a running process for a dump or
//! metrics and receives the answer itself, whatever `JVMALLOC_STATS_*` say.
//!
//! 1. The command listens on a Unix socket in the abstract namespace (nothing in the file
//!    system, gone when it closes), `\0jvmalloc-request-<token>`, with a random 64-bit
//!    token in hexadecimal.
//! 2. It sends the statistics signal with `sigqueue`, the token as the signal's value. The
//!    kernel lets only the process's own user (or root) send it. The handler stores the
//!    token ([`post`]) and wakes the `jvmalloc` thread; a plain `kill` (no value) is an
//!    ordinary dump request instead.
//! 3. The `jvmalloc` thread connects to that name, and talks only to a listener whose
//!    credentials (`SO_PEERCRED`) are its own user's or root's. It reads one request line,
//!    `jvmalloc/1 <what>\n`, and answers `ok\n` followed by the payload, or
//!    `error <reason>\n`, then closes. The command in turn accepts only a connection from
//!    the target's pid.
//!
//! Requests (`<what>`): `dump text`, `dump json`, `metrics`, `profile` (the raw
//! allocation-site profile), `profile start`, `profile stop`.
//! Nothing is created in the target unless asked, and nothing is left behind.

use core::sync::atomic::{AtomicU64, Ordering::*};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The protocol version the request line names.
pub const PROTOCOL: &str = "jvmalloc/1";

/// Tokens of requests not yet served (0: free).
static PENDING: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Stores a request's token; called from the signal handler (async-signal-safe: atomics
/// only). Returns false when every slot is taken (the handler then counts a plain dump
/// request; the command times out and says so).
pub fn post(token: u64) -> bool {
    PENDING
        .iter()
        .any(|s| s.compare_exchange(0, token, AcqRel, Relaxed).is_ok())
}

/// In a forked child: the parent's requests are the parent's.
pub fn clear() {
    PENDING.iter().for_each(|s| s.store(0, Relaxed));
}

/// Answers every pending request with `answer(what) -> Ok(payload) | Err(reason)`.
/// Returns how many had no listener: a signal sent with a value by someone other than the
/// command (a program's own `sigqueue`), or by a command that gave up; the caller treats
/// them as plain dump requests.
pub fn serve_pending(answer: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>) -> u32 {
    let mut unanswered = 0;
    for s in &PENDING {
        let token = s.swap(0, AcqRel);
        if token == 0 {
            continue;
        }
        match serve(token, answer) {
            Ok(()) => {}
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ECONNREFUSED | libc::ENOENT | libc::EAGAIN)
                ) =>
            {
                unanswered += 1
            }
            Err(e) => crate::diag::say!("request channel: {e}"),
        }
    }
    unanswered
}

/// How long the command may take to send its request line.
const READ_DEADLINE: Duration = Duration::from_secs(5);
/// How long the command may take to read the answer.
const WRITE_DEADLINE: Duration = Duration::from_secs(30);

/// The abstract socket name for `token` (without the leading NUL).
pub fn socket_name(token: u64) -> String {
    format!("jvmalloc-request-{token:016x}")
}

fn connect(token: u64) -> io::Result<OwnedFd> {
    let name = socket_name(token);
    // Non-blocking: a full backlog fails at once (EAGAIN) instead of blocking the thread,
    // and reads and writes below wait with deadlines.
    // SAFETY: plain socket(2); the result is checked and owned below.
    let fd = unsafe {
        libc::socket(
            libc::AF_UNIX,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: sockaddr_un is plain data; zeroed is valid.
    let mut addr: libc::sockaddr_un = unsafe { core::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    // sun_path[0] stays 0: the abstract namespace.
    for (d, s) in addr.sun_path[1..].iter_mut().zip(name.bytes()) {
        *d = s as libc::c_char;
    }
    let len = core::mem::size_of::<libc::sa_family_t>() + 1 + name.len();
    // SAFETY: `addr` is a valid sockaddr_un of at least `len` bytes.
    let r = unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

/// The peer's credentials (`SO_PEERCRED`) of a connected Unix socket: for the side that
/// connected, the listener's as it called `listen`; for the side that accepted, the
/// connecting process's. Used at both ends of the channel.
pub fn peer_credentials(fd: &impl AsRawFd) -> io::Result<libc::ucred> {
    // SAFETY: ucred is plain data; getsockopt writes at most `len` bytes into it.
    unsafe {
        let mut cred: libc::ucred = core::mem::zeroed();
        let mut len = core::mem::size_of::<libc::ucred>() as libc::socklen_t;
        if libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        ) != 0
        {
            return Err(io::Error::last_os_error());
        }
        Ok(cred)
    }
}

fn serve(token: u64, answer: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>) -> io::Result<()> {
    let fd = connect(token)?;
    let uid = peer_credentials(&fd)?.uid;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if uid != me && uid != 0 {
        return Err(io::Error::other(format!(
            "a listener of user {uid} asked for this process's statistics; refused"
        )));
    }
    let line = read_line(&fd, READ_DEADLINE)?;
    let line = String::from_utf8_lossy(&line);
    let reply = match line.strip_prefix(PROTOCOL).map(str::trim) {
        Some(what) => answer(what),
        None => Err(format!("unknown protocol (this library speaks {PROTOCOL})")),
    };
    let mut out = Vec::new();
    match reply {
        Ok(payload) => {
            out.extend_from_slice(b"ok\n");
            out.extend_from_slice(&payload);
        }
        Err(reason) => out.extend_from_slice(format!("error {reason}\n").as_bytes()),
    }
    crate::deadline::write_with_deadline(&fd, &out, WRITE_DEADLINE)?;
    // The answer ends here, even if a child of fork still holds a copy of the socket.
    // SAFETY: shutdown of our own connected socket.
    unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
    Ok(())
}

/// Reads one line (at most 256 bytes, without the newline) within `limit` in all.
fn read_line(fd: &OwnedFd, limit: Duration) -> io::Result<Vec<u8>> {
    let deadline = std::time::Instant::now() + limit;
    let mut line = Vec::with_capacity(64);
    let mut buf = [0u8; 256];
    loop {
        // SAFETY: reading into a local buffer from our own socket.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n == 0 {
            return Ok(line);
        }
        if n > 0 {
            let got = &buf[..n as usize];
            if let Some(i) = got.iter().position(|&b| b == b'\n') {
                line.extend_from_slice(&got[..i]);
                return Ok(line);
            }
            line.extend_from_slice(got);
            if line.len() >= 256 {
                return Ok(line);
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EAGAIN | libc::EINTR)) {
            return Err(e);
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "no request line"));
        }
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for our own socket.
        unsafe { libc::poll(&mut p, 1, left.as_millis().clamp(1, 1000) as i32) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    #[test]
    fn tokens_are_kept_until_served() {
        clear();
        assert!(post(7));
        for t in 1..8 {
            assert!(post(100 + t));
        }
        assert!(!post(999), "eight slots");
        clear();
        assert!(post(5));
        clear();
    }

    #[test]
    fn a_request_is_answered_to_a_listener_of_the_same_user() {
        use std::os::linux::net::SocketAddrExt;
        let token = 0x1234_5678_9abc_def0u64 ^ u64::from(std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(socket_name(token)).unwrap();
        let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
        let t = std::thread::spawn(move || {
            let (mut c, _) = listener.accept().unwrap();
            c.write_all(b"jvmalloc/1 metrics\n").unwrap();
            let mut out = String::new();
            c.read_to_string(&mut out).unwrap();
            out
        });
        serve(token, &mut |what| {
            Ok(format!("answer to {what}").into_bytes())
        })
        .unwrap();
        assert_eq!(t.join().unwrap(), "ok\nanswer to metrics");
        assert!(
            serve(token, &mut |_| Ok(Vec::new())).is_err(),
            "no listener any more"
        );
    }
}

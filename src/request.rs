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
//! Requests (`<what>`): `dump text`, `dump json`, `metrics`.
//! Nothing is created in the target unless asked, and nothing is left behind.

use core::sync::atomic::{AtomicU64, Ordering::*};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// The protocol version the request line names.
pub const PROTOCOL: &str = "jvmalloc/1";

/// Tokens of requests not yet served (0: free).
static PENDING: [AtomicU64; 8] = [const { AtomicU64::new(0) }; 8];

/// Stores a request's token; called from the signal handler (async-signal-safe: atomics
/// only). Returns false when every slot is taken (the request is dropped; the command times
/// out and says so).
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
pub fn serve_pending(answer: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>) {
    for s in &PENDING {
        let token = s.swap(0, AcqRel);
        if token != 0 {
            if let Err(e) = serve(token, answer) {
                crate::diag::say!("request channel: {e}");
            }
        }
    }
}

/// The abstract socket name for `token` (without the leading NUL).
pub fn socket_name(token: u64) -> String {
    format!("jvmalloc-request-{token:016x}")
}

fn connect(token: u64) -> io::Result<OwnedFd> {
    let name = socket_name(token);
    // SAFETY: plain socket(2); the result is checked and owned below.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
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

/// The listener's user id (`SO_PEERCRED`).
fn peer_uid(fd: &OwnedFd) -> io::Result<u32> {
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
        Ok(cred.uid)
    }
}

fn serve(token: u64, answer: &mut dyn FnMut(&str) -> Result<Vec<u8>, String>) -> io::Result<()> {
    let fd = connect(token)?;
    let uid = peer_uid(&fd)?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if uid != me && uid != 0 {
        return Err(io::Error::other(format!(
            "a listener of user {uid} asked for this process's statistics; refused"
        )));
    }
    let mut sock = std::os::unix::net::UnixStream::from(fd);
    sock.set_read_timeout(Some(Duration::from_secs(5)))?;
    sock.set_write_timeout(Some(Duration::from_secs(30)))?;
    let mut line = Vec::with_capacity(64);
    let mut byte = [0u8; 1];
    while line.len() < 256 {
        if sock.read(&mut byte)? == 0 || byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&line);
    let reply = match line.strip_prefix(PROTOCOL).map(str::trim) {
        Some(what) => answer(what),
        None => Err(format!("unknown protocol (this library speaks {PROTOCOL})")),
    };
    match reply {
        Ok(payload) => {
            sock.write_all(b"ok\n")?;
            sock.write_all(&payload)
        }
        Err(reason) => sock.write_all(format!("error {reason}\n").as_bytes()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

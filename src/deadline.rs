//! Writing to a non-blocking descriptor within a time limit, however slowly the reader
//! takes the bytes: the `jvmalloc` thread's writes to FIFOs and terminals
//! (`dumpfile`), to HTTP clients (`exporter`) and to the `jvmalloc`
//! command (`request`). Shared with the command, which includes this file.

use std::io;
use std::os::fd::AsRawFd;
use std::time::Duration;

/// Writes all of `bytes` to a non-blocking descriptor, waiting for it to take more with
/// `poll`, until `limit` has passed.
pub fn write_with_deadline(f: &impl AsRawFd, mut bytes: &[u8], limit: Duration) -> io::Result<()> {
    let deadline = std::time::Instant::now() + limit;
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable buffer; the descriptor is the caller's.
        let n = unsafe { libc::write(f.as_raw_fd(), bytes.as_ptr().cast(), bytes.len()) };
        if n > 0 {
            bytes = &bytes[n as usize..];
            continue;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EAGAIN) => {}
            _ => return Err(e),
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the reader does not read",
            ));
        }
        let mut p = libc::pollfd {
            fd: f.as_raw_fd(),
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the caller's descriptor.
        unsafe { libc::poll(&mut p, 1, left.as_millis().clamp(1, 1000) as i32) };
    }
    Ok(())
}

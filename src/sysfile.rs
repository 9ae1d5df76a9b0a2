//! Files and descriptors through raw system calls, with buffers on the stack.
//!
//! Used by code that runs inside jemalloc's initialisation or on behalf of `malloc`
//! (reading cgroup files, `/proc/self/*`, writing to stderr): nothing here allocates, takes
//! a lock or touches stdio. The kernel is reached with `syscall(2)`, never through the C
//! library's `open`/`read`/`write` symbols: another preloaded library may interpose those
//! and allocate, which during initialisation would re-enter jemalloc, whose initialisation
//! lock the thread holds.

/// A NUL-terminated path of at most 511 bytes, built on the stack.
pub struct Path {
    buf: [u8; 512],
    len: usize,
    overflow: bool,
}

impl Path {
    pub fn new(s: &[u8]) -> Path {
        let mut p = Path {
            buf: [0; 512],
            len: 0,
            overflow: false,
        };
        p.push(s);
        p
    }

    /// Appends raw bytes (no separator is added).
    pub fn push(&mut self, s: &[u8]) -> &mut Path {
        if self.len + s.len() >= self.buf.len() {
            self.overflow = true;
        } else {
            self.buf[self.len..self.len + s.len()].copy_from_slice(s);
            self.len += s.len();
        }
        self
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The path as a C string, or `None` if it did not fit.
    fn c_ptr(&mut self) -> Option<*const libc::c_char> {
        if self.overflow {
            return None;
        }
        self.buf[self.len] = 0;
        Some(self.buf.as_ptr().cast())
    }
}

fn open_read(path: &mut Path) -> Option<i32> {
    let p = path.c_ptr()?;
    // SAFETY: `p` points to a NUL-terminated string inside `path`, alive for the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat,
            libc::AT_FDCWD,
            p,
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    (fd >= 0).then_some(fd as i32)
}

fn interrupted() -> bool {
    // SAFETY: __errno_location returns this thread's errno slot; reading it is safe.
    unsafe { *libc::__errno_location() == libc::EINTR }
}

fn read_some(fd: i32, buf: &mut [u8]) -> isize {
    loop {
        // SAFETY: `buf` is a valid writable buffer of `buf.len()` bytes.
        let n = unsafe { libc::syscall(libc::SYS_read, fd, buf.as_mut_ptr(), buf.len()) };
        if n < 0 && interrupted() {
            continue;
        }
        return n as isize;
    }
}

fn close(fd: i32) {
    // SAFETY: `fd` was opened in this module and is closed once.
    unsafe { libc::syscall(libc::SYS_close, fd) };
}

/// Reads the start of a file into `buf`; returns the number of bytes read, or `None` when the
/// file cannot be opened or read.
pub fn read(path: &mut Path, buf: &mut [u8]) -> Option<usize> {
    let fd = open_read(path)?;
    let mut total = 0;
    while total < buf.len() {
        let n = read_some(fd, &mut buf[total..]);
        if n <= 0 {
            break;
        }
        total += n as usize;
    }
    close(fd);
    Some(total)
}

/// Calls `f` with each line of a file (without the newline) until `f` returns `false`.
/// Lines longer than 4 KiB are skipped. Returns `false` when the file cannot be opened.
pub fn for_each_line(path: &mut Path, mut f: impl FnMut(&[u8]) -> bool) -> bool {
    let Some(fd) = open_read(path) else {
        return false;
    };
    let mut buf = [0u8; 4096];
    let mut have = 0usize;
    let mut skipping = false;
    'outer: loop {
        let n = read_some(fd, &mut buf[have..]);
        if n <= 0 {
            if have > 0 && !skipping {
                f(&buf[..have]);
            }
            break;
        }
        have += n as usize;
        let mut start = 0;
        while let Some(pos) = buf[start..have].iter().position(|&b| b == b'\n') {
            let line_end = start + pos;
            if !skipping && !f(&buf[start..line_end]) {
                break 'outer;
            }
            skipping = false;
            start = line_end + 1;
        }
        buf.copy_within(start..have, 0);
        have -= start;
        if have == buf.len() {
            // A line longer than the buffer: drop it.
            have = 0;
            skipping = true;
        }
    }
    close(fd);
    true
}

/// Writes all of `bytes` to `fd`, retrying on `EINTR` and short writes; errors are ignored
/// (there is nowhere to report them).
pub fn write_all(fd: i32, mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: `bytes` is a valid readable buffer of `bytes.len()` bytes.
        let n = unsafe { libc::syscall(libc::SYS_write, fd, bytes.as_ptr(), bytes.len()) };
        if n < 0 {
            if interrupted() {
                continue;
            }
            return;
        }
        bytes = &bytes[n as usize..];
    }
}

/// Parses an unsigned decimal number at the start of `s` (after leading blanks).
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    let s = s.trim_ascii();
    if s.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as u64)?;
    }
    Some(v)
}

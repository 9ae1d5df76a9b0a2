//! One-line messages on stderr without allocating.
//!
//! Everything jvmalloc says on stderr goes through [`Line`]: a fixed 512-byte buffer that
//! implements `core::fmt::Write` and is sent with a single `write(2)` call when dropped, so
//! that a message is never interleaved with another thread's output and never calls `malloc`.
//! Text that does not fit is cut and ends with `...`.

use core::fmt;

const CAP: usize = 512;

/// A message line under construction; written to fd 2 (with a trailing newline) on drop.
pub struct Line {
    buf: [u8; CAP],
    len: usize,
    cut: bool,
}

impl Line {
    /// Starts a line with the `jvmalloc: ` prefix.
    pub fn new() -> Line {
        let mut l = Line {
            buf: [0; CAP],
            len: 0,
            cut: false,
        };
        l.push(b"jvmalloc: ");
        l
    }

    fn push(&mut self, bytes: &[u8]) {
        // Keep 4 bytes for "...\n".
        let room = CAP - 4 - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        if n < bytes.len() {
            self.cut = true;
        }
    }

    /// Appends raw bytes from the environment or a file, showing anything that is not
    /// printable ASCII as `\xNN`, at most `max` input bytes (then `...`).
    pub fn quoted(&mut self, raw: &[u8], max: usize) -> &mut Line {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        self.push(b"\"");
        for &b in raw.iter().take(max) {
            if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
                self.push(&[b]);
            } else {
                self.push(&[b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
        }
        if raw.len() > max {
            self.push(b"...");
        }
        self.push(b"\"");
        self
    }
}

impl Default for Line {
    fn default() -> Self {
        Line::new()
    }
}

impl fmt::Write for Line {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push(s.as_bytes());
        Ok(())
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        if self.cut {
            self.buf[self.len..self.len + 3].copy_from_slice(b"...");
            self.len += 3;
        }
        self.buf[self.len] = b'\n';
        self.len += 1;
        crate::sysfile::write_all(2, &self.buf[..self.len]);
    }
}

/// Writes one formatted line on stderr, prefixed `jvmalloc: `, without allocating.
macro_rules! say {
    ($($arg:tt)*) => {{
        let mut line = $crate::diag::Line::new();
        let _ = core::fmt::Write::write_fmt(&mut line, format_args!($($arg)*));
    }};
}
pub(crate) use say;

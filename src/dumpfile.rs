//! Writing a dump to the file `JVMALLOC_STATS_FILE` names, safely in shared directories.
//!
//! - A regular file (or a name that does not exist yet) is replaced whole: the dump is
//!   written to `<name>.tmp.<16 random hex digits>`, created with
//!   `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC` and mode 0600, then renamed onto the name. A
//!   reader never sees half a dump, and a symbolic link planted at either name cannot
//!   redirect the write: `O_EXCL|O_NOFOLLOW` refuses to open through one, and `rename`
//!   replaces a link at the final name rather than writing where it points.
//! - Something that is not a regular file (a FIFO, a terminal, `/dev/stdout`), and any
//!   name under `/dev/` or `/proc/`, is opened and written to, never replaced.
//! - A symbolic link at the name that belongs to another user (not the process's
//!   effective user, not root) is not followed at all: the dump goes to stderr instead.
//!
//! Paths are bytes: names that are not UTF-8 are kept as they are.

use std::ffi::OsStr;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Writes `bytes` to `name` as the module documentation describes; a file it creates gets
/// `mode` (0600 for dumps; the metrics file is 0644 so that node_exporter, often another
/// user, can read it).
pub fn write(name: &[u8], bytes: &[u8], mode: u32) -> io::Result<()> {
    let path = Path::new(OsStr::from_bytes(name));
    if name.starts_with(b"/dev/") || name.starts_with(b"/proc/") {
        return write_in_place(path, bytes);
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            // SAFETY: geteuid has no preconditions.
            let me = unsafe { libc::geteuid() };
            if m.uid() != me && m.uid() != 0 {
                return Err(io::Error::other(
                    "it is a symbolic link owned by another user; not following it",
                ));
            }
            match fs::metadata(path) {
                Ok(t) if !t.file_type().is_file() => write_in_place(path, bytes),
                _ => replace(path, bytes, mode),
            }
        }
        Ok(m) if !m.file_type().is_file() => write_in_place(path, bytes),
        _ => replace(path, bytes, mode),
    }
}

/// Opens an existing non-regular file and writes to it. A FIFO with no reader fails at
/// once (`ENXIO`) instead of blocking the `jvmalloc` thread.
fn write_in_place(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let t = f.metadata()?.file_type();
    if t.is_fifo() || t.is_socket() || t.is_char_device() {
        set_blocking(&f)?;
    }
    f.write_all(bytes)
}

fn set_blocking(f: &fs::File) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let fd = f.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take and return plain ints.
    let ok = unsafe {
        let fl = libc::fcntl(fd, libc::F_GETFL);
        fl >= 0 && libc::fcntl(fd, libc::F_SETFL, fl & !libc::O_NONBLOCK) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// 16 hex digits from the kernel's random source.
fn random_suffix() -> [u8; 16] {
    let mut raw = [0u8; 8];
    // SAFETY: the kernel writes at most 8 bytes into `raw`.
    let n = unsafe { libc::getrandom(raw.as_mut_ptr().cast(), raw.len(), libc::GRND_NONBLOCK) };
    if n != raw.len() as isize {
        // No entropy yet (early boot): the clock's nanoseconds and the thread id still
        // make the name hard to guess, and O_EXCL keeps a guessed one harmless.
        let t = crate::clock::monotonic_ns() ^ ((thread_id() as u64) << 40);
        raw = t.to_le_bytes();
    }
    let mut out = [0u8; 16];
    for (i, b) in raw.iter().enumerate() {
        out[2 * i] = b"0123456789abcdef"[(b >> 4) as usize];
        out[2 * i + 1] = b"0123456789abcdef"[(b & 15) as usize];
    }
    out
}

fn thread_id() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// Writes a private temporary file next to `path` and renames it onto `path`.
fn replace(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    let mut tmp = path.as_os_str().as_bytes().to_vec();
    tmp.extend_from_slice(b".tmp.");
    tmp.extend_from_slice(&random_suffix());
    let tmp = Path::new(OsStr::from_bytes(&tmp));
    let res = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(tmp)
        // Exactly `mode`, whatever the umask took away from it at open.
        .and_then(|f| {
            f.set_permissions(fs::Permissions::from_mode(mode))
                .map(|_| f)
        })
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|_| fs::rename(tmp, path));
    if res.is_err() {
        let _ = fs::remove_file(tmp);
    }
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> std::path::PathBuf {
        let d =
            std::env::temp_dir().join(format!("jvmalloc-dumpfile-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn new_file_is_private_and_whole() {
        let d = dir("new");
        let p = d.join("dump.json");
        write(p.as_os_str().as_bytes(), b"{}\n", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"{}\n");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Nothing left behind.
        assert_eq!(fs::read_dir(&d).unwrap().count(), 1);
    }

    #[test]
    fn symlink_at_the_name_is_replaced_not_followed() {
        let d = dir("link");
        let victim = d.join("victim");
        fs::write(&victim, b"secret").unwrap();
        let p = d.join("dump.json");
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        write(p.as_os_str().as_bytes(), b"dump", 0o600).unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"secret");
        assert!(fs::symlink_metadata(&p).unwrap().file_type().is_file());
        assert_eq!(fs::read(&p).unwrap(), b"dump");
    }

    #[test]
    fn non_utf8_names_are_kept() {
        let d = dir("bytes");
        let mut name = d.as_os_str().as_bytes().to_vec();
        name.extend_from_slice(b"/d\xff.json");
        write(&name, b"x", 0o600).unwrap();
        assert_eq!(fs::read(OsStr::from_bytes(&name)).unwrap(), b"x");
    }

    #[test]
    fn missing_directory_is_an_error() {
        assert!(write(b"/nonexistent-jvmalloc-dir/x.json", b"x", 0o600).is_err());
    }
}

//! `jvmalloc dump <pid>` and `jvmalloc metrics <pid>`: one answer over the request channel
//! ([`crate::channel`]), printed or written to a file.

use crate::channel;
use crate::target::Target;
use std::fs::File;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

/// Asks process `pid` for `what` and writes the answer to `out` (created with `mode`) or
/// stdout.
pub fn run(
    pid: u32,
    what: &str,
    out: Option<&Path>,
    mode: u32,
    timeout: Duration,
) -> Result<(), String> {
    // Opened before anything else, so that a file that cannot be written costs the target
    // nothing; emptied only once the answer is here.
    let file = out.map(|p| open_output(p, mode)).transpose()?;
    let target = Target::open(pid)?;
    let answer = channel::ask(&target, what, timeout, &|| target.exited())?;
    match (file, out) {
        (Some(mut f), Some(p)) => f
            .set_len(0)
            .and_then(|()| f.write_all(&answer))
            .map_err(|e| format!("cannot write {}: {e}", p.display())),
        _ => crate::write_stdout(&answer),
    }
}

/// Opens (or creates) `path` for writing, refusing a symbolic link and anything but a
/// regular file (a FIFO could block, a device is not where a dump belongs).
pub fn open_output(path: &Path, mode: u32) -> Result<File, String> {
    let shown = path.display();
    let f = File::options()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => format!("{shown} is a symbolic link; not writing through it"),
            _ => format!("cannot write {shown}: {e}"),
        })?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(format!("{shown} is not a regular file"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_files_are_regular_files_reached_without_a_symlink() {
        let d = std::env::temp_dir().join(format!("jvmalloc-out-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let file = d.join("dump.txt");
        std::fs::write(&file, "old and longer").unwrap();
        assert!(open_output(&file, 0o600).is_ok());
        // Not emptied by opening: only once an answer is here.
        assert_eq!(std::fs::read(&file).unwrap(), b"old and longer");
        let link = d.join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(open_output(&link, 0o600)
            .unwrap_err()
            .contains("symbolic link"));
        assert!(open_output(&d, 0o600).unwrap_err().contains("cannot write"));
        assert!(open_output(Path::new("/dev/null"), 0o600)
            .unwrap_err()
            .contains("not a regular file"));
        let _ = std::fs::remove_dir_all(&d);
    }
}

//! `jvmalloc dump <pid>`: asks a running process for a statistics dump and prints it.
//!
//! Reads the target's `JVMALLOC_STATS_*` settings from `/proc/<pid>/environ`, makes sure the
//! signal cannot harm it, sends the signal, and waits for the new dump where the target
//! writes it: a new file matching `JVMALLOC_STATS_FILE`, or, by default, the end of the
//! file its stderr goes to (Flink's `taskmanager.out`).
//!
//! The signal is only sent when the target catches it (`SigCgt` in `/proc/<pid>/status`):
//! at its default action, SIGUSR1 and the real-time signals end the process. And only when
//! some thread other than jvmalloc's own (which blocks every signal) leaves it unblocked:
//! otherwise it would stay pending for ever. The target is addressed through a pidfd
//! where the kernel has them, so a pid reused after the checks is never signalled.

use crate::names::{self, Signal};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// Most bytes read from the target's stderr file while waiting for the dump.
const MAX_WAIT_BYTES: u64 = 1 << 30;

fn environ_var<'a>(env: &'a [u8], name: &str) -> Option<&'a [u8]> {
    env.split(|&b| b == 0)
        .find_map(|e| e.strip_prefix(name.as_bytes())?.strip_prefix(b"="))
}

fn io_err(pid: u32, what: &str, e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => format!("no process {pid}"),
        std::io::ErrorKind::PermissionDenied => {
            format!("no permission to read {what} of process {pid}: run as its user or as root")
        }
        _ => format!("cannot read {what} of process {pid}: {e}"),
    }
}

/// `SIGUSR1`, `SIGUSR2`, `SIGRTMIN+N`.
fn signal_name(sig: i32) -> String {
    match sig {
        libc::SIGUSR1 => "SIGUSR1".into(),
        libc::SIGUSR2 => "SIGUSR2".into(),
        s if s >= libc::SIGRTMIN() => format!("SIGRTMIN+{}", s - libc::SIGRTMIN()),
        s => format!("signal {s}"),
    }
}

/// A hexadecimal signal mask (`SigCgt`, `SigBlk`, ...) or another field of a
/// `/proc/.../status` file.
fn status_field<'a>(status: &'a str, field: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .map(str::trim)
}

fn status_mask(status: &str, field: &str) -> Option<u64> {
    u64::from_str_radix(status_field(status, field)?, 16).ok()
}

/// Bit of signal `sig` in a status mask.
fn has_signal(mask: u64, sig: i32) -> bool {
    (1..=64).contains(&sig) && mask & (1u64 << (sig - 1)) != 0
}

/// The process being asked for a dump.
struct Target {
    pid: u32,
    dir: PathBuf,
    /// Refers to this very process, even once its pid is reused; None where pidfds are
    /// not available (kernels before 5.3, some sandboxes).
    pidfd: Option<OwnedFd>,
}

impl Target {
    fn open(pid: u32) -> Result<Target, String> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::c_int, 0) };
        let pidfd = if fd >= 0 {
            // SAFETY: the descriptor was just opened and is owned by nobody else.
            Some(unsafe { OwnedFd::from_raw_fd(fd as i32) })
        } else if std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH) {
            return Err(format!("no process {pid}"));
        } else {
            // Kernels before 5.3, sandboxes, or a thread id (checked below).
            None
        };
        let status = fs::read(dir.join("status")).map_err(|e| io_err(pid, "the status", &e))?;
        let status = String::from_utf8_lossy(&status);
        // /proc/<tid> exists for every thread, too; kill(tid) would signal its process.
        if let Some(tgid) = status_field(&status, "Tgid") {
            if tgid != pid.to_string() {
                return Err(format!(
                    "{pid} is a thread of process {tgid}, not a process: run jvmalloc dump {tgid}"
                ));
            }
        }
        Ok(Target { pid, dir, pidfd })
    }

    fn read(&self, file: &str, what: &str) -> Result<Vec<u8>, String> {
        fs::read(self.dir.join(file)).map_err(|e| io_err(self.pid, what, &e))
    }

    fn check_loaded(&self) -> Result<(), String> {
        let maps = self.read("maps", "the memory map")?;
        if !maps.windows(11).any(|w| w == b"libjvmalloc") {
            return Err(format!(
                "process {} does not have jvmalloc loaded (was it started with LD_PRELOAD=.../libjvmalloc.so?)",
                self.pid
            ));
        }
        Ok(())
    }

    /// Refuses a signal that the process does not catch: at its default action it would
    /// end the process (or, ignored, do nothing at all).
    fn check_caught(&self, sig: i32) -> Result<(), String> {
        let status = String::from_utf8_lossy(&self.read("status", "the status")?).into_owned();
        let caught = status_mask(&status, "SigCgt").ok_or_else(|| {
            format!(
                "cannot read the signal actions of process {} (no SigCgt in /proc/{}/status); not sending it a signal",
                self.pid, self.pid
            )
        })?;
        if !has_signal(caught, sig) {
            return Err(format!(
                "process {} does not catch {} (its action is the default, which would kill it, \
                 or it is ignored); not sending it",
                self.pid,
                signal_name(sig)
            ));
        }
        Ok(())
    }

    /// Refuses a signal that every thread blocks, but jvmalloc's own thread (which blocks
    /// every signal by design): it would stay pending for ever.
    fn check_deliverable(&self, sig: i32) -> Result<(), String> {
        let tasks =
            fs::read_dir(self.dir.join("task")).map_err(|e| io_err(self.pid, "the threads", &e))?;
        for task in tasks.flatten() {
            let dir = task.path();
            // A thread that is gone, or unreadable, cannot take the signal.
            let Ok(comm) = fs::read(dir.join("comm")) else {
                continue;
            };
            if comm.trim_ascii_end() == b"jvmalloc" {
                continue;
            }
            let Ok(status) = fs::read(dir.join("status")) else {
                continue;
            };
            let blocked = status_mask(&String::from_utf8_lossy(&status), "SigBlk");
            if blocked.is_some_and(|m| !has_signal(m, sig)) {
                return Ok(());
            }
        }
        Err(format!(
            "process {} blocks {} in every thread (jvmalloc's own thread blocks all signals by \
             design): it would stay pending for ever; not sending it",
            self.pid,
            signal_name(sig)
        ))
    }

    fn send(&self, sig: i32) -> Result<(), String> {
        let pid = self.pid;
        let r = match &self.pidfd {
            // SAFETY: pidfd_send_signal takes a pidfd we own, a signal number, a null
            // siginfo (meaning: as kill(2) would fill it) and flags 0.
            Some(fd) => unsafe {
                libc::syscall(
                    libc::SYS_pidfd_send_signal,
                    fd.as_raw_fd(),
                    sig,
                    std::ptr::null::<libc::siginfo_t>(),
                    0,
                )
            },
            // SAFETY: kill has no memory-safety preconditions; pid is in 1..=i32::MAX
            // (checked when the arguments were parsed), so it names one process.
            None => i64::from(unsafe { libc::kill(pid as libc::pid_t, sig) }),
        };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return Err(match e.raw_os_error() {
                Some(libc::EPERM) => {
                    format!("no permission to signal process {pid}: run as its user or as root")
                }
                Some(libc::ESRCH) => format!("no process {pid} (it has exited)"),
                _ => format!("cannot signal process {pid}: {e}"),
            });
        }
        Ok(())
    }

    /// Whether the process has ended (only known with a pidfd: it becomes readable).
    fn exited(&self) -> bool {
        let Some(fd) = &self.pidfd else {
            return false;
        };
        let mut p = libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no waiting.
        unsafe { libc::poll(&mut p, 1, 0) == 1 && p.revents & libc::POLLIN != 0 }
    }
}

/// Polls for the dump until it comes, the target exits or the time is up.
struct Wait<'a> {
    target: &'a Target,
    timeout: Duration,
    /// None when `timeout` is too far away to be represented: wait for as long as it takes.
    deadline: Option<Instant>,
}

impl Wait<'_> {
    /// Sleeps a little, or says why waiting is over (`where_` is where the dump was due).
    fn step(&self, where_: &dyn std::fmt::Display) -> Result<(), String> {
        if self.target.exited() {
            return Err(format!(
                "process {} exited before a dump appeared in {where_}",
                self.target.pid
            ));
        }
        if self.deadline.is_some_and(|d| Instant::now() > d) {
            return Err(format!(
                "no dump appeared in {where_} within {:?}",
                self.timeout
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
        Ok(())
    }
}

/// Files in `dir` whose names match `pattern` (a file name where `%n`/`%t` stand for
/// digits), with their modification times.
fn matching(dir: &Path, pattern: &[u8]) -> Vec<(PathBuf, SystemTime)> {
    let Ok(rd) = fs::read_dir(dir) else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok())
        .filter(|e| name_matches(e.file_name().as_bytes(), pattern))
        .filter_map(|e| Some((e.path(), e.metadata().ok()?.modified().ok()?)))
        .collect()
}

/// Whether file name `n` matches `pattern`, where `%n` and `%t` stand for one or more
/// digits. Set-based (linear in the pattern), so no pattern can make it backtrack for long.
fn name_matches(n: &[u8], pattern: &[u8]) -> bool {
    // can[i]: the pattern read so far matches n[..i].
    let mut can = vec![false; n.len() + 1];
    can[0] = true;
    let mut p = pattern;
    while !p.is_empty() {
        let mut next = vec![false; n.len() + 1];
        if let [b'%', b'n' | b't', rest @ ..] = p {
            for start in (0..n.len()).filter(|&i| can[i]) {
                for end in (start..n.len()).take_while(|&i| n[i].is_ascii_digit()) {
                    next[end + 1] = true;
                }
            }
            p = rest;
        } else {
            for i in (0..n.len()).filter(|&i| can[i] && n[i] == p[0]) {
                next[i + 1] = true;
            }
            p = &p[1..];
        }
        can = next;
    }
    can[n.len()]
}

pub fn run(pid: u32, timeout: Duration) -> Result<String, String> {
    let target = Target::open(pid)?;
    target.check_loaded()?;
    let env = target.read("environ", "the environment")?;
    let sig = match environ_var(&env, "JVMALLOC_STATS_SIGNAL").map(names::parse_signal) {
        // The library uses USR1 for a value it does not accept (and says so at start).
        None | Some(Signal::Invalid) => libc::SIGUSR1,
        Some(Signal::Number(s)) => s,
        Some(Signal::Off) => {
            return Err(format!(
                "process {pid} has dumps on signal turned off (JVMALLOC_STATS_SIGNAL=off)"
            ))
        }
    };
    target.check_caught(sig)?;
    target.check_deliverable(sig)?;
    let json = environ_var(&env, "JVMALLOC_STATS_FORMAT")
        .is_some_and(|f| f.trim_ascii().eq_ignore_ascii_case(b"json"));
    let wait = Wait {
        target: &target,
        timeout,
        deadline: Instant::now().checked_add(timeout),
    };
    match environ_var(&env, "JVMALLOC_STATS_FILE")
        .filter(|f| !f.is_empty() && names::template_ok(f))
    {
        Some(template) => from_files(&target, sig, template, &wait),
        None => from_stderr(&target, sig, json, &wait),
    }
}

/// Waits for a new file matching the `JVMALLOC_STATS_FILE` template.
fn from_files(target: &Target, sig: i32, template: &[u8], wait: &Wait) -> Result<String, String> {
    let path = names::expand(template, target.pid, None, None);
    // Resolved as the target resolves it: relative to its working directory, absolute
    // paths under its root directory (it may run in a container).
    let (base, rel) = match path.strip_prefix(b"/") {
        Some(rel) => ("root", rel),
        None => ("cwd", &path[..]),
    };
    let full = target.dir.join(base).join(OsStr::from_bytes(rel));
    // Shown as the target sees it.
    let shown = fs::read_link(target.dir.join(base))
        .unwrap_or_else(|_| PathBuf::from("/"))
        .join(OsStr::from_bytes(rel));
    let dir = full.parent().unwrap_or(Path::new("/")).to_path_buf();
    let pattern = full.file_name().map(OsStr::as_bytes).unwrap_or_default();
    let before = matching(&dir, pattern);
    target.send(sig)?;
    loop {
        let fresh = matching(&dir, pattern)
            .into_iter()
            .filter(|(p, t)| !before.iter().any(|(bp, bt)| bp == p && bt == t))
            .max_by_key(|(_, t)| *t);
        if let Some((path, _)) = fresh {
            // Written to a temporary name and renamed: the file is whole.
            return fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .map_err(|e| format!("cannot read {}: {e}", path.display()));
        }
        wait.step(&format_args!("a new file matching {}", shown.display()))?;
    }
}

/// Waits for a whole dump at the end of the file the target's stderr goes to.
fn from_stderr(target: &Target, sig: i32, json: bool, wait: &Wait) -> Result<String, String> {
    let pid = target.pid;
    // Through /proc/<pid>/fd/2: the very file the target writes to, even if it was
    // renamed, deleted, or lives in another mount namespace.
    let link = target.dir.join("fd/2");
    let shown = fs::read_link(&link).map_err(|e| io_err(pid, "stderr", &e))?;
    let not_a_file = || {
        format!(
            "process {pid} writes dumps to its stderr, which is {} and not a file; set \
             JVMALLOC_STATS_FILE for it (or read its stderr)",
            shown.display()
        )
    };
    // Opening a pipe or a terminal could take input that is not ours: check before.
    if !fs::metadata(&link)
        .map_err(|e| io_err(pid, "stderr", &e))?
        .is_file()
    {
        return Err(not_a_file());
    }
    let mut f = File::options()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(&link)
        .map_err(|e| io_err(pid, "stderr", &e))?;
    if !f.metadata().is_ok_and(|m| m.is_file()) {
        return Err(not_a_file());
    }
    let read_err = |e: std::io::Error| format!("cannot read {}: {e}", shown.display());
    let mut start = f.seek(SeekFrom::End(0)).map_err(read_err)?;
    target.send(sig)?;
    // Everything written since the signal; bytes that are not UTF-8 (a Latin-1 log line)
    // are replaced when searched, not refused.
    let mut seen = Vec::new();
    loop {
        let len = f.metadata().map_err(read_err)?.len();
        if len < start + seen.len() as u64 {
            // Truncated (a log rotated by copy and truncate): the dump is near its start.
            start = 0;
            seen.clear();
            f.seek(SeekFrom::Start(0)).map_err(read_err)?;
        }
        let old = seen.len();
        (&mut f)
            .take(MAX_WAIT_BYTES - old as u64)
            .read_to_end(&mut seen)
            .map_err(read_err)?;
        if seen.len() > old {
            if let Some(d) = find_dump(&String::from_utf8_lossy(&seen), json) {
                return Ok(d);
            }
        }
        if seen.len() as u64 >= MAX_WAIT_BYTES {
            return Err(format!(
                "{} grew by {} MiB without a whole dump in it; not reading further",
                shown.display(),
                MAX_WAIT_BYTES >> 20
            ));
        }
        wait.step(&shown.display())?;
    }
}

/// The first whole dump in text written after the signal.
fn find_dump(s: &str, json: bool) -> Option<String> {
    if json {
        return s
            .lines()
            .find(|l| l.starts_with("{\"jvmalloc_stats\""))
            .filter(|l| s.contains(&format!("{l}\n")))
            .map(|l| format!("{l}\n"));
    }
    let begin = s.find("=== jvmalloc statistics #")?;
    let end_marker = "=== end of jvmalloc statistics #";
    let end = begin + s[begin..].find(end_marker)?;
    let line_end = end + s[end..].find('\n')? + 1;
    Some(s[begin..line_end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tjava\nTgid:\t42\nSigBlk:\t0000000000000200\n\
                          SigIgn:\t0000000000001000\nSigCgt:\t0000000180004a02\n";

    #[test]
    fn reads_signal_masks() {
        let cgt = status_mask(STATUS, "SigCgt").unwrap();
        assert!(has_signal(cgt, libc::SIGUSR1)); // bit 9
        assert!(!has_signal(cgt, libc::SIGQUIT));
        assert!(has_signal(status_mask(STATUS, "SigBlk").unwrap(), 10));
        assert_eq!(status_mask(STATUS, "SigQ"), None);
        assert_eq!(status_field(STATUS, "Tgid"), Some("42"));
        assert!(!has_signal(u64::MAX, 0) && !has_signal(u64::MAX, 65));
        assert!(has_signal(1 << 63, 64));
    }

    #[test]
    fn names_signals() {
        assert_eq!(signal_name(libc::SIGUSR1), "SIGUSR1");
        assert_eq!(signal_name(libc::SIGRTMIN() + 3), "SIGRTMIN+3");
    }

    #[test]
    fn finds_a_dump_among_other_lines() {
        let text = "x\n=== jvmalloc statistics #2 pid 1 ===\nrow\n=== end of jvmalloc statistics #2 ===\ny\n";
        assert_eq!(
            find_dump(text, false).unwrap(),
            "=== jvmalloc statistics #2 pid 1 ===\nrow\n=== end of jvmalloc statistics #2 ===\n"
        );
        assert_eq!(
            find_dump("=== jvmalloc statistics #2 pid 1 ===\nro", false),
            None
        );
        assert_eq!(
            find_dump("a\n{\"jvmalloc_stats\":1}\n", true).unwrap(),
            "{\"jvmalloc_stats\":1}\n"
        );
        assert_eq!(find_dump("{\"jvmalloc_stats\":1", true), None);
    }

    #[test]
    fn file_names_match_templates() {
        assert!(name_matches(b"s-12-3.json", b"s-%n-%t.json"));
        assert!(!name_matches(b"s--3.json", b"s-%n-%t.json"));
        assert!(!name_matches(b"s-1.json.tmp.7", b"s-%n.json"));
        assert!(name_matches(b"\xff-1", b"\xff-%n"));
        assert!(name_matches(b"", b""));
        assert!(!name_matches(b"a", b""));
        assert!(name_matches(b"1", b"%n") && !name_matches(b"", b"%n"));
        assert!(name_matches(b"12", b"%n%t") && !name_matches(b"1", b"%n%t"));
        // A pattern that would make a backtracking matcher take for ever.
        let digits = [b'1'; 255];
        assert!(name_matches(&digits, &b"%n".repeat(200)));
        assert!(!name_matches(&digits, &b"%n".repeat(300)));
        assert!(!name_matches(
            &digits,
            &[&b"%n".repeat(100)[..], b"x"].concat()
        ));
    }
}

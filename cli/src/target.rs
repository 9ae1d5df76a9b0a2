//! The process the command asks: its `/proc/<pid>` files, the checks that make sure the
//! statistics signal cannot harm it and will be answered, and the signal itself.
//!
//! The signal is only sent when the target catches it (`SigCgt` in `/proc/<pid>/status`):
//! at its default action, SIGUSR1 and the real-time signals end the process. Only when a
//! thread named `jvmalloc` is there to answer (the library starts it in a process in scope,
//! with the program's first thread). And only when some thread other than jvmalloc's own
//! (which blocks every signal) leaves it unblocked: otherwise it would stay pending for
//! ever. The target is addressed through a pidfd where the kernel has them, so a pid reused
//! after the checks is never signalled.

use crate::names::{self, Signal};
use crate::scope;
use core::ffi::{c_int, c_void};
use std::fs;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::PathBuf;

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

/// What the target's `JVMALLOC_PROCESSES` says about it, for messages.
struct Scope {
    /// The variable as the process started with it.
    raw: Option<Vec<u8>>,
    /// The name of its executable (`/proc/<pid>/exe`), when readable.
    exe: Option<Vec<u8>>,
}

impl Scope {
    /// The pattern list the library uses: the variable if usable, else the default.
    fn list(&self) -> &[u8] {
        match &self.raw {
            Some(l) if scope::list_ok(l) => l,
            _ => scope::DEFAULT,
        }
    }

    /// Whether the library is active in the process; None when its executable is unknown.
    fn active(&self) -> Option<bool> {
        Some(scope::matches(self.list(), self.exe.as_deref()?))
    }

    /// `JVMALLOC_PROCESSES="..."`, or what it means when unset or unusable.
    fn describe(&self) -> String {
        let default = String::from_utf8_lossy(scope::DEFAULT);
        match &self.raw {
            None => format!("JVMALLOC_PROCESSES is unset: only {default}"),
            Some(l) if scope::list_ok(l) => {
                format!("JVMALLOC_PROCESSES={:?}", String::from_utf8_lossy(l))
            }
            Some(l) => format!(
                "JVMALLOC_PROCESSES={:?} is not usable: only {default}",
                String::from_utf8_lossy(l)
            ),
        }
    }

    fn exe_name(&self) -> String {
        self.exe
            .as_deref()
            .map_or("?".into(), |e| String::from_utf8_lossy(e).into_owned())
    }
}

/// The threads of the target, as the checks need them.
struct Threads {
    count: usize,
    /// A thread named `jvmalloc` (the library's own) is there.
    jvmalloc: bool,
    /// Some other thread leaves the signal unblocked.
    deliverable: bool,
}

/// The process being asked.
pub struct Target {
    pub pid: u32,
    dir: PathBuf,
    /// Refers to this very process, even once its pid is reused; None where pidfds are
    /// not available (kernels before 5.3, some sandboxes).
    pidfd: Option<OwnedFd>,
}

/// The prefix of a `siginfo_t` that `sigqueue` fills: three ints (number, errno and code,
/// in the order of the C library's definition), then the union of fields, aligned as a
/// pointer, whose `_rt` member is the sender's pid and uid and the value.
#[repr(C)]
#[derive(Clone, Copy)]
struct Queued {
    _head: [c_int; 3],
    rt: Rt,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct Rt {
    pid: libc::pid_t,
    uid: libc::uid_t,
    value: *mut c_void,
}

/// A whole `siginfo_t` (what the kernel copies), written as [`Queued`].
#[repr(C)]
union SigInfo {
    whole: libc::siginfo_t,
    queued: Queued,
}

const _: () = assert!(size_of::<SigInfo>() == size_of::<libc::siginfo_t>());

impl SigInfo {
    /// What `sigqueue(getpid(), sig, value)` would send.
    fn queued(sig: c_int, value: u64) -> SigInfo {
        let mut info = SigInfo {
            // SAFETY: siginfo_t is plain data; all-zero is a valid value.
            whole: unsafe { core::mem::zeroed() },
        };
        info.whole.si_signo = sig;
        info.whole.si_code = libc::SI_QUEUE;
        // SAFETY: getpid and getuid have no preconditions. The `_rt` fields are written
        // through the `Queued` view, which overlays the same bytes.
        unsafe {
            info.queued.rt = Rt {
                pid: libc::getpid(),
                uid: libc::getuid(),
                value: value as usize as *mut c_void,
            };
        }
        info
    }
}

impl Target {
    pub fn open(pid: u32) -> Result<Target, String> {
        let dir = PathBuf::from(format!("/proc/{pid}"));
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as c_int, 0) };
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
        // /proc/<tid> exists for every thread, too; signalling a tid signals its process.
        if let Some(tgid) = status_field(&status, "Tgid") {
            if tgid != pid.to_string() {
                return Err(format!(
                    "{pid} is a thread of process {tgid}, not a process: use {tgid}"
                ));
            }
        }
        Ok(Target { pid, dir, pidfd })
    }

    fn read(&self, file: &str, what: &str) -> Result<Vec<u8>, String> {
        fs::read(self.dir.join(file)).map_err(|e| io_err(self.pid, what, &e))
    }

    /// Runs every check; returns the signal to send.
    pub fn check(&self) -> Result<c_int, String> {
        self.check_loaded()?;
        let env = self.read("environ", "the environment")?;
        let pid = self.pid;
        let sig = match environ_var(&env, "JVMALLOC_STATS_SIGNAL").map(names::parse_signal) {
            // The library uses USR1 for a value it does not accept (and says so at start).
            None | Some(Signal::Invalid) => libc::SIGUSR1,
            Some(Signal::Number(s)) => s,
            Some(Signal::Off) => {
                return Err(format!(
                    "process {pid} has requests on signal turned off (JVMALLOC_STATS_SIGNAL=off)"
                ))
            }
        };
        self.check_network_namespace()?;
        let scope = Scope {
            raw: environ_var(&env, "JVMALLOC_PROCESSES").map(<[u8]>::to_vec),
            exe: self.exe_name(),
        };
        self.check_caught(sig, &scope)?;
        let mut threads = self.threads(sig)?;
        // A process that has just started its first thread may not have named the
        // jvmalloc thread yet (it names itself as it starts): look again for a second.
        for _ in 0..20 {
            if threads.jvmalloc || threads.count == 1 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            threads = self.threads(sig)?;
        }
        if !threads.jvmalloc {
            return Err(if threads.count == 1 && scope.active() != Some(false) {
                format!(
                    "process {pid} has not started a thread yet, and the jvmalloc thread starts \
                     with the program's first: the request would only be answered when it \
                     exits; not sending it"
                )
            } else {
                format!(
                    "process {pid} has no jvmalloc thread to answer: it has not started a \
                     thread yet, or is out of jvmalloc's scope (it runs {}, and {}); not \
                     sending it",
                    scope.exe_name(),
                    scope.describe()
                )
            });
        }
        if !threads.deliverable {
            return Err(format!(
                "process {pid} blocks {} in every thread (jvmalloc's own thread blocks all \
                 signals by design): it would stay pending for ever; not sending it",
                signal_name(sig)
            ));
        }
        Ok(sig)
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

    /// Abstract socket names are per network namespace: the process could not reach the
    /// command's socket from another one (a container's). Not checked when unreadable.
    fn check_network_namespace(&self) -> Result<(), String> {
        let theirs = fs::read_link(self.dir.join("ns/net"));
        let ours = fs::read_link("/proc/self/ns/net");
        match (theirs, ours) {
            (Ok(t), Ok(o)) if t != o => Err(format!(
                "process {} is in another network namespace ({}, this command's is {}), from \
                 which it cannot reach the command's socket: run jvmalloc in its container, or \
                 with nsenter -t {} -n",
                self.pid,
                t.display(),
                o.display(),
                self.pid
            )),
            _ => Ok(()),
        }
    }

    /// The last component of `/proc/<pid>/exe`, as the library reads its own.
    fn exe_name(&self) -> Option<Vec<u8>> {
        use std::os::unix::ffi::OsStrExt;
        let path = fs::read_link(self.dir.join("exe")).ok()?;
        let name = path.file_name()?.as_bytes();
        Some(name.strip_suffix(b" (deleted)").unwrap_or(name).to_vec())
    }

    /// Refuses a signal that the process does not catch: at its default action it would
    /// end the process (or, ignored, do nothing at all). A process out of scope has no
    /// handler: the message says what JVMALLOC_PROCESSES holds.
    fn check_caught(&self, sig: c_int, scope: &Scope) -> Result<(), String> {
        let status = String::from_utf8_lossy(&self.read("status", "the status")?).into_owned();
        let pid = self.pid;
        let caught = status_mask(&status, "SigCgt").ok_or_else(|| {
            format!(
                "cannot read the signal actions of process {pid} (no SigCgt in /proc/{pid}/status); not sending it a signal"
            )
        })?;
        if has_signal(caught, sig) {
            return Ok(());
        }
        let why = match scope.active() {
            Some(false) => format!(
                "jvmalloc handles it only in processes that JVMALLOC_PROCESSES names, and this \
                 one runs {} ({})",
                scope.exe_name(),
                scope.describe()
            ),
            Some(true) => format!(
                "it is in jvmalloc's scope ({}), so the program changed the signal's action \
                 after jvmalloc installed its handler",
                scope.describe()
            ),
            None => format!(
                "jvmalloc handles it only in processes that JVMALLOC_PROCESSES names ({})",
                scope.describe()
            ),
        };
        Err(format!(
            "process {pid} does not catch {} (its action is the default, which would kill it, \
             or it is ignored); not sending it: {why}",
            signal_name(sig)
        ))
    }

    /// Counts the threads, looks for jvmalloc's, and for one that can take `sig` (not
    /// counting jvmalloc's own, which blocks every signal by design).
    fn threads(&self, sig: c_int) -> Result<Threads, String> {
        let tasks =
            fs::read_dir(self.dir.join("task")).map_err(|e| io_err(self.pid, "the threads", &e))?;
        let mut t = Threads {
            count: 0,
            jvmalloc: false,
            deliverable: false,
        };
        for task in tasks.flatten() {
            t.count += 1;
            let dir = task.path();
            // A thread that is gone, or unreadable, cannot take the signal.
            let Ok(comm) = fs::read(dir.join("comm")) else {
                continue;
            };
            if comm.trim_ascii_end() == b"jvmalloc" {
                t.jvmalloc = true;
                continue;
            }
            let Ok(status) = fs::read(dir.join("status")) else {
                continue;
            };
            let blocked = status_mask(&String::from_utf8_lossy(&status), "SigBlk");
            t.deliverable |= blocked.is_some_and(|m| !has_signal(m, sig));
        }
        Ok(t)
    }

    /// Sends `sig` with `token` as its value (`si_code` SI_QUEUE), as `sigqueue` does.
    pub fn send(&self, sig: c_int, token: u64) -> Result<(), String> {
        let pid = self.pid;
        let r = match &self.pidfd {
            Some(fd) => {
                let info = SigInfo::queued(sig, token);
                // SAFETY: pidfd_send_signal takes a pidfd we own, a signal number, a
                // pointer to a whole siginfo_t (read by the kernel only) and flags 0. A
                // negative si_code is allowed towards another process.
                unsafe {
                    libc::syscall(
                        libc::SYS_pidfd_send_signal,
                        fd.as_raw_fd(),
                        sig,
                        &info as *const SigInfo,
                        0,
                    )
                }
            }
            None => {
                let value = libc::sigval {
                    sival_ptr: token as usize as *mut c_void,
                };
                // SAFETY: sigqueue has no memory-safety preconditions; pid is in
                // 1..=i32::MAX (checked when the arguments were parsed), so it names one
                // process.
                i64::from(unsafe { libc::sigqueue(pid as libc::pid_t, sig, value) })
            }
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

    /// Whether the process has ended: its pidfd is readable, or (without one) its
    /// `/proc/<pid>` is gone or a zombie's.
    pub fn exited(&self) -> bool {
        let Some(fd) = &self.pidfd else {
            let Ok(stat) = fs::read(self.dir.join("stat")) else {
                return true;
            };
            // The state follows the parenthesised command name.
            let rest = stat.rsplit(|&b| b == b')').next().unwrap_or_default();
            return matches!(rest.trim_ascii_start().first(), Some(b'Z' | b'X'));
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
    fn the_queued_siginfo_has_the_c_library_layout() {
        let info = SigInfo::queued(libc::SIGUSR1, 0xfedc_ba98_7654_3210);
        // SAFETY: the union's siginfo_t is initialised; the accessors read its `_rt` fields.
        unsafe {
            assert_eq!(info.whole.si_signo, libc::SIGUSR1);
            assert_eq!(info.whole.si_code, libc::SI_QUEUE);
            assert_eq!(info.whole.si_errno, 0);
            assert_eq!(info.whole.si_pid(), libc::getpid());
            assert_eq!(info.whole.si_uid(), libc::getuid());
            assert_eq!(
                info.whole.si_value().sival_ptr as usize as u64,
                0xfedc_ba98_7654_3210
            );
        }
    }

    #[test]
    fn scope_follows_the_librarys_rules() {
        let s = |raw: Option<&str>, exe: &str| Scope {
            raw: raw.map(|r| r.as_bytes().to_vec()),
            exe: Some(exe.as_bytes().to_vec()),
        };
        assert_eq!(s(None, "java").active(), Some(true));
        assert_eq!(s(None, "dump_target").active(), Some(false));
        assert_eq!(s(Some("*"), "dump_target").active(), Some(true));
        // An unusable list means the default.
        assert_eq!(s(Some("/usr/bin/x"), "java").active(), Some(true));
        assert!(s(None, "x").describe().contains("unset: only java"));
        assert!(s(Some("sh,java"), "x")
            .describe()
            .contains("JVMALLOC_PROCESSES=\"sh,java\""));
        let unknown = Scope {
            raw: None,
            exe: None,
        };
        assert_eq!(unknown.active(), None);
    }
}

//! The `jvmalloc` thread: turns signals, timers and calls into statistics dumps, and runs
//! the purge and the pressure guard ([`crate::purge`], [`crate::guard`]) on their timer.
//!
//! The signal handler only writes one byte to a non-blocking pipe (async-signal-safe; a
//! full pipe means a dump is already pending, so a burst of signals coalesces) and then
//! calls the handler that was installed before ours, if it was a function. The reporter
//! thread, started at load with every signal blocked, waits on that pipe and on the
//! periodic-dump timer, then builds and writes the dump. `jvmalloc_dump_stats()` and the
//! at-exit dump build it on the calling thread instead. One dump is written at a time.

use crate::config::Config;
use crate::diag::say;
use crate::guard::Guard;
use crate::purge::Purger;
use crate::{init, names, report, stats};
use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering::*};
use std::io::Write;

static PIPE_R: AtomicI32 = AtomicI32::new(-1);
static PIPE_W: AtomicI32 = AtomicI32::new(-1);
static SEQ: AtomicU64 = AtomicU64::new(1);
static DUMPING: AtomicBool = AtomicBool::new(false);
static FILE_WARNED: AtomicBool = AtomicBool::new(false);
/// In a child of fork(): the reporter thread has not been started yet.
static CHILD_PENDING: AtomicBool = AtomicBool::new(false);
/// CLOCK_MONOTONIC at load, in nanoseconds.
static LOADED_NS: AtomicU64 = AtomicU64::new(0);

struct OldAction(UnsafeCell<libc::sigaction>);
// SAFETY: written once in `install_handler` before the handler that reads it is
// installed; read-only afterwards.
unsafe impl Sync for OldAction {}
// SAFETY: sigaction is plain old data; all-zero is SIG_DFL with no flags.
static OLD_ACTION: OldAction = OldAction(UnsafeCell::new(unsafe { core::mem::zeroed() }));

pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn uptime_s() -> f64 {
    (monotonic_ns() - LOADED_NS.load(Relaxed)) as f64 / 1e9
}

/// Sets up dumps as configured: handler, reporter thread, at-exit hook. Called at load.
pub fn start(cfg: &Config) {
    LOADED_NS.store(monotonic_ns(), Relaxed);
    let s = &cfg.stats;
    if let Some(sig) = s.signal {
        if open_pipe() {
            install_handler(sig);
        }
    }
    spawn_if_needed(cfg);
    if s.at_exit {
        // SAFETY: registers a plain extern "C" function.
        unsafe { libc::atexit(at_exit) };
    }
}

/// Whether this configuration needs the reporter thread at all.
fn needs_thread(cfg: &Config) -> bool {
    cfg.stats.signal.is_some()
        || cfg.stats.interval_s > 0
        || cfg.purge.interval_ms > 0
        || cfg.purge.background_thread
}

fn open_pipe() -> bool {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) } != 0 {
        say!("cannot create the statistics pipe; dumps on signal are off");
        return false;
    }
    PIPE_R.store(fds[0], Relaxed);
    PIPE_W.store(fds[1], Release);
    true
}

extern "C" fn on_signal(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: errno slot of this thread; saved and restored around our write.
    let saved = unsafe { *libc::__errno_location() };
    let fd = PIPE_W.load(Acquire);
    if fd >= 0 {
        // SAFETY: write(2) is async-signal-safe; a full pipe (EAGAIN) is fine.
        unsafe { libc::write(fd, b"s".as_ptr().cast(), 1) };
    }
    // SAFETY: restoring errno.
    unsafe { *libc::__errno_location() = saved };
    // SAFETY: OLD_ACTION was written before this handler was installed.
    let old = unsafe { &*OLD_ACTION.0.get() };
    let h = old.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return;
    }
    if old.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler was installed with SA_SIGINFO, so it has this type.
        let f: extern "C" fn(c_int, *mut libc::siginfo_t, *mut c_void) =
            unsafe { core::mem::transmute(h) };
        f(sig, info, ctx);
    } else {
        // SAFETY: a non-SA_SIGINFO handler takes the signal number only.
        let f: extern "C" fn(c_int) = unsafe { core::mem::transmute(h) };
        f(sig);
    }
}

fn install_handler(sig: c_int) {
    // SAFETY: zeroed sigaction is valid; fields are then set; OLD_ACTION is written before
    // the new handler can run (sigaction stores the old action first, atomically).
    unsafe {
        let mut act: libc::sigaction = core::mem::zeroed();
        act.sa_sigaction = on_signal as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART | libc::SA_ONSTACK;
        libc::sigfillset(&mut act.sa_mask);
        libc::sigaction(sig, core::ptr::null(), OLD_ACTION.0.get());
        if libc::sigaction(sig, &act, core::ptr::null_mut()) != 0 {
            say!("cannot install the statistics signal handler for signal {sig}");
        }
    }
}

/// Starts the reporter thread with every signal blocked (it inherits the mask).
fn spawn_if_needed(cfg: &Config) {
    if !needs_thread(cfg) {
        return;
    }
    // SAFETY: sigset_t is plain data; we block all signals around the spawn and restore
    // the caller's mask afterwards.
    unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let r = std::thread::Builder::new()
            .name("jvmalloc".into())
            .stack_size(256 << 10)
            .spawn(run);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        if r.is_err() {
            say!("cannot start the jvmalloc reporter thread; dumps on signal and periodic dumps are off");
        }
    }
}

/// The reporter thread's loop: dumps on signal and on the dump timer; purge and pressure
/// checks on the purge timer.
fn run() {
    let cfg = init::config();
    let dump_every = cfg.stats.interval_s * 1_000_000_000;
    let purge_every = cfg.purge.interval_ms * 1_000_000;
    let mut purger = Purger::new(cfg);
    let mut guard = Guard::default();
    let now = monotonic_ns();
    let mut next_dump = (dump_every > 0).then(|| now + dump_every);
    let mut next_purge = (purge_every > 0).then(|| now + purge_every);
    loop {
        let fd = PIPE_R.load(Acquire);
        let next = [next_dump, next_purge].into_iter().flatten().min();
        let timeout_ms: c_int = match next {
            None => -1,
            Some(t) => {
                (t.saturating_sub(monotonic_ns()) / 1_000_000).min(c_int::MAX as u64) as c_int
            }
        };
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd (fd may be -1, which poll ignores).
        let r = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
        let mut dump = false;
        if r > 0 && pfd.revents & libc::POLLIN != 0 {
            let mut buf = [0u8; 256];
            // Drain: many signals, one dump.
            // SAFETY: reading into a local buffer from our non-blocking pipe.
            while unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
            dump = true;
        }
        let now = monotonic_ns();
        if next_purge.is_some_and(|t| now >= t) {
            next_purge = Some(now + purge_every);
            purger.tick(cfg);
            dump |= guard.check(cfg, now);
        }
        if next_dump.is_some_and(|t| now >= t) {
            next_dump = Some(now + dump_every);
            dump = true;
        }
        if dump {
            dump_now();
        }
    }
}

/// Builds a dump on the calling thread and writes it where configured. Returns whether it
/// was written to its configured destination.
pub fn dump_now() -> bool {
    let cfg = init::config();
    while DUMPING
        .compare_exchange(false, true, Acquire, Relaxed)
        .is_err()
    {
        std::thread::yield_now();
    }
    let seq = SEQ.fetch_add(1, Relaxed);
    let snap = stats::take(seq, cfg, uptime_s());
    let text = report::render(&snap, cfg.stats.format);
    let ok = write_dump(cfg, seq, snap.unix_time, text.as_bytes());
    DUMPING.store(false, Release);
    ok
}

fn write_file(path: &str, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp.{}", std::process::id());
    let res = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes))
        .and_then(|_| std::fs::rename(&tmp, path));
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

fn write_dump(cfg: &Config, seq: u64, unix: u64, bytes: &[u8]) -> bool {
    if let Some(template) = cfg.stats.file {
        let path = String::from_utf8_lossy(&names::expand(
            template,
            std::process::id(),
            Some(seq),
            Some(unix),
        ))
        .into_owned();
        match write_file(&path, bytes) {
            Ok(()) => return true,
            Err(e) => {
                if !FILE_WARNED.swap(true, Relaxed) {
                    say!("cannot write statistics to \"{path}\" ({e}); writing them to stderr");
                }
            }
        }
        crate::sysfile::write_all(2, bytes);
        return false;
    }
    crate::sysfile::write_all(2, bytes);
    true
}

extern "C" fn at_exit() {
    dump_now();
}

/// In a forked child: no reporter thread and no dump in progress exist; the pipe is shared
/// with the parent, so the child gets its own. Its reporter thread is only started when the
/// child starts a thread of its own ([`start_in_child`]): a thread in the child would make
/// every fork + exec slower (exec has to wait for the thread to be scheduled and killed;
/// about 0.3 ms here, several ms when the parent keeps the CPUs busy), and a child that
/// stays single-threaded must stay so. Signals that arrive meanwhile wait in the pipe.
pub fn after_fork_child() {
    DUMPING.store(false, Relaxed);
    let cfg = init::config();
    if PIPE_W.load(Relaxed) >= 0 {
        // SAFETY: closing our own descriptors (the copies in this process).
        unsafe {
            libc::close(PIPE_R.load(Relaxed));
            libc::close(PIPE_W.load(Relaxed));
        }
        PIPE_W.store(-1, Release);
        open_pipe();
    }
    CHILD_PENDING.store(needs_thread(cfg), Release);
}

/// Starts the reporter thread of a forked child, if it is still owed one. Called as the
/// child creates a thread (from the interposed `pthread_create`, never from an allocation).
pub fn start_in_child() {
    if CHILD_PENDING.load(Acquire) && CHILD_PENDING.swap(false, AcqRel) {
        spawn_if_needed(init::config());
    }
}

/// Writes a statistics dump now, on the calling thread, to the configured destination
/// (`JVMALLOC_STATS_FILE` or stderr) in the configured format. Returns 0 when written
/// there, -1 when it went to stderr instead because the file could not be written.
#[no_mangle]
pub extern "C" fn jvmalloc_dump_stats() -> c_int {
    if dump_now() {
        0
    } else {
        -1
    }
}

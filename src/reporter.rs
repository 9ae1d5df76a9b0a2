//! The `jvmalloc` thread: turns signals, timers and calls into statistics dumps, and runs
//! the purge and the pressure guard ([`crate::purge`], [`crate::guard`]) on their timer.
//!
//! Only processes in scope get any of this ([`crate::scope`]). There, at load, the signal
//! handler is installed and an at-exit hook registered; the thread itself starts with the
//! program's first thread ([`start_lazily`], from the interposed `pthread_create`), so a
//! program that never starts a thread never gets one. The handler counts a request and
//! posts a futex ([`crate::futex::Event`]: async-signal-safe, no descriptor), then calls
//! the handler that was installed before it, with that handler's own mask. The thread,
//! started with every signal blocked, waits on the futex and on its timers, then builds
//! and writes the dump. A request that no thread has served yet (a program that is still
//! single-threaded, or that exits right after the signal) is written at exit.
//!
//! A signal sent with `sigqueue` and a value is a request of the `jvmalloc` command: the
//! thread answers it over [`crate::request`]'s channel instead of writing a dump where
//! configured. The thread also serves metrics ([`crate::exporter`]).
//!
//! When the program's last thread exits, [`stop_for_last_thread`] ends this thread first,
//! so that the process ends as it would without the library (see [`crate::threads`]).

use crate::clock::monotonic_ns;
use crate::config::Config;
use crate::diag::say;
use crate::exporter::Exporter;
use crate::futex::{Event, Lock};
use crate::guard::Guard;
use crate::purge::Purger;
use crate::{init, jemalloc, metrics, names, profile, report, request, stats};
use core::cell::UnsafeCell;
use core::ffi::{c_int, c_void};
use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};

/// Wakes the thread: a dump request or a stop.
static WAKE: Event = Event::new();
/// Dump requests (signals) not yet served.
static REQUESTS: AtomicU32 = AtomicU32::new(0);
/// Set by [`stop_for_last_thread`]: the thread returns at its next wake-up.
static STOP: AtomicBool = AtomicBool::new(false);
static SEQ: AtomicU64 = AtomicU64::new(1);
/// One dump at a time.
static DUMPING: Lock = Lock::new();
static FILE_WARNED: AtomicBool = AtomicBool::new(false);
static METRICS_WARNED: AtomicBool = AtomicBool::new(false);
/// CLOCK_MONOTONIC at load, in nanoseconds.
static LOADED_NS: AtomicU64 = AtomicU64::new(0);

/// The thread's state.
const IDLE: u8 = 0;
const STARTING: u8 = 1;
const RUNNING: u8 = 2;
/// It could not be started; not tried again.
const FAILED: u8 = 3;
/// Told to stop; it will end at its next wake-up (joined, or left to end by itself).
const STOPPING: u8 = 4;
static STATE: AtomicU8 = AtomicU8::new(IDLE);
/// The thread's `pthread_t` while RUNNING (joinable).
static HANDLE: AtomicUsize = AtomicUsize::new(0);
/// The kernel thread id of the thread creating the `jvmalloc` thread, while it does.
static SPAWNER: AtomicU32 = AtomicU32::new(0);

struct OldAction(UnsafeCell<libc::sigaction>);
// SAFETY: written once, in `install_handler`, before our handler is installed; read-only
// afterwards.
unsafe impl Sync for OldAction {}
// SAFETY: sigaction is plain old data; all-zero is SIG_DFL with no flags.
static OLD_ACTION: OldAction = OldAction(UnsafeCell::new(unsafe { core::mem::zeroed() }));

fn uptime_s() -> f64 {
    (monotonic_ns() - LOADED_NS.load(Relaxed)) as f64 / 1e9
}

/// Sets up dumps in a process in scope: the handler and the at-exit hook. Called at load.
pub fn start(cfg: &Config) {
    LOADED_NS.store(monotonic_ns(), Relaxed);
    if let Some(sig) = cfg.stats.signal {
        install_handler(sig);
    }
    // SAFETY: registers a plain extern "C" function.
    unsafe { libc::atexit(at_exit) };
}

/// Whether this configuration needs the thread at all.
fn needs_thread(cfg: &Config) -> bool {
    cfg.stats.signal.is_some()
        || cfg.stats.interval_s > 0
        || cfg.stats.metrics_addr.is_some()
        || cfg.stats.metrics_file.is_some()
        || cfg.purge.interval_ms > 0
        || cfg.purge.background_thread
}

extern "C" fn on_signal(sig: c_int, info: *mut libc::siginfo_t, ctx: *mut c_void) {
    // SAFETY: with SA_SIGINFO the kernel passes a valid siginfo_t; si_value is meaningful
    // when si_code is SI_QUEUE (sigqueue), which is checked first.
    let token = unsafe {
        if !info.is_null() && (*info).si_code == libc::SI_QUEUE {
            (*info).si_value().sival_ptr as u64
        } else {
            0
        }
    };
    if token == 0 || !request::post(token) {
        REQUESTS.fetch_add(1, Release);
    }
    WAKE.post();
    // SAFETY: OLD_ACTION was written before this handler could run (or is still zeroed,
    // SIG_DFL, in the instant of the installing call).
    let old = unsafe { &*OLD_ACTION.0.get() };
    let h = old.sa_sigaction;
    if h == libc::SIG_DFL || h == libc::SIG_IGN {
        return;
    }
    // The previous handler runs as the kernel would have run it: with its own sa_mask
    // blocked, and the signal itself unless it asked for SA_NODEFER.
    // SAFETY: sigset_t is plain data; sigaddset and pthread_sigmask are async-signal-safe.
    let saved = unsafe {
        let mut mask = old.sa_mask;
        if old.sa_flags & libc::SA_NODEFER == 0 {
            libc::sigaddset(&mut mask, sig);
        }
        let mut saved: libc::sigset_t = core::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &mask, &mut saved);
        saved
    };
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
    // SAFETY: restores the mask this handler started with.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &saved, core::ptr::null_mut()) };
}

/// Installs the handler. The previous action is read first and stored whole before ours is
/// installed, so the handler never sees half of it. Our handler blocks nothing extra and may
/// nest (it only counts and posts), so the previous handler's own mask and flags decide what
/// is blocked when it runs; interrupted system calls restart as the previous handler asked
/// (`SA_RESTART`), or always when there was none. The gap between reading and installing is
/// at load, in a constructor, before the program's own code runs.
fn install_handler(sig: c_int) {
    // SAFETY: zeroed sigactions are valid; sigaction reads the current action into `old`;
    // OLD_ACTION is written before our handler, which reads it, can run.
    unsafe {
        let mut old: libc::sigaction = core::mem::zeroed();
        libc::sigaction(sig, core::ptr::null(), &mut old);
        *OLD_ACTION.0.get() = old;
        let handler = old.sa_sigaction != libc::SIG_DFL && old.sa_sigaction != libc::SIG_IGN;
        let restart = if handler {
            old.sa_flags & libc::SA_RESTART
        } else {
            libc::SA_RESTART
        };
        let mut act: libc::sigaction = core::mem::zeroed();
        act.sa_sigaction = on_signal as *const () as usize;
        act.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER | restart;
        libc::sigemptyset(&mut act.sa_mask);
        if libc::sigaction(sig, &act, core::ptr::null_mut()) != 0 {
            say!("cannot install the statistics signal handler for signal {sig}");
        }
    }
}

/// Starts the thread if this process needs one and does not have it yet. Called from the
/// interposed `pthread_create`, never from an allocation.
pub fn start_lazily() {
    if STATE.load(Acquire) != IDLE || !needs_thread(init::config()) {
        return;
    }
    if STATE
        .compare_exchange(IDLE, STARTING, AcqRel, Relaxed)
        .is_err()
    {
        return;
    }
    STOP.store(false, Relaxed);
    SPAWNER.store(gettid(), Relaxed);
    // SAFETY: sigset_t is plain data; every signal is blocked around the spawn (the new
    // thread inherits that mask) and the caller's mask is restored afterwards.
    let spawned = unsafe {
        let mut all: libc::sigset_t = core::mem::zeroed();
        let mut old: libc::sigset_t = core::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let r = std::thread::Builder::new()
            .name("jvmalloc".into())
            .stack_size(256 << 10)
            .spawn(run);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, core::ptr::null_mut());
        r
    };
    SPAWNER.store(0, Relaxed);
    match spawned {
        Ok(h) => {
            use std::os::unix::thread::JoinHandleExt;
            // Kept joinable: the program's last thread joins it.
            HANDLE.store(h.into_pthread_t() as usize, Relaxed);
            STATE.store(RUNNING, Release);
        }
        Err(_) => {
            STATE.store(FAILED, Release);
            say!("cannot start the jvmalloc thread; dumps on signal, periodic dumps and purging are off");
        }
    }
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Whether the calling thread is creating the `jvmalloc` thread right now (so that the
/// interposed `pthread_create` does not count it as one of the program's threads).
pub fn spawning_here() -> bool {
    let s = SPAWNER.load(Relaxed);
    s != 0 && s == gettid()
}

/// Called by the program's last thread as it exits: ends the `jvmalloc` thread and waits
/// for it (at most 10 s, if it is in the middle of writing a dump), so that the process
/// ends when that thread does, as without the library.
pub fn stop_for_last_thread() {
    // jemalloc's own background threads (JVMALLOC_BACKGROUND_THREAD=1) are started past
    // the interposed pthread_create, so nothing counted them either: stopping them (which
    // joins them) keeps them from holding the process up.
    if jemalloc::read::<bool>(c"background_thread").unwrap_or(false) {
        jemalloc::write(c"background_thread", false);
    }
    // One stopper: the count can reach zero twice if uncounted threads (started before
    // the library loaded, or by the C library itself) create threads meanwhile.
    if STATE
        .compare_exchange(RUNNING, STOPPING, AcqRel, Acquire)
        .is_err()
    {
        return;
    }
    STOP.store(true, Release);
    WAKE.post();
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; the handle is our joinable thread, joined once:
    // only the thread that moved STATE from RUNNING to STOPPING gets here.
    let joined = unsafe {
        libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts);
        ts.tv_sec += 10;
        libc::pthread_timedjoin_np(
            HANDLE.load(Relaxed) as libc::pthread_t,
            core::ptr::null_mut(),
            &ts,
        )
    } == 0;
    if joined {
        STATE.store(IDLE, Release);
    }
}

/// The thread's loop: dumps and requests on signal, dumps on the dump timer, purge and
/// pressure checks on the purge timer, metrics when asked for or on the metrics timer.
fn run() {
    let cfg = init::config();
    let dump_every = cfg.stats.interval_s * 1_000_000_000;
    let purge_every = cfg.purge.interval_ms * 1_000_000;
    let metrics_every = cfg.stats.metrics_interval_s * 1_000_000_000;
    let mut purger = Purger::new(cfg);
    let mut guard = Guard::default();
    let mut exporter = Exporter::new(cfg);
    let now = monotonic_ns();
    let mut next_dump = (dump_every > 0).then(|| now + dump_every);
    let mut next_purge = (purge_every > 0).then(|| now + purge_every);
    let mut next_metrics = cfg.stats.metrics_file.map(|_| now);
    loop {
        let next = [next_dump, next_purge, next_metrics]
            .into_iter()
            .flatten()
            .min();
        let timeout = next.map(|t| t.saturating_sub(monotonic_ns()));
        if exporter.listening() {
            // Signals wake the futex, not poll: look at it at least every 100 ms.
            // Rounded up: a timeout under 1 ms must not become a busy poll(0).
            let ms = timeout.map_or(100, |t| t.div_ceil(1_000_000).min(100)) as i32;
            exporter.poll(ms);
        } else {
            WAKE.wait(timeout);
        }
        WAKE.take();
        if STOP.load(Acquire) {
            return;
        }
        let unanswered = request::serve_pending(&mut answer);
        REQUESTS.fetch_add(unanswered, AcqRel);
        exporter.serve(&mut || metrics::render(&snapshot(false)));
        let mut dump = REQUESTS.swap(0, AcqRel) > 0;
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
        if next_metrics.is_some_and(|t| now >= t) {
            next_metrics = Some(now + metrics_every);
            write_metrics_file(cfg);
        }
        if dump {
            dump_now();
        }
    }
}

/// The previous dump's RSS split, for the next dump's headline.
struct Previous(UnsafeCell<Option<stats::Baseline>>);
// SAFETY: only accessed by the thread holding DUMPING (see `snapshot`).
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(UnsafeCell::new(None));

/// A snapshot, taken while no other is (the registry's slots are read one reader at a
/// time). A dump (`is_dump`) is compared with the previous dump and becomes the next
/// one's baseline; metrics are not.
fn snapshot(is_dump: bool) -> stats::Snapshot {
    let cfg = init::config();
    let _one_at_a_time = DUMPING.lock();
    // SAFETY: DUMPING is held, so no other thread touches PREVIOUS.
    let previous = unsafe { &mut *PREVIOUS.0.get() };
    let s = stats::take(
        SEQ.fetch_add(1, Relaxed),
        cfg,
        uptime_s(),
        previous.as_ref().filter(|_| is_dump),
    );
    if is_dump {
        *previous = Some(s.baseline());
    }
    let mut s = s;
    s.profile = profile::summary();
    s
}

/// The answer to a request of the `jvmalloc` command ([`crate::request`]).
fn answer(what: &str) -> Result<Vec<u8>, String> {
    let format = match what {
        "dump text" => crate::config::Format::Text,
        "dump json" => crate::config::Format::Json,
        "metrics" => return Ok(metrics::render(&snapshot(false)).into_bytes()),
        "profile" => {
            let unix = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            return profile::raw_json(std::process::id(), unix, uptime_s()).map(String::into_bytes);
        }
        "profile start" | "profile stop" => {
            let on = what == "profile start";
            let was = profile::set_active(on)?;
            let state = |b: bool| if b { "active" } else { "inactive" };
            return Ok(format!(
                "sampling {} (was {}); one sample every {} bytes on average\n",
                state(on),
                state(was),
                profile::sample_interval()
            )
            .into_bytes());
        }
        _ => return Err(format!("unknown request {what:?}")),
    };
    Ok(report::render(&snapshot(true), format).into_bytes())
}

fn write_metrics_file(cfg: &Config) {
    let Some(template) = cfg.stats.metrics_file else {
        return;
    };
    let path = names::expand(template, std::process::id(), Some(0), Some(0));
    if let Err(e) =
        crate::dumpfile::write(&path, metrics::render(&snapshot(false)).as_bytes(), 0o644)
    {
        if !METRICS_WARNED.swap(true, Relaxed) {
            let mut l = crate::diag::Line::new();
            let _ = core::fmt::Write::write_str(&mut l, "cannot write metrics to ");
            l.quoted(&path, 256);
            let _ = core::fmt::Write::write_fmt(&mut l, format_args!(" ({e})"));
        }
    }
}

/// Builds a dump on the calling thread and writes it where configured. Returns whether it
/// was written to its configured destination. Waits (asleep) while another dump is being
/// written.
pub fn dump_now() -> bool {
    let cfg = init::config();
    let snap = snapshot(true);
    let text = report::render(&snap, cfg.stats.format);
    write_dump(cfg, snap.seq, snap.unix_time, text.as_bytes())
}

fn write_dump(cfg: &Config, seq: u64, unix: u64, bytes: &[u8]) -> bool {
    if let Some(template) = cfg.stats.file {
        let path = names::expand(template, std::process::id(), Some(seq), Some(unix));
        match crate::dumpfile::write(&path, bytes, 0o600) {
            Ok(()) => return true,
            Err(e) => {
                if !FILE_WARNED.swap(true, Relaxed) {
                    let mut l = crate::diag::Line::new();
                    let _ = core::fmt::Write::write_str(&mut l, "cannot write statistics to ");
                    l.quoted(&path, 256);
                    let _ = core::fmt::Write::write_fmt(
                        &mut l,
                        format_args!(" ({e}); writing them to stderr"),
                    );
                }
            }
        }
        crate::sysfile::write_all(2, bytes);
        return false;
    }
    crate::sysfile::write_all(2, bytes);
    true
}

/// At exit: a request no thread has served yet, and the at-exit dump if configured (one
/// dump for both).
extern "C" fn at_exit() {
    let unanswered = request::serve_pending(&mut answer);
    let pending = REQUESTS.swap(0, AcqRel) + unanswered > 0;
    if pending || init::config().stats.at_exit {
        dump_now();
    }
}

/// In a forked child: the thread, and any dump in progress, stayed in the parent. The
/// child gets its own thread when it starts a thread of its own ([`start_lazily`]): a
/// thread in every child would slow each fork + exec (exec has to wait for it to be
/// scheduled and killed), and a child that stays single-threaded must stay so. Requests
/// the parent had not served are the parent's.
pub fn after_fork_child() {
    DUMPING.reset();
    // SAFETY: in the child only this thread exists; the parent's baseline is not ours
    // (left allocated: nothing here frees).
    core::mem::forget(unsafe { (*PREVIOUS.0.get()).take() });
    REQUESTS.store(0, Relaxed);
    request::clear();
    crate::exporter::after_fork_child();
    WAKE.take();
    STOP.store(false, Relaxed);
    HANDLE.store(0, Relaxed);
    SPAWNER.store(0, Relaxed);
    if STATE.load(Relaxed) != FAILED {
        STATE.store(IDLE, Relaxed);
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

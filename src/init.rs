//! One-time initialisation, safe to reach from the first `malloc` of the process.
//!
//! Another library's constructor (libstdc++'s exception pool, for one) or the dynamic loader
//! may call `malloc` before jvmalloc's own constructor runs. Every exported allocation
//! function therefore checks [`ready`] first: on the fast path one atomic load ([`done`]),
//! tested inline by the exports, which call [`ready`] from a cold function otherwise. The
//! first caller reads the configuration (raw system calls only, nothing that allocates),
//! hands jemalloc its options and initialises jemalloc. Another thread that arrives
//! meanwhile waits; the initialising thread itself, re-entering because something
//! jemalloc's initialisation calls was interposed by an allocating library, is told "not
//! ready" and served from [`crate::boot`] instead of waiting for itself. Once it is over,
//! [`crate::exports::arm_fast_paths`] opens the shorter paths of `free` and `realloc`.
//!
//! At load ([`on_load`]), a process in scope (see [`crate::scope`]) also gets the thread
//! registry, the signal handler and the fork handler; everything else gets the allocator
//! alone.

use crate::config::{self, Config};
use crate::diag::say;
use crate::jemalloc;
use core::cell::UnsafeCell;
use core::ffi::{c_void, CStr};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU32, AtomicU8, AtomicUsize, Ordering};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);
/// The kernel thread id of the thread initialising (0 before anyone does).
static INIT_TID: AtomicU32 = AtomicU32::new(0);

struct ConfigCell(UnsafeCell<MaybeUninit<Config>>);
// SAFETY: written once by the thread that moves STATE from UNINIT to RUNNING, read only
// after STATE is DONE (Release/Acquire), never written again.
unsafe impl Sync for ConfigCell {}
static CONFIG: ConfigCell = ConfigCell(UnsafeCell::new(MaybeUninit::uninit()));

fn raw_gettid() -> u32 {
    // SAFETY: gettid has no preconditions; a raw system call does not enter the C library.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// Whether jemalloc may serve this thread now; initialises on the first call. `false` only
/// for the initialising thread re-entering during initialisation: serve it from
/// [`crate::boot`].
#[inline(always)]
pub fn ready() -> bool {
    done() || slow()
}

/// Whether initialisation is over (then [`ready`] is `true` for every thread, for good).
#[inline(always)]
pub fn done() -> bool {
    STATE.load(Ordering::Acquire) == DONE
}

/// Makes sure jvmalloc is configured, for entry points other than allocation (a re-entrant
/// call during initialisation goes on with jemalloc as it is).
#[inline(always)]
pub fn ensure() {
    let _ = ready();
}

#[cold]
#[inline(never)]
fn slow() -> bool {
    let me = raw_gettid();
    match STATE.compare_exchange(UNINIT, RUNNING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            INIT_TID.store(me, Ordering::Relaxed);
            let cfg = config::load();
            let mut buf = [0u8; 1024];
            jemalloc::set_options(cfg.jemalloc_options(&mut buf));
            // SAFETY: we won the race (see ConfigCell); nobody reads CONFIG before DONE.
            unsafe { (*CONFIG.0.get()).write(cfg) };
            // jemalloc initialises on its first call. Whatever it calls that
            // comes back to malloc on this thread finds STATE at RUNNING and our tid, and
            // is served from the bootstrap heap rather than re-entering jemalloc's own
            // initialisation.
            jemalloc::initialise();
            STATE.store(DONE, Ordering::Release);
            crate::exports::arm_fast_paths();
            if cfg.verbose {
                cfg.print();
            }
            true
        }
        Err(_) if INIT_TID.load(Ordering::Relaxed) == me => false,
        Err(_) => {
            while STATE.load(Ordering::Acquire) != DONE {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
            true
        }
    }
}

/// The effective configuration.
pub fn config() -> &'static Config {
    ensure();
    // SAFETY: either STATE is DONE, or this is the initialising thread re-entering from
    // jemalloc's initialisation, which `slow` starts only after writing CONFIG
    // (`config::load` itself reaches no exported function). CONFIG is never written again.
    unsafe { (*CONFIG.0.get()).assume_init_ref() }
}

/// Where `malloc` resolves when it is not jvmalloc's (another allocator preloaded before
/// it), as the path of the library that defines it; 0 when it is ours or unknown.
static FOREIGN_MALLOC: AtomicUsize = AtomicUsize::new(0);

/// The library whose `malloc` the program uses instead of jvmalloc's, if any.
pub fn foreign_malloc() -> Option<&'static CStr> {
    let p = FOREIGN_MALLOC.load(Ordering::Relaxed);
    // SAFETY: a non-zero value is dladdr's dli_fname: a NUL-terminated string owned by the
    // dynamic loader for as long as the library stays loaded (preloads never unload).
    (p != 0).then(|| unsafe { CStr::from_ptr(p as *const libc::c_char) })
}

/// The object (`dli_fbase`, `dli_fname`) that holds address `p`.
fn object_of(p: *const c_void) -> Option<(usize, *const libc::c_char)> {
    // SAFETY: zeroed Dl_info is a valid out-parameter for dladdr.
    let mut info: libc::Dl_info = unsafe { core::mem::zeroed() };
    // SAFETY: `p` is an address in a loaded object; `info` is a valid out-pointer.
    let found = unsafe { libc::dladdr(p, &mut info) } != 0;
    found.then_some((info.dli_fbase as usize, info.dli_fname))
}

/// The path of the object that holds address `p` (as the loader names it).
pub fn object_path(p: *const ()) -> Option<&'static CStr> {
    let (_, name) = object_of(p.cast())?;
    // SAFETY: dli_fname is a NUL-terminated string owned by the dynamic loader for as long
    // as the object stays loaded (jvmalloc, preloaded, never unloads).
    (!name.is_null()).then(|| unsafe { CStr::from_ptr(name) })
}

/// Checks that the program's `malloc` is ours; says once on stderr when it is not. The
/// address of our exported `malloc` cannot be used for the comparison (taken here, it goes
/// through the global offset table and is the winning definition's), so the objects are
/// compared instead.
fn check_malloc_binding() {
    // SAFETY: dlsym with a NUL-terminated name; called from the constructor, not from
    // malloc (it may allocate, which is fine once initialised).
    let sym = unsafe { libc::dlsym(libc::RTLD_DEFAULT, c"malloc".as_ptr()) };
    let Some((theirs, name)) = object_of(sym) else {
        return;
    };
    let ours = object_of(check_malloc_binding as *const () as *const c_void).map(|o| o.0);
    if sym.is_null() || ours == Some(theirs) || name.is_null() {
        return;
    }
    FOREIGN_MALLOC.store(name as usize, Ordering::Relaxed);
    say!(
        "malloc resolves to {}, not to jvmalloc (another allocator is preloaded before it): \
         the program's memory bypasses jvmalloc and its statistics describe only its own",
        foreign_malloc().map_or("?".into(), |c| c.to_string_lossy())
    );
}

/// Runs when the library is loaded: configuration (unless an earlier allocation already
/// read it); in a process in scope, the thread registry (registering this, the main
/// thread), the signal handler, and the fork handler.
extern "C" fn on_load() {
    let cfg = config();
    if !cfg.active {
        return;
    }
    crate::threads::init(cfg.stats.threads);
    crate::reporter::start(cfg);
    check_malloc_binding();
    // Child handlers run in the order they were registered (POSIX). jemalloc registered its
    // own when it initialised (in `slow`, before this), and its child handler re-creates
    // the locks its prepare handler took: ours runs after it, so nothing of ours in the
    // child can reach jemalloc before that.
    // SAFETY: a plain extern "C" handler; see above for the order.
    unsafe { libc::pthread_atfork(None, None, Some(after_fork_child)) };
}

/// In the child of fork(), after jemalloc's own child handler: the registry and the
/// reporter are made to match the one thread the child has. Nothing here allocates or
/// starts a thread (see [`crate::reporter::after_fork_child`]).
extern "C" fn after_fork_child() {
    crate::threads::after_fork_child();
    crate::reporter::after_fork_child();
}

#[used]
#[link_section = ".init_array"]
static ON_LOAD: extern "C" fn() = on_load;

//! One-time initialisation, safe to reach from the first `malloc` of the process.
//!
//! Another library's constructor (libstdc++'s exception pool, for one) or the dynamic loader
//! may call `malloc` before jvmalloc's own constructor runs. Every exported entry point
//! therefore calls [`ensure`] first: one atomic load on the fast path. The first caller reads
//! the configuration and hands jemalloc its options before jemalloc initialises; a thread
//! that arrives meanwhile waits (the work involves no allocation and no lock, so it ends).

use crate::config::{self, Config};
use crate::jemalloc;
use core::cell::UnsafeCell;
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, Ordering};

const UNINIT: u8 = 0;
const RUNNING: u8 = 1;
const DONE: u8 = 2;

static STATE: AtomicU8 = AtomicU8::new(UNINIT);

struct ConfigCell(UnsafeCell<MaybeUninit<Config>>);
// SAFETY: written once by the thread that moves STATE from UNINIT to RUNNING, read only
// after STATE is DONE (Release/Acquire), never written again.
unsafe impl Sync for ConfigCell {}
static CONFIG: ConfigCell = ConfigCell(UnsafeCell::new(MaybeUninit::uninit()));

/// Makes sure jvmalloc is configured. Cheap after the first call.
#[inline(always)]
pub fn ensure() {
    if STATE.load(Ordering::Acquire) != DONE {
        slow();
    }
}

#[cold]
#[inline(never)]
fn slow() {
    match STATE.compare_exchange(UNINIT, RUNNING, Ordering::Acquire, Ordering::Acquire) {
        Ok(_) => {
            let cfg = config::load();
            let mut buf = [0u8; 1024];
            jemalloc::set_options(cfg.jemalloc_options(&mut buf));
            // SAFETY: we won the race (see ConfigCell); nobody reads CONFIG before DONE.
            unsafe { (*CONFIG.0.get()).write(cfg) };
            STATE.store(DONE, Ordering::Release);
            if cfg.verbose {
                cfg.print();
            }
        }
        Err(_) => {
            while STATE.load(Ordering::Acquire) != DONE {
                // SAFETY: sched_yield has no preconditions.
                unsafe { libc::sched_yield() };
            }
        }
    }
}

/// The effective configuration.
pub fn config() -> &'static Config {
    ensure();
    // SAFETY: STATE is DONE, so CONFIG was written and is never written again.
    unsafe { (*CONFIG.0.get()).assume_init_ref() }
}

/// Runs when the library is loaded: configuration (unless an earlier allocation already
/// read it), then the thread registry (registering this, the main thread), the reporter,
/// and the fork handler.
extern "C" fn on_load() {
    let cfg = config();
    crate::threads::init(cfg.stats.threads);
    crate::reporter::start(cfg);
    // Child handlers run in the order they were registered (POSIX). jemalloc registers its
    // own when it initialises; its child handler re-creates the locks its prepare handler
    // took, and until it has run, an allocation that misses the thread cache waits on
    // them for ever. So that nothing of ours in the child can reach jemalloc before that,
    // jemalloc is initialised first (any mallctl does it) and its handler runs before ours.
    jemalloc::version();
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

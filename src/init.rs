//! One-time initialisation, inside jemalloc's own.
//!
//! The exported `malloc`, `calloc` and `free` are jemalloc's own functions (see `build.rs`),
//! so whoever allocates first (another library's constructor, the dynamic loader, or
//! jvmalloc's own constructor, [`on_load`]) initialises jemalloc. Early in that, jemalloc
//! reads its options from the link `/etc/_rjem_malloc.conf`; the library routes that
//! `readlink` (`src/imports.c`) to [`jemalloc_options`], which loads jvmalloc's
//! configuration, raw system calls only, and answers with jvmalloc's options. [`config`]
//! first makes sure jemalloc has initialised, which loads it; every other call into
//! jemalloc (`mallctl` included) initialises it, and so loads the configuration, by itself. Another thread that arrives meanwhile waits in jemalloc,
//! on its initialisation lock. Nothing jemalloc calls until it can serve a recursive
//! allocation reaches another preloaded library (`src/imports.c` says how), so nothing
//! comes back to `malloc` on the initialising thread.
//!
//! At load ([`on_load`]), a process in scope (see [`crate::scope`]) also gets the thread
//! registry, the signal handler and the fork handler; everything else gets the allocator
//! alone.

use crate::config::{self, Config};
use crate::diag::say;
use crate::jemalloc;
use core::cell::UnsafeCell;
use core::ffi::{c_char, c_void, CStr};
use core::mem::MaybeUninit;
use core::sync::atomic::{AtomicU8, AtomicUsize, Ordering};

const UNLOADED: u8 = 0;
const LOADING: u8 = 1;
const LOADED: u8 = 2;

/// Where the configuration is: UNLOADED, LOADING (one thread reads it) or LOADED.
static STATE: AtomicU8 = AtomicU8::new(UNLOADED);

struct ConfigCell(UnsafeCell<MaybeUninit<Config>>);
// SAFETY: written once by the thread that moves STATE from UNLOADED to LOADING, read only
// after STATE is LOADED (Release/Acquire), never written again.
unsafe impl Sync for ConfigCell {}
static CONFIG: ConfigCell = ConfigCell(UnsafeCell::new(MaybeUninit::uninit()));

/// Loads the configuration once; every caller gets it.
fn load() -> &'static Config {
    if STATE
        .compare_exchange(UNLOADED, LOADING, Ordering::Acquire, Ordering::Acquire)
        .is_ok()
    {
        // SAFETY: we won the race (see ConfigCell); nobody reads CONFIG before LOADED.
        unsafe { (*CONFIG.0.get()).write(config::load()) };
        STATE.store(LOADED, Ordering::Release);
    }
    while STATE.load(Ordering::Acquire) != LOADED {
        // Another thread is loading it: a few system calls' time.
        // SAFETY: sched_yield has no preconditions.
        unsafe { libc::sched_yield() };
    }
    // SAFETY: STATE is LOADED: CONFIG is written and never written again.
    unsafe { (*CONFIG.0.get()).assume_init_ref() }
}

/// jemalloc's options link, as jvmalloc answers it: jvmalloc's options, then a comma and
/// the link's own contents (the `len` bytes already in `buf`, which come last so that
/// they win, as they would over jvmalloc's options before), within `cap` bytes. Called
/// from the `readlink` wrapper in `src/imports.c`, once, by the thread initialising
/// jemalloc, which holds jemalloc's initialisation lock: nothing here allocates.
extern "C" fn jemalloc_options(buf: *mut c_char, len: usize, cap: usize) -> usize {
    let cfg = load();
    let mut opts = [0u8; 1024];
    let opts = cfg.jemalloc_options(&mut opts);
    let link = len.min(cap);
    let keep = if link == 0 { 0 } else { link + 1 };
    if opts.len() + keep > cap {
        if !crate::env::secure() {
            say!("jemalloc's option link and jvmalloc's options exceed {cap} bytes: jvmalloc's are ignored");
        }
        return link;
    }
    let buf = buf.cast::<u8>();
    // SAFETY: the wrapper passes jemalloc's buffer of `cap` bytes, of which the first `link`
    // are the link's contents; opts.len() + 1 + link <= cap was checked, so the moved
    // contents, the comma and the options all stay inside it (the rest is not read).
    unsafe {
        if link > 0 {
            core::ptr::copy(buf, buf.add(opts.len() + 1), link);
            *buf.add(opts.len()) = b',';
        }
        core::ptr::copy_nonoverlapping(opts.as_ptr(), buf, opts.len());
    }
    opts.len() + keep
}

// The wrapper calls the function above by a hidden name: neither exported nor
// interposable.
core::arch::global_asm!(
    ".globl jvmalloc_jemalloc_options",
    ".hidden jvmalloc_jemalloc_options",
    ".set jvmalloc_jemalloc_options, {f}",
    f = sym jemalloc_options,
);

/// The effective configuration. Makes sure jemalloc has initialised first (waiting for
/// another thread that is initialising it), which loads the configuration: jemalloc asked
/// for its options meanwhile, so `load` returns at once; should a build of jemalloc not
/// read its link, the configuration is loaded here all the same.
pub fn config() -> &'static Config {
    jemalloc::initialise();
    load()
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
    if cfg.verbose {
        cfg.print();
    }
    if !cfg.active {
        return;
    }
    crate::threads::init(cfg.stats.threads);
    crate::reporter::start(cfg);
    check_malloc_binding();
    // Child handlers run in the order they were registered (POSIX). jemalloc registered its
    // own when it initialised (at the latest in `config`, above, which waits for it), and
    // its child handler re-creates the locks its prepare handler took: ours runs after it,
    // so nothing of ours in the child can reach jemalloc before that.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn option_link_answer_is_jvmalloc_options_then_the_link() {
        let mut own = [0u8; 1024];
        let ours = load().jemalloc_options(&mut own).to_vec();
        let mut buf = [0u8; 4096];
        let at = |buf: &mut [u8; 4096], len| jemalloc_options(buf.as_mut_ptr().cast(), len, 4096);

        buf[..9].copy_from_slice(b"narenas:7");
        let n = at(&mut buf, 9);
        assert_eq!(&buf[..n], [&ours[..], b",narenas:7"].concat());

        let n = at(&mut buf, 0);
        assert_eq!(&buf[..n], &ours[..], "no link: jvmalloc's options alone");

        buf[..4000].fill(b'x');
        let n = at(&mut buf, 4000);
        assert_eq!(
            &buf[..n],
            &[b'x'; 4000][..],
            "no room for both: the link alone"
        );
    }
}

//! Glue to the jemalloc linked into this library: typed `mallctl`.
//!
//! jemalloc reads its options once, when it initialises, from (in order, later wins) the
//! build-time `--with-malloc-conf`, the global `_rjem_malloc_conf`, the link
//! `/etc/_rjem_malloc.conf` and `$_RJEM_MALLOC_CONF`. jvmalloc answers the link's
//! `readlink` with its own options (see [`crate::init`]), so a user's
//! `$_RJEM_MALLOC_CONF` still comes last.

use core::ffi::{c_char, c_void, CStr};
use core::mem::{size_of, MaybeUninit};
use tikv_jemalloc_sys as je;

/// Reads a value of type `T` with `mallctl(name)`.
pub fn read<T: Copy>(name: &CStr) -> Option<T> {
    let mut v = MaybeUninit::<T>::uninit();
    let mut len = size_of::<T>();
    // SAFETY: `v` has room for `len` bytes; jemalloc writes exactly `len` bytes on success
    // or fails with EINVAL when the size does not match.
    let r = unsafe {
        je::mallctl(
            name.as_ptr(),
            v.as_mut_ptr().cast(),
            &mut len,
            core::ptr::null_mut(),
            0,
        )
    };
    // SAFETY: mallctl returned 0 and wrote `size_of::<T>()` bytes.
    (r == 0 && len == size_of::<T>()).then(|| unsafe { v.assume_init() })
}

/// Writes `value` with `mallctl(name)`; returns whether jemalloc accepted it.
pub fn write<T: Copy>(name: &CStr, mut value: T) -> bool {
    // SAFETY: `value` is a live `T` of `size_of::<T>()` bytes; no old value is requested.
    unsafe {
        je::mallctl(
            name.as_ptr(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            (&mut value as *mut T).cast::<c_void>(),
            size_of::<T>(),
        ) == 0
    }
}

/// Runs a `mallctl` that takes and returns nothing (e.g. `arena.4096.purge`).
pub fn run(name: &CStr) -> bool {
    // SAFETY: no buffers are passed.
    unsafe {
        je::mallctl(
            name.as_ptr(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            core::ptr::null_mut(),
            0,
        ) == 0
    }
}

/// Makes jemalloc refresh the statistics that `stats.*` reads return.
pub fn refresh_stats() {
    write(c"epoch", 1u64);
}

/// A management information base: a `mallctl` name translated once, with numeric
/// components (arena, bin index) that can be changed before each read.
#[derive(Clone, Copy)]
pub struct Mib {
    mib: [usize; 8],
    len: usize,
}

impl Mib {
    pub fn new(name: &CStr) -> Option<Mib> {
        let mut m = Mib {
            mib: [0; 8],
            len: 8,
        };
        // SAFETY: `mib` has room for `len` entries; jemalloc updates `len`.
        let r = unsafe { je::mallctlnametomib(name.as_ptr(), m.mib.as_mut_ptr(), &mut m.len) };
        (r == 0).then_some(m)
    }

    /// Sets numeric component `i` (e.g. the arena index in `stats.arenas.<i>.*`).
    pub fn at(mut self, i: usize, v: usize) -> Mib {
        self.mib[i] = v;
        self
    }

    pub fn read<T: Copy + Default>(&self) -> Option<T> {
        let mut v = T::default();
        let mut len = size_of::<T>();
        // SAFETY: `v` has room for `len` bytes; the mib was produced by jemalloc.
        let r = unsafe {
            je::mallctlbymib(
                self.mib.as_ptr(),
                self.len,
                (&mut v as *mut T).cast(),
                &mut len,
                core::ptr::null_mut(),
                0,
            )
        };
        (r == 0 && len == size_of::<T>()).then_some(v)
    }
}

/// Initialises jemalloc (registering its fork handlers) if nothing has yet, at the least
/// cost: `nallocx` touches none of the statistics machinery that a `mallctl` sets up, which
/// every process that merely inherits `LD_PRELOAD` would otherwise pay for in page faults.
pub fn initialise() {
    // SAFETY: nallocx has no preconditions; it initialises jemalloc on first use.
    unsafe { je::nallocx(1, 0) };
}

/// jemalloc's version string. Like every `mallctl`, the first call initialises jemalloc
/// (registering its fork handlers) if nothing has yet.
pub fn version() -> &'static str {
    read::<*const c_char>(c"version")
        // SAFETY: jemalloc returns a pointer to a static NUL-terminated string.
        .map(|p| unsafe { CStr::from_ptr(p) }.to_str().unwrap_or("?"))
        .unwrap_or("?")
}

/// jemalloc's process-wide byte counters, refreshed when read.
#[derive(Clone, Copy, Debug, Default)]
pub struct Totals {
    /// Bytes in live allocations (including objects parked in thread caches).
    pub allocated: u64,
    /// Bytes in pages that hold live allocations (allocated + internal fragmentation).
    pub active: u64,
    /// Bytes of physical memory the allocator holds: active pages, its metadata, and dirty
    /// pages not yet returned.
    pub resident: u64,
    /// Bytes in mapped extents that are active or hold metadata (not dirty/retained).
    pub mapped: u64,
    /// Virtual memory kept mapped but returned to the OS (costs no RAM).
    pub retained: u64,
    /// Bytes used by the allocator's own metadata.
    pub metadata: u64,
    /// Bytes in dirty pages: freed, still in RAM, waiting for decay or purge.
    pub dirty: u64,
    /// Bytes in muzzy pages: freed and advised lazily free (MADV_FREE).
    pub muzzy: u64,
}

impl Totals {
    pub fn read() -> Totals {
        refresh_stats();
        let g = |name: &CStr| read::<usize>(name).unwrap_or(0) as u64;
        let page = g(c"arenas.page");
        Totals {
            allocated: g(c"stats.allocated"),
            active: g(c"stats.active"),
            resident: g(c"stats.resident"),
            mapped: g(c"stats.mapped"),
            retained: g(c"stats.retained"),
            metadata: g(c"stats.metadata"),
            dirty: g(c"stats.arenas.4096.pdirty") * page,
            muzzy: g(c"stats.arenas.4096.pmuzzy") * page,
        }
    }
}

/// Purges every arena's dirty and muzzy pages now.
pub fn purge_all() -> bool {
    run(c"arena.4096.purge")
}

//! The C allocation API that jvmalloc exports in place of glibc's, routed to jemalloc.
//!
//! Contracts kept (glibc 2.36): `malloc(0)` returns a unique pointer; failures return NULL
//! with `errno = ENOMEM`; `free` keeps `errno`; `calloc` and `reallocarray` detect overflow;
//! `realloc(p, 0)` frees `p` and returns NULL (`realloc(NULL, 0)` is `malloc(0)`);
//! `memalign`/`aligned_alloc`/`valloc`/`pvalloc` accept any alignment up to `SIZE_MAX/2+1`,
//! rounding one that is not a power of two up; `posix_memalign` returns EINVAL unless the
//! alignment is a power of two multiple of `sizeof(void *)`, and leaves `*memptr` alone on
//! failure. Nothing here allocates through itself, locks, or panics.
//!
//! `malloc`, `calloc` and `free` (and glibc's `__libc_` names of them) are jemalloc's own
//! functions: `build.rs` binds the names to them, and `src/imports.c` makes jemalloc's
//! `free` keep `errno`. The definitions below only make the names exported; their bodies
//! make the same call. Every entry point may be the first allocation of the process: jemalloc
//! then initialises, reading jvmalloc's configuration (see [`crate::init`]).
#![allow(clippy::missing_safety_doc)] // The C contracts are glibc's; see docs/glibc-api.md.

use core::ffi::{c_int, c_void};
use tikv_jemalloc_sys as je;

type Ptr = *mut c_void;

fn errno_slot() -> *mut c_int {
    // SAFETY: __errno_location has no preconditions; it returns this thread's errno slot.
    unsafe { libc::__errno_location() }
}

fn set_errno(e: c_int) {
    // SAFETY: the calling thread's errno slot.
    unsafe { *errno_slot() = e };
}

/// NULL with `errno = ENOMEM`: a size that overflows.
fn overflow() -> Ptr {
    set_errno(libc::ENOMEM);
    core::ptr::null_mut()
}

fn errno() -> c_int {
    // SAFETY: as above.
    unsafe { *errno_slot() }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions and does not allocate.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

#[inline(always)]
fn do_malloc(size: usize) -> Ptr {
    // SAFETY: jemalloc's malloc accepts any size and reports failure as NULL + ENOMEM.
    unsafe { je::malloc(size) }
}

/// jemalloc's `free` keeps errno: it can change it only through the system calls
/// `src/imports.c` wraps.
#[inline(always)]
unsafe fn do_free(p: Ptr) {
    // SAFETY: the caller passes NULL or a live pointer from jemalloc.
    unsafe { je::free(p) }
}

#[inline(always)]
fn do_calloc(n: usize, size: usize) -> Ptr {
    // SAFETY: jemalloc's calloc checks `n * size` for overflow (NULL + ENOMEM).
    unsafe { je::calloc(n, size) }
}

#[inline(always)]
unsafe fn do_realloc(p: Ptr, size: usize) -> Ptr {
    if !p.is_null() && size == 0 {
        // SAFETY: `p` is a live pointer from this allocator (caller's contract).
        unsafe { do_free(p) };
        return core::ptr::null_mut();
    }
    // SAFETY: `p` is NULL or live (caller's contract); jemalloc's realloc(NULL, n) is
    // malloc(n), and on failure it leaves `p` intact.
    unsafe { je::realloc(p, size) }
}

/// glibc's `_mid_memalign` rules, on jemalloc.
fn do_memalign(align: usize, size: usize) -> Ptr {
    if align > usize::MAX / 2 + 1 {
        set_errno(libc::EINVAL);
        return core::ptr::null_mut();
    }
    // A power of two from 1 to 2^63: next_power_of_two cannot overflow here.
    let align = align.max(1).next_power_of_two();
    // SAFETY: `align` is a power of two; jemalloc reports failure as NULL + ENOMEM.
    unsafe { je::aligned_alloc(align, size) }
}

#[no_mangle]
pub unsafe extern "C" fn malloc(size: usize) -> Ptr {
    do_malloc(size)
}

#[no_mangle]
pub unsafe extern "C" fn free(p: Ptr) {
    // SAFETY: forwarded caller's contract.
    unsafe { do_free(p) }
}

#[no_mangle]
pub unsafe extern "C" fn cfree(p: Ptr) {
    // SAFETY: forwarded caller's contract.
    unsafe { do_free(p) }
}

/// C23 `free_sized`. The size is not trusted: a wrong size given to jemalloc's sized
/// deallocation corrupts its metadata silently, so this is a plain `free`.
#[no_mangle]
pub unsafe extern "C" fn free_sized(p: Ptr, _size: usize) {
    // SAFETY: forwarded caller's contract.
    unsafe { do_free(p) }
}

/// C23 `free_aligned_sized`; like `free_sized`, a plain `free`.
#[no_mangle]
pub unsafe extern "C" fn free_aligned_sized(p: Ptr, _align: usize, _size: usize) {
    // SAFETY: forwarded caller's contract.
    unsafe { do_free(p) }
}

#[no_mangle]
pub unsafe extern "C" fn calloc(n: usize, size: usize) -> Ptr {
    do_calloc(n, size)
}

#[no_mangle]
pub unsafe extern "C" fn realloc(p: Ptr, size: usize) -> Ptr {
    // SAFETY: forwarded caller's contract.
    unsafe { do_realloc(p, size) }
}

#[no_mangle]
pub unsafe extern "C" fn reallocarray(p: Ptr, n: usize, size: usize) -> Ptr {
    match n.checked_mul(size) {
        // SAFETY: forwarded caller's contract.
        Some(total) => unsafe { do_realloc(p, total) },
        None => overflow(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn posix_memalign(out: *mut Ptr, align: usize, size: usize) -> c_int {
    let word = core::mem::size_of::<Ptr>();
    if align == 0 || !align.is_multiple_of(word) || !(align / word).is_power_of_two() {
        return libc::EINVAL;
    }
    let e = errno();
    // SAFETY: `align` is a power of two.
    let p = unsafe { je::aligned_alloc(align, size) };
    set_errno(e);
    if p.is_null() {
        return libc::ENOMEM;
    }
    // SAFETY: the caller passes a valid out-pointer (POSIX contract).
    unsafe { *out = p };
    0
}

#[no_mangle]
pub unsafe extern "C" fn aligned_alloc(align: usize, size: usize) -> Ptr {
    do_memalign(align, size)
}

#[no_mangle]
pub unsafe extern "C" fn memalign(align: usize, size: usize) -> Ptr {
    do_memalign(align, size)
}

#[no_mangle]
pub unsafe extern "C" fn valloc(size: usize) -> Ptr {
    do_memalign(page_size(), size)
}

#[no_mangle]
pub unsafe extern "C" fn pvalloc(size: usize) -> Ptr {
    let page = page_size();
    match size.checked_add(page - 1) {
        Some(s) => do_memalign(page, s & !(page - 1)),
        None => overflow(),
    }
}

#[no_mangle]
pub unsafe extern "C" fn malloc_usable_size(p: Ptr) -> usize {
    if p.is_null() {
        return 0;
    }
    // SAFETY: `p` is a live pointer from this allocator (caller's contract).
    unsafe { je::malloc_usable_size(p) }
}

// glibc's internal names, called directly by some programs and tools.

#[no_mangle]
pub unsafe extern "C" fn __libc_malloc(size: usize) -> Ptr {
    do_malloc(size)
}

#[no_mangle]
pub unsafe extern "C" fn __libc_free(p: Ptr) {
    // SAFETY: forwarded caller's contract.
    unsafe { do_free(p) }
}

#[no_mangle]
pub unsafe extern "C" fn __libc_calloc(n: usize, size: usize) -> Ptr {
    do_calloc(n, size)
}

#[no_mangle]
pub unsafe extern "C" fn __libc_realloc(p: Ptr, size: usize) -> Ptr {
    // SAFETY: forwarded caller's contract.
    unsafe { do_realloc(p, size) }
}

#[no_mangle]
pub unsafe extern "C" fn __libc_memalign(align: usize, size: usize) -> Ptr {
    do_memalign(align, size)
}

#[no_mangle]
pub unsafe extern "C" fn __libc_valloc(size: usize) -> Ptr {
    // SAFETY: same contract.
    unsafe { valloc(size) }
}

#[no_mangle]
pub unsafe extern "C" fn __libc_pvalloc(size: usize) -> Ptr {
    // SAFETY: same contract.
    unsafe { pvalloc(size) }
}

#[no_mangle]
pub unsafe extern "C" fn __posix_memalign(out: *mut Ptr, align: usize, size: usize) -> c_int {
    // SAFETY: same contract.
    unsafe { posix_memalign(out, align, size) }
}

//! The system calls jemalloc makes that can fail inside `free`, wrapped so that they leave
//! `errno` as they found it.
//!
//! glibc's `free` keeps `errno` (since 2.33). jemalloc's does not: a `free` that ticks decay
//! purges pages with `madvise(MADV_DONTNEED)`, which fails with `EINVAL` on locked pages
//! (a process that called `mlockall`, as Elasticsearch's `bootstrap.memory_lock` does),
//! and growing or trimming its metadata can call `mmap`, `munmap`, `mprotect` or `sbrk`.
//! The library is linked with `--wrap` for each of them (`build.rs`), so every call from
//! jemalloc (and from jvmalloc's own code) reaches the wrapper here, which saves `errno`,
//! makes the call and restores it. The other functions jemalloc imports either cannot fail
//! on a `free` path (mutexes and condition variables return their errors, `clock_gettime`
//! of a valid clock), or jemalloc already saves `errno` around them (`process_madvise`
//! through `syscall`), or they run only at initialisation, for profile dumps or for
//! background threads, never inside `free`. With that, the exported `free` hands over to
//! jemalloc with a jump, and keeps glibc's contract (`c_programs::
//! free_keeps_errno_when_purging_locked_memory` checks it).
//!
//! The price: a caller that wants to know why one of these failed finds the `errno` from
//! before the call. jemalloc reads it in one place only, the message it prints when
//! `munmap` fails; jvmalloc's own callers do not read it.
//!
//! Not in unit tests: the test binary is linked without `--wrap`.
#![cfg(not(test))]

use core::ffi::{c_int, c_void};

/// Runs `call` with this thread's errno saved before and restored after.
#[inline(always)]
fn keeping_errno<T>(call: impl FnOnce() -> T) -> T {
    let slot = crate::errno::slot();
    // SAFETY: the calling thread's errno slot, valid for the thread's life.
    let e = unsafe { *slot };
    let r = call();
    // SAFETY: as above.
    unsafe { *slot = e };
    r
}

/// For each `wrapper => real(signature)`: declares `real` (the linker's name for the C
/// library's function under `--wrap`) and defines `wrapper`, which calls it keeping errno.
macro_rules! keep_errno {
    ($($wrap:ident => $real:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {
        extern "C" {
            $(fn $real($($arg: $ty),*) -> $ret;)*
        }
        $(
            #[no_mangle]
            pub unsafe extern "C" fn $wrap($($arg: $ty),*) -> $ret {
                // SAFETY: the caller's arguments, passed on unchanged to the real function.
                keeping_errno(|| unsafe { $real($($arg),*) })
            }
        )*
    };
}

keep_errno! {
    __wrap_madvise => __real_madvise(addr: *mut c_void, len: usize, advice: c_int) -> c_int;
    __wrap_mmap => __real_mmap(
        addr: *mut c_void, len: usize, prot: c_int, flags: c_int, fd: c_int, off: libc::off_t
    ) -> *mut c_void;
    __wrap_munmap => __real_munmap(addr: *mut c_void, len: usize) -> c_int;
    __wrap_mprotect => __real_mprotect(addr: *mut c_void, len: usize, prot: c_int) -> c_int;
    __wrap_sbrk => __real_sbrk(incr: libc::intptr_t) -> *mut c_void;
}

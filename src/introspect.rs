//! jemalloc's own introspection API, exported under its unprefixed names so that tools
//! written for `LD_PRELOAD=libjemalloc.so` (Flink's default) keep working.
#![allow(clippy::missing_safety_doc)] // jemalloc's contracts; see its manual.

use core::ffi::{c_char, c_int, c_void};
use tikv_jemalloc_sys as je;

#[no_mangle]
pub unsafe extern "C" fn mallctl(
    name: *const c_char,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *mut c_void,
    newlen: usize,
) -> c_int {
    // SAFETY: arguments are forwarded unchanged under jemalloc's contract.
    unsafe { je::mallctl(name, oldp, oldlenp, newp, newlen) }
}

#[no_mangle]
pub unsafe extern "C" fn mallctlnametomib(
    name: *const c_char,
    mibp: *mut usize,
    miblenp: *mut usize,
) -> c_int {
    // SAFETY: arguments are forwarded unchanged under jemalloc's contract.
    unsafe { je::mallctlnametomib(name, mibp, miblenp) }
}

#[no_mangle]
pub unsafe extern "C" fn mallctlbymib(
    mib: *const usize,
    miblen: usize,
    oldp: *mut c_void,
    oldlenp: *mut usize,
    newp: *mut c_void,
    newlen: usize,
) -> c_int {
    // SAFETY: arguments are forwarded unchanged under jemalloc's contract.
    unsafe { je::mallctlbymib(mib, miblen, oldp, oldlenp, newp, newlen) }
}

#[no_mangle]
pub unsafe extern "C" fn malloc_stats_print(
    write_cb: Option<unsafe extern "C" fn(*mut c_void, *const c_char)>,
    cbopaque: *mut c_void,
    opts: *const c_char,
) {
    // SAFETY: arguments are forwarded unchanged under jemalloc's contract.
    unsafe { je::malloc_stats_print(write_cb, cbopaque, opts) }
}

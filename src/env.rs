//! Reading environment variables without allocating.
//!
//! `std::env` allocates, and `getenv` is not guaranteed to be safe against a concurrent
//! `setenv`; jvmalloc reads its variables once, during its first initialisation, from the
//! C `environ` array that the C library sets up before any constructor or `malloc` runs.
//!
//! In secure-execution mode (`AT_SECURE`: a set-user-ID, set-group-ID or capability-raising
//! program), the environment belongs to whoever started the program, so, as glibc does for
//! its own `MALLOC_*` variables, every variable reads as unset.

use core::ffi::c_char;

extern "C" {
    static environ: *const *const c_char;
}

/// Whether the process runs in secure-execution mode (`getauxval(AT_SECURE)`).
pub fn secure() -> bool {
    // SAFETY: getauxval reads the auxiliary vector the kernel passed; AT_SECURE is always
    // present on Linux, so errno is left alone.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Returns the bytes of the value of `name` (without the `NAME=` part), or `None` when the
/// variable is not set (or the process is in secure-execution mode). The slice borrows the process environment, which is never freed.
pub fn get(name: &str) -> Option<&'static [u8]> {
    let name = name.as_bytes();
    let mut found = None;
    for_each(&mut |entry| {
        if found.is_none()
            && entry.len() > name.len()
            && entry.starts_with(name)
            && entry[name.len()] == b'='
        {
            found = Some(&entry[name.len() + 1..]);
        }
    });
    found
}

/// Calls `f` with every `NAME=value` entry of the environment. The entries borrow the
/// process environment, which is never freed.
pub fn for_each(f: &mut dyn FnMut(&'static [u8])) {
    if secure() {
        return;
    }
    // SAFETY: `environ` is a NULL-terminated array of NUL-terminated strings set up by the
    // C library before any user code runs; we only read it, and entries are never freed
    // (setenv leaks replaced strings by design).
    unsafe {
        let mut p = environ;
        if p.is_null() {
            return;
        }
        while !(*p).is_null() {
            f(core::ffi::CStr::from_ptr(*p).to_bytes());
            p = p.add(1);
        }
    }
}

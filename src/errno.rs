//! This thread's `errno` slot, found on the allocation path without a call into the C
//! library.
//!
//! `free` must keep `errno`, so it reads it before calling jemalloc and writes it back
//! after. glibc's `__errno_location` is a call through the PLT for every `free`. glibc keeps
//! `errno` in its static TLS block (libc is loaded at start, with initial-exec TLS), so
//! the slot is at the same offset from the thread pointer in every thread: [`learn`]
//! measures that offset once, at initialisation, and [`slot`] adds it to the thread
//! pointer (`%fs:0` on x86-64). Until then, and on other architectures, it asks glibc.
//! `free`'s fast path goes one step further: with the offset in hand ([`offset`]), it reads
//! and writes errno `%fs`-relative ([`read_at`], [`write_at`]), one instruction each.

use core::ffi::c_int;
use core::sync::atomic::{AtomicIsize, Ordering::Relaxed};

/// `errno`'s address minus the thread pointer; 0 while unknown.
static OFFSET: AtomicIsize = AtomicIsize::new(0);

fn from_libc() -> *mut c_int {
    // SAFETY: __errno_location has no preconditions; it returns this thread's errno slot.
    unsafe { libc::__errno_location() }
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn thread_pointer() -> isize {
    let tp: isize;
    // SAFETY: on x86-64 Linux, %fs:0 holds the thread control block's own address (the
    // thread pointer), readable in every thread glibc runs.
    unsafe {
        core::arch::asm!("mov {}, qword ptr fs:[0]", out(reg) tp,
                         options(nostack, readonly, preserves_flags, pure))
    };
    tp
}

/// Measures the offset; called once, by the initialising thread, after jemalloc is up.
pub fn learn() {
    #[cfg(target_arch = "x86_64")]
    OFFSET.store(from_libc() as isize - thread_pointer(), Relaxed);
}

/// errno's offset from the thread pointer, the same in every thread; 0 while unknown (before
/// [`learn`], and always on architectures other than x86-64).
#[inline(always)]
pub fn offset() -> isize {
    OFFSET.load(Relaxed)
}

/// This thread's errno, given its [`offset`].
///
/// # Safety
/// `off` is a non-zero value [`offset`] returned.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn read_at(off: isize) -> c_int {
    let v: c_int;
    // SAFETY: %fs's base is the thread pointer, and (caller's contract) `off` is errno's
    // offset from it, measured by `learn`: this reads this thread's errno, a 4-byte int in
    // glibc's static TLS block, which lives as long as the thread.
    unsafe {
        core::arch::asm!("mov {v:e}, dword ptr fs:[{off}]", off = in(reg) off, v = out(reg) v,
                         options(nostack, readonly, preserves_flags))
    };
    v
}

/// Sets this thread's errno, given its [`offset`].
///
/// # Safety
/// As for [`read_at`].
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub unsafe fn write_at(off: isize, v: c_int) {
    // SAFETY: as in `read_at`; writing errno is what the caller means to do.
    unsafe {
        core::arch::asm!("mov dword ptr fs:[{off}], {v:e}", off = in(reg) off, v = in(reg) v,
                         options(nostack, preserves_flags))
    };
}

/// Elsewhere [`offset`] is always 0 and nothing calls this; it asks glibc all the same.
///
/// # Safety
/// None beyond [`read_at`]'s on x86-64.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn read_at(_off: isize) -> c_int {
    // SAFETY: this thread's errno slot.
    unsafe { *from_libc() }
}

/// Elsewhere [`offset`] is always 0 and nothing calls this; it asks glibc all the same.
///
/// # Safety
/// None beyond [`write_at`]'s on x86-64.
#[cfg(not(target_arch = "x86_64"))]
pub unsafe fn write_at(_off: isize, v: c_int) {
    // SAFETY: this thread's errno slot.
    unsafe { *from_libc() = v };
}

/// This thread's errno slot.
#[inline(always)]
pub fn slot() -> *mut c_int {
    #[cfg(target_arch = "x86_64")]
    {
        let off = OFFSET.load(Relaxed);
        if off != 0 {
            return (thread_pointer() + off) as *mut c_int;
        }
    }
    from_libc()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_slot_is_errno_in_every_thread() {
        super::learn();
        let check = || {
            assert_eq!(super::slot(), super::from_libc());
            // SAFETY: this thread's errno slot.
            unsafe { *super::slot() = 1234 };
            assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(1234));
        };
        check();
        std::thread::spawn(check).join().unwrap();
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn read_at_and_write_at_are_errno() {
        super::learn();
        let off = super::offset();
        assert_ne!(off, 0);
        let check = move || {
            // SAFETY: `off` came from `offset()`; this thread's errno.
            unsafe { super::write_at(off, 4321) };
            assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(4321));
            // SAFETY: as above.
            unsafe { *super::slot() = 77 };
            // SAFETY: as above.
            assert_eq!(unsafe { super::read_at(off) }, 77);
        };
        check();
        std::thread::spawn(check).join().unwrap();
    }
}

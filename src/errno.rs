//! This thread's `errno` slot, found on the allocation path without a call into the C
//! library.
//!
//! Whoever must keep `errno` across a call (`free` before initialisation is over,
//! `posix_memalign`) reads it before and writes it back after; glibc's `__errno_location`
//! would be a call through the PLT each time. glibc keeps
//! `errno` in its static TLS block (libc is loaded at start, with initial-exec TLS), so
//! the slot is at the same offset from the thread pointer in every thread: [`learn`]
//! measures that offset once, at initialisation, and [`slot`] adds it to the thread
//! pointer (`%fs:0` on x86-64). Until then, and on other architectures, it asks glibc.

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
}

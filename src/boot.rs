//! A small static heap for allocations that arrive while jvmalloc is initialising itself.
//!
//! Initialisation reaches the kernel with raw system calls, so it does not call back into
//! `malloc`. jemalloc's own initialisation does call C library functions (`readlink` of its
//! configuration link, for one), and another preloaded library that interposes them and
//! allocates (fakeroot, proot, path rewriters) re-enters `malloc` on the initialising
//! thread before jemalloc can serve it. [`crate::init`] detects that re-entry and the
//! allocation is served from here instead: a bump allocator over a 64 KiB static area that
//! never reuses memory (so `calloc` gets zeroed bytes for free). `free` of such a block does
//! nothing; `realloc` moves it to jemalloc. Every block records its size in the 8 bytes
//! before it, for `realloc` and `malloc_usable_size`.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};

const SIZE: usize = 64 << 10;
/// Alignment of every block, and the room its size header takes.
const MIN_ALIGN: usize = 16;
/// Largest alignment served (a page): larger requests fail with `ENOMEM`, as glibc's do when
/// it cannot serve them.
pub const MAX_ALIGN: usize = 4096;

#[repr(C, align(4096))]
struct Area(UnsafeCell<[u8; SIZE]>);
// SAFETY: bytes are handed out once each, by an atomic bump of USED, to one caller; the
// area is never written by this module except for a block's own header.
unsafe impl Sync for Area {}
static AREA: Area = Area(UnsafeCell::new([0; SIZE]));
static USED: AtomicUsize = AtomicUsize::new(0);
static EXHAUSTED: AtomicBool = AtomicBool::new(false);

fn base() -> usize {
    AREA.0.get() as usize
}

/// Whether `p` points into the bootstrap area.
#[inline(always)]
pub fn owns(p: *const c_void) -> bool {
    (p as usize).wrapping_sub(base()) < SIZE
}

/// Whether any block was ever handed out (blocks are never given back).
pub fn used() -> bool {
    USED.load(Relaxed) != 0
}

/// A zeroed block of `size` bytes aligned to `align` (a power of two), or NULL with
/// `errno` set when the area is used up or the alignment is too large.
pub fn alloc(size: usize, align: usize) -> *mut c_void {
    let align = align.max(MIN_ALIGN);
    let fail = |e| {
        // SAFETY: this thread's errno slot.
        unsafe { *libc::__errno_location() = e };
        core::ptr::null_mut()
    };
    if align > MAX_ALIGN {
        return fail(libc::ENOMEM);
    }
    let mut used = USED.load(Relaxed);
    loop {
        // The block starts after its 8-byte header, rounded up to `align`.
        let start = (base() + used + 8).next_multiple_of(align) - base();
        let Some(end) = start.checked_add(size.max(1)).filter(|&e| e <= SIZE) else {
            if !EXHAUSTED.swap(true, Relaxed) {
                crate::diag::say!(
                    "the 64 KiB bootstrap heap for allocations made during initialisation is used up"
                );
            }
            return fail(libc::ENOMEM);
        };
        match USED.compare_exchange_weak(used, end, Relaxed, Relaxed) {
            Ok(_) => {
                let p = (base() + start) as *mut u8;
                // SAFETY: [start - 8, end) lies inside the area and was reserved for this
                // block alone by the exchange above; the header is 8-byte aligned.
                unsafe { p.sub(8).cast::<usize>().write(size) };
                return p.cast();
            }
            Err(now) => used = now,
        }
    }
}

/// The size a bootstrap block was allocated with.
pub fn size_of(p: *const c_void) -> usize {
    // SAFETY: `p` is a block returned by `alloc` (the caller checked `owns`), so the 8
    // bytes before it hold its size.
    unsafe { p.cast::<u8>().sub(8).cast::<usize>().read() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_sized_zeroed_and_owned() {
        let a = alloc(10, 1);
        let b = alloc(100, 256);
        assert!(owns(a) && owns(b));
        assert_eq!(a as usize % MIN_ALIGN, 0);
        assert_eq!(b as usize % 256, 0);
        assert_eq!(size_of(a), 10);
        assert_eq!(size_of(b), 100);
        // SAFETY: b is a live 100-byte block.
        assert!(unsafe { core::slice::from_raw_parts(b.cast::<u8>(), 100) }
            .iter()
            .all(|&x| x == 0));
        assert!(!owns(core::ptr::null()));
        assert!(alloc(1, 8192).is_null());
        assert!(alloc(SIZE, 16).is_null());
    }
}

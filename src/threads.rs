//! The thread registry: which threads allocate and free how many bytes.
//!
//! Per-thread byte counters are jemalloc's own (`thread.allocatedp`/`thread.deallocatedp`,
//! kept by jemalloc on every allocation anyway), so the allocation path carries no extra
//! work. Only a thread can look its counters up, so each thread registers itself once, as
//! it starts: jvmalloc interposes `pthread_create` and wraps the start routine; the main
//! thread registers when the library loads. A thread-specific-data destructor (a
//! `pthread_key` created at load) removes the thread as it exits and folds its final
//! counters into the "exited" totals, so the registry's slots are reused and its memory
//! (one `mmap` at load, `JVMALLOC_STATS_THREADS` slots of 32 bytes) never grows.
//!
//! Readers (the reporter) and the exiting owner of a slot agree through the slot's state:
//! the reader moves LIVE to READING for the few loads it makes; the owner waits for LIVE
//! before taking the slot away, because the counters live in the owner's TLS, which is
//! freed when the thread is gone. A thread that finds the registry full is counted as
//! overflow; its bytes appear in the dump's "unregistered" row, computed from the totals.

use crate::jemalloc;
use core::ffi::{c_int, c_void};
use core::ptr::null_mut;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize};
use tikv_jemalloc_sys as je;

const FREE: u8 = 0;
/// Being filled in, or being removed, by its owner.
const CLAIMED: u8 = 1;
const LIVE: u8 = 2;
/// A reader is loading the counters; the owner must not leave.
const READING: u8 = 3;

#[repr(C, align(32))]
struct Slot {
    state: AtomicU8,
    tid: AtomicU32,
    allocated: AtomicPtr<u64>,
    freed: AtomicPtr<u64>,
}

static SLOTS: AtomicPtr<Slot> = AtomicPtr::new(null_mut());
static CAPACITY: AtomicUsize = AtomicUsize::new(0);
static HINT: AtomicUsize = AtomicUsize::new(0);
static EXITED_THREADS: AtomicU64 = AtomicU64::new(0);
static EXITED_ALLOCATED: AtomicU64 = AtomicU64::new(0);
static EXITED_FREED: AtomicU64 = AtomicU64::new(0);
/// Live threads that found no free slot.
static OVERFLOW_LIVE: AtomicI64 = AtomicI64::new(0);
static KEY: AtomicU32 = AtomicU32::new(u32::MAX);

/// Key values: slot index + 1; OVERFLOW for threads without a slot. ROUND2 marks the
/// second destructor round (see `on_thread_exit`).
const OVERFLOW: usize = usize::MAX >> 1;
const ROUND2: usize = 1 << (usize::BITS - 1);

type StartFn = extern "C" fn(*mut c_void) -> *mut c_void;
type CreateFn = unsafe extern "C" fn(
    *mut libc::pthread_t,
    *const libc::pthread_attr_t,
    StartFn,
    *mut c_void,
) -> c_int;
static REAL_CREATE: AtomicPtr<c_void> = AtomicPtr::new(null_mut());

fn slots() -> &'static [Slot] {
    let p = SLOTS.load(Acquire);
    if p.is_null() {
        return &[];
    }
    // SAFETY: SLOTS points to CAPACITY zero-initialised slots mapped once in `init` and
    // never unmapped; slots are only accessed through atomics.
    unsafe { core::slice::from_raw_parts(p, CAPACITY.load(Relaxed)) }
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

/// Reads a counter in some thread's TLS. The caller guarantees the thread is alive (its
/// slot is READING or owned by the caller).
fn load(p: *mut u64) -> u64 {
    if p.is_null() {
        return 0;
    }
    // SAFETY: `p` came from jemalloc's thread.allocatedp/deallocatedp of a live thread; a
    // torn read is impossible for an aligned u64 on the 64-bit targets this builds for.
    unsafe { core::ptr::read_volatile(p) }
}

fn key() -> libc::pthread_key_t {
    KEY.load(Relaxed)
}

fn set_key(v: usize) {
    // SAFETY: the key was created in `init`; setting a value never fails for a valid key
    // with index below PTHREAD_KEYS_MAX once the thread's first-level array exists.
    unsafe { libc::pthread_setspecific(key(), v as *const c_void) };
}

/// Sets up the registry (`capacity` slots) and registers the calling (main) thread.
pub fn init(capacity: usize) {
    let bytes = capacity * core::mem::size_of::<Slot>();
    // SAFETY: anonymous private mapping; the result is checked.
    let p = unsafe {
        libc::mmap(
            null_mut(),
            bytes,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        crate::diag::say!(
            "cannot map the thread registry ({bytes} bytes); per-thread statistics are off"
        );
        return;
    }
    let mut k: libc::pthread_key_t = 0;
    // SAFETY: `k` is a valid out-pointer; the destructor has the required signature.
    if unsafe { libc::pthread_key_create(&mut k, Some(on_thread_exit)) } != 0 {
        crate::diag::say!("no pthread key left; per-thread statistics are off");
        return;
    }
    KEY.store(k, Relaxed);
    CAPACITY.store(capacity, Relaxed);
    SLOTS.store(p.cast(), Release);
    resolve_create();
    register_current();
}

fn resolve_create() -> Option<CreateFn> {
    let mut f = REAL_CREATE.load(Acquire);
    if f.is_null() {
        // SAFETY: dlsym with a NUL-terminated name; not reached from malloc.
        f = unsafe { libc::dlsym(libc::RTLD_NEXT, c"pthread_create".as_ptr()) };
        REAL_CREATE.store(f, Release);
    }
    // SAFETY: a non-null result is the C library's pthread_create, of this type.
    (!f.is_null()).then(|| unsafe { core::mem::transmute::<*mut c_void, CreateFn>(f) })
}

/// Registers the calling thread. Called once per thread, at its start.
fn register_current() {
    let cap = CAPACITY.load(Relaxed);
    if cap == 0 {
        return;
    }
    let allocated = jemalloc::read::<*mut u64>(c"thread.allocatedp").unwrap_or(null_mut());
    let freed = jemalloc::read::<*mut u64>(c"thread.deallocatedp").unwrap_or(null_mut());
    let start = HINT.fetch_add(1, Relaxed);
    let slots = slots();
    for i in 0..cap {
        let idx = (start + i) % cap;
        let s = &slots[idx];
        if s.state
            .compare_exchange(FREE, CLAIMED, Acquire, Relaxed)
            .is_ok()
        {
            s.tid.store(gettid(), Relaxed);
            s.allocated.store(allocated, Relaxed);
            s.freed.store(freed, Relaxed);
            s.state.store(LIVE, Release);
            HINT.store(idx + 1, Relaxed);
            set_key(idx + 1);
            return;
        }
    }
    OVERFLOW_LIVE.fetch_add(1, Relaxed);
    set_key(OVERFLOW);
}

fn fold_exited(allocated: u64, freed: u64) {
    EXITED_ALLOCATED.fetch_add(allocated, Relaxed);
    EXITED_FREED.fetch_add(freed, Relaxed);
    EXITED_THREADS.fetch_add(1, Relaxed);
}

/// Thread-specific-data destructor. Destructors of other keys may still free memory after
/// ours runs, so the first round only re-arms the key; the second folds the counters.
unsafe extern "C" fn on_thread_exit(v: *mut c_void) {
    let v = v as usize;
    if v & ROUND2 == 0 {
        set_key(v | ROUND2);
        return;
    }
    let v = v & !ROUND2;
    if v == OVERFLOW {
        let a = jemalloc::read::<u64>(c"thread.allocated").unwrap_or(0);
        let d = jemalloc::read::<u64>(c"thread.deallocated").unwrap_or(0);
        OVERFLOW_LIVE.fetch_sub(1, Relaxed);
        fold_exited(a, d);
        return;
    }
    let Some(s) = slots().get(v - 1) else {
        return;
    };
    // Wait out a reader; it holds the slot for a handful of loads.
    while s
        .state
        .compare_exchange(LIVE, CLAIMED, AcqRel, Relaxed)
        .is_err()
    {
        // SAFETY: no preconditions.
        unsafe { libc::sched_yield() };
    }
    fold_exited(load(s.allocated.load(Relaxed)), load(s.freed.load(Relaxed)));
    s.state.store(FREE, Release);
}

/// In a child of fork() only the forking thread exists: every other slot is folded into
/// the exited totals (its TLS was copied, so the counters are still readable), and any
/// READING state left by a reporter that no longer exists is cleared.
pub fn after_fork_child() {
    // SAFETY: reading our own key's value.
    let me = unsafe { libc::pthread_getspecific(key()) } as usize & !ROUND2;
    for (i, s) in slots().iter().enumerate() {
        let st = s.state.load(Relaxed);
        if st == FREE || i + 1 == me {
            if i + 1 == me {
                s.state.store(LIVE, Relaxed);
                s.tid.store(gettid(), Relaxed);
            }
            continue;
        }
        if st != CLAIMED {
            fold_exited(load(s.allocated.load(Relaxed)), load(s.freed.load(Relaxed)));
        }
        s.state.store(FREE, Relaxed);
    }
    OVERFLOW_LIVE.store(i64::from(me == OVERFLOW), Relaxed);
}

/// What `pthread_create` passes to the wrapped start routine.
#[repr(C)]
struct Start {
    start: StartFn,
    arg: *mut c_void,
}

extern "C" fn trampoline(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the Start block allocated in pthread_create for this thread only.
    let Start { start, arg } = unsafe { p.cast::<Start>().read() };
    // SAFETY: allocated with je::malloc below and read out above.
    unsafe { je::free(p) };
    register_current();
    start(arg)
}

/// Interposes the C library's `pthread_create` so that every new thread registers itself.
#[no_mangle]
pub unsafe extern "C" fn pthread_create(
    thread: *mut libc::pthread_t,
    attr: *const libc::pthread_attr_t,
    start: StartFn,
    arg: *mut c_void,
) -> c_int {
    let Some(real) = resolve_create() else {
        return libc::EAGAIN;
    };
    crate::init::ensure();
    // In a forked child, the first thread it starts brings its reporter thread back.
    crate::reporter::start_in_child();
    // SAFETY: jemalloc malloc of a small block; checked for NULL below.
    let block = unsafe { je::malloc(core::mem::size_of::<Start>()) }.cast::<Start>();
    if block.is_null() || CAPACITY.load(Relaxed) == 0 {
        if !block.is_null() {
            // SAFETY: just allocated, unused.
            unsafe { je::free(block.cast()) };
        }
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { real(thread, attr, start, arg) };
    }
    // SAFETY: `block` is a fresh allocation large enough for a Start.
    unsafe { block.write(Start { start, arg }) };
    // SAFETY: the caller's thread/attr pointers, our start routine and its block.
    let r = unsafe { real(thread, attr, trampoline, block.cast()) };
    if r != 0 {
        // SAFETY: the thread was not created, so nothing else owns the block.
        unsafe { je::free(block.cast()) };
    }
    r
}

/// One live registered thread's counters.
#[derive(Clone, Copy, Debug)]
pub struct LiveThread {
    pub tid: u32,
    pub allocated: u64,
    pub freed: u64,
}

/// Everything the registry knows at one moment.
#[derive(Debug, Default)]
pub struct Registry {
    pub live: Vec<LiveThread>,
    pub exited_threads: u64,
    pub exited_allocated: u64,
    pub exited_freed: u64,
    /// Live threads that found the registry full.
    pub overflow_threads: u64,
    pub capacity: usize,
    /// Bytes the registry occupies (fixed at load).
    pub bytes: usize,
}

/// Reads every live thread's counters. Never blocks a thread that is exiting for more
/// than the few loads of one slot.
pub fn snapshot() -> Registry {
    let slots = slots();
    let mut live = Vec::with_capacity(64);
    for s in slots {
        if s.state
            .compare_exchange(LIVE, READING, Acquire, Relaxed)
            .is_ok()
        {
            let row = LiveThread {
                tid: s.tid.load(Relaxed),
                allocated: load(s.allocated.load(Relaxed)),
                freed: load(s.freed.load(Relaxed)),
            };
            s.state.store(LIVE, Release);
            live.push(row);
        }
    }
    Registry {
        live,
        exited_threads: EXITED_THREADS.load(Relaxed),
        exited_allocated: EXITED_ALLOCATED.load(Relaxed),
        exited_freed: EXITED_FREED.load(Relaxed),
        overflow_threads: OVERFLOW_LIVE.load(Relaxed).max(0) as u64,
        capacity: slots.len(),
        bytes: core::mem::size_of_val(slots),
    }
}

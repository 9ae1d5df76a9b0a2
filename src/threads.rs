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
//!
//! The same key tells the process's lifetime: glibc ends a process when its last thread
//! exits, and the `jvmalloc` thread must not count. Every thread of the program (the main
//! thread, and each thread created through the interposed `pthread_create`) is counted in
//! [`PROGRAM_THREADS`]; the `jvmalloc` thread is not. When the count falls to
//! zero in a thread's destructor, that thread is the program's last: it stops and joins
//! the `jvmalloc` thread ([`crate::reporter::stop_for_last_thread`]), so that glibc's own
//! count reaches zero as the thread leaves and the process exits exactly as it would
//! without the library.
//!
//! Only processes in scope ([`crate::scope`]) set any of this up; elsewhere the interposed
//! `pthread_create` calls the C library's at once.

use crate::jemalloc;
use core::ffi::{c_int, c_void};
use core::ptr::null_mut;
use core::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use core::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize,
};
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
/// Whether the registry's overflow was said on stderr (once per process).
static OVERFLOW_SAID: AtomicBool = AtomicBool::new(false);
static KEY: AtomicU32 = AtomicU32::new(u32::MAX);
/// Whether KEY exists (the process is in scope and the key could be created).
static KEYED: AtomicBool = AtomicBool::new(false);
/// Live threads of the program: the main thread, and threads created through our
/// `pthread_create` that have not yet finished exiting; not the `jvmalloc` thread.
static PROGRAM_THREADS: AtomicUsize = AtomicUsize::new(1);

/// Key values: the slot part is slot index + 1, OVERFLOW for a thread that found the
/// registry full, 0 without a registry. COUNTED marks a thread counted in PROGRAM_THREADS;
/// ROUND2 marks the second destructor round (see `on_thread_exit`).
const ROUND2: usize = 1 << (usize::BITS - 1);
const COUNTED: usize = 1 << (usize::BITS - 2);
const SLOT_MASK: usize = COUNTED - 1;
const OVERFLOW: usize = SLOT_MASK;

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

/// Sets up the key, the registry (`capacity` slots) and registers the calling (main)
/// thread. Called at load, in a process in scope.
pub fn init(capacity: usize) {
    let mut k: libc::pthread_key_t = 0;
    // SAFETY: `k` is a valid out-pointer; the destructor has the required signature.
    if unsafe { libc::pthread_key_create(&mut k, Some(on_thread_exit)) } != 0 {
        crate::diag::say!("no pthread key left; per-thread statistics are off");
        return;
    }
    KEY.store(k, Relaxed);
    KEYED.store(true, Release);
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
    } else {
        CAPACITY.store(capacity, Relaxed);
        SLOTS.store(p.cast(), Release);
    }
    resolve_create();
    register_current(true);
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

/// Registers the calling thread and, if `counted`, marks it as one of the program's (the
/// caller counted it in PROGRAM_THREADS). Called once per thread, at its start.
fn register_current(counted: bool) {
    let counted = if counted { COUNTED } else { 0 };
    let allocated = jemalloc::read::<*mut u64>(c"thread.allocatedp").unwrap_or(null_mut());
    let freed = jemalloc::read::<*mut u64>(c"thread.deallocatedp").unwrap_or(null_mut());
    let slots = slots();
    if slots.is_empty() {
        if counted != 0 {
            set_key(COUNTED);
        }
        return;
    }
    let start = HINT.fetch_add(1, Relaxed);
    for i in 0..slots.len() {
        let idx = (start + i) % slots.len();
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
            set_key(counted | (idx + 1));
            return;
        }
    }
    OVERFLOW_LIVE.fetch_add(1, Relaxed);
    set_key(counted | OVERFLOW);
    if !OVERFLOW_SAID.swap(true, Relaxed) {
        crate::diag::say!(
            "the thread registry is full ({} slots, JVMALLOC_STATS_THREADS): threads started \
             from now on while it stays full are counted together in the dumps' unregistered row",
            slots.len()
        );
    }
}

fn fold_exited(allocated: u64, freed: u64) {
    EXITED_ALLOCATED.fetch_add(allocated, Relaxed);
    EXITED_FREED.fetch_add(freed, Relaxed);
    EXITED_THREADS.fetch_add(1, Relaxed);
}

/// Thread-specific-data destructor. Destructors of other keys may still free memory after
/// ours runs, so the first round only re-arms the key; the second folds the counters and,
/// for the program's last thread, stops the `jvmalloc` thread.
unsafe extern "C" fn on_thread_exit(v: *mut c_void) {
    let v = v as usize;
    if v & ROUND2 == 0 {
        set_key(v | ROUND2);
        return;
    }
    match v & SLOT_MASK {
        0 => {}
        OVERFLOW => {
            let a = jemalloc::read::<u64>(c"thread.allocated").unwrap_or(0);
            let d = jemalloc::read::<u64>(c"thread.deallocated").unwrap_or(0);
            OVERFLOW_LIVE.fetch_sub(1, Relaxed);
            fold_exited(a, d);
        }
        slot => {
            if let Some(s) = slots().get(slot - 1) {
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
        }
    }
    if v & COUNTED != 0 {
        program_thread_gone();
    }
}

/// One program thread fewer; the last one stops the `jvmalloc` thread.
fn program_thread_gone() {
    if PROGRAM_THREADS.fetch_sub(1, AcqRel) == 1 {
        crate::reporter::stop_for_last_thread();
    }
}

/// In a child of fork() only the forking thread exists: every other slot is folded into
/// the exited totals (its TLS was copied, so the counters are still readable), and any
/// READING state left by a reporter that no longer exists is cleared. The forking thread
/// is the child's one program thread.
pub fn after_fork_child() {
    if !KEYED.load(Acquire) {
        return;
    }
    // SAFETY: reading our own key's value.
    let v = unsafe { libc::pthread_getspecific(key()) } as usize & !ROUND2;
    let me = v & SLOT_MASK;
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
    PROGRAM_THREADS.store(1, Relaxed);
    set_key(v | COUNTED);
}

/// What `pthread_create` passes to the wrapped start routine.
#[repr(C)]
struct Start {
    start: StartFn,
    arg: *mut c_void,
    /// One of the program's threads (not the `jvmalloc` thread).
    counted: bool,
}

extern "C" fn trampoline(p: *mut c_void) -> *mut c_void {
    // SAFETY: `p` is the Start block allocated in pthread_create for this thread only.
    let Start {
        start,
        arg,
        counted,
    } = unsafe { p.cast::<Start>().read() };
    // SAFETY: allocated with je::malloc below and read out above.
    unsafe { je::free(p) };
    register_current(counted);
    start(arg)
}

/// Interposes the C library's `pthread_create` so that every new thread registers itself,
/// and starts the `jvmalloc` thread with the program's first thread.
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
    if !KEYED.load(Acquire) {
        // Out of scope: nothing to register.
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { real(thread, attr, start, arg) };
    }
    // The program's first thread brings the jvmalloc thread (whose own creation comes back
    // here, and is not counted as the program's).
    crate::reporter::start_lazily();
    let counted = !crate::reporter::spawning_here();
    // SAFETY: jemalloc malloc of a small block; checked for NULL below.
    let block = unsafe { je::malloc(core::mem::size_of::<Start>()) }.cast::<Start>();
    if block.is_null() {
        // SAFETY: the caller's arguments, unchanged.
        return unsafe { real(thread, attr, start, arg) };
    }
    // SAFETY: `block` is a fresh allocation large enough for a Start.
    unsafe {
        block.write(Start {
            start,
            arg,
            counted,
        })
    };
    // Counted before it exists, so that the count cannot reach zero while a program
    // thread is being created.
    PROGRAM_THREADS.fetch_add(usize::from(counted), AcqRel);
    // SAFETY: the caller's thread/attr pointers, our start routine and its block.
    let r = unsafe { real(thread, attr, trampoline, block.cast()) };
    if r != 0 {
        if counted {
            program_thread_gone();
        }
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

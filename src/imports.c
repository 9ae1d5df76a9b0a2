/* The C library functions jemalloc calls, where jvmalloc needs them to behave otherwise:
 * routed here by `--wrap` (see `build.rs`), which redirects every call from the objects
 * linked into the library (jemalloc's and jvmalloc's own, never another library's).
 *
 * 1. No interposer during jemalloc's initialisation. The library exports jemalloc's own
 *    `malloc`, `calloc` and `free` (build.rs binds the names to them), so the first
 *    allocation of the process, whoever makes it, initialises jemalloc. Until jemalloc can
 *    serve a recursive allocation, one that comes back to `malloc` on the initialising
 *    thread would wait for itself forever on jemalloc's initialisation lock. What
 *    jemalloc's initialisation calls must therefore not reach another preloaded library
 *    that allocates (fakeroot, proot and path rewriters interpose `readlink`; libfaketime
 *    interposes `clock_gettime`; memory tracers interpose `mmap`). These go straight to the
 *    kernel through `syscall`, as glibc's own malloc reaches the kernel through internal
 *    calls no library can interpose:
 *    - `readlink`: jemalloc reads its options from the link `/etc/_rjem_malloc.conf`. The
 *      answer for that link is jvmalloc's option string (`jvmalloc_jemalloc_options`, in
 *      `src/init.rs`, which loads jvmalloc's configuration at that moment) followed by the
 *      link's own contents, so that jemalloc initialises with jvmalloc's options however
 *      early the first allocation comes.
 *    - `mmap`, `munmap`, `madvise`, `mprotect`, and `sbrk(0)` (the current break);
 *    - `clock_gettime`, which reads the vDSO's clock directly (see below).
 *    The other functions jemalloc's initialisation calls are the C library's mutexes and
 *    thread-specific keys, `sysconf`, `syscall`, `secure_getenv` (of `_RJEM_MALLOC_CONF`)
 *    and string functions; `atexit` with the options `stats_print` or `prof_log`; and,
 *    with profiling armed (jvmalloc's default in a process in scope), one
 *    `_Unwind_Backtrace`, which finds frames with `_dl_find_object` (GCC 12's libgcc on
 *    glibc 2.35 and later; older ones call `dl_iterate_phdr`). jemalloc cannot serve a
 *    recursive allocation there either (it holds its initialisation lock again by then).
 *    An interposer of those that allocates would deadlock any jemalloc (Debian's
 *    libjemalloc2 too), and none is known. `pthread_atfork` and `sched_getaffinity` come
 *    after jemalloc can serve recursive allocations.
 *
 * 2. `free` keeps `errno` (glibc promises it since 2.33). jemalloc's does not: a `free`
 *    that ticks decay purges pages with `madvise(MADV_DONTNEED)`, which fails with `EINVAL`
 *    on locked pages (a process that called `mlockall`, as Elasticsearch's
 *    `bootstrap.memory_lock` does), and growing or trimming its metadata can call `mmap`,
 *    `munmap`, `mprotect` or `sbrk`. Each wrapper here saves `errno`, makes the call and
 *    restores it. The other functions jemalloc imports either cannot fail on a `free` path
 *    (mutexes and condition variables return their errors, `clock_gettime` of a valid
 *    clock), or jemalloc already saves `errno` around them (`process_madvise` through
 *    `syscall`), or they run only at initialisation, for profile dumps or for background
 *    threads, never inside `free`. With that, the exported `free` is jemalloc's own, and
 *    keeps glibc's contract (`c_programs::free_keeps_errno_when_purging_locked_memory`
 *    checks it).
 *
 *    Two paths remain where a `free` could still change `errno`, neither reached in normal
 *    use: when `munmap` fails, jemalloc prints a message (its own formatting and a `write`
 *    through `syscall`); and with `prof_gdump` or `lg_prof_interval` (refused in
 *    JVMALLOC_JEMALLOC_CONF, but reachable through `_RJEM_MALLOC_CONF` or a `mallctl`),
 *    freeing a sampled object can trigger a profile dump, which writes a file.
 *
 *    The price: a caller that wants to know why one of these failed finds the `errno`
 *    from before the call. jemalloc reads it in one place only, the message it prints when
 *    `munmap` fails (which then shows a stale error); jvmalloc's own callers do not.
 *
 * 3. No descriptor without close-on-exec. jemalloc opens a heap profile's file with
 *    `creat`, which has no `O_CLOEXEC`: a `fork` and `exec` by another thread during a
 *    profile dump would hand the descriptor to the new program. The wrapper opens it
 *    close-on-exec.
 *
 * The wrappers are hidden symbols: the library exports none of them, so they cannot take
 * the place of another library's own wrappers of the same names. */
#define _GNU_SOURCE
#include <errno.h>
#include <elf.h>
#include <fcntl.h>
#include <link.h>
#include <stdint.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#define HIDDEN __attribute__((visibility("hidden")))

void *__real_sbrk(intptr_t incr);
/* In src/init.rs: writes jvmalloc's jemalloc options into `buf` (at most `cap` bytes),
 * followed by a comma and the `len` bytes already there, and returns the new length. */
HIDDEN size_t jvmalloc_jemalloc_options(char *buf, size_t len, size_t cap);

/* A system call that leaves errno alone: -1 on failure, as the C library's would. */
static long quiet_syscall(long nr, long a, long b, long c, long d, long e, long f) {
    int saved = errno;
    long r = syscall(nr, a, b, c, d, e, f);
    errno = saved;
    return r;
}

HIDDEN int __wrap_madvise(void *addr, size_t len, int advice) {
    return (int)quiet_syscall(SYS_madvise, (long)addr, (long)len, advice, 0, 0, 0);
}

HIDDEN void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    return (void *)quiet_syscall(SYS_mmap, (long)addr, (long)len, prot, flags, fd, off);
}

HIDDEN int __wrap_munmap(void *addr, size_t len) {
    return (int)quiet_syscall(SYS_munmap, (long)addr, (long)len, 0, 0, 0, 0);
}

HIDDEN int __wrap_mprotect(void *addr, size_t len, int prot) {
    return (int)quiet_syscall(SYS_mprotect, (long)addr, (long)len, prot, 0, 0, 0);
}

/* jemalloc asks for the current break (`sbrk(0)`) while it initialises: that is the brk
 * system call with 0, which cannot fail. Moving the break keeps it in the C library, so
 * it cannot be a raw call; jemalloc does that only for `dss`, never by default. */
HIDDEN void *__wrap_sbrk(intptr_t incr) {
    int e = errno;
    void *r = incr == 0 ? (void *)syscall(SYS_brk, 0) : __real_sbrk(incr);
    errno = e;
    return r;
}

/* The kernel's own clock_gettime in the vDSO (mapped into every process, read without a
 * system call), found from the auxiliary vector by its dynamic symbol; 0 until looked up,
 * 1 when there is none. */
static uintptr_t vdso_clock;

typedef int (*clock_fn)(clockid_t, struct timespec *);

static clock_fn vdso_lookup(void) {
#if defined(__x86_64__) || defined(__aarch64__)
    const char *base = (const char *)getauxval(AT_SYSINFO_EHDR);
    if (!base) return 0;
    const ElfW(Ehdr) *eh = (const ElfW(Ehdr) *)base;
    if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_shoff == 0 || eh->e_shnum == 0)
        return 0;
    const ElfW(Phdr) *ph = (const ElfW(Phdr) *)(base + eh->e_phoff);
    const ElfW(Shdr) *sh = (const ElfW(Shdr) *)(base + eh->e_shoff);
    uintptr_t bias = 0;
    for (int i = 0; i < eh->e_phnum; i++)
        if (ph[i].p_type == PT_LOAD) {
            bias = (uintptr_t)base + ph[i].p_offset - ph[i].p_vaddr;
            break;
        }
    for (int i = 0; i < eh->e_shnum; i++) {
        if (sh[i].sh_type != SHT_DYNSYM) continue;
        const ElfW(Sym) *sym = (const ElfW(Sym) *)(base + sh[i].sh_offset);
        const char *names = base + sh[sh[i].sh_link].sh_offset;
        size_t n = sh[i].sh_size / sizeof(ElfW(Sym));
        for (size_t k = 0; k < n; k++) {
            const char *name = names + sym[k].st_name;
            if (sym[k].st_shndx != SHN_UNDEF && ELF64_ST_TYPE(sym[k].st_info) == STT_FUNC &&
                (strcmp(name, "__vdso_clock_gettime") == 0 ||
                 strcmp(name, "__kernel_clock_gettime") == 0))
                return (clock_fn)(bias + sym[k].st_value);
        }
    }
    return 0;
#else
    /* Elsewhere the vDSO's calling conventions differ (error returns, function
     * descriptors): the system call. */
    return 0;
#endif
}

/* Never the C library's (which an interposer can take over, and jemalloc reads the clock
 * inside its locks and while a thread's state is half set up): the vDSO's, or the system
 * call where there is none. jemalloc reads the clock about once every 600 allocations
 * (its thread caches' 10 ms collection gate), so it must not be a system call. */
HIDDEN int __wrap_clock_gettime(clockid_t clock, struct timespec *ts) {
    uintptr_t f = __atomic_load_n(&vdso_clock, __ATOMIC_RELAXED);
    if (f == 0) {
        clock_fn found = vdso_lookup();
        f = found ? (uintptr_t)found : 1;
        __atomic_store_n(&vdso_clock, f, __ATOMIC_RELAXED);
    }
    if (f != 1) {
        int r = ((clock_fn)f)(clock, ts);
        if (r == 0) return 0;
        errno = -r;
        return -1;
    }
    return (int)syscall(SYS_clock_gettime, clock, ts);
}

/* For jemalloc's option link, the answer is jvmalloc's options followed by the link's own
 * contents, and errno is left as it was (the first allocation of the process must not
 * leave the ENOENT of a missing link, or whatever loading the configuration met). */
HIDDEN ssize_t __wrap_readlink(const char *path, char *buf, size_t size) {
    int e = errno;
    long n = syscall(SYS_readlinkat, AT_FDCWD, path, buf, size);
    if (path == NULL || strcmp(path, "/etc/_rjem_malloc.conf") != 0)
        return n;
    size_t r = jvmalloc_jemalloc_options(buf, n < 0 ? 0 : (size_t)n, size);
    errno = e;
    return (ssize_t)r;
}

HIDDEN int __wrap_creat(const char *path, mode_t mode) {
    return (int)syscall(SYS_openat, AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC | O_CLOEXEC, mode);
}

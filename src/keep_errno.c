/* The system calls jemalloc makes that can fail inside `free`, wrapped so that they leave
 * `errno` as they found it.
 *
 * glibc's `free` keeps `errno` (since 2.33). jemalloc's does not: a `free` that ticks decay
 * purges pages with `madvise(MADV_DONTNEED)`, which fails with `EINVAL` on locked pages
 * (a process that called `mlockall`, as Elasticsearch's `bootstrap.memory_lock` does),
 * and growing or trimming its metadata can call `mmap`, `munmap`, `mprotect` or `sbrk`.
 * The library is linked with `--wrap` for each of them (`build.rs`), so every call from
 * jemalloc (and from jvmalloc's own code) reaches the wrapper here, which saves `errno`,
 * makes the call and restores it. The other functions jemalloc imports either cannot fail
 * on a `free` path (mutexes and condition variables return their errors, `clock_gettime`
 * of a valid clock), or jemalloc already saves `errno` around them (`process_madvise`
 * through `syscall`), or they run only at initialisation, for profile dumps or for
 * background threads, never inside `free`. With that, the exported `free` hands over to
 * jemalloc with a jump, and keeps glibc's contract (`c_programs::
 * free_keeps_errno_when_purging_locked_memory` checks it).
 *
 * Two paths remain where a `free` could still change `errno`, neither reached in normal
 * use: when `munmap` fails, jemalloc prints a message (its own formatting and a `write`
 * through `syscall`); and with `prof_gdump` or `lg_prof_interval` (refused in
 * JVMALLOC_JEMALLOC_CONF, but reachable through `_RJEM_MALLOC_CONF` or a `mallctl`), freeing
 * a sampled object can trigger a profile dump, which writes a file.
 *
 * The price: a caller that wants to know why one of these failed finds the `errno` from
 * before the call. jemalloc reads it in one place only, the message it prints when
 * `munmap` fails (which then shows a stale error); jvmalloc's own callers do not read it.
 *
 * The wrappers are hidden symbols: the library exports none of them, so they cannot take
 * the place of another library's own wrappers of the same names. */
#include <errno.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/types.h>

#define HIDDEN __attribute__((visibility("hidden")))

int __real_madvise(void *addr, size_t len, int advice);
void *__real_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off);
int __real_munmap(void *addr, size_t len);
int __real_mprotect(void *addr, size_t len, int prot);
void *__real_sbrk(intptr_t incr);

HIDDEN int __wrap_madvise(void *addr, size_t len, int advice) {
    int e = errno;
    int r = __real_madvise(addr, len, advice);
    errno = e;
    return r;
}

HIDDEN void *__wrap_mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    int e = errno;
    void *r = __real_mmap(addr, len, prot, flags, fd, off);
    errno = e;
    return r;
}

HIDDEN int __wrap_munmap(void *addr, size_t len) {
    int e = errno;
    int r = __real_munmap(addr, len);
    errno = e;
    return r;
}

HIDDEN int __wrap_mprotect(void *addr, size_t len, int prot) {
    int e = errno;
    int r = __real_mprotect(addr, len, prot);
    errno = e;
    return r;
}

HIDDEN void *__wrap_sbrk(intptr_t incr) {
    int e = errno;
    void *r = __real_sbrk(incr);
    errno = e;
    return r;
}

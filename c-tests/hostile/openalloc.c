/* openalloc: a preloadable library (built with -shared -fPIC) that interposes functions
 * an allocator's initialisation may call, and allocates in each (malloc + free, strdup of
 * a path) before forwarding to the next definition (dlsym(RTLD_NEXT)): those that open or
 * resolve files, as fakeroot, proot and path rewriters do; `clock_gettime`, as libfaketime
 * does; `mmap` and `munmap`, as memory tracers do. Preloaded next to jvmalloc, in either
 * order, every program must still start, run and exit normally: jvmalloc's and jemalloc's
 * initialisation must not spin or hang when something they call allocates. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* What an interposer typically does with the path: copy it, look at it, drop it. */
static void allocate_a_little(const char *path) {
    void *p = malloc(64);
    if (p) ((volatile char *)p)[0] = 1;
    free(p);
    if (path) {
        char *copy = strdup(path);
        free(copy);
    }
}

static int needs_mode(int flags) {
    return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE;
}

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef FILE *(*fopen_fn)(const char *, const char *);
typedef ssize_t (*readlink_fn)(const char *, char *, size_t);
typedef ssize_t (*readlinkat_fn)(int, const char *, char *, size_t);
typedef int (*clock_gettime_fn)(clockid_t, struct timespec *);
typedef void *(*mmap_fn)(void *, size_t, int, int, int, off_t);
typedef int (*munmap_fn)(void *, size_t);

/* The next definition of `name` (glibc's, or another preloaded library's). */
#define NEXT(name, type)                                                                 \
    static type next_;                                                                   \
    if (!next_) next_ = (type)dlsym(RTLD_NEXT, name)

int open(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    allocate_a_little(path);
    NEXT("open", open_fn);
    return next_(path, flags, mode);
}

int open64(const char *path, int flags, ...) {
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    allocate_a_little(path);
    NEXT("open64", open_fn);
    return next_(path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...) {
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    allocate_a_little(path);
    NEXT("openat", openat_fn);
    return next_(dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...) {
    mode_t mode = 0;
    if (needs_mode(flags)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    allocate_a_little(path);
    NEXT("openat64", openat_fn);
    return next_(dirfd, path, flags, mode);
}

FILE *fopen(const char *path, const char *mode) {
    allocate_a_little(path);
    NEXT("fopen", fopen_fn);
    return next_(path, mode);
}

ssize_t readlink(const char *path, char *buf, size_t size) {
    allocate_a_little(path);
    NEXT("readlink", readlink_fn);
    return next_(path, buf, size);
}

ssize_t readlinkat(int dirfd, const char *path, char *buf, size_t size) {
    allocate_a_little(path);
    NEXT("readlinkat", readlinkat_fn);
    return next_(dirfd, path, buf, size);
}

int clock_gettime(clockid_t clock, struct timespec *ts) {
    allocate_a_little(NULL);
    NEXT("clock_gettime", clock_gettime_fn);
    return next_(clock, ts);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off) {
    allocate_a_little(NULL);
    NEXT("mmap", mmap_fn);
    return next_(addr, len, prot, flags, fd, off);
}

int munmap(void *addr, size_t len) {
    allocate_a_little(NULL);
    NEXT("munmap", munmap_fn);
    return next_(addr, len);
}

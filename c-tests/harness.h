/* Shared helpers for the jvmalloc C test programs.
 * Each program runs under LD_PRELOAD=libjvmalloc.so (and, where it says so, under plain
 * glibc too, to show the behaviour it checks is glibc's). It prints "<name>: ok" and exits 0,
 * or prints one "FAIL file:line: ..." line per broken expectation and exits 1. A watchdog
 * (alarm) turns a hang into a failure instead of a stuck suite. */
#ifndef JVMALLOC_HARNESS_H
#define JVMALLOC_HARNESS_H
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                         \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);      \
            fprintf(stderr, __VA_ARGS__);                                        \
            fputc('\n', stderr);                                                 \
            failures++;                                                          \
        }                                                                        \
    } while (0)

/* SIGALRM's default action ends the process: a hang becomes "killed by signal 14". */
static inline void watchdog(unsigned seconds) { alarm(seconds); }

/* Calls f(name, arg) with the name of each of the process's threads
 * (/proc/self/task/<tid>/comm, without the newline). */
static inline void each_thread_name(void (*f)(const char *, void *), void *arg) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[300], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f2 = fopen(path, "r");
        if (!f2) continue;
        if (fgets(name, sizeof name, f2)) name[strcspn(name, "\n")] = 0;
        fclose(f2);
        f(name, arg);
    }
    if (d) closedir(d);
}

struct harness_count { const char *want; int n; };
static void harness_count_one(const char *name, void *arg) {
    struct harness_count *c = arg;
    c->n += !c->want || !strcmp(name, c->want);
}
/* Threads named `want` (every thread when NULL). */
static inline int threads_named(const char *want) {
    struct harness_count c = {want, 0};
    each_thread_name(harness_count_one, &c);
    return c.n;
}

/* Waits up to 5 s for a thread called `name`. */
static inline int wait_for_thread(const char *name) {
    for (int i = 0; i < 500; i++) {
        if (threads_named(name)) return 1;
        usleep(10000);
    }
    return 0;
}

/* Starts and joins one thread. jvmalloc starts its own thread with the program's first
 * thread; a test program that is otherwise single-threaded calls this to get it. */
static void *harness_nothing(void *arg) { return arg; }
static inline void start_one_thread(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, harness_nothing, NULL) == 0) pthread_join(t, NULL);
}

static inline int finish(const char *name) {
    if (failures) {
        printf("%s: %d failures\n", name, failures);
        return 1;
    }
    printf("%s: ok\n", name);
    return 0;
}

typedef int (*mallctl_fn)(const char *, void *, size_t *, void *, size_t);

/* jemalloc's mallctl if the allocator in this process exports one, else NULL. */
static inline mallctl_fn find_mallctl(void) {
    return (mallctl_fn)dlsym(RTLD_DEFAULT, "mallctl");
}

/* Reads a size_t/uint64 statistic (after refreshing jemalloc's epoch). */
static inline uint64_t stat_u64(const char *name) {
    mallctl_fn ctl = find_mallctl();
    if (!ctl) return 0;
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    ctl("epoch", &epoch, &len, &epoch, len);
    size_t v = 0;
    len = sizeof v;
    if (ctl(name, &v, &len, NULL, 0) != 0) return 0;
    return v;
}

/* Whether the test expects to run under jvmalloc (set by the test driver). */
static inline int expect_jvmalloc(void) {
    const char *e = getenv("EXPECT_JVMALLOC");
    return e && *e == '1';
}

/* Resident set size of this process in bytes. */
static inline long rss_bytes(void) {
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return -1;
    if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = -1;
    fclose(f);
    return resident * sysconf(_SC_PAGESIZE);
}

/* Asks jvmalloc for a statistics dump now (0 when written where configured). */
static inline int dump_stats(void) {
    int (*f)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "jvmalloc_dump_stats");
    return f ? f() : -2;
}

/* A field of /proc/self/status in KiB ("VmRSS", "VmHWM", ...), -1 if unknown. */
static inline long status_kb(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    size_t n = strlen(field);
    long v = -1;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, field, n) == 0 && line[n] == ':' && sscanf(line + n + 1, "%ld", &v) == 1)
            break;
    if (f) fclose(f);
    return v;
}

/* Peak resident set size of this process in KiB (VmHWM), -1 if unknown. */
static inline long peak_rss_kb(void) { return status_kb("VmHWM"); }

/* xorshift: cheap per-thread random numbers. */
static inline uint64_t rnd(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}
/* Allocates and frees blocks of 1 B to 2 KiB (one in 16 up to `big` bytes) in a
 * window of 64 slots until *stop is set; the busy background load of several programs. */
static inline void churn_until(volatile int *stop, uint64_t seed, size_t big) {
    void *slots[64] = {0};
    while (!*stop) {
        int i = (int)(rnd(&seed) % 64);
        free(slots[i]);
        slots[i] = malloc(1 + rnd(&seed) % ((rnd(&seed) & 15) ? 2048 : big));
        if (slots[i]) *(volatile char *)slots[i] = 1;
    }
    for (int i = 0; i < 64; i++) free(slots[i]);
}

/* qsort comparator for doubles. */
static inline int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
#endif

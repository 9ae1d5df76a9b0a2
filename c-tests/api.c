/* API conformance: the glibc 2.36 contracts jvmalloc must keep, checked the same way under
 * plain glibc (EXPECT_JVMALLOC unset) and under jvmalloc (EXPECT_JVMALLOC=1), plus the
 * jvmalloc-only checks: every allocation symbol resolves to libjvmalloc.so, jemalloc answers
 * mallctl, the arena count follows JVMALLOC_ARENAS even when another library's constructor
 * allocated first (libearly), and glibc's management calls give jemalloc's figures.
 * Usage: api <malloc_info-output-file> */
#include "harness.h"
#include <malloc.h>
#include <stdint.h>

extern unsigned early_narenas;
extern int early_had_mallctl;

static const char *exported[] = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "malloc_usable_size", "free_sized", "free_aligned_sized",
    "cfree", "__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc",
    "__libc_memalign", "__libc_valloc", "__libc_pvalloc", "__posix_memalign", "malloc_trim",
    "mallinfo", "mallinfo2", "malloc_info", "malloc_stats", "mallopt", "mallctl",
    "mallctlnametomib", "mallctlbymib", "malloc_stats_print", NULL};

static size_t next_pow2(size_t a) {
    size_t p = 1;
    while (p < a) p <<= 1;
    return p;
}

static void check_symbols(void) {
    for (const char **n = exported; *n; n++) {
        void *sym = dlsym(RTLD_DEFAULT, *n);
        Dl_info info;
        CHECK(sym && dladdr(sym, &info) && strstr(info.dli_fname, "libjvmalloc"),
              "%s resolves to %s", *n, sym && dladdr(sym, &info) ? info.dli_fname : "nothing");
    }
}

static void check_malloc_free(void) {
    void *a = malloc(0), *b = malloc(0);
    CHECK(a && b && a != b, "malloc(0) gives unique pointers: %p %p", a, b);
    free(a);
    free(b);
    errno = 0;
    CHECK(malloc(SIZE_MAX) == NULL && errno == ENOMEM, "malloc(SIZE_MAX): errno %d", errno);
    errno = 0;
    CHECK(malloc((size_t)PTRDIFF_MAX + 1) == NULL && errno == ENOMEM,
          "malloc(PTRDIFF_MAX+1): errno %d", errno);
    for (size_t n = 1; n <= (64u << 20); n = n * 3 + 1) {
        unsigned char *p = malloc(n);
        CHECK(p != NULL, "malloc(%zu)", n);
        if (!p) continue;
        CHECK(((uintptr_t)p % (n >= 16 ? 16 : next_pow2(n))) == 0, "malloc(%zu) alignment %p", n, p);
        CHECK(malloc_usable_size(p) >= n, "usable %zu < %zu", malloc_usable_size(p), n);
        memset(p, 0x5a, n);
        errno = 4321;
        free(p);
        CHECK(errno == 4321, "free changed errno to %d", errno);
    }
    errno = 77;
    free(NULL);
    CHECK(errno == 77, "free(NULL) changed errno");
    CHECK(malloc_usable_size(NULL) == 0, "malloc_usable_size(NULL)");
}

static void check_calloc(void) {
    errno = 0;
    CHECK(calloc(SIZE_MAX / 2 + 1, 2) == NULL && errno == ENOMEM, "calloc overflow errno %d", errno);
    errno = 0;
    CHECK(calloc((size_t)1 << 33, (size_t)1 << 33) == NULL && errno == ENOMEM, "calloc 2^66");
    size_t sizes[] = {1, 8, 24, 100, 512, 4000, 16384, 100000, 1 << 20, 5 << 20};
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t n = sizes[i];
            unsigned char *d = malloc(n);
            memset(d, 0xab, n);
            free(d);
            unsigned char *p = calloc(1, n);
            CHECK(p != NULL, "calloc(%zu)", n);
            size_t bad = 0;
            for (size_t j = 0; p && j < n; j++) bad += p[j] != 0;
            CHECK(bad == 0, "calloc(1,%zu) had %zu non-zero bytes", n, bad);
            free(p);
        }
    }
}

static void check_realloc(void) {
    char *p = realloc(NULL, 10);
    CHECK(p != NULL, "realloc(NULL, 10)");
    strcpy(p, "abcdefghi");
    for (size_t n = 16; n < (8u << 20); n *= 4) {
        p = realloc(p, n);
        CHECK(p && strcmp(p, "abcdefghi") == 0, "grow to %zu keeps contents", n);
    }
    p = realloc(p, 5);
    CHECK(p && memcmp(p, "abcde", 5) == 0, "shrink keeps prefix");
    errno = 0;
    char *q = realloc(p, SIZE_MAX);
    CHECK(q == NULL && errno == ENOMEM, "realloc(p, SIZE_MAX) errno %d", errno);
    CHECK(memcmp(p, "abcde", 5) == 0, "failed realloc leaves block intact");
    /* glibc 2.36: realloc(p, 0) frees p and returns NULL. */
    CHECK(realloc(p, 0) == NULL, "realloc(p, 0) returns NULL");
    void *z = realloc(NULL, 0);
    CHECK(z != NULL, "realloc(NULL, 0) is malloc(0)");
    free(z);

    int *a = reallocarray(NULL, 100, sizeof(int));
    CHECK(a != NULL, "reallocarray");
    for (int i = 0; i < 100; i++) a[i] = i;
    errno = 0;
    CHECK(reallocarray(a, SIZE_MAX / 2, 4) == NULL && errno == ENOMEM, "reallocarray overflow");
    CHECK(a[99] == 99, "reallocarray failure keeps block");
    a = reallocarray(a, 1000, sizeof(int));
    CHECK(a && a[99] == 99, "reallocarray grow");
    free(a);
}

static void check_memalign(void) {
    void *out = (void *)0x1234;
    size_t bad[] = {0, 1, 2, 4, 12, 24, 40, 48, 100, 4097};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK(posix_memalign(&out, bad[i], 16) == EINVAL, "posix_memalign align %zu", bad[i]);
        CHECK(out == (void *)0x1234, "out-pointer untouched on EINVAL");
    }
    CHECK(posix_memalign(&out, 64, SIZE_MAX) == ENOMEM, "posix_memalign huge");
    CHECK(out == (void *)0x1234, "out-pointer untouched on ENOMEM");
    for (size_t a = sizeof(void *); a <= (1u << 22); a <<= 1) {
        for (size_t n = 0; n < 70000; n = n * 5 + 1) {
            void *p = NULL;
            CHECK(posix_memalign(&p, a, n) == 0 && p && (uintptr_t)p % a == 0,
                  "posix_memalign(%zu, %zu) = %p", a, n, p);
            if (p) memset(p, 1, n);
            free(p);
        }
    }
    /* glibc 2.36 rounds an alignment that is not a power of two up, and succeeds. */
    size_t aligns[] = {1, 2, 3, 8, 16, 24, 33, 48, 64, 100, 3000, 4096, 5000, 1 << 16, 1 << 21};
    for (size_t i = 0; i < sizeof aligns / sizeof *aligns; i++) {
        size_t a = aligns[i], want = next_pow2(a);
        void *p = memalign(a, 100);
        CHECK(p && (uintptr_t)p % want == 0, "memalign(%zu) = %p", a, p);
        free(p);
        p = aligned_alloc(a, 200);
        CHECK(p && (uintptr_t)p % want == 0, "aligned_alloc(%zu) = %p", a, p);
        free(p);
    }
    errno = 0;
    CHECK(memalign(SIZE_MAX / 2 + 2, 8) == NULL && errno == EINVAL, "memalign huge align: %d", errno);
    errno = 0;
    CHECK(aligned_alloc(4096, SIZE_MAX - 100) == NULL && errno == ENOMEM, "aligned_alloc huge: %d", errno);
    long page = sysconf(_SC_PAGESIZE);
    void *v = valloc(10);
    CHECK(v && (uintptr_t)v % page == 0, "valloc");
    free(v);
    void *pv = pvalloc(page + 1);
    CHECK(pv && (uintptr_t)pv % page == 0 && malloc_usable_size(pv) >= (size_t)(2 * page), "pvalloc");
    free(pv);
    errno = 0;
    CHECK(pvalloc(SIZE_MAX - 10) == NULL && errno == ENOMEM, "pvalloc huge: %d", errno);
}

/* The C23 and obsolete names, and glibc's internal ones, where this libc has them. */
static void check_other_names(void) {
    void (*fs)(void *, size_t) = (void (*)(void *, size_t))dlsym(RTLD_DEFAULT, "free_sized");
    void (*fas)(void *, size_t, size_t) =
        (void (*)(void *, size_t, size_t))dlsym(RTLD_DEFAULT, "free_aligned_sized");
    void (*cf)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "cfree");
    void *(*lm)(size_t) = (void *(*)(size_t))dlsym(RTLD_DEFAULT, "__libc_malloc");
    void (*lf)(void *) = (void (*)(void *))dlsym(RTLD_DEFAULT, "__libc_free");
    if (expect_jvmalloc()) CHECK(fs && fas && cf && lm && lf, "all names present");
    if (fs) {
        errno = 9;
        fs(malloc(300), 300);
        CHECK(errno == 9, "free_sized keeps errno");
    }
    if (fas) fas(aligned_alloc(256, 512), 256, 512);
    if (cf) cf(malloc(10));
    if (lm && lf) {
        void *p = lm(1000);
        CHECK(p != NULL, "__libc_malloc");
        free(p); /* cross-name free: same allocator */
        lf(malloc(5));
    }
}

static void check_jemalloc(void) {
    mallctl_fn ctl = find_mallctl();
    CHECK(ctl != NULL, "mallctl exported");
    if (!ctl) return;
    const char *version = NULL;
    size_t len = sizeof version;
    CHECK(ctl("version", &version, &len, NULL, 0) == 0 && strncmp(version, "5.3", 3) == 0,
          "jemalloc version %s", version ? version : "?");
    unsigned narenas = 0, total = 0;
    len = sizeof narenas;
    ctl("opt.narenas", &narenas, &len, NULL, 0);
    len = sizeof total;
    ctl("arenas.narenas", &total, &len, NULL, 0);
    const char *want = getenv("JVMALLOC_ARENAS");
    if (want) {
        unsigned w = (unsigned)atoi(want);
        CHECK(narenas == w, "opt.narenas %u, JVMALLOC_ARENAS %u", narenas, w);
        /* jemalloc adds one arena for huge (oversize) allocations when first needed. */
        CHECK(total == w || total == w + 1, "arenas.narenas %u, JVMALLOC_ARENAS %u", total, w);
        CHECK(early_had_mallctl && early_narenas == w,
              "constructor before jvmalloc's saw narenas %u", early_narenas);
    }
    size_t mib[4], miblen = 4;
    CHECK(((int (*)(const char *, size_t *, size_t *))dlsym(RTLD_DEFAULT, "mallctlnametomib"))(
              "arenas.narenas", mib, &miblen) == 0, "mallctlnametomib");
    printf("jemalloc %s, %u arenas\n", version, narenas);
}

static void check_management(const char *info_path) {
    CHECK(mallopt(M_ARENA_MAX, 2) == 1, "mallopt");
    CHECK(mallopt(M_TRIM_THRESHOLD, 1 << 20) == 1, "mallopt trim threshold");
    enum { N = 20000, SZ = 3000 };
    static void *blocks[N];
    for (int i = 0; i < N; i++) memset(blocks[i] = malloc(SZ), 7, SZ);
    struct mallinfo2 mi = mallinfo2();
    CHECK(mi.uordblks >= (size_t)N * SZ, "mallinfo2 uordblks %zu < live %d", mi.uordblks, N * SZ);
    CHECK(mi.arena >= mi.uordblks || !expect_jvmalloc(), "arena %zu < uordblks %zu", mi.arena,
          mi.uordblks);
    struct mallinfo m1 = mallinfo();
    CHECK(m1.uordblks >= N * SZ, "mallinfo uordblks %d", m1.uordblks);
    long rss_full = rss_bytes();
    for (int i = 0; i < N; i++) free(blocks[i]);
    int trimmed = malloc_trim(0);
    long rss_trim = rss_bytes();
    CHECK(trimmed == 1, "malloc_trim after freeing %d MB returned %d", N * SZ >> 20, trimmed);
    CHECK(rss_trim < rss_full - (N * SZ / 2), "RSS after trim %ld, before %ld", rss_trim, rss_full);
    FILE *f = fopen(info_path, "w");
    CHECK(f && malloc_info(0, f) == 0, "malloc_info");
    if (f) fclose(f);
    CHECK(malloc_info(1, stdout) == EINVAL, "malloc_info(1, ...) is EINVAL");
    malloc_stats();
}

int main(int argc, char **argv) {
    watchdog(60);
    check_malloc_free();
    check_calloc();
    check_realloc();
    check_memalign();
    check_other_names();
    check_management(argc > 1 ? argv[1] : "/dev/null");
    if (expect_jvmalloc()) {
        check_symbols();
        check_jemalloc();
    }
    return finish("api");
}

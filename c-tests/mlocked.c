/* free keeps errno even when jemalloc's purge fails: in a process that called
 * mlockall(MCL_CURRENT | MCL_FUTURE) (Elasticsearch's bootstrap.memory_lock does),
 * madvise(MADV_DONTNEED) on locked pages fails with EINVAL, and jemalloc's free, which
 * purges freed pages as decay asks, does not save errno around it. Run with a decay of 0
 * so that frees purge at once. Debian's libjemalloc2 fails this program (free sets errno to
 * EINVAL); glibc and jvmalloc pass. Prints "mlocked: ok". */
#include "harness.h"
#include <sys/mman.h>

int main(void) {
    watchdog(60);
    if (mlockall(MCL_CURRENT | MCL_FUTURE) != 0) {
        fprintf(stderr, "FAIL mlockall: %s (the test needs CAP_IPC_LOCK or a large RLIMIT_MEMLOCK)\n",
                strerror(errno));
        return 1;
    }
    /* The hazard exists: madvise on locked pages fails. */
    char *m = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    CHECK(m != MAP_FAILED, "mmap");
    memset(m, 1, 1 << 20);
    errno = 0;
    int r = madvise(m, 1 << 20, MADV_DONTNEED);
    CHECK(r != 0 && errno == EINVAL, "madvise(MADV_DONTNEED) on locked pages returned %d, errno %d", r, errno);
    munmap(m, 1 << 20);

    static const size_t sizes[] = {16, 4096, 40000, 300000, 2 << 20, 9 << 20};
    for (int round = 0; round < 200; round++) {
        for (unsigned i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
            char *p = malloc(sizes[i]);
            CHECK(p != NULL, "malloc");
            memset(p, round, sizes[i]);
            errno = 4321;
            free(p);
            CHECK(errno == 4321, "free of %zu bytes (round %d) changed errno to %d", sizes[i], round, errno);
            if (errno != 4321) return 1;
        }
    }
    if (failures) return 1;
    puts("mlocked: ok");
    return 0;
}

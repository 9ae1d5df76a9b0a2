/* Large allocations: THREADS threads (default 4) each allocate OPS (default 400) blocks of
 * 1 - 32 MiB, write every page, and free them, keeping up to 4 alive at a time. Prints
 *   large: seconds S hwm_kb H pre_kb P rss_kb R [idle_rss_kb I]
 * the seconds taken, the peak RSS, the RSS before the threads start and after every block
 * was freed, and with IDLE_S the RSS after IDLE_S seconds of idleness. Under stock jemalloc,
 * blocks of 8 MiB and more go to an arena that returns them to the kernel at once, so every
 * reuse page-faults. A benchmark, not a test. Usage: large [threads] [ops] [idle_s] */
#include "harness.h"
#include <pthread.h>
#include <time.h>

static int nops = 400;

static void *worker(void *arg) {
    uint64_t s = 11 + (uintptr_t)arg;
    char *keep[4] = {0};
    long page = sysconf(_SC_PAGESIZE);
    for (int i = 0; i < nops; i++) {
        int slot = i % 4;
        free(keep[slot]);
        size_t n = ((size_t)1 << 20) + rnd(&s) % ((size_t)31 << 20);
        char *p = malloc(n);
        for (size_t off = 0; off < n; off += page) p[off] = (char)i;
        keep[slot] = p;
    }
    for (int i = 0; i < 4; i++) free(keep[i]);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 4;
    if (argc > 2) nops = atoi(argv[2]);
    int idle_s = argc > 3 ? atoi(argv[3]) : 0;
    pthread_t t[64];
    long pre_kb = rss_bytes() / 1024;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("large: seconds %.3f hwm_kb %ld pre_kb %ld rss_kb %ld", (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9,
           peak_rss_kb(), pre_kb, rss_bytes() / 1024);
    if (idle_s > 0) {
        sleep(idle_s);
        printf(" idle_rss_kb %ld", rss_bytes() / 1024);
    }
    printf("\n");
    return 0;
}

/* Thread churn: THREADS short-lived threads (BATCH alive at a time) each allocate a few
 * blocks, free most, hand one to the main thread, and exit. During exit, a thread-specific
 * data destructor frees a block and allocates and frees more (allocation during thread
 * teardown, after the allocator may have flushed that thread's cache). Afterwards the
 * allocator's live bytes must be back near where they started: thread caches of dead
 * threads are flushed.
 * Usage: churn [threads] */
#include "harness.h"
#include <pthread.h>

#define BATCH 32
static void *handed[BATCH];
static pthread_key_t teardown_key;
static long teardown_runs;

static void teardown(void *p) {
    free(p);
    void *q = malloc(777);
    memset(q, 5, 777);
    q = realloc(q, 70000);
    free(q);
    __atomic_add_fetch(&teardown_runs, 1, __ATOMIC_RELAXED);
}

static void *short_lived(void *arg) {
    int slot = (int)(intptr_t)arg;
    uint64_t s = 17 + (uint64_t)slot * 31 + (uint64_t)pthread_self();
    void *p[16];
    for (int i = 0; i < 16; i++) {
        size_t n = 1 + rnd(&s) % 8192;
        p[i] = malloc(n);
        if (p[i]) memset(p[i], 9, n);
    }
    for (int i = 1; i < 16; i++) free(p[i]);
    handed[slot] = p[0]; /* freed by the main thread */
    pthread_setspecific(teardown_key, malloc(100));
    return NULL;
}

int main(int argc, char **argv) {
    int total = argc > 1 ? atoi(argv[1]) : 10000;
    watchdog(240);
    pthread_key_create(&teardown_key, teardown);
    uint64_t before = stat_u64("stats.allocated");
    dump_stats(); /* a no-op (-2) without jvmalloc; dump #1 under it */
    int started = 0, failed = 0;
    while (started < total) {
        pthread_t t[BATCH];
        int n = 0;
        for (; n < BATCH && started < total; n++, started++)
            if (pthread_create(&t[n], NULL, short_lived, (void *)(intptr_t)n) != 0) failed++;
        for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
        for (int i = 0; i < n; i++) free(handed[i]), handed[i] = NULL;
    }
    CHECK(failed == 0, "%d pthread_create failures", failed);
    CHECK(teardown_runs == total, "%ld of %d teardown destructors ran", teardown_runs, total);
    if (find_mallctl()) {
        uint64_t after = stat_u64("stats.allocated");
        CHECK(after < before + (4u << 20), "live bytes grew from %llu to %llu after %d threads",
              (unsigned long long)before, (unsigned long long)after, total);
    }
    printf("churn: %d threads\n", total);
    return finish("churn");
}

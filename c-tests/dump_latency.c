/* Dump latency: THREADS live threads (default 500), each holding a few allocations, while
 * the main thread asks for DUMPS statistics dumps (default 20) with jvmalloc_dump_stats()
 * and times each. Prints the median and the maximum in milliseconds. A benchmark, not a
 * test. Usage: dump_latency [threads] [dumps] */
#include "harness.h"
#include <pthread.h>
#include <time.h>

static pthread_barrier_t start, stop;

static void *holder(void *arg) {
    char name[16];
    snprintf(name, sizeof name, "holder-%d", (int)(intptr_t)arg);
    pthread_setname_np(pthread_self(), name);
    void *p[8];
    for (int i = 0; i < 8; i++) memset(p[i] = malloc(64 << i), 1, 64 << i);
    pthread_barrier_wait(&start);
    pthread_barrier_wait(&stop);
    for (int i = 0; i < 8; i++) free(p[i]);
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 500, dumps = argc > 2 ? atoi(argv[2]) : 20;
    pthread_t *t = malloc(sizeof *t * n);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 64 << 10);
    pthread_barrier_init(&start, NULL, n + 1);
    pthread_barrier_init(&stop, NULL, n + 1);
    for (int i = 0; i < n; i++) pthread_create(&t[i], &attr, holder, (void *)(intptr_t)i);
    pthread_barrier_wait(&start);
    double *ms = malloc(sizeof *ms * dumps);
    for (int i = 0; i < dumps; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        if (dump_stats() != 0) {
            fprintf(stderr, "dump failed\n");
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        ms[i] = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
    }
    pthread_barrier_wait(&stop);
    for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
    qsort(ms, dumps, sizeof *ms, cmp_double);
    printf("threads %d dumps %d median_ms %.2f max_ms %.2f\n", n, dumps, ms[dumps / 2], ms[dumps - 1]);
    return 0;
}

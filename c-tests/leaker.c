/* A leak to find with `jvmalloc diff`: a thread named "leaky-worker" keeps 48 KiB blocks
 * it never frees (like a per-checkpoint map that only grows), while four "busy-N" threads
 * allocate and free as much without keeping anything. The main thread dumps between two
 * rounds: dump #1 after round 1, dump #2 after round 2. */
#include "harness.h"
#include <pthread.h>

static pthread_barrier_t step;

static void *leaky(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "leaky-worker");
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 200; i++) memset(malloc(49152), 7, 49152); /* leaked */
        pthread_barrier_wait(&step);
        pthread_barrier_wait(&step);
    }
    return NULL;
}

static void *busy(void *arg) {
    char name[16];
    snprintf(name, sizeof name, "busy-%d", (int)(intptr_t)arg);
    pthread_setname_np(pthread_self(), name);
    uint64_t s = 77 + (uintptr_t)arg;
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < 20000; i++) {
            size_t n = 16 + rnd(&s) % 60000;
            void *p = malloc(n);
            memset(p, 1, n < 64 ? n : 64);
            free(p);
        }
        pthread_barrier_wait(&step);
        pthread_barrier_wait(&step);
    }
    return NULL;
}

int main(void) {
    watchdog(120);
    pthread_t t[5];
    pthread_barrier_init(&step, NULL, 6);
    pthread_create(&t[0], NULL, leaky, NULL);
    for (int i = 1; i < 5; i++) pthread_create(&t[i], NULL, busy, (void *)(intptr_t)i);
    for (int round = 0; round < 2; round++) {
        pthread_barrier_wait(&step);
        CHECK(dump_stats() == 0, "dump %d", round + 1);
        pthread_barrier_wait(&step);
    }
    for (int i = 0; i < 5; i++) pthread_join(t[i], NULL);
    return finish("leaker");
}

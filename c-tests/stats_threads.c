/* Threads with known allocation behaviour, for checking the statistics dump.
 *   stats_threads known     "alloc-A" keeps 1000 x 10 KiB, "alloc-B" keeps 3 x 1 MiB,
 *                           "freer" frees 500 of A's blocks (net about -5 MiB); all stay
 *                           alive while the main thread dumps, then exit; main dumps again.
 *   stats_threads overflow N   N named threads ("many-K") alive at once, each keeping
 *                           64 KiB, while main dumps; then they exit and main dumps again.
 *   stats_threads wait      like "known", then prints "ready <pid>" and waits for a line on
 *                           stdin before the threads exit (for signals from outside).
 *   stats_threads cleaner N "producer" allocates 2000 x 8 KiB that "Common-Cleaner" frees
 *                           (net about +16 MiB and -16 MiB, as a JVM's direct buffers and
 *                           its cleaner thread), while N "churn-K" threads allocate and free
 *                           small blocks and keep 64 KiB each; main dumps while all are
 *                           alive, then they exit. */
#include "harness.h"
#include <pthread.h>

static pthread_barrier_t ready, done;
static void *a_blocks[1000];

static void *alloc_a(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "alloc-A");
    for (int i = 0; i < 1000; i++) memset(a_blocks[i] = malloc(10240), 1, 10240);
    pthread_barrier_wait(&ready); /* A done */
    pthread_barrier_wait(&ready); /* freer done */
    pthread_barrier_wait(&done);
    for (int i = 500; i < 1000; i++) free(a_blocks[i]);
    return NULL;
}

static void *alloc_b(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "alloc-B");
    void *b[3];
    for (int i = 0; i < 3; i++) memset(b[i] = malloc(1 << 20), 2, 1 << 20);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done);
    for (int i = 0; i < 3; i++) free(b[i]);
    return NULL;
}

static void *freer(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "freer");
    pthread_barrier_wait(&ready);
    for (int i = 0; i < 500; i++) free(a_blocks[i]);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done);
    return NULL;
}

static void *many(void *arg) {
    char name[16];
    snprintf(name, sizeof name, "many-%d", (int)(intptr_t)arg);
    pthread_setname_np(pthread_self(), name);
    void *p = malloc(65536);
    memset(p, 3, 65536);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done);
    free(p);
    return NULL;
}

enum { HANDED_OVER = 2000, HANDED_SIZE = 8192 };
static void *handed[HANDED_OVER];
static pthread_barrier_t handover;

static void *producer(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "producer");
    for (int i = 0; i < HANDED_OVER; i++) memset(handed[i] = malloc(HANDED_SIZE), 4, HANDED_SIZE);
    pthread_barrier_wait(&handover);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done);
    return NULL;
}

static void *cleaner(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "Common-Cleaner");
    pthread_barrier_wait(&handover);
    for (int i = 0; i < HANDED_OVER; i++) free(handed[i]);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done);
    return NULL;
}

static void *churner(void *arg) {
    char name[16];
    snprintf(name, sizeof name, "churn-%d", (int)(intptr_t)arg);
    pthread_setname_np(pthread_self(), name);
    for (int i = 0; i < 1000; i++) {
        char *p = malloc(1024);
        memset(p, 5, 1024);
        free(p);
    }
    void *keep = malloc(65536);
    memset(keep, 5, 65536);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&done);
    free(keep);
    return NULL;
}

int main(int argc, char **argv) {
    watchdog(120);
    const char *mode = argc > 1 ? argv[1] : "known";
    if (!strcmp(mode, "overflow")) {
        int n = argc > 2 ? atoi(argv[2]) : 40;
        pthread_t *t = malloc(sizeof *t * n);
        pthread_barrier_init(&ready, NULL, n + 1);
        pthread_barrier_init(&done, NULL, n + 1);
        for (int i = 0; i < n; i++) pthread_create(&t[i], NULL, many, (void *)(intptr_t)i);
        pthread_barrier_wait(&ready);
        CHECK(dump_stats() == 0, "dump with %d threads alive", n);
        pthread_barrier_wait(&done);
        for (int i = 0; i < n; i++) pthread_join(t[i], NULL);
        CHECK(dump_stats() == 0, "dump after the threads exited");
        free(t);
        return finish("stats_threads overflow");
    }
    if (!strcmp(mode, "cleaner")) {
        int n = argc > 2 ? atoi(argv[2]) : 12;
        pthread_t *t = malloc(sizeof *t * (n + 2));
        pthread_barrier_init(&handover, NULL, 2);
        pthread_barrier_init(&ready, NULL, n + 3);
        pthread_barrier_init(&done, NULL, n + 3);
        pthread_create(&t[0], NULL, producer, NULL);
        pthread_create(&t[1], NULL, cleaner, NULL);
        for (int i = 0; i < n; i++) pthread_create(&t[i + 2], NULL, churner, (void *)(intptr_t)i);
        pthread_barrier_wait(&ready);
        CHECK(dump_stats() == 0, "dump with %d threads alive", n + 2);
        pthread_barrier_wait(&done);
        for (int i = 0; i < n + 2; i++) pthread_join(t[i], NULL);
        free(t);
        return finish("stats_threads cleaner");
    }
    pthread_t t[3];
    pthread_barrier_init(&ready, NULL, 4);
    pthread_barrier_init(&done, NULL, 4);
    pthread_create(&t[0], NULL, alloc_a, NULL);
    pthread_create(&t[1], NULL, alloc_b, NULL);
    pthread_create(&t[2], NULL, freer, NULL);
    pthread_barrier_wait(&ready);
    pthread_barrier_wait(&ready);
    if (!strcmp(mode, "wait")) {
        printf("ready %d\n", (int)getpid());
        fflush(stdout);
        char line[16];
        if (!fgets(line, sizeof line, stdin)) {}
    } else {
        CHECK(dump_stats() == 0, "first dump");
    }
    pthread_barrier_wait(&done);
    for (int i = 0; i < 3; i++) pthread_join(t[i], NULL);
    if (strcmp(mode, "wait")) CHECK(dump_stats() == 0, "second dump");
    return finish("stats_threads");
}

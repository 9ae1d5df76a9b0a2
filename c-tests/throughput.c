/* Allocation throughput: THREADS threads each run OPS malloc/free operations on small and
 * medium sizes (16 B - 16 KiB, a few up to 256 KiB), keeping a window of live blocks, and
 * hand one block in eight to a neighbour thread to free (cross-thread frees). Prints
 * operations per second and the process's peak RSS (VmHWM). A benchmark, not a test: the
 * numbers are compared by scripts/bench-*.sh, never asserted.
 * Usage: throughput [threads] [ops-per-thread] */
#include "harness.h"
#include <pthread.h>
#include <time.h>

#define WINDOW 256
#define RING 1024
typedef struct {
    pthread_mutex_t lock;
    void *items[RING];
    int n;
    char pad[64];
} inbox;

static int nthreads = 16;
static long nops = 2000000;
static inbox *boxes;

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t s = 1000 + me;
    void *win[WINDOW] = {0};
    inbox *next = &boxes[(me + 1) % nthreads], *mine = &boxes[me];
    for (long i = 0; i < nops; i++) {
        int slot = (int)(rnd(&s) % WINDOW);
        if (win[slot]) {
            if ((i & 7) == 0) {
                pthread_mutex_lock(&next->lock);
                if (next->n < RING) next->items[next->n++] = win[slot], win[slot] = NULL;
                pthread_mutex_unlock(&next->lock);
            }
            free(win[slot]);
        }
        size_t n = (rnd(&s) & 63) ? 16 + rnd(&s) % 1024 : 1024 + rnd(&s) % (rnd(&s) & 7 ? 16384 : 262144);
        win[slot] = malloc(n);
        *(volatile char *)win[slot] = 1;
        if ((i & 255) == 0) {
            pthread_mutex_lock(&mine->lock);
            for (int k = 0; k < mine->n; k++) free(mine->items[k]);
            mine->n = 0;
            pthread_mutex_unlock(&mine->lock);
        }
    }
    for (int k = 0; k < WINDOW; k++) free(win[k]);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) nthreads = atoi(argv[1]);
    if (argc > 2) nops = atol(argv[2]);
    boxes = calloc(nthreads, sizeof *boxes);
    for (int i = 0; i < nthreads; i++) pthread_mutex_init(&boxes[i].lock, NULL);
    pthread_t *t = malloc(sizeof *t * nthreads);
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    for (int i = 0; i < nthreads; i++)
        for (int k = 0; k < boxes[i].n; k++) free(boxes[i].items[k]);
    double secs = (b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
    printf("threads %d ops %ld seconds %.3f mops_per_s %.2f hwm_kb %ld\n", nthreads,
           nthreads * nops, secs, nthreads * nops / secs / 1e6, peak_rss_kb());
    return 0;
}

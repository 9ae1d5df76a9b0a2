/* larson: models mimalloc-bench's `larson` (Larson and Krishnan's server benchmark), in
 * this repository's own code. THREADS lineages each own an array of BLOCKS blocks of
 * random size 16 - 1024 B, first allocated by the main thread. A lineage is a chain of
 * short-lived threads: each thread replaces OPS random slots of the array (free the old
 * block, malloc a new one of random size, touch it), then starts its successor, hands it
 * the array and exits, as larson's threads do when they are replaced. So most frees are
 * of blocks another (now dead) thread allocated, and the allocator sees a steady stream of
 * new threads. ROUNDS threads per lineage in all; the work is fixed (THREADS x ROUNDS x
 * OPS replacements), so instruction counts under callgrind are comparable between
 * allocators. Prints one line: "larson threads T ops N seconds S mops_per_s M".
 * A benchmark, not a test: nothing is asserted.
 * Usage: larson [threads=2] [rounds=50] [ops=100000] [blocks=5000] */
#include "../harness.h"
#include <semaphore.h>
#include <time.h>

#define MIN_SIZE 16
#define MAX_SIZE 1024

typedef struct {
    void **blocks;
    uint64_t seed;
    int round;
} lineage;

static int nthreads = 2, nrounds = 50, nblocks = 5000;
static long nops = 100000;
static sem_t finished;

static void *generation(void *arg) {
    lineage *l = arg;
    uint64_t s = l->seed;
    void **b = l->blocks;
    for (long i = 0; i < nops; i++) {
        uint64_t r = rnd(&s);
        int victim = (int)(r % (uint64_t)nblocks);
        size_t size = MIN_SIZE + (size_t)((r >> 32) % (MAX_SIZE - MIN_SIZE + 1));
        free(b[victim]);
        b[victim] = malloc(size);
        *(volatile char *)b[victim] = (char)i;
    }
    l->seed = s;
    if (++l->round < nrounds) {
        pthread_t next;
        if (pthread_create(&next, NULL, generation, l) == 0) {
            pthread_detach(next);
            return NULL;
        }
        fprintf(stderr, "larson: pthread_create failed\n");
        exit(1);
    }
    sem_post(&finished);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) nthreads = atoi(argv[1]);
    if (argc > 2) nrounds = atoi(argv[2]);
    if (argc > 3) nops = atol(argv[3]);
    if (argc > 4) nblocks = atoi(argv[4]);
    sem_init(&finished, 0, 0);
    lineage *ls = calloc(nthreads, sizeof *ls);
    for (int t = 0; t < nthreads; t++) {
        ls[t].seed = 4141 + 7919 * (uint64_t)t;
        ls[t].blocks = malloc(sizeof(void *) * nblocks);
        for (int k = 0; k < nblocks; k++) {
            uint64_t r = rnd(&ls[t].seed);
            ls[t].blocks[k] = malloc(MIN_SIZE + r % (MAX_SIZE - MIN_SIZE + 1));
        }
    }
    struct timespec a, z;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int t = 0; t < nthreads; t++) {
        pthread_t th;
        if (pthread_create(&th, NULL, generation, &ls[t]) != 0) return 1;
        pthread_detach(th);
    }
    for (int t = 0; t < nthreads; t++) sem_wait(&finished);
    clock_gettime(CLOCK_MONOTONIC, &z);
    double secs = (z.tv_sec - a.tv_sec) + (z.tv_nsec - a.tv_nsec) / 1e9;
    long total = (long)nthreads * nrounds * nops;
    for (int t = 0; t < nthreads; t++) {
        for (int k = 0; k < nblocks; k++) free(ls[t].blocks[k]);
        free(ls[t].blocks);
    }
    free(ls);
    printf("larson threads %d ops %ld seconds %.3f mops_per_s %.2f\n", nthreads, total, secs,
           total / secs / 1e6);
    return 0;
}

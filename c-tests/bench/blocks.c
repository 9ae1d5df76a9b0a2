/* blocks: a cache of medium blocks, as a storage engine's block cache (RocksDB's data
 * blocks, 4 - 16 KiB once decompressed) or a pool of I/O buffers churns them. Each of
 * THREADS threads keeps WORKING_SET blocks and, ITERS times, frees the block in a random
 * slot and mallocs one of a random size between MIN and MAX bytes in its place, writing
 * its first 64 bytes. Prints one line: "blocks threads T iterations N seconds S mops_per_s M".
 * The work is fixed, so instruction counts under callgrind compare between settings.
 * A benchmark, not a test: nothing is asserted.
 * Usage: blocks [threads=2] [iterations-per-thread=1000000] [min=4096] [max=16384]
 *        [working-set=64] */
#include "../harness.h"
#include <time.h>

static long iters = 1000000;
static size_t min_size = 4096, max_size = 16384;
static int working_set = 64;

static void *worker(void *arg) {
    unsigned r = (unsigned)(uintptr_t)arg * 7919u + 1;
    void **slots = calloc(working_set, sizeof *slots);
    for (long i = 0; i < iters; i++) {
        r = r * 1103515245u + 12345u;
        unsigned k = (r >> 8) % (unsigned)working_set;
        free(slots[k]);
        size_t n = min_size + (r >> 4) % (max_size - min_size + 1);
        slots[k] = malloc(n);
        memset(slots[k], 1, 64);
    }
    for (int k = 0; k < working_set; k++) free(slots[k]);
    free(slots);
    return NULL;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (argc > 2) iters = atol(argv[2]);
    if (argc > 3) min_size = strtoul(argv[3], NULL, 0);
    if (argc > 4) max_size = strtoul(argv[4], NULL, 0);
    if (argc > 5) working_set = atoi(argv[5]);
    if (threads < 1 || threads > 256 || iters < 1 || min_size < 64 || max_size < min_size ||
        working_set < 1) {
        fprintf(stderr, "usage: blocks [threads] [iterations] [min] [max] [working-set]\n");
        return 2;
    }
    pthread_t t[256];
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &b);
    double s = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    printf("blocks threads %d iterations %ld seconds %.3f mops_per_s %.2f\n", threads, iters, s,
           (double)threads * (double)iters / s / 1e6);
    return 0;
}

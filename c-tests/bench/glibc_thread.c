/* glibc_thread: models glibc's benchtests/bench-malloc-thread.c (mimalloc-bench's
 * `glibc-thread`), in this repository's own code. Each of THREADS threads keeps a working
 * set of 1024 blocks and, ITERS times, frees the block in a random slot and mallocs one of
 * a random size in its place. Sizes follow glibc's benchmark's shape: the probability of
 * a size falls as 1/size^2 between 4 B and 32 KiB, so nearly all blocks are small (half
 * are 4-8 B, 97 % at most 128 B, the mean is about 36 B) and a few are large. Sizes and
 * slots are drawn in advance into tables (as glibc's benchmark does), so the loop is
 * malloc and free and little else. The work
 * is fixed (THREADS x ITERS), so instruction counts under callgrind are comparable
 * between allocators. Prints one line:
 * "glibc_thread threads T iterations N seconds S mops_per_s M".
 * A benchmark, not a test: nothing is asserted.
 * Usage: glibc_thread [threads=2] [iterations-per-thread=2000000] */
#include "../harness.h"
#include <time.h>

#define WORKING_SET 1024
#define TABLE 4096
#define MIN_SIZE 4
#define MAX_SIZE 32768

static int nthreads = 2;
static long niters = 2000000;
static size_t sizes[TABLE];
static unsigned slots[TABLE];

static void *worker(void *arg) {
    (void)arg;
    void *ws[WORKING_SET] = {0};
    unsigned r = 0;
    for (long i = 0; i < niters; i++) {
        unsigned k = slots[r % TABLE];
        size_t n = sizes[(r + k) % TABLE];
        free(ws[k]);
        ws[k] = malloc(n);
        r++;
    }
    for (int k = 0; k < WORKING_SET; k++) free(ws[k]);
    return NULL;
}

int main(int argc, char **argv) {
    if (argc > 1) nthreads = atoi(argv[1]);
    if (argc > 2) niters = atol(argv[2]);
    uint64_t s = 88172645463325252ull;
    /* Inverse transform of the density c/size^2 on [MIN_SIZE, MAX_SIZE]. */
    double lo = 1.0 / MIN_SIZE, hi = 1.0 / MAX_SIZE;
    for (int i = 0; i < TABLE; i++) {
        double u = (double)(rnd(&s) >> 11) / 9007199254740992.0;
        sizes[i] = (size_t)(1.0 / (lo - u * (lo - hi)));
        slots[i] = (unsigned)(rnd(&s) % WORKING_SET);
    }
    pthread_t *t = malloc(sizeof *t * nthreads);
    struct timespec a, z;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, worker, NULL);
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    clock_gettime(CLOCK_MONOTONIC, &z);
    double secs = (z.tv_sec - a.tv_sec) + (z.tv_nsec - a.tv_nsec) / 1e9;
    long total = (long)nthreads * niters;
    free(t);
    printf("glibc_thread threads %d iterations %ld seconds %.3f mops_per_s %.2f\n", nthreads,
           total, secs, total / secs / 1e6);
    return 0;
}

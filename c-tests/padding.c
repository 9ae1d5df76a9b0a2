/* What a large block costs in resident memory. Allocates COUNT (default 4000) blocks of SIZE
 * (default 32768) bytes, writes every byte, and prints
 *   padding: blocks N size S kib_per_block K
 * where K is the growth of RSS (VmRSS) divided by N, in KiB with one decimal. jemalloc pads
 * each block of 16 KiB or more with one page unless cache_oblivious is off: 36 KiB a block
 * of 32 KiB, against 32 KiB (plus a few bytes of metadata) without. */
#include "harness.h"

int main(int argc, char **argv) {
    watchdog(60);
    int count = argc > 1 ? atoi(argv[1]) : 4000;
    size_t size = argc > 2 ? strtoul(argv[2], NULL, 0) : 32768;
    void **blocks = calloc(count, sizeof *blocks);
    CHECK(blocks != NULL, "calloc");
    long before = status_kb("VmRSS");
    for (int i = 0; i < count; i++) {
        blocks[i] = malloc(size);
        CHECK(blocks[i] != NULL, "malloc(%zu)", size);
        memset(blocks[i], 1, size);
    }
    long after = status_kb("VmRSS");
    printf("padding: blocks %d size %zu kib_per_block %.1f\n", count, size,
           (double)(after - before) / count);
    for (int i = 0; i < count; i++) free(blocks[i]);
    free(blocks);
    return failures != 0;
}

/* Memory-pressure guard: run with JVMALLOC_MEMORY_LIMIT a little above what this program
 * needs. It grows native memory in 4 MiB steps to GROW_MIB (default 60), holds it for
 * HOLD_MS (default 2500), frees it, waits until RSS is low again, then grows and holds once
 * more (a second episode, inside the guard's one-minute rate limit), frees, and exits 0.
 * The test checks stderr: one pressure line and one dump for all of it. */
#include "harness.h"

#define STEP (4 << 20)

static void grow_hold_free(long grow_mib, long hold_ms) {
    int n = (int)(grow_mib * 1048576 / STEP);
    void **blocks = calloc(n, sizeof *blocks);
    for (int i = 0; i < n; i++) memset(blocks[i] = malloc(STEP), 1, STEP);
    usleep(hold_ms * 1000);
    for (int i = 0; i < n; i++) free(blocks[i]);
    free(blocks);
}

int main(int argc, char **argv) {
    watchdog(120);
    start_one_thread(); /* the guard runs on the jvmalloc thread */
    long grow = argc > 1 ? atol(argv[1]) : 60, hold = argc > 2 ? atol(argv[2]) : 2500;
    long base = rss_bytes();
    grow_hold_free(grow, hold);
    for (int i = 0; i < 100 && rss_bytes() > base + (16 << 20); i++) usleep(100000);
    CHECK(rss_bytes() <= base + (16 << 20), "RSS did not come back after the first episode");
    grow_hold_free(grow, hold);
    printf("pressure: base %.1f MiB, grew to %ld MiB twice\n", base / 1048576.0, grow);
    return finish("pressure");
}

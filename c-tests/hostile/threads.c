/* threads: starts 4 threads that allocate and free (and one that names itself), joins
 * them and prints "threads: ok". The ordinary program run next to an interposing library
 * (see openalloc.c): it must start, run and exit normally. */
#include "harness.h"
#include <pthread.h>

static void *worker(void *arg) {
    uint64_t seed = (uintptr_t)arg * 0x9e3779b97f4a7c15ull + 1;
    void *keep[32] = {0};
    for (int i = 0; i < 20000; i++) {
        int k = (int)(rnd(&seed) % 32);
        free(keep[k]);
        keep[k] = malloc(1 + rnd(&seed) % 4096);
        if (keep[k]) memset(keep[k], 1, 1);
    }
    for (int k = 0; k < 32; k++) free(keep[k]);
    return NULL;
}

int main(void) {
    watchdog(15);
    pthread_t t[4];
    for (uintptr_t i = 0; i < 4; i++)
        CHECK(pthread_create(&t[i], NULL, worker, (void *)(i + 1)) == 0, "pthread_create");
    pthread_setname_np(t[0], "worker-0");
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    char *s = strdup("done");
    CHECK(s && strcmp(s, "done") == 0, "strdup");
    free(s);
    return finish("threads");
}

/* A target for the metrics tests (tests/metrics.rs): a process in scope that stays alive.
 * Starts four threads whose names put label escaping to the test (a plain one, one with a
 * double quote and a backslash, one with a newline, one that is not UTF-8); each holds a
 * few allocations of different size classes (small and large) until the end. Prints
 * "ready <pid>", waits for a line on stdin (or its end), joins its threads and exits 0
 * ("metrics_target: ok"). */
#include "harness.h"
#include <pthread.h>

static pthread_barrier_t held, done;

static void *holder(void *arg) {
    const char *name = arg;
    pthread_setname_np(pthread_self(), name);
    void *p[6];
    for (int i = 0; i < 6; i++) memset(p[i] = malloc((size_t)48 << (3 * i)), 7, (size_t)48 << (3 * i));
    pthread_barrier_wait(&held);
    pthread_barrier_wait(&done);
    for (int i = 0; i < 6; i++) free(p[i]);
    return NULL;
}

int main(void) {
    watchdog(300);
    static const char *names[] = {"metrics-worker", "q\"uote\\slash", "new\nline", "caf\xe9-\xff"};
    enum { N = sizeof names / sizeof names[0] };
    pthread_t t[N];
    pthread_barrier_init(&held, NULL, N + 1);
    pthread_barrier_init(&done, NULL, N + 1);
    for (int i = 0; i < N; i++)
        CHECK(pthread_create(&t[i], NULL, holder, (void *)names[i]) == 0, "pthread_create");
    pthread_barrier_wait(&held);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) line[0] = 0;
    pthread_barrier_wait(&done);
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    return finish("metrics_target");
}

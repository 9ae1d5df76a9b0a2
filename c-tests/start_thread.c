/* The smallest program that starts a thread: creates one thread that does nothing, joins
 * it and exits 0. Used by scripts/bench-start.sh to time process start-up when the program
 * starts a thread (jvmalloc, in scope, starts its own thread with the program's first one).
 * A benchmark program, not a test. */
#include <pthread.h>
#include <stddef.h>

static void *nothing(void *arg) { return arg; }

int main(void) {
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) != 0) return 1;
    pthread_join(t, NULL);
    return 0;
}

/* Targets for `jvmalloc dump`, which must never harm the process it asks for a dump.
 *   dump_target default   resets SIGUSR1 to its default action (which ends the process)
 *   dump_target blocked   blocks SIGUSR1 before starting its thread, so every thread blocks it
 *   dump_target idle      its thread does nothing
 *   dump_target single    starts no thread (so has no jvmalloc thread either)
 * Each starts one thread (but "single"), prints "ready <pid>", waits for a line on stdin,
 * and exits 0. */
#include "harness.h"
#include <pthread.h>
#include <signal.h>

static volatile int stop;

static void *idle(void *arg) {
    (void)arg;
    while (!stop) usleep(1000);
    return NULL;
}

int main(int argc, char **argv) {
    watchdog(120);
    const char *mode = argc > 1 ? argv[1] : "default";
    if (!strcmp(mode, "default")) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = SIG_DFL;
        CHECK(sigaction(SIGUSR1, &sa, NULL) == 0, "sigaction: %s", strerror(errno));
    } else if (!strcmp(mode, "blocked")) {
        sigset_t s;
        sigemptyset(&s);
        sigaddset(&s, SIGUSR1);
        CHECK(sigprocmask(SIG_BLOCK, &s, NULL) == 0, "sigprocmask: %s", strerror(errno));
    } else if (strcmp(mode, "idle") && strcmp(mode, "single")) {
        fprintf(stderr, "dump_target: unknown mode %s\n", mode);
        return 2;
    }
    int threaded = strcmp(mode, "single") != 0;
    pthread_t t;
    if (threaded) CHECK(pthread_create(&t, NULL, idle, NULL) == 0, "pthread_create");
    /* Under jvmalloc in scope, its thread has named itself before we say ready. */
    if (threaded && expect_jvmalloc() && getenv("JVMALLOC_PROCESSES")) wait_for_thread("jvmalloc");
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[16];
    if (!fgets(line, sizeof line, stdin)) line[0] = 0;
    stop = 1;
    if (threaded) pthread_join(t, NULL);
    return finish("dump_target");
}

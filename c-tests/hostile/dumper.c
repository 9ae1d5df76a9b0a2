/* dumper: a target for statistics dumps written to files. Starts a thread (a jvmalloc
 * that starts its thread lazily starts it then), allocates, prints "ready <pid>", then
 * reads commands from stdin: "signal" sends SIGUSR1 to itself (one dump), "exit" or end of
 * input ends the program (the at-exit dump, with JVMALLOC_STATS_AT_EXIT=1).
 * "dumper umask OOO" sets the umask (octal) first. Under plain glibc SIGUSR1 gets a no-op
 * handler. */
#include "harness.h"
#include <pthread.h>
#include <signal.h>
#include <sys/stat.h>

static void *worker(void *arg) {
    void *p = malloc(10000);
    free(p);
    return arg;
}

static void noop_handler(int sig) { (void)sig; }

int main(int argc, char **argv) {
    watchdog(30);
    if (!expect_jvmalloc()) signal(SIGUSR1, noop_handler);
    if (argc == 3 && strcmp(argv[1], "umask") == 0) umask((mode_t)strtol(argv[2], NULL, 8));
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
    char *keep = malloc(1 << 20);
    memset(keep, 7, 1 << 20);
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[64];
    while (fgets(line, sizeof line, stdin)) {
        if (strncmp(line, "signal", 6) == 0) {
            kill(getpid(), SIGUSR1);
            printf("sent\n");
            fflush(stdout);
        } else if (strncmp(line, "exit", 4) == 0) {
            break;
        }
    }
    free(keep);
    return finish("dumper");
}

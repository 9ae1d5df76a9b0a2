/* What a process sees of jvmalloc's scope (JVMALLOC_PROCESSES). It prints facts, the test
 * compares them with the scope it set:
 *   "start usr1=<dfl|ign|handler> sigcgt=<0|1> threads=<n> jvmalloc=<n>"   at start;
 *   "single threads=<n> jvmalloc=<n>"         300 ms later, still single-threaded;
 * with argument "thread", it then starts a thread (which allocates and waits) and prints
 *   "threaded threads=<n> jvmalloc=<n>"       after waiting up to 2 s for a "jvmalloc" thread.
 * Then "ready <pid>"; it reads a line from stdin (the test may send SIGUSR1 meanwhile; out of
 * scope that kills it, as under glibc), prints "bye" and exits 0.
 * usr1 is what sigaction reports for SIGUSR1; sigcgt is bit SIGUSR1-1 of SigCgt in
 * /proc/self/status; jvmalloc counts threads named "jvmalloc" in /proc/self/task. */
#include "harness.h"
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>

static int sigcgt_usr1(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long mask = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "SigCgt: %llx", &mask) == 1) break;
    if (f) fclose(f);
    return (int)((mask >> (SIGUSR1 - 1)) & 1);
}

static const char *usr1_action(void) {
    struct sigaction sa;
    if (sigaction(SIGUSR1, NULL, &sa) != 0) return "error";
    if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_DFL) return "dfl";
    if (!(sa.sa_flags & SA_SIGINFO) && sa.sa_handler == SIG_IGN) return "ign";
    return "handler";
}

static int pipefd[2];

static void *worker(void *arg) {
    (void)arg;
    free(malloc(1000));
    char c;
    while (read(pipefd[0], &c, 1) < 0 && errno == EINTR) {
    }
    return NULL;
}

int main(int argc, char **argv) {
    watchdog(60);
    printf("start usr1=%s sigcgt=%d threads=%d jvmalloc=%d\n", usr1_action(), sigcgt_usr1(),
           threads_named(NULL), threads_named("jvmalloc"));
    free(malloc(100000));
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
    printf("single threads=%d jvmalloc=%d\n", threads_named(NULL), threads_named("jvmalloc"));
    pthread_t t;
    int threaded = argc > 1 && !strcmp(argv[1], "thread");
    if (threaded) {
        if (pipe(pipefd) != 0 || pthread_create(&t, NULL, worker, NULL) != 0) {
            printf("cannot start a thread\n");
            return 1;
        }
        int n = 0;
        for (int i = 0; i < 200 && !(n = threads_named("jvmalloc")); i++) usleep(10000);
        printf("threaded threads=%d jvmalloc=%d\n", threads_named(NULL), n);
    }
    printf("ready %d\n", (int)getpid());
    fflush(stdout);
    char line[64];
    while (!fgets(line, sizeof line, stdin) && ferror(stdin) && errno == EINTR) clearerr(stdin);
    if (threaded) {
        if (write(pipefd[1], "x", 1) != 1) return 1;
        pthread_join(t, NULL);
    }
    printf("bye\n");
    return 0;
}

/* fork + exec latency: the parent (with BUSY allocating threads, default 4) forks N times
 * (default 300); each child execs /bin/true with an empty environment (so the exec'd
 * program does not load any preloaded allocator) and the parent waits for it. Prints the
 * median and mean microseconds per fork+exec+wait. A benchmark, not a test.
 * Usage: forkexec [n [busy]] */
#include "harness.h"
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

static volatile int stop;

static void *busy(void *arg) {
    churn_until(&stop, 3 + (uintptr_t)arg, 8192);
    return NULL;
}

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 300;
    int nbusy = argc > 2 ? atoi(argv[2]) : 4;
    if (n < 1 || nbusy < 0 || nbusy > 64) {
        fprintf(stderr, "usage: forkexec [n [busy]] (n >= 1, busy 0-64)\n");
        return 2;
    }
    pthread_t t[64];
    for (int i = 0; i < nbusy; i++) pthread_create(&t[i], NULL, busy, (void *)(intptr_t)i);
    double *us = malloc(sizeof *us * n), sum = 0;
    char *const args[] = {"/bin/true", NULL};
    char *const env[] = {NULL};
    for (int i = 0; i < n; i++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        pid_t pid = fork();
        if (pid == 0) {
            execve(args[0], args, env);
            _exit(127);
        }
        int st;
        waitpid(pid, &st, 0);
        clock_gettime(CLOCK_MONOTONIC, &b);
        us[i] = (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3;
        sum += us[i];
    }
    stop = 1;
    for (int i = 0; i < nbusy; i++) pthread_join(t[i], NULL);
    qsort(us, n, sizeof *us, cmp_double);
    printf("forks %d median_us %.0f mean_us %.0f\n", n, us[n / 2], sum / n);
    return 0;
}

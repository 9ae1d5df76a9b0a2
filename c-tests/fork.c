/* Fork under load: ALLOCATORS threads allocate and free without pause while the main thread
 * forks FORKS times. Each child allocates, reallocates, frees (and starts a thread that does
 * the same), then exits 0. A child that deadlocks on an allocator lock held at fork time is
 * killed by its own watchdog (SIGALRM) and counted as a failure; the parent has one too.
 * Usage: fork [forks] */
#include "harness.h"
#include <pthread.h>
#include <sys/wait.h>

#define ALLOCATORS 8
static volatile int stop;

static void *churn(void *arg) {
    churn_until(&stop, 99 + (uintptr_t)arg, 1 << 20);
    return NULL;
}

static int child_work(void) {
    uint64_t s = (uint64_t)getpid();
    void *p[64];
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < 64; i++) {
            size_t n = 1 + rnd(&s) % 65536;
            p[i] = malloc(n);
            if (!p[i]) return 2;
            memset(p[i], 0x11, n);
        }
        for (int i = 0; i < 64; i++) {
            p[i] = realloc(p[i], 1 + rnd(&s) % 200000);
            if (!p[i]) return 3;
        }
        for (int i = 0; i < 64; i++) free(p[i]);
    }
    return 0;
}

static void *child_thread(void *arg) {
    (void)arg;
    return (void *)(intptr_t)child_work();
}

int main(int argc, char **argv) {
    int forks = argc > 1 ? atoi(argv[1]) : 300;
    watchdog(300);
    pthread_t t[ALLOCATORS];
    for (int i = 0; i < ALLOCATORS; i++) pthread_create(&t[i], NULL, churn, (void *)(intptr_t)i);
    int bad = 0;
    for (int i = 0; i < forks; i++) {
        pid_t pid = fork();
        if (pid == 0) {
            alarm(20);
            int rc = child_work();
            pthread_t ct;
            void *trc = NULL;
            if (rc == 0 && pthread_create(&ct, NULL, child_thread, NULL) == 0) {
                pthread_join(ct, &trc);
                rc = (int)(intptr_t)trc;
            }
            _exit(rc);
        }
        CHECK(pid > 0, "fork failed: %s", strerror(errno));
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
            if (bad++ < 5)
                CHECK(0, "child %d: %s %d", i, WIFEXITED(status) ? "exit" : "signal",
                      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
        }
    }
    stop = 1;
    for (int i = 0; i < ALLOCATORS; i++) pthread_join(t[i], NULL);
    CHECK(bad == 0, "%d of %d children failed", bad, forks);
    printf("fork: %d children under load\n", forks);
    return finish("fork");
}

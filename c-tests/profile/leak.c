/* A C program whose named thread leaks through a known function of a library
 * (leaksite_keep in libleaksite.so) while another churns through leaksite_churn, for
 * tests/profile.rs. Prints "ready <pid>", then reads commands on stdin and answers each
 * with one line starting with "ok":
 *   leak N       the "leaker" thread keeps N more 64 KiB blocks; "ok kept=<bytes>"
 *   threads N    N threads named "worker-<i>" each keep 4 blocks of 16 KiB and stay
 *                parked; "ok threads=<N>"
 *   fork         forks; the child starts a thread (so it has jvmalloc's thread) and waits
 *                until the parent ends; "ok child=<pid>"
 *   quit         "ok", exit 0 */
#include "../harness.h"
#include <signal.h>
#include <sys/prctl.h>

size_t leaksite_keep(size_t n, size_t size);
void leaksite_churn(size_t n, size_t size);

static volatile int stop;
static size_t leak_n, kept;
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int work, done;

static void *leaker(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "leaker");
    pthread_mutex_lock(&mu);
    for (;;) {
        while (!work && !stop) pthread_cond_wait(&cv, &mu);
        if (stop) break;
        kept = leaksite_keep(leak_n, 64 << 10);
        work = 0;
        done = 1;
        pthread_cond_broadcast(&cv);
    }
    pthread_mutex_unlock(&mu);
    return NULL;
}

static void *churner(void *arg) {
    (void)arg;
    pthread_setname_np(pthread_self(), "churner");
    while (!stop) {
        leaksite_churn(64, 64 << 10);
        leaksite_churn(256, 100);
        usleep(200);
    }
    return NULL;
}

static pthread_barrier_t parked;
static void *worker(void *arg) {
    char name[16];
    snprintf(name, sizeof name, "worker-%d", (int)(intptr_t)arg);
    pthread_setname_np(pthread_self(), name);
    for (int i = 0; i < 4; i++) {
        char *p = malloc(16 << 10);
        memset(p, 2, 16 << 10);
    }
    pthread_barrier_wait(&parked);
    pause();
    return NULL;
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    pthread_t l, c;
    pthread_create(&l, NULL, leaker, NULL);
    pthread_create(&c, NULL, churner, NULL);
    printf("ready %d\n", (int)getpid());
    char line[128];
    while (fgets(line, sizeof line, stdin)) {
        size_t n;
        if (sscanf(line, "leak %zu", &n) == 1) {
            pthread_mutex_lock(&mu);
            leak_n = n;
            work = 1;
            done = 0;
            pthread_cond_broadcast(&cv);
            while (!done) pthread_cond_wait(&cv, &mu);
            printf("ok kept=%zu\n", kept);
            pthread_mutex_unlock(&mu);
        } else if (sscanf(line, "threads %zu", &n) == 1) {
            pthread_barrier_init(&parked, NULL, (unsigned)n + 1);
            for (size_t i = 0; i < n; i++) {
                pthread_t t;
                pthread_attr_t a;
                pthread_attr_init(&a);
                pthread_attr_setstacksize(&a, 64 << 10);
                if (pthread_create(&t, &a, worker, (void *)(intptr_t)i) != 0) {
                    printf("cannot start thread %zu\n", i);
                    return 1;
                }
                pthread_attr_destroy(&a);
            }
            pthread_barrier_wait(&parked);
            printf("ok threads=%zu\n", n);
        } else if (!strncmp(line, "fork", 4)) {
            pid_t child = fork();
            if (child == 0) {
                /* Gone with the parent; never reads the parent's stdin. */
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                start_one_thread();
                for (;;) pause();
            }
            printf("ok child=%d\n", (int)child);
        } else if (!strncmp(line, "quit", 4)) {
            stop = 1;
            pthread_mutex_lock(&mu);
            pthread_cond_broadcast(&cv);
            pthread_mutex_unlock(&mu);
            pthread_join(l, NULL);
            pthread_join(c, NULL);
            printf("ok\n");
            return 0;
        }
    }
    return 0;
}

/* Burst and return: 32 threads together allocate about TOTAL_MIB (default 512) MiB in mixed
 * small (16 B - 1 KiB) and medium (4 KiB - 256 KiB) blocks, keep 2% of them, and hand the
 * rest to another thread, which frees them. Then the threads idle and the program watches
 * RSS (every 50 ms) for up to WAIT_MS. Prints one line:
 *   burst: pre_mib P live_mib L peak_mib K returned_ms T rss_mib R target_mib G idle_rss_mib I
 * where K is the peak RSS (VmHWM) up to the end of the burst, R the RSS right after it, T
 * when RSS first fell to G = P + L + 32 (or -1 if it did not within WAIT_MS) and I the RSS
 * at the end of the wait. Modes:
 *   burst wait WAIT_MS [TOTAL_MIB]   exit 1 unless RSS came back within WAIT_MS
 *   burst observe WAIT_MS [TOTAL_MIB] never fails (for benchmarks)
 *   burst trim [TOTAL_MIB]           malloc_trim(0) right after the burst must return 1
 *                                    and bring RSS to the target
 *   burst fork WAIT_MS [TOTAL_MIB]   runs "wait" in a forked child that does not exec */
#include "harness.h"
#include <malloc.h>
#include <pthread.h>
#include <sys/wait.h>
#include <time.h>

#define THREADS 32
#define QCAP 8192

typedef struct {
    pthread_mutex_t lock;
    void *items[QCAP];
    int n;
} inbox;

static inbox boxes[THREADS];
static pthread_barrier_t go, done, finish_bar;
static size_t per_thread;
static size_t kept_bytes[THREADS];
static void **kept[THREADS];
static int nkept[THREADS];

static void drain(inbox *b) {
    pthread_mutex_lock(&b->lock);
    for (int i = 0; i < b->n; i++) free(b->items[i]);
    b->n = 0;
    pthread_mutex_unlock(&b->lock);
}

static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t s = 4242 + me;
    kept[me] = malloc(sizeof(void *) * 200000);
    pthread_barrier_wait(&go);
    size_t total = 0;
    long count = 0;
    while (total < per_thread) {
        size_t n = (rnd(&s) % 100 < 70) ? 16 + rnd(&s) % 1009 : 4096 + rnd(&s) % (252 << 10);
        char *p = malloc(n);
        memset(p, (int)count, n);
        total += n;
        if (++count % 50 == 0) {
            kept[me][nkept[me]++] = p;
            kept_bytes[me] += malloc_usable_size(p);
            continue;
        }
        inbox *b = &boxes[(me + 1 + rnd(&s) % (THREADS - 1)) % THREADS];
        pthread_mutex_lock(&b->lock);
        if (b->n < QCAP) {
            b->items[b->n++] = p;
            p = NULL;
        }
        pthread_mutex_unlock(&b->lock);
        free(p);
        if ((count & 127) == 0) drain(&boxes[me]);
    }
    pthread_barrier_wait(&done);
    drain(&boxes[me]);
    pthread_barrier_wait(&done); /* everything but the kept blocks is freed */
    pthread_barrier_wait(&finish_bar);
    for (int i = 0; i < nkept[me]; i++) free(kept[me][i]);
    free(kept[me]);
    return NULL;
}

static double mib(long b) { return b / 1048576.0; }

static long now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static int burst(const char *mode, long wait_ms, long total_mib) {
    per_thread = (size_t)(total_mib << 20) / THREADS;
    for (int i = 0; i < THREADS; i++) pthread_mutex_init(&boxes[i].lock, NULL);
    pthread_barrier_init(&go, NULL, THREADS + 1);
    pthread_barrier_init(&done, NULL, THREADS + 1);
    pthread_barrier_init(&finish_bar, NULL, THREADS + 1);
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    usleep(200000);
    long pre = rss_bytes();
    pthread_barrier_wait(&go);
    pthread_barrier_wait(&done);
    pthread_barrier_wait(&done);
    long after_burst = rss_bytes();
    long peak = peak_rss_kb() * 1024;
    long live = 0;
    for (int i = 0; i < THREADS; i++) live += kept_bytes[i];
    long target = pre + live + (32l << 20);
    long start = now_ms(), returned = -1, rss = after_burst;
    int trimmed = -1;
    if (!strcmp(mode, "trim")) {
        trimmed = malloc_trim(0);
        rss = rss_bytes();
        if (rss <= target) returned = now_ms() - start;
    } else {
        while (now_ms() - start <= wait_ms) {
            rss = rss_bytes();
            if (rss <= target && returned < 0) {
                returned = now_ms() - start;
                if (strcmp(mode, "observe")) break;
            }
            usleep(50000);
        }
    }
    printf("burst: pre_mib %.1f live_mib %.1f peak_mib %.1f returned_ms %ld rss_mib %.1f target_mib %.1f idle_rss_mib %.1f\n",
           mib(pre), mib(live), mib(peak), returned, mib(after_burst), mib(target), mib(rss));
    pthread_barrier_wait(&finish_bar);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    if (!strcmp(mode, "trim")) {
        CHECK(trimmed == 1, "malloc_trim(0) returned %d", trimmed);
        CHECK(rss <= target, "RSS after malloc_trim %.1f MiB > target %.1f MiB (before %.1f)", mib(rss),
              mib(target), mib(after_burst));
    } else if (strcmp(mode, "observe")) {
        CHECK(returned >= 0, "RSS %.1f MiB still above %.1f MiB after %ld ms", mib(rss), mib(target), wait_ms);
    }
    return finish("burst");
}

int main(int argc, char **argv) {
    watchdog(300);
    const char *mode = argc > 1 ? argv[1] : "wait";
    int trim = !strcmp(mode, "trim");
    long wait_ms = (!trim && argc > 2) ? atol(argv[2]) : 3000;
    long total = argc > (trim ? 2 : 3) ? atol(argv[trim ? 2 : 3]) : 512;
    if (!strcmp(mode, "fork")) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) _exit(burst("wait", wait_ms, total));
        int st = 0;
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
        return finish("burst fork");
    }
    return burst(mode, wait_ms, total);
}

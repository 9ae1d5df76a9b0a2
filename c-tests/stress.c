/* Multi-threaded stress: THREADS threads allocate mixed sizes from 1 B to 4 MiB with random
 * lifetimes; about half of all blocks are handed to another thread through a queue and freed
 * there (producer/consumer). Every block carries a fill pattern that is checked before it is
 * freed, and kept blocks are grown and shrunk with realloc, checking the preserved prefix.
 * Usage: stress [threads] [ops-per-thread] */
#include "harness.h"
#include <pthread.h>

typedef struct {
    size_t size;
    uint64_t id;
} block_hdr; /* at the start of blocks >= 16 bytes */

#define QCAP 4096
typedef struct {
    pthread_mutex_t lock;
    void *items[QCAP];
    size_t sizes[QCAP];
    int head, count;
} queue;

static int nthreads = 16;
static long nops = 30000;
static queue *queues;
static long errors_seen;

static uint8_t tag_of(uint64_t id) { return (uint8_t)((id * 0x9E3779B97F4A7C15ull) >> 56) | 1; }

static void fill(void *p, size_t n, uint64_t id) {
    memset(p, tag_of(id), n);
    if (n >= sizeof(block_hdr)) ((block_hdr *)p)->size = n, ((block_hdr *)p)->id = id;
}

/* Checks the pattern of a block of n bytes; returns the number of wrong bytes. */
static size_t verify(const void *p, size_t n) {
    const uint8_t *b = p;
    if (n < sizeof(block_hdr)) {
        for (size_t i = 1; i < n; i++)
            if (b[i] != b[0]) return 1;
        return 0;
    }
    const block_hdr *h = p;
    if (h->size != n) return 1;
    uint8_t t = tag_of(h->id);
    size_t bad = 0;
    for (size_t i = sizeof(block_hdr); i < n; i++) bad += b[i] != t;
    return bad;
}

static size_t pick_size(uint64_t *s) {
    uint64_t r = rnd(s) % 1000;
    if (r < 700) return 1 + rnd(s) % 512;              /* small */
    if (r < 980) return 513 + rnd(s) % (64 << 10);     /* medium */
    return (64 << 10) + rnd(s) % ((4 << 20) - (64 << 10) + 1); /* large, up to 4 MiB */
}

static void drain(queue *q) {
    for (;;) {
        pthread_mutex_lock(&q->lock);
        if (!q->count) {
            pthread_mutex_unlock(&q->lock);
            return;
        }
        void *p = q->items[q->head];
        size_t n = q->sizes[q->head];
        q->head = (q->head + 1) % QCAP;
        q->count--;
        pthread_mutex_unlock(&q->lock);
        if (verify(p, n)) __atomic_add_fetch(&errors_seen, 1, __ATOMIC_RELAXED);
        free(p);
    }
}

/* Hands a block to another thread's queue; frees it here when the queue is full. */
static void hand_over(int to, void *p, size_t n) {
    queue *q = &queues[to];
    pthread_mutex_lock(&q->lock);
    if (q->count < QCAP) {
        q->items[(q->head + q->count) % QCAP] = p;
        q->sizes[(q->head + q->count) % QCAP] = n;
        q->count++;
        p = NULL;
    }
    pthread_mutex_unlock(&q->lock);
    if (p) free(p);
}

#define KEEP 64
static void *worker(void *arg) {
    int me = (int)(intptr_t)arg;
    uint64_t seed = 0x1234567 + me * 7919ull, id = (uint64_t)me << 40;
    void *kept[KEEP] = {0};
    size_t ksize[KEEP] = {0};
    for (long op = 0; op < nops; op++) {
        size_t n = pick_size(&seed);
        void *p = (rnd(&seed) & 7) == 0 ? calloc(1, n) : malloc(n);
        if (!p) {
            __atomic_add_fetch(&errors_seen, 1, __ATOMIC_RELAXED);
            continue;
        }
        fill(p, n, ++id);
        uint64_t r = rnd(&seed) % 100;
        if (r < 50) {
            hand_over((int)(rnd(&seed) % nthreads), p, n);
        } else {
            int slot = (int)(rnd(&seed) % KEEP);
            if (kept[slot]) {
                if (verify(kept[slot], ksize[slot])) __atomic_add_fetch(&errors_seen, 1, __ATOMIC_RELAXED);
                if (r < 65) { /* grow or shrink the old block instead of freeing it */
                    size_t nn = pick_size(&seed), keep = nn < ksize[slot] ? nn : ksize[slot];
                    uint8_t *q = realloc(kept[slot], nn);
                    if (!q) {
                        __atomic_add_fetch(&errors_seen, 1, __ATOMIC_RELAXED);
                    } else {
                        uint8_t t = keep > sizeof(block_hdr) ? q[keep - 1] : 0;
                        for (size_t i = sizeof(block_hdr); i < keep; i++)
                            if (q[i] != t) {
                                __atomic_add_fetch(&errors_seen, 1, __ATOMIC_RELAXED);
                                break;
                            }
                        kept[slot] = q, ksize[slot] = nn;
                        fill(q, nn, ++id);
                    }
                    hand_over((int)(rnd(&seed) % nthreads), p, n);
                    continue;
                }
                free(kept[slot]);
            }
            kept[slot] = p, ksize[slot] = n;
        }
        if ((op & 63) == 0) drain(&queues[me]);
    }
    for (int i = 0; i < KEEP; i++)
        if (kept[i]) {
            if (verify(kept[i], ksize[i])) __atomic_add_fetch(&errors_seen, 1, __ATOMIC_RELAXED);
            free(kept[i]);
        }
    return NULL;
}

int main(int argc, char **argv) {
    watchdog(240);
    if (argc > 1) nthreads = atoi(argv[1]);
    if (argc > 2) nops = atol(argv[2]);
    queues = calloc(nthreads, sizeof *queues);
    for (int i = 0; i < nthreads; i++) pthread_mutex_init(&queues[i].lock, NULL);
    pthread_t *t = malloc(sizeof *t * nthreads);
    for (int i = 0; i < nthreads; i++) pthread_create(&t[i], NULL, worker, (void *)(intptr_t)i);
    for (int i = 0; i < nthreads; i++) pthread_join(t[i], NULL);
    for (int i = 0; i < nthreads; i++) drain(&queues[i]);
    CHECK(errors_seen == 0, "%ld corrupted or failed blocks", errors_seen);
    free(t);
    free(queues);
    printf("stress: %d threads x %ld ops\n", nthreads, nops);
    return finish("stress");
}

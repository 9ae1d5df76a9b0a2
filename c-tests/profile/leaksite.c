/* A library with one function that keeps what it allocates and one that frees it at once,
 * for c-tests/profile/leak.c: the profile must name leaksite_keep in libleaksite.so. */
#include <stdlib.h>
#include <string.h>

static void **kept;
static size_t nkept, cap;

/* Allocates n blocks of `size` bytes and keeps them for good. Returns the bytes kept so
 * far. Not inlined, so that it is a frame of its own. */
__attribute__((noinline)) size_t leaksite_keep(size_t n, size_t size) {
    static size_t total;
    for (size_t i = 0; i < n; i++) {
        if (nkept == cap) {
            cap = cap ? cap * 2 : 1024;
            kept = realloc(kept, cap * sizeof *kept);
        }
        void *p = malloc(size);
        memset(p, 1, size);
        kept[nkept++] = p;
        total += size;
    }
    return total;
}

/* Allocates and frees n blocks of `size` bytes. */
__attribute__((noinline)) void leaksite_churn(size_t n, size_t size) {
    for (size_t i = 0; i < n; i++) {
        char *volatile p = malloc(size);
        p[0] = 1;
        free(p);
    }
}

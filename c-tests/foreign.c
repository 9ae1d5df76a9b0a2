/* Another allocator, preloaded before jvmalloc: malloc and friends resolve here. It only
 * forwards to the C library's internal names (which jvmalloc also exports, so memory still
 * comes from one allocator), but the program's calls no longer reach jvmalloc's malloc, as
 * with LD_PRELOAD=libjemalloc.so.2:libjvmalloc.so. */
#include <stddef.h>

void *__libc_malloc(size_t);
void *__libc_calloc(size_t, size_t);
void *__libc_realloc(void *, size_t);
void __libc_free(void *);

void *malloc(size_t n) { return __libc_malloc(n); }
void *calloc(size_t n, size_t s) { return __libc_calloc(n, s); }
void *realloc(void *p, size_t n) { return __libc_realloc(p, n); }
void free(void *p) { __libc_free(p); }

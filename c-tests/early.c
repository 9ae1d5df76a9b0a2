/* A shared library whose constructor allocates and reads jemalloc's configuration. A program
 * linked against it has this constructor run before jvmalloc's own (dependencies of the
 * executable are initialised before preloaded libraries), so it checks that the JVMALLOC_*
 * settings hold even when the first malloc of the process comes from someone else. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

unsigned early_narenas = 0;
int early_had_mallctl = 0;

__attribute__((constructor)) static void early_ctor(void) {
    void *p = malloc(100);
    memset(p, 1, 100);
    free(p);
    int (*ctl)(const char *, void *, size_t *, void *, size_t) =
        (int (*)(const char *, void *, size_t *, void *, size_t))dlsym(RTLD_DEFAULT, "mallctl");
    if (ctl) {
        size_t len = sizeof early_narenas;
        early_had_mallctl = ctl("opt.narenas", &early_narenas, &len, NULL, 0) == 0;
    }
}

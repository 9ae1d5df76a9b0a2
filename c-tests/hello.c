/* Allocates a little, prints jemalloc's effective options (read back with mallctl) and
 * "hello ok". Used by the configuration tests. `hello threaded MS` first starts a thread
 * (so the process gets its jvmalloc thread), sleeps MS milliseconds, and prints the names
 * of its threads. */
#include "harness.h"
#include <sys/types.h>

static void print_name(const char *name, void *arg) {
    (void)arg;
    printf("thread %s\n", name);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "threaded") == 0) {
        start_one_thread();
        usleep(atol(argv[2]) * 1000);
        each_thread_name(print_name, NULL);
    }
    char *p = malloc(1000);
    strcpy(p, "hello");
    mallctl_fn ctl = find_mallctl();
    if (ctl) {
        unsigned narenas = 0;
        ssize_t dirty = 0, muzzy = 0;
        size_t tmax = 0, len = sizeof narenas;
        ctl("opt.narenas", &narenas, &len, NULL, 0);
        len = sizeof dirty;
        ctl("opt.dirty_decay_ms", &dirty, &len, NULL, 0);
        len = sizeof muzzy;
        ctl("opt.muzzy_decay_ms", &muzzy, &len, NULL, 0);
        len = sizeof tmax;
        ctl("opt.tcache_max", &tmax, &len, NULL, 0);
        printf("narenas=%u dirty=%zd muzzy=%zd tcache_max=%zu\n", narenas, dirty, muzzy, tmax);
    }
    printf("%s ok\n", p);
    free(p);
    return 0;
}

/* Allocates a little, prints jemalloc's effective options (read back with mallctl) and
 * "hello ok". Used by the configuration tests. `hello threaded MS` first starts a thread
 * (so the process gets its jvmalloc thread), sleeps MS milliseconds, and prints the names
 * of its threads. */
#include "harness.h"
#include <dirent.h>
#include <sys/types.h>

static void print_thread_names(void) {
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[64], name[32] = "";
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (f && fgets(name, sizeof name, f)) printf("thread %s", name);
        if (f) fclose(f);
    }
    if (d) closedir(d);
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "threaded") == 0) {
        start_one_thread();
        usleep(atol(argv[2]) * 1000);
        print_thread_names();
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

/* secure: run setgid by an unprivileged user with LD_PRELOAD of jvmalloc installed set-user-ID
 * in a standard directory (glibc's secure-mode preload). Prints "secure=<AT_SECURE>",
 * "loaded=<1 if jvmalloc_dump_stats is defined>" (it is not called), starts a thread,
 * waits up to 1 s for a thread named "jvmalloc" and prints "threads=<comm,comm,...>".
 * The driver decides what is expected: in secure mode the library must act as the allocator
 * only (no thread, no handler, no file, no line on stderr). */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int stop;

static void *worker(void *arg) {
    void *p = malloc(4096);
    pthread_mutex_lock(&lock);
    while (!stop) pthread_cond_wait(&cond, &lock);
    pthread_mutex_unlock(&lock);
    free(p);
    return arg;
}

/* The comm of every thread, comma-separated, into buf; 1 if one is "jvmalloc". */
static int thread_names(char *buf, size_t len) {
    int found = 0;
    size_t used = 0;
    buf[0] = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[64], name[32] = {0};
        snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = 0;
        fclose(f);
        if (strcmp(name, "jvmalloc") == 0) found = 1;
        used += snprintf(buf + used, used < len ? len - used : 0, "%s%s", used ? "," : "", name);
    }
    if (d) closedir(d);
    return found;
}

int main(void) {
    alarm(15);
    printf("secure=%lu\n", getauxval(AT_SECURE));
    printf("loaded=%d\n", dlsym(RTLD_DEFAULT, "jvmalloc_dump_stats") != NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, worker, NULL) != 0) return 1;
    char names[1024];
    for (int i = 0; i < 20 && !thread_names(names, sizeof names); i++) usleep(50 * 1000);
    printf("threads=%s\n", names);
    pthread_mutex_lock(&lock);
    stop = 1;
    pthread_cond_signal(&cond);
    pthread_mutex_unlock(&lock);
    pthread_join(t, NULL);
    char *p = malloc(100);
    free(p);
    printf("secure: done\n");
    return 0;
}

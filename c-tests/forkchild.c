/* The jvmalloc thread in a child of fork(). The parent has its jvmalloc thread; the child
 * must start with one thread only (so that fork + exec is not slowed down and a child that
 * stays single-threaded stays so), survive the statistics signal while it has no reporter,
 * and get its jvmalloc thread back as soon as it starts a thread of its own; the signal that
 * waited is then answered with a dump (JVMALLOC_STATS_FILE must be DIR/child-%p-%n.txt).
 * Usage: forkchild DIR */
#include "harness.h"
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static int dumps_of(const char *dir, pid_t pid) {
    char prefix[64];
    snprintf(prefix, sizeof prefix, "child-%d-", (int)pid);
    int n = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) n += !strncmp(e->d_name, prefix, strlen(prefix)) && !strstr(e->d_name, ".tmp");
    if (d) closedir(d);
    return n;
}

static pthread_barrier_t hold;

static void *worker(void *arg) {
    (void)arg;
    free(malloc(1000));
    pthread_barrier_wait(&hold);
    return NULL;
}

static int child(const char *dir) {
    CHECK(threads_named(NULL) == 1, "the child has %d threads, not 1", threads_named(NULL));
    raise(SIGUSR1); /* no reporter yet: the request waits, the child lives on */
    void *p = malloc(1 << 20);
    memset(p, 1, 1 << 20);
    free(p);
    CHECK(threads_named(NULL) == 1, "the child has %d threads after allocating", threads_named(NULL));
    pthread_barrier_init(&hold, NULL, 2);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, worker, NULL) == 0, "pthread_create");
    CHECK(wait_for_thread("jvmalloc"), "no jvmalloc thread in the child after it started a thread");
    int dumped = 0;
    for (int i = 0; i < 500 && !(dumped = dumps_of(dir, getpid())); i++) usleep(10000);
    CHECK(dumped == 1, "%d dumps for the signal sent before the jvmalloc thread started", dumped);
    pthread_barrier_wait(&hold);
    pthread_join(t, NULL);
    return failures ? 1 : 0;
}

int main(int argc, char **argv) {
    watchdog(60);
    CHECK(argc == 2, "usage: forkchild DIR");
    if (argc != 2) return finish("forkchild");
    CHECK(expect_jvmalloc(), "runs under jvmalloc only (it sends SIGUSR1)");
    start_one_thread();
    CHECK(wait_for_thread("jvmalloc"), "no jvmalloc thread in the parent after it started a thread");
    pid_t pid = fork();
    if (pid == 0) _exit(child(argv[1]));
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
    CHECK(dumps_of(argv[1], getpid()) == 0, "the parent wrote a dump for the child's signal");
    return finish("forkchild");
}

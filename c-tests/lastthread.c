/* Process lifetime as glibc's: a process ends when its last thread exits, with status 0 and
 * its atexit handlers run, even when that last thread is not the main one. A thread of the
 * library's own must not keep such a process alive.
 * Usage: lastthread        main registers an atexit handler and starts a thread that
 *                          allocates, sleeps 0.2 s and returns; main calls pthread_exit.
 *        lastthread heavy  the same, the thread allocating heavily before it returns (the
 *                          test sets JVMALLOC_STATS_AT_EXIT=1 and expects one dump).
 *        lastthread fork   the thread forks; the child (whose only thread is the copy of the
 *                          forking, non-main, thread) starts a thread, joins it and returns
 *                          from its start routine: it must exit 0 within 10 s. The parent
 *                          waits for it, reports, and returns.
 * The atexit handler prints "atexit ran (main)" (or "(child)") and the verdict; it ends the
 * process with _exit(1) if a check failed. A watchdog turns a process that outlives its
 * last thread into "killed by SIGALRM". */
#include "harness.h"
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static const char *who = "main";
static const char *mode = "";

static void at_exit(void) {
    printf("atexit ran (%s)\n", who);
    if (!strcmp(who, "main")) finish("lastthread");
    fflush(stdout);
    if (failures) _exit(1);
}

static void allocate(int rounds) {
    void *slots[256] = {0};
    uint64_t s = 12345;
    for (int i = 0; i < rounds; i++) {
        int k = (int)(rnd(&s) % 256);
        free(slots[k]);
        slots[k] = malloc(1 + rnd(&s) % ((i & 63) ? 4096 : (1 << 20)));
        if (slots[k]) *(volatile char *)slots[k] = 1;
    }
    for (int i = 0; i < 256; i++) free(slots[i]);
}

/* Names of the threads of process `pid`, space-separated, into buf. */
static void thread_names(pid_t pid, char *buf, size_t len) {
    char dir[64];
    snprintf(dir, sizeof dir, "/proc/%d/task", (int)pid);
    buf[0] = 0;
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[320], name[32] = "";
        snprintf(path, sizeof path, "%s/%s/comm", dir, e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;
        if (fgets(name, sizeof name, f)) name[strcspn(name, "\n")] = 0;
        fclose(f);
        size_t n = strlen(buf);
        snprintf(buf + n, len - n, "%s%s", n ? " " : "", name);
    }
    if (d) closedir(d);
}

static void *child_thread(void *arg) {
    (void)arg;
    allocate(1000);
    return NULL;
}

/* Runs in the parent: waits up to 10 s for the child to end. */
static void wait_child(pid_t pid) {
    int st = 0;
    pid_t r = 0;
    for (int i = 0; i < 1000 && (r = waitpid(pid, &st, WNOHANG)) == 0; i++) usleep(10000);
    if (r == 0) {
        char names[512];
        thread_names(pid, names, sizeof names);
        CHECK(0, "the child is still alive 10 s after its last thread of its own returned; "
                 "threads left: %s", names);
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        return;
    }
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %#x", st);
    printf("child exited %d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
}

static void *thread(void *arg) {
    (void)arg;
    allocate(1000);
    if (!strcmp(mode, "heavy")) allocate(2000000);
    if (!strcmp(mode, "fork")) {
        fflush(stdout);
        pid_t pid = fork();
        if (pid == 0) {
            /* The child: its only thread is this one (not its main thread). */
            who = "child";
            pthread_t t;
            if (pthread_create(&t, NULL, child_thread, NULL) != 0 || pthread_join(t, NULL) != 0)
                _exit(3);
            return NULL; /* the last thread returns: glibc calls exit(0) */
        }
        CHECK(pid > 0, "fork: %s", strerror(errno));
        if (pid > 0) wait_child(pid);
    }
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    return NULL;
}

int main(int argc, char **argv) {
    watchdog(15);
    if (argc > 1) mode = argv[1];
    atexit(at_exit);
    pthread_t t;
    if (pthread_create(&t, NULL, thread, NULL) != 0) {
        CHECK(0, "pthread_create");
        return 1;
    }
    pthread_exit(NULL);
}

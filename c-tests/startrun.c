/* Start-up timer: fork + execve + wait of one program N times, printing for each run, one a
 * line, its wall time (clock_gettime(CLOCK_MONOTONIC) around fork..wait4) and the child's
 * CPU time (user + system, from wait4), in microseconds. The CPU time does not count the
 * time the child waited for a CPU, so it stays comparable on a loaded machine.
 * The child's environment is this process's, without LD_PRELOAD and JVMALLOC_*, plus the
 * NAME=VALUE assignments given before "--". Run it without a preload itself, so the
 * parent's side (fork, wait) costs the same whatever the child loads. A benchmark, not a test.
 * Usage: startrun N [NAME=VALUE ...] -- program [args ...] */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 0, i = 2, k = 0;
    if (n < 1) goto usage;
    size_t nenv = 0;
    for (char **e = environ; *e; e++) nenv++;
    char **env = calloc(nenv + argc + 1, sizeof *env);
    for (char **e = environ; *e; e++)
        if (strncmp(*e, "LD_PRELOAD=", 11) != 0 && strncmp(*e, "JVMALLOC_", 9) != 0) env[k++] = *e;
    for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (!strchr(argv[i], '=')) goto usage;
        env[k++] = argv[i];
    }
    if (i + 1 >= argc) goto usage;
    char **args = &argv[i + 1];
    for (int r = 0; r < n; r++) {
        struct timespec a, b;
        clock_gettime(CLOCK_MONOTONIC, &a);
        pid_t pid = fork();
        if (pid == 0) {
            execve(args[0], args, env);
            _exit(127);
        }
        int st;
        struct rusage ru;
        if (pid < 0 || wait4(pid, &st, 0, &ru) != pid) {
            perror("startrun");
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &b);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "startrun: %s exited with status %#x\n", args[0], st);
            return 1;
        }
        double cpu = (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6 + ru.ru_utime.tv_usec + ru.ru_stime.tv_usec;
        printf("%.1f %.0f\n", (b.tv_sec - a.tv_sec) * 1e6 + (b.tv_nsec - a.tv_nsec) / 1e3, cpu);
    }
    return 0;
usage:
    fprintf(stderr, "usage: startrun N [NAME=VALUE ...] -- program [args ...]\n");
    return 2;
}

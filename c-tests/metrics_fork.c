/* The metrics port in a child of fork (tests/metrics.rs): the parent serves metrics
 * (JVMALLOC_METRICS_ADDR, port PORT) and forks a child that starts a thread of its own.
 * The child must hold no socket at all (not the parent's listening one, nor one of its
 * own: it must not try to bind the port). The parent waits for it.
 * Usage: metrics_fork PORT */
#include <dirent.h>
#include <sys/wait.h>
#include "harness.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

static int connects(int port) {
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int ok = connect(s, (struct sockaddr *)&a, sizeof a) == 0;
    close(s);
    return ok;
}

int main(int argc, char **argv) {
    watchdog(60);
    CHECK(argc == 2, "usage: metrics_fork PORT");
    if (argc != 2) return finish("metrics_fork");
    int port = atoi(argv[1]);
    start_one_thread(); /* the jvmalloc thread, which binds the port */
    int i = 0;
    while (i++ < 500 && !connects(port)) usleep(10000);
    CHECK(connects(port), "the parent does not serve metrics on %d", port);
    pid_t pid = fork();
    if (pid == 0) {
        start_one_thread();
        usleep(300000);
        int sockets = 0;
        DIR *d = opendir("/proc/self/fd");
        struct dirent *e;
        while (d && (e = readdir(d))) {
            char path[300], target[64] = "";
            snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
            if (readlink(path, target, sizeof target - 1) > 0 && !strncmp(target, "socket:", 7)) sockets++;
        }
        if (d) closedir(d);
        _exit(sockets == 0 ? 0 : 10 + sockets);
    }
    int st = 0;
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the child holds sockets (status %#x)", st);
    return finish("metrics_fork");
}

/* fds: a program that closes every inherited descriptor and then uses 3, 4, ... itself, as
 * daemons do. A preloaded library must hold no descriptor the program can close or reuse:
 *   fds pipe [signal]  close 3..63, start a thread, pipe(), write "hello", read it back
 *                      (with "signal": SIGUSR1 to itself between write and read): must
 *                      read exactly "hello".
 *   fds files IN N LOG close 3..63, open IN (N bytes, byte i = i % 251) and LOG (land on
 *                      3 and 4), start a thread, SIGUSR1 to itself 3 times, read IN fully,
 *                      write lines to LOG; LOG must hold exactly those lines.
 *   fds idle           close 3..63, start a thread, sleep 1.5 s: CPU time used stays
 *                      below 30 % of that.
 * Under plain glibc SIGUSR1 gets a no-op handler (its default action would end us). */
#include "harness.h"
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>

static void close_inherited(void) {
    for (int fd = 3; fd < 64; fd++) close(fd);
}

static void *noop_thread(void *arg) {
    char *p = malloc(100);
    free(p);
    return arg;
}

/* One thread, started and joined: a jvmalloc that starts its thread lazily starts it now. */
static void start_thread(void) {
    pthread_t t;
    CHECK(pthread_create(&t, NULL, noop_thread, NULL) == 0, "pthread_create");
    pthread_join(t, NULL);
    usleep(100 * 1000);
}

static void noop_handler(int sig) { (void)sig; }

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Reads what arrives on fd within `ms` (0 bytes if nothing). */
static ssize_t read_within(int fd, char *buf, size_t len, int ms) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, ms) <= 0) return 0;
    return read(fd, buf, len);
}

static void pipe_mode(int with_signal) {
    int fds[2];
    CHECK(pipe(fds) == 0, "pipe: %s", strerror(errno));
    printf("pipe on %d/%d\n", fds[0], fds[1]);
    CHECK(write(fds[1], "hello", 5) == 5, "write");
    if (with_signal) kill(getpid(), SIGUSR1);
    sleep_ms(300); /* time for anyone else who polls our descriptors to steal the data */
    char buf[64] = {0};
    ssize_t n = read_within(fds[0], buf, sizeof buf - 1, 2000);
    CHECK(n == 5 && memcmp(buf, "hello", 5) == 0, "read %zd bytes \"%s\", want \"hello\"", n,
          buf);
    /* Nothing else may arrive on our pipe (no stray byte from a signal handler). */
    n = read_within(fds[0], buf, sizeof buf - 1, 200);
    CHECK(n == 0, "%zd more bytes on the pipe", n);
}

static void files_mode(const char *in_path, long size, const char *log_path) {
    int in = open(in_path, O_RDONLY);
    int log = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(in >= 0 && log >= 0, "open: %s", strerror(errno));
    printf("input on %d, log on %d\n", in, log);
    start_thread();
    char line[64];
    for (int i = 0; i < 3; i++) {
        int len = snprintf(line, sizeof line, "before signal %d\n", i);
        CHECK(write(log, line, len) == len, "write log");
        kill(getpid(), SIGUSR1);
        sleep_ms(200);
    }
    unsigned char *data = malloc(size + 1);
    long got = 0;
    ssize_t n;
    while (got <= size && (n = read(in, data + got, size + 1 - got)) > 0) got += n;
    CHECK(got == size, "read %ld bytes of input, want %ld", got, size);
    long bad = -1;
    for (long i = 0; i < got && bad < 0; i++)
        if (data[i] != i % 251) bad = i;
    CHECK(bad < 0, "input byte %ld wrong", bad);
    free(data);
    for (int i = 0; i < 3; i++) {
        int len = snprintf(line, sizeof line, "after reading %d\n", i);
        CHECK(write(log, line, len) == len, "write log");
    }
    close(log);
    close(in);
}

static void idle_mode(void) {
    sleep_ms(1500);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec +
                 ru.ru_stime.tv_usec / 1e6;
    printf("cpu %.3f s in 1.5 s idle\n", cpu);
    CHECK(cpu < 0.45, "the process used %.3f s of CPU while idle for 1.5 s", cpu);
}

int main(int argc, char **argv) {
    watchdog(15);
    if (!expect_jvmalloc()) signal(SIGUSR1, noop_handler);
    close_inherited();
    const char *mode = argc > 1 ? argv[1] : "";
    if (strcmp(mode, "pipe") == 0) {
        start_thread();
        pipe_mode(argc > 2 && strcmp(argv[2], "signal") == 0);
    } else if (strcmp(mode, "files") == 0 && argc == 5) {
        files_mode(argv[2], atol(argv[3]), argv[4]);
    } else if (strcmp(mode, "idle") == 0) {
        start_thread();
        idle_mode();
    } else {
        fprintf(stderr, "usage: fds pipe [signal] | files IN N LOG | idle\n");
        return 2;
    }
    return finish("fds");
}

/* Signal storm: 8 threads allocate and free without pause while the main thread sends
 * itself SIGNALS (default 1000) statistics signals in a tight loop. The process must finish
 * (watchdog), with every dump written whole. Signal number from $STORM_SIGNAL (default
 * SIGUSR1). Usage: signal_storm [signals] */
#include "harness.h"
#include <pthread.h>
#include <signal.h>

static volatile int stop;
static int started;

static void *alloc_loop(void *arg) {
    __atomic_add_fetch(&started, 1, __ATOMIC_SEQ_CST);
    churn_until(&stop, 5 + (uintptr_t)arg, 300000);
    return NULL;
}

int main(int argc, char **argv) {
    watchdog(120);
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    const char *s = getenv("STORM_SIGNAL");
    int sig = s ? atoi(s) : SIGUSR1;
    pthread_t t[8];
    for (int i = 0; i < 8; i++) pthread_create(&t[i], NULL, alloc_loop, (void *)(intptr_t)i);
    /* Every worker runs (and is registered) before the first signal, however loaded the
     * machine is. */
    while (__atomic_load_n(&started, __ATOMIC_SEQ_CST) < 8) usleep(1000);
    usleep(20000);
    for (int i = 0; i < n; i++) CHECK(kill(getpid(), sig) == 0, "kill %d", i);
    usleep(300000);
    stop = 1;
    for (int i = 0; i < 8; i++) pthread_join(t[i], NULL);
    /* Let the reporter finish a dump that is still being written. */
    sleep(1);
    printf("signal_storm: %d signals\n", n);
    return finish("signal_storm");
}

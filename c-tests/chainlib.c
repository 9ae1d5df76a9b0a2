/* A shared library whose constructor installs a SIGUSR1 handler before jvmalloc's own
 * (dependencies of the executable are initialised before preloaded libraries), with
 * sa_mask {SIGUSR2} and SA_NODEFER. jvmalloc chains to it: the handler records what it
 * finds blocked while it runs, which must be its own mask and flags, not jvmalloc's. */
#define _GNU_SOURCE
#include <signal.h>
#include <string.h>

volatile int chain_calls, chain_usr2_blocked, chain_usr1_blocked, chain_segv_blocked;

static void handler(int sig, siginfo_t *info, void *ctx) {
    (void)sig;
    (void)info;
    (void)ctx;
    sigset_t now;
    sigprocmask(SIG_BLOCK, NULL, &now);
    chain_usr2_blocked = sigismember(&now, SIGUSR2);
    chain_usr1_blocked = sigismember(&now, SIGUSR1);
    chain_segv_blocked = sigismember(&now, SIGSEGV);
    chain_calls++;
}

__attribute__((constructor)) static void chain_ctor(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGUSR2);
    sigaction(SIGUSR1, &sa, NULL);
}

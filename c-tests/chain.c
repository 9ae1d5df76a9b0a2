/* jvmalloc's SIGUSR1 handler chains to the handler installed before it (by libchainlib's
 * constructor) with that handler's own sa_mask and flags: SIGUSR2 blocked (its sa_mask),
 * SIGUSR1 not blocked (SA_NODEFER), SIGSEGV not blocked (jvmalloc blocks nothing extra).
 * The dump is written too (the test reads stderr). */
#include "harness.h"
#include <signal.h>

extern volatile int chain_calls, chain_usr2_blocked, chain_usr1_blocked, chain_segv_blocked;

int main(void) {
    watchdog(60);
    start_one_thread(); /* the jvmalloc thread */
    raise(SIGUSR1);
    for (int i = 0; i < 1000 && chain_calls == 0; i++) usleep(1000);
    CHECK(chain_calls == 1, "the previous handler ran %d times", chain_calls);
    CHECK(chain_usr2_blocked == 1, "SIGUSR2 (its sa_mask) not blocked in the previous handler");
    CHECK(chain_usr1_blocked == 0, "SIGUSR1 blocked in a handler installed with SA_NODEFER");
    CHECK(chain_segv_blocked == 0, "SIGSEGV blocked in the previous handler");
    usleep(300000); /* the dump */
    return finish("chain");
}

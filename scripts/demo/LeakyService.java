import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.Deflater;

/**
 * The workload of scripts/demo.sh: a service that churns native memory from many threads
 * and leaks a little of it on one thread, then sits idle.
 *
 * <p>Churn: {@code threads} worker threads each run {@code rounds} rounds of a zlib round
 * trip (Deflater and Inflater, both ended), a direct ByteBuffer of up to 2 MiB (freed later
 * by the JVM's cleaner) and, every 25 rounds, a short-lived child thread doing one more
 * zlib round: the rounds of c-tests/jvm/NativeChurn.java (compiled alongside). All of that
 * is freed again: only an allocator that keeps freed memory leaves it in RSS.
 *
 * <p>Leak: one thread named {@code leaky-deflater} creates {@code leak} Deflaters, compresses
 * 128 KiB with each (so their zlib state is written, hence resident) and keeps them in a
 * static list without calling {@code end()}: about 270 KiB of native memory each, all
 * allocated by that thread. The thread then stays alive, waiting for work.
 *
 * <p>Usage: {@code java LeakyService threads rounds leak [gate-file]}. Runs a warm-up
 * phase (a quarter of the rounds, no leak), collects garbage ({@link #settle}), prints
 * {@code warmed-up}; with a gate file, waits until that file exists; then runs the rest of
 * the rounds while the leak grows, collects garbage again, prints {@code work-done ...}, and
 * idles until killed (at most 10 minutes). Exits 1 if a round-trip check failed.
 */
public class LeakyService {
    static final List<Deflater> leaked = new ArrayList<>();

    static void churn(int threads, int from, int to, Runnable alongside) throws InterruptedException {
        List<Thread> ts = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            final int id = i;
            Thread t = new Thread(() -> NativeChurn.work(id, from, to), "churn-" + i);
            t.start();
            ts.add(t);
        }
        if (alongside != null) {
            alongside.run();
        }
        for (Thread t : ts) {
            t.join();
        }
    }

    /** The bug: Deflaters created for a "cache" and never ended. */
    static void leak(int count) {
        byte[] input = NativeChurn.sample(42, 128 << 10);
        byte[] out = new byte[64 << 10];
        for (int i = 0; i < count; i++) {
            Deflater d = new Deflater();
            d.setInput(input);
            while (!d.needsInput()) {
                d.deflate(out, 0, out.length, Deflater.NO_FLUSH);
            }
            synchronized (leaked) {
                leaked.add(d); // no d.end()
            }
        }
    }

    /**
     * Collects the garbage the churn left, so that the direct buffers it dropped are freed now
     * (by the JVM's cleaner thread), as a busy service's next GC would do; an idle JVM would
     * otherwise keep them for as long as it does not collect. What stays allocated then is the
     * leak and the JVM's own memory.
     */
    static void settle() throws InterruptedException {
        System.gc();
        Thread.sleep(200);
    }

    public static void main(String[] args) throws Exception {
        int threads = Integer.parseInt(args[0]);
        int rounds = Integer.parseInt(args[1]);
        int leakCount = Integer.parseInt(args[2]);
        Path gate = args.length > 3 ? Path.of(args[3]) : null;
        int warm = rounds / 4;

        Object go = new Object();
        boolean[] started = {false};
        Thread leaky = new Thread(() -> {
            try {
                synchronized (go) {
                    while (!started[0]) {
                        go.wait();
                    }
                }
                leak(leakCount);
                synchronized (go) {
                    started[0] = false;
                    go.notifyAll();
                    while (true) {
                        go.wait(); // waits for work that never comes, holding its Deflaters
                    }
                }
            } catch (InterruptedException e) {
                // exit
            }
        }, "leaky-deflater");
        leaky.setDaemon(true);
        leaky.start();

        churn(threads, 0, warm, null);
        settle();
        System.out.println("warmed-up");
        System.out.flush();
        if (gate != null) {
            while (!Files.exists(gate)) {
                Thread.sleep(20);
            }
        }
        churn(threads, warm, rounds, () -> {
            synchronized (go) {
                started[0] = true;
                go.notifyAll();
            }
        });
        synchronized (go) {
            while (started[0]) {
                go.wait();
            }
        }
        settle();
        if (NativeChurn.failures.get() != 0) {
            System.out.println("FAILED: " + NativeChurn.failures.get() + " round trips did not check out");
            System.exit(1);
        }
        System.out.println("work-done threads=" + threads + " rounds=" + rounds + " leaked-deflaters=" + leaked.size());
        System.out.flush();
        Thread.sleep(600_000);
        System.exit(0);
    }
}

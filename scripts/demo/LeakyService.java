import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * The workload of scripts/demo.sh: a service that churns native memory from many threads
 * and leaks a little of it on one thread, then sits idle.
 *
 * <p>Churn: {@code threads} worker threads each run {@code rounds} rounds of a zlib round
 * trip (Deflater and Inflater, both ended), a direct ByteBuffer of up to 2 MiB (freed later
 * by the JVM's cleaner) and, every 25 rounds, a short-lived child thread doing one more
 * zlib round. All of that is freed again: only an allocator that keeps freed memory leaves
 * it in RSS.
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
    static final AtomicLong failures = new AtomicLong();
    static final List<Deflater> leaked = new ArrayList<>();

    static byte[] sample(long seed, int len) {
        byte[] b = new byte[len];
        long x = seed | 1;
        for (int i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            // Half-compressible: repeated runs mixed with noise.
            b[i] = (byte) ((i % 64 < 32) ? 'a' + (i % 7) : x);
        }
        return b;
    }

    static void zlibRound(long seed) throws DataFormatException {
        byte[] in = sample(seed, 4096 + (int) (seed % 60000));
        Deflater d = new Deflater((int) (seed % 9) + 1);
        d.setInput(in);
        d.finish();
        byte[] buf = new byte[in.length + 1024];
        int clen = 0;
        while (!d.finished()) {
            clen += d.deflate(buf, clen, buf.length - clen);
        }
        d.end();
        Inflater inf = new Inflater();
        inf.setInput(buf, 0, clen);
        byte[] out = new byte[in.length];
        int n = 0;
        while (!inf.finished() && n < out.length) {
            n += inf.inflate(out, n, out.length - n);
        }
        inf.end();
        if (n != in.length || !Arrays.equals(in, out)) {
            failures.incrementAndGet();
        }
    }

    static void directRound(long seed) {
        int size = 1024 + (int) (seed % (2 << 20));
        ByteBuffer b = ByteBuffer.allocateDirect(size);
        long sum = 0;
        for (int i = 0; i < size; i += 64) {
            b.put(i, (byte) i);
            sum += (byte) i;
        }
        long check = 0;
        for (int i = 0; i < size; i += 64) {
            check += b.get(i);
        }
        if (check != sum) {
            failures.incrementAndGet();
        }
    }

    static void work(int id, int from, int to) {
        try {
            for (int r = from; r < to; r++) {
                long seed = (id * 1_000_003L) + r * 7919L;
                zlibRound(seed);
                directRound(seed);
                if (r % 25 == 0) {
                    Thread t = new Thread(() -> {
                        try {
                            zlibRound(seed + 1);
                        } catch (DataFormatException e) {
                            failures.incrementAndGet();
                        }
                    }, "churn-child-" + id);
                    t.start();
                    t.join();
                }
            }
        } catch (Exception e) {
            e.printStackTrace();
            failures.incrementAndGet();
        }
    }

    static void churn(int threads, int from, int to, Runnable alongside) throws InterruptedException {
        List<Thread> ts = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            final int id = i;
            Thread t = new Thread(() -> work(id, from, to), "churn-" + i);
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
        byte[] input = sample(42, 128 << 10);
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
        if (failures.get() != 0) {
            System.out.println("FAILED: " + failures.get() + " round trips did not check out");
            System.exit(1);
        }
        System.out.println("work-done threads=" + threads + " rounds=" + rounds + " leaked-deflaters=" + leaked.size());
        System.out.flush();
        Thread.sleep(600_000);
        System.exit(0);
    }
}

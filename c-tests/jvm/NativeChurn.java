import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

/**
 * Churns native memory the way JVM services do: zlib (Deflater/Inflater allocate their
 * state with malloc), direct ByteBuffers, and thread creation, from many threads at once.
 * Every round checks its own result (round trip through zlib, buffer checksums).
 *
 * <p>Usage: {@code java NativeChurn [threads] [rounds] [--wait | --idle SECONDS]}. Prints
 * {@code start VmRSS <kB> kB} before the work (the JVM's own start-up), then
 * {@code NativeChurn: ok ...} and the process's VmRSS/VmHWM, and exits 0 when every check
 * held. With {@code --wait} it then keeps 96 MiB of Java heap touched and a thread named
 * {@code keeper-thread} (holding a 4 MiB direct buffer) alive, prints {@code ready <pid>}
 * and waits for a line on stdin before exiting (so that a test can run jcmd or send
 * signals against it). With {@code --idle SECONDS} it sleeps that long after the work and
 * prints {@code idle <s> s VmRSS <kB> kB} (for benchmarks of memory given back).
 */
public class NativeChurn {
    static final AtomicLong ops = new AtomicLong();
    static final AtomicLong failures = new AtomicLong();

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
        if (n != in.length || !java.util.Arrays.equals(in, out)) {
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

    /** Rounds {@code from} (inclusive) to {@code to} of worker {@code id}; also the work of
     * scripts/demo/LeakyService.java. */
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
                ops.incrementAndGet();
            }
        } catch (Exception e) {
            e.printStackTrace();
            failures.incrementAndGet();
        }
    }

    static String status(String key) throws Exception {
        for (String line : Files.readAllLines(Path.of("/proc/self/status"))) {
            if (line.startsWith(key + ":")) {
                return line.substring(key.length() + 1).trim();
            }
        }
        return "?";
    }

    public static void main(String[] args) throws Exception {
        int threads = args.length > 0 ? Integer.parseInt(args[0]) : 32;
        int rounds = args.length > 1 ? Integer.parseInt(args[1]) : 200;
        boolean wait = args.length > 2 && args[2].equals("--wait");
        int idleSeconds = args.length > 3 && args[2].equals("--idle") ? Integer.parseInt(args[3]) : 0;
        System.out.println("start VmRSS " + status("VmRSS"));
        List<Thread> ts = new ArrayList<>();
        for (int i = 0; i < threads; i++) {
            final int id = i;
            Thread t = new Thread(() -> work(id, 0, rounds), "churn-" + i);
            t.start();
            ts.add(t);
        }
        for (Thread t : ts) {
            t.join();
        }
        long expected = (long) threads * rounds;
        System.out.println("NativeChurn: " + (failures.get() == 0 && ops.get() == expected ? "ok" : "FAILED")
                + " threads=" + threads + " rounds=" + ops.get() + "/" + expected
                + " failures=" + failures.get());
        System.out.println("VmRSS " + status("VmRSS") + " VmHWM " + status("VmHWM"));
        if (idleSeconds > 0) {
            Thread.sleep(idleSeconds * 1000L);
            System.out.println("idle " + idleSeconds + " s VmRSS " + status("VmRSS"));
        }
        if (wait) {
            byte[][] heap = new byte[96][];
            for (int i = 0; i < heap.length; i++) {
                heap[i] = new byte[1 << 20];
                java.util.Arrays.fill(heap[i], (byte) i);
            }
            java.util.concurrent.CountDownLatch release = new java.util.concurrent.CountDownLatch(1);
            java.util.concurrent.CountDownLatch holding = new java.util.concurrent.CountDownLatch(1);
            Thread keeper = new Thread(() -> {
                ByteBuffer b = ByteBuffer.allocateDirect(4 << 20);
                b.put(0, (byte) 1);
                holding.countDown();
                try {
                    release.await();
                } catch (InterruptedException e) {
                    failures.incrementAndGet();
                }
                if (b.get(0) != 1) {
                    failures.incrementAndGet();
                }
            }, "keeper-thread");
            keeper.start();
            holding.await();
            System.out.println("ready " + ProcessHandle.current().pid());
            System.out.flush();
            System.in.read();
            release.countDown();
            keeper.join();
            long sum = 0;
            for (byte[] h : heap) {
                sum += h[h.length - 1];
            }
            if (sum != 95 * 96 / 2) {
                failures.incrementAndGet();
            }
        }
        System.exit(failures.get() == 0 && ops.get() == expected ? 0 : 1);
    }
}

import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.zip.Deflater;

/**
 * Two native leaks and two churns, for tests/profile.rs and docs/profiling.md.
 *
 * <ul>
 *   <li>thread {@code deflater-leak} creates Deflaters and never calls end(): each holds
 *       zlib's state (about 262 KiB at the default level) until the JVM exits;
 *   <li>thread {@code direct-leak} keeps 1 MiB direct buffers in a list;
 *   <li>threads {@code deflater-churn} and {@code direct-churn} do the same without keeping
 *       anything: end() at once, buffers dropped (freed by the JVM's cleaner after a GC,
 *       which the churn's heap garbage brings about every few milliseconds).
 * </ul>
 *
 * Prints {@code ready <pid>}. Reads commands on stdin, one per line, and answers each with
 * one line starting with {@code ok}:
 * {@code leak D B} (the leak threads keep D more Deflaters and B more buffers; answers
 * {@code ok deflaters=N direct_bytes=M}, the totals kept), {@code quit}.
 */
public class ProfileLeak {
    static final List<Deflater> deflaters = new ArrayList<>();
    static final List<ByteBuffer> buffers = new ArrayList<>();
    static volatile boolean running = true;
    static volatile long churned;

    /** Runs {@code work} on a new thread named {@code name} and waits for it. */
    static void onThread(String name, Runnable work) throws InterruptedException {
        Thread t = new Thread(work, name);
        t.start();
        t.join();
    }

    static void leak(int nDeflaters, int nBuffers) throws InterruptedException {
        // The same long-lived threads would do as well; a thread per batch with the same
        // name is what a pool does, and the profile pools threads by name.
        onThread("deflater-leak", () -> {
            byte[] data = new byte[4096];
            for (int i = 0; i < nDeflaters; i++) {
                Deflater d = new Deflater();
                d.setInput(data);
                d.finish();
                d.deflate(new byte[8192]);
                synchronized (deflaters) {
                    deflaters.add(d);
                }
            }
        });
        onThread("direct-leak", () -> {
            for (int i = 0; i < nBuffers; i++) {
                ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
                b.put(0, (byte) 1);
                synchronized (buffers) {
                    buffers.add(b);
                }
            }
        });
    }

    static void churn(String name, Runnable step) {
        Thread t = new Thread(() -> {
            while (running) {
                step.run();
                churned++;
                if (churned % 16 == 0) {
                    try {
                        Thread.sleep(1);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
            }
        }, name);
        t.setDaemon(true);
        t.start();
    }

    public static void main(String[] args) throws Exception {
        byte[] data = new byte[4096];
        churn("deflater-churn", () -> {
            Deflater d = new Deflater();
            d.setInput(data);
            d.finish();
            d.deflate(new byte[8192]);
            d.end();
        });
        churn("direct-churn", () -> {
            ByteBuffer b = ByteBuffer.allocateDirect(1024);
            b.put(0, (byte) 1);
            // Heap garbage, so that young collections (and the cleaner that frees dropped
            // direct buffers) come often: 64 times the direct bytes.
            byte[] g = new byte[64 << 10];
            g[0] = 1;
        });
        System.out.println("ready " + ProcessHandle.current().pid());
        java.io.BufferedReader in =
            new java.io.BufferedReader(new java.io.InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            String[] w = line.trim().split("\\s+");
            if (w[0].equals("leak")) {
                leak(Integer.parseInt(w[1]), Integer.parseInt(w[2]));
                long direct;
                int n;
                synchronized (buffers) {
                    direct = (long) buffers.size() << 20;
                }
                synchronized (deflaters) {
                    n = deflaters.size();
                }
                System.out.println("ok deflaters=" + n + " direct_bytes=" + direct);
            } else if (w[0].equals("quit")) {
                running = false;
                System.out.println("ok");
                return;
            } else {
                System.out.println("unknown command " + line);
            }
        }
    }
}

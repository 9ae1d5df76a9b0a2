import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.locks.LockSupport;

/**
 * Grows one part of the JVM's memory at a time, on command, for the tests of the RSS split
 * (tests/jvm_split.rs). Prints {@code ready <pid>}, then reads commands from stdin, one a
 * line, and answers each with one line starting with {@code ok} once the work is done and
 * every byte it added has been written (so it is resident):
 *
 * <ul>
 *   <li>{@code heap N}: adds N byte arrays of 1 MiB, each filled, to a TreeMap it keeps.
 *       (Under G1 with 1 MiB regions each array is humongous and takes two regions: the
 *       heap's committed size grows by about 2 MiB per array, its resident size by 1 MiB.)
 *   <li>{@code direct N}: adds N direct ByteBuffers of 1 MiB (native memory from malloc),
 *       each filled, to a list it keeps.
 *   <li>{@code threads N DEPTH}: starts N threads that each recurse DEPTH frames deep (so
 *       each stack is written that deep, beyond what HotSpot's stack banging touches) and
 *       park there; answers once every one of them is parked.
 *   <li>{@code gc}: System.gc() (HotSpot updates its metaspace counters at a collection).
 *   <li>{@code quit}: unparks the threads and exits 0 after checking the kept data.
 * </ul>
 *
 * Between commands it does nothing (no allocation, no threads running), so that a test can
 * compare the library's figures with jcmd's and jstat's.
 */
public class SplitGrow {
    static final TreeMap<Integer, byte[]> heap = new TreeMap<>();
    static final List<ByteBuffer> direct = new ArrayList<>();
    static final List<Thread> parked = new ArrayList<>();
    static volatile boolean release = false;
    static volatile long sink;

    static long recurse(int depth, CountDownLatch arrived) {
        long[] local = new long[16];
        for (int i = 0; i < local.length; i++) {
            local[i] = depth * 31L + i;
        }
        if (depth > 0) {
            return local[depth % 16] + recurse(depth - 1, arrived);
        }
        arrived.countDown();
        while (!release) {
            LockSupport.park();
        }
        return local[3];
    }

    public static void main(String[] args) throws Exception {
        System.out.println("ready " + ProcessHandle.current().pid());
        System.out.flush();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            String[] w = line.trim().split("\\s+");
            switch (w[0]) {
                case "heap": {
                    int n = Integer.parseInt(w[1]);
                    for (int i = 0; i < n; i++) {
                        int key = heap.size();
                        byte[] b = new byte[1 << 20];
                        java.util.Arrays.fill(b, (byte) (key | 1));
                        heap.put(key, b);
                    }
                    System.out.println("ok heap " + heap.size());
                    break;
                }
                case "direct": {
                    int n = Integer.parseInt(w[1]);
                    for (int i = 0; i < n; i++) {
                        ByteBuffer b = ByteBuffer.allocateDirect(1 << 20);
                        for (int j = 0; j < b.capacity(); j += 8) {
                            b.putLong(j, j ^ i);
                        }
                        direct.add(b);
                    }
                    System.out.println("ok direct " + direct.size());
                    break;
                }
                case "threads": {
                    int n = Integer.parseInt(w[1]);
                    int depth = Integer.parseInt(w[2]);
                    CountDownLatch arrived = new CountDownLatch(n);
                    for (int i = 0; i < n; i++) {
                        Thread t = new Thread(() -> sink += recurse(depth, arrived), "parked-" + parked.size());
                        t.setDaemon(true);
                        t.start();
                        parked.add(t);
                    }
                    arrived.await();
                    System.out.println("ok threads " + parked.size());
                    break;
                }
                case "gc": {
                    System.gc();
                    System.out.println("ok gc");
                    break;
                }
                case "quit": {
                    release = true;
                    for (Thread t : parked) {
                        LockSupport.unpark(t);
                    }
                    for (Thread t : parked) {
                        t.join();
                    }
                    for (var e : heap.entrySet()) {
                        byte[] b = e.getValue();
                        byte want = (byte) (e.getKey() | 1);
                        if (b[0] != want || b[b.length - 1] != want) {
                            System.out.println("FAILED heap " + e.getKey());
                            System.exit(1);
                        }
                    }
                    System.out.println("ok quit");
                    System.out.flush();
                    System.exit(0);
                }
                default:
                    System.out.println("unknown command " + line);
            }
            System.out.flush();
        }
    }
}

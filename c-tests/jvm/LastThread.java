// A JVM's lifetime and SIGUSR1 under jvmalloc (tests/invisible.rs).
// main starts a non-daemon thread and returns at once, so the JVM ends through DestroyJavaVM
// when that thread ends. The thread allocates native memory (direct buffers, a Deflater,
// freed again), prints "ready <pid>", then reads stdin line by line:
//   "handle"  installs a Java handler for SIGUSR1 with sun.misc.Signal (it replaces any
//             native handler) and prints "handled previous=<SIG_DFL|SIG_IGN|native>"; the
//             handler prints "java got SIGUSR1" each time it runs;
//   anything else, or the end of input: prints "done" and returns.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.util.zip.Deflater;
import sun.misc.Signal;
import sun.misc.SignalHandler;

public class LastThread {
    public static void main(String[] args) {
        Thread t = new Thread(LastThread::work, "last-thread");
        t.setDaemon(false);
        t.start();
    }

    static void work() {
        try {
            long sum = 0;
            for (int i = 0; i < 64; i++) {
                ByteBuffer b = ByteBuffer.allocateDirect(64 << 10);
                b.put(0, (byte) i);
                sum += b.get(0);
                Deflater d = new Deflater();
                d.setInput(new byte[4096]);
                d.finish();
                byte[] out = new byte[8192];
                sum += d.deflate(out);
                d.end();
            }
            System.out.println("ready " + ProcessHandle.current().pid() + " " + sum);
            System.out.flush();
            BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
            String line;
            while ((line = in.readLine()) != null && line.equals("handle")) {
                SignalHandler old = Signal.handle(new Signal("USR1"), sig -> {
                    System.out.println("java got SIG" + sig.getName());
                    System.out.flush();
                });
                String prev = old == SignalHandler.SIG_DFL ? "SIG_DFL"
                        : old == SignalHandler.SIG_IGN ? "SIG_IGN" : "native";
                System.out.println("handled previous=" + prev);
                System.out.flush();
            }
            System.out.println("done");
            System.out.flush();
        } catch (Exception e) {
            e.printStackTrace();
            System.exit(1);
        }
    }
}

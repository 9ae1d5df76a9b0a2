import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.zip.DataFormatException;
import java.util.zip.Deflater;
import java.util.zip.Inflater;
import org.apache.flink.api.common.RuntimeExecutionMode;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.api.java.tuple.Tuple3;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.CloseableIterator;
import org.apache.flink.util.Collector;

/**
 * Flink jobs that use native memory the way real jobs do, for scripts/flink-e2e.sh.
 *
 * <ul>
 *   <li>{@code batch RECORDS RUN}: a BATCH job. Each record (1-4 KiB, half compressible) is
 *       deflated in a map (java.util.zip: native zlib state per call), shuffled by key
 *       through a blocking, compressed exchange, inflated and checked on the other side,
 *       with a direct buffer allocated every 500 records; the per-key byte sums are
 *       collected and compared with the expected total. A wrong result fails the job.
 *   <li>{@code streaming}: an unbounded STREAMING job with checkpoints every 2 s: the same
 *       deflate/inflate work, keyed state, throttled to a few thousand records a second.
 *       Runs until cancelled.
 * </ul>
 */
public class NativeJobs {
    /** Deterministic record of 1-4 KiB for a sequence number. */
    static byte[] record(long seq) {
        int len = 1024 + (int) (Math.floorMod(seq * 2654435761L, 3072));
        byte[] b = new byte[len];
        long x = seq | 1;
        for (int i = 0; i < len; i++) {
            x ^= x << 13;
            x ^= x >>> 7;
            x ^= x << 17;
            b[i] = (byte) ((i % 64 < 32) ? 'a' + (i % 5) : x);
        }
        return b;
    }

    static int keyOf(long seq) {
        return (int) Math.floorMod(seq * 31, 512);
    }

    /** seq -> (key, seq, deflated record). */
    public static class Compress extends RichMapFunction<Long, Tuple3<Integer, Long, byte[]>> {
        private final int throttleEvery;

        Compress(int throttleEvery) {
            this.throttleEvery = throttleEvery;
        }

        @Override
        public Tuple3<Integer, Long, byte[]> map(Long seq) throws Exception {
            if (throttleEvery > 0 && seq % throttleEvery == 0) {
                Thread.sleep(1);
            }
            if (seq % 500 == 0) {
                ByteBuffer direct = ByteBuffer.allocateDirect(64 << 10);
                direct.putLong(0, seq);
                if (direct.getLong(0) != seq) {
                    throw new IllegalStateException("direct buffer lost its contents");
                }
            }
            byte[] in = record(seq);
            Deflater d = new Deflater((int) (seq % 9) + 1);
            d.setInput(in);
            d.finish();
            byte[] buf = new byte[in.length + 64];
            int n = 0;
            while (!d.finished()) {
                n += d.deflate(buf, n, buf.length - n);
            }
            d.end();
            return Tuple3.of(keyOf(seq), seq, Arrays.copyOf(buf, n));
        }
    }

    static byte[] inflate(byte[] data, int expectedLength) throws DataFormatException {
        Inflater inf = new Inflater();
        inf.setInput(data);
        byte[] out = new byte[expectedLength];
        int n = 0;
        while (!inf.finished() && n < out.length) {
            n += inf.inflate(out, n, out.length - n);
        }
        inf.end();
        return out;
    }

    /** (key, seq, deflated) -> (key, uncompressed length), checking the round trip. */
    public static class Decompress extends RichMapFunction<Tuple3<Integer, Long, byte[]>, Tuple2<Integer, Long>> {
        @Override
        public Tuple2<Integer, Long> map(Tuple3<Integer, Long, byte[]> t) throws Exception {
            byte[] want = record(t.f1);
            byte[] got = inflate(t.f2, want.length);
            if (!Arrays.equals(want, got)) {
                throw new IllegalStateException("record " + t.f1 + " corrupted in the shuffle");
            }
            return Tuple2.of(t.f0, (long) got.length);
        }
    }

    /** Streaming: keeps a running count and byte sum per key in state. */
    public static class CountPerKey extends KeyedProcessFunction<Integer, Tuple3<Integer, Long, byte[]>, Long> {
        private transient ValueState<Long> bytes;

        @Override
        public void open(OpenContext ctx) {
            bytes = getRuntimeContext().getState(new ValueStateDescriptor<>("bytes", Long.class));
        }

        @Override
        public void processElement(Tuple3<Integer, Long, byte[]> t, Context ctx, Collector<Long> out) throws Exception {
            byte[] got = inflate(t.f2, record(t.f1).length);
            Long old = bytes.value();
            long now = (old == null ? 0 : old) + got.length;
            bytes.update(now);
            out.collect(now);
        }
    }

    public static void main(String[] args) throws Exception {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        if (args.length > 0 && args[0].equals("streaming")) {
            env.setRuntimeMode(RuntimeExecutionMode.STREAMING);
            env.enableCheckpointing(2000);
            env.fromSequence(1, Long.MAX_VALUE)
                    .map(new Compress(20))
                    .keyBy(t -> t.f0)
                    .process(new CountPerKey())
                    .sinkTo(new DiscardingSink<>());
            env.execute("jvmalloc-e2e streaming with checkpoints");
            return;
        }
        long records = args.length > 1 ? Long.parseLong(args[1]) : 100_000;
        String run = args.length > 2 ? args[2] : "1";
        env.setRuntimeMode(RuntimeExecutionMode.BATCH);
        long expected = 0;
        for (long s = 1; s <= records; s++) {
            expected += record(s).length;
        }
        long total = 0;
        try (CloseableIterator<Tuple2<Integer, Long>> it = env.fromSequence(1, records)
                .map(new Compress(0))
                .keyBy(t -> t.f0)
                .map(new Decompress())
                .keyBy(t -> t.f0)
                .sum(1)
                .executeAndCollect("jvmalloc-e2e batch " + run)) {
            while (it.hasNext()) {
                total += it.next().f1;
            }
        }
        if (total != expected) {
            throw new IllegalStateException("batch " + run + ": total " + total + " != expected " + expected);
        }
        System.out.println("batch " + run + " ok: " + records + " records, " + total + " bytes");
    }
}

package dev.flinkgate.bench;

import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;

/**
 * A CPU-bound streaming job whose throughput depends on every subtask: an
 * endless number sequence, hashed by key to every subtask of a CPU-heavy map,
 * then discarded. A slow subtask back-pressures every source, so the whole job
 * runs at the pace of its slowest TaskManager, which is what placement by
 * measured performance is meant to avoid.
 *
 * <p>Arguments: {@code --work N} hash rounds per record (default 2000),
 * {@code --keys K} distinct keys (default 1024).
 */
public final class CpuBoundJob {

    private CpuBoundJob() {}

    public static void main(String[] args) throws Exception {
        final int work = intArg(args, "--work", 2000);
        final long keys = intArg(args, "--keys", 1024);
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.fromSequence(0, Long.MAX_VALUE)
                .name("sequence")
                .keyBy(x -> x % keys, Types.LONG)
                .map(x -> burn(x, work))
                .returns(Types.LONG)
                .name("burn")
                .sinkTo(new DiscardingSink<>())
                .name("discard");
        env.execute("cpu-bound");
    }

    /** Rounds of a 64-bit mixer: pure CPU work the JIT cannot skip. */
    static long burn(long x, int rounds) {
        long h = x;
        for (int i = 0; i < rounds; i++) {
            h ^= h >>> 33;
            h *= 0xff51afd7ed558ccdL;
            h ^= h >>> 33;
            h *= 0xc4ceb9fe1a85ec53L;
        }
        return h;
    }

    private static int intArg(String[] args, String name, int fallback) {
        for (int i = 0; i + 1 < args.length; i++) {
            if (args[i].equals(name)) {
                try {
                    return Integer.parseInt(args[i + 1]);
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException(name + " expects an integer, got " + args[i + 1], e);
                }
            }
        }
        return fallback;
    }
}

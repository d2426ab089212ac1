package io.github.qoscope.kstreams;

import java.nio.ByteBuffer;
import java.util.Arrays;

/**
 * qoscope's histogram bucket contract (docs/TEAM-NOTES.md): DDSketch
 * logarithmic mapping with relative accuracy 0.01, gamma = 1.01/0.99,
 * index(v) = ceil(ln v / ln gamma) for v > 0, the zero bucket
 * Integer.MIN_VALUE for v = 0, representative value 2·gamma^i/(gamma+1).
 * Quantile p of n values: nearest rank ceil(p·n). Same buckets, same
 * answers as qoscope, and mergeable by adding counts.
 *
 * Stored as parallel sorted arrays (index, count): a few hundred buckets at
 * most for millisecond values, cheap to serialize on every cache flush.
 */
final class LogHistogram {
    static final double GAMMA = 1.01 / 0.99;
    static final double INV_LN_GAMMA = 1 / Math.log(GAMMA);
    static final int ZERO_INDEX = Integer.MIN_VALUE;

    private int[] idx = new int[0];
    private long[] cnt = new long[0];
    private int size;
    private long count;
    private double sum;

    static int index(double v) {
        if (!(v > 0)) {
            return ZERO_INDEX;
        }
        return (int) Math.ceil(Math.log(v) * INV_LN_GAMMA);
    }

    static double value(int i) {
        return i == ZERO_INDEX ? 0 : 2 * Math.pow(GAMMA, i) / (GAMMA + 1);
    }

    void add(double v) {
        int i = index(v);
        int at = Arrays.binarySearch(idx, 0, size, i);
        if (at < 0) {
            at = -at - 1;
            if (size == idx.length) {
                int cap = Math.max(8, size * 2);
                idx = Arrays.copyOf(idx, cap);
                cnt = Arrays.copyOf(cnt, cap);
            }
            System.arraycopy(idx, at, idx, at + 1, size - at);
            System.arraycopy(cnt, at, cnt, at + 1, size - at);
            idx[at] = i;
            cnt[at] = 0;
            size++;
        }
        cnt[at]++;
        count++;
        sum += v;
    }

    long count() {
        return count;
    }

    /** Nearest-rank quantile (bucket value), or null without values. pct is 50, 90 or 99. */
    Double quantile(int pct) {
        if (count == 0) {
            return null;
        }
        // rank = ceil(pct·n/100), in integers so that no rounding moves it.
        long rank = (count * pct + 99) / 100;
        long cum = 0;
        for (int k = 0; k < size; k++) {
            cum += cnt[k];
            if (cum >= rank) {
                return value(idx[k]);
            }
        }
        return value(idx[size - 1]);
    }

    Double mean() {
        return count == 0 ? null : sum / count;
    }

    /** Bytes {@link #write} needs. */
    int encodedSize() {
        return 8 + 8 + 4 + size * 12;
    }

    void write(ByteBuffer out) {
        out.putLong(count);
        out.putDouble(sum);
        out.putInt(size);
        for (int k = 0; k < size; k++) {
            out.putInt(idx[k]);
            out.putLong(cnt[k]);
        }
    }

    static LogHistogram read(ByteBuffer in) {
        LogHistogram h = new LogHistogram();
        h.count = in.getLong();
        h.sum = in.getDouble();
        h.size = in.getInt();
        h.idx = new int[Math.max(h.size, 8)];
        h.cnt = new long[h.idx.length];
        for (int k = 0; k < h.size; k++) {
            h.idx[k] = in.getInt();
            h.cnt[k] = in.getLong();
        }
        return h;
    }
}

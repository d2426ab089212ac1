package io.github.qoscope.kstreams;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.KeyValueIterator;
import org.apache.kafka.streams.state.ReadOnlyWindowStore;

/**
 * Reads every window of the aggregation's store (interactive queries) and
 * turns it into output rows, adding the origin no_data rows: a key of an
 * origin grouping set seen in one of the N windows before W and silent in W,
 * for W up to the window of the newest event time seen (as qoscope's offline
 * mode does at the end of its input). In a long-running deployment a
 * punctuator would emit those when stream time passes W; here they are
 * derived once, at the end, from the same store.
 */
final class Rows {
    private Rows() {}

    static final long WINDOW_MS = 60_000;

    static List<Row> dump(ReadOnlyWindowStore<String, Acc> store, GroupingSets sets, int noDataMinutes, long maxTs) {
        List<Row> rows = new ArrayList<>();
        // origin key (set + values) → windows that have data
        Map<String, Set<Long>> originSeen = new HashMap<>();
        Map<String, GroupKey> originKeys = new HashMap<>();
        try (KeyValueIterator<Windowed<String>, Acc> it = store.fetchAll(Instant.ofEpochMilli(0), Instant.ofEpochMilli(Long.MAX_VALUE / 2))) {
            while (it.hasNext()) {
                KeyValue<Windowed<String>, Acc> kv = it.next();
                String key = kv.key.key();
                GroupKey gk = GroupKey.decode(key);
                long ws = kv.key.window().start();
                List<String> names = sets.of(gk.source).get(gk.set);
                rows.add(new Row(ws, gk.source, gk.set, names, gk.values, Row.metrics(kv.value)));
                if (gk.source == Source.ORIGIN) {
                    originSeen.computeIfAbsent(key, k -> new HashSet<>()).add(ws);
                    originKeys.put(key, gk);
                }
            }
        }
        long last = Math.floorDiv(maxTs, WINDOW_MS) * WINDOW_MS;
        for (Map.Entry<String, Set<Long>> e : originSeen.entrySet()) {
            Set<Long> seen = e.getValue();
            Set<Long> owed = new HashSet<>();
            for (long w : seen) {
                for (int k = 1; k <= noDataMinutes; k++) {
                    long w2 = w + k * WINDOW_MS;
                    if (w2 <= last && !seen.contains(w2)) {
                        owed.add(w2);
                    }
                }
            }
            GroupKey gk = originKeys.get(e.getKey());
            for (long w : owed) {
                rows.add(new Row(w, Source.ORIGIN, gk.set, sets.of(Source.ORIGIN).get(gk.set), gk.values, Row.noDataMetrics()));
            }
        }
        rows.sort(Row.ORDER);
        return rows;
    }
}

package io.github.qoscope.kstreams;

import java.util.ArrayList;
import java.util.List;

/**
 * A grouping key as the record key of the aggregation: source, grouping set
 * index and the dimension values (a missing one is "unknown"), joined by
 * U+001F, which no dimension value of the ingest schema contains in
 * practice (it is a control character).
 */
final class GroupKey {
    static final char SEP = '\u001f';
    static final String UNKNOWN = "unknown";

    final Source source;
    final int set;
    final List<String> values;

    GroupKey(Source source, int set, List<String> values) {
        this.source = source;
        this.set = set;
        this.values = values;
    }

    static String encode(Event e, Source src, int set, List<String> dims) {
        StringBuilder b = new StringBuilder(64);
        b.append(src.ordinal()).append(SEP).append(set);
        for (String d : dims) {
            String v = e.dim(d);
            b.append(SEP).append(v.isEmpty() ? UNKNOWN : v);
        }
        return b.toString();
    }

    static GroupKey decode(String key) {
        List<String> parts = new ArrayList<>();
        int from = 0;
        for (int i = 0; i <= key.length(); i++) {
            if (i == key.length() || key.charAt(i) == SEP) {
                parts.add(key.substring(from, i));
                from = i + 1;
            }
        }
        Source src = Source.values()[Integer.parseInt(parts.get(0))];
        return new GroupKey(src, Integer.parseInt(parts.get(1)), List.copyOf(parts.subList(2, parts.size())));
    }
}

package io.github.qoscope.kstreams;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The breakdowns per source, as lists of event field names; [] is the total.
 * The defaults are issue 4's (the same as aggregator.DefaultGroupingSets);
 * the Go driver passes qoscope's own as JSON so both always agree.
 */
final class GroupingSets {
    private static final Set<String> DIMENSIONS = Set.of("stream_id", "vendor", "node", "ip", "country",
            "province", "city", "isp", "platform", "client_version", "quality", "role", "media", "line",
            "egress_isp", "error", "reason");

    private final Map<Source, List<List<String>>> sets = new EnumMap<>(Source.class);

    List<List<String>> of(Source s) {
        return sets.getOrDefault(s, List.of());
    }

    static GroupingSets defaults() {
        GroupingSets g = new GroupingSets();
        g.sets.put(Source.CLIENT, List.of(List.of(), List.of("province"), List.of("isp"),
                List.of("province", "isp"), List.of("vendor"), List.of("vendor", "province", "isp"),
                List.of("stream_id"), List.of("quality"), List.of("platform"), List.of("client_version"),
                List.of("role"), List.of("node")));
        g.sets.put(Source.CDN, List.of(List.of(), List.of("vendor"), List.of("province"), List.of("isp"),
                List.of("vendor", "province", "isp"), List.of("node")));
        g.sets.put(Source.ORIGIN, List.of(List.of("stream_id", "line")));
        return g;
    }

    /**
     * Parses {"client":[[],["province"]],"cdn":[...],"origin":[...]} (aggregator.GroupingSets
     * as JSON); a source left out keeps its default.
     */
    static GroupingSets parse(String json) throws IOException {
        GroupingSets g = defaults();
        try (JsonParser p = new JsonFactory().createParser(json)) {
            expect(p.nextToken(), JsonToken.START_OBJECT, "an object");
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                Source src = Source.of(p.currentName().toLowerCase());
                expect(p.nextToken(), JsonToken.START_ARRAY, "a list of grouping sets");
                List<List<String>> lists = new ArrayList<>();
                while (p.nextToken() == JsonToken.START_ARRAY) {
                    List<String> set = new ArrayList<>();
                    while (p.nextToken() == JsonToken.VALUE_STRING) {
                        String d = p.getText();
                        if (!DIMENSIONS.contains(d) || set.contains(d)) {
                            throw new IOException("grouping set of " + src.wire + ": bad dimension " + d);
                        }
                        set.add(d);
                    }
                    lists.add(List.copyOf(set));
                }
                g.sets.put(src, List.copyOf(lists));
            }
        }
        return g;
    }

    private static void expect(JsonToken got, JsonToken want, String what) throws IOException {
        if (got != want) {
            throw new IOException("grouping sets: want " + what + ", got " + got);
        }
    }
}

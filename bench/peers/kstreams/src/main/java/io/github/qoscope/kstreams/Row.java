package io.github.qoscope.kstreams;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.IOException;
import java.io.Writer;
import java.time.Instant;
import java.time.format.DateTimeFormatter;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;

/**
 * One output row in qoscope's offline format:
 * {"window_start":"…Z","source":"client","dims":{…},"metrics":{…}}.
 * Metrics derive from an {@link Acc} with qoscope's formulas (aggregator/metrics.go):
 * a rate with an empty denominator is null, quantiles are nearest rank on the
 * log histogram, means are sums over counts.
 */
final class Row {
    /** A named metric: value null for JSON null; bool for no_data. */
    record Metric(String name, Double value, boolean bool) {
        static Metric num(String name, double v) {
            return new Metric(name, v, false);
        }

        static Metric ratio(String name, double num, long den) {
            return new Metric(name, den == 0 ? null : num / den, false);
        }

        static Metric nul(String name) {
            return new Metric(name, null, false);
        }
    }

    final long windowStart;
    final Source source;
    final int set;
    final List<String> dimNames;
    final List<String> dimValues;
    final List<Metric> metrics;

    Row(long windowStart, Source source, int set, List<String> dimNames, List<String> dimValues, List<Metric> metrics) {
        this.windowStart = windowStart;
        this.source = source;
        this.set = set;
        this.dimNames = dimNames;
        this.dimValues = dimValues;
        this.metrics = metrics;
    }

    Metric metric(String name) {
        for (Metric m : metrics) {
            if (m.name().equals(name)) return m;
        }
        return null;
    }

    /** qoscope's output order: window, source, grouping set, dimension values one by one. */
    static final Comparator<Row> ORDER = (a, b) -> {
        int c = Long.compare(a.windowStart, b.windowStart);
        if (c != 0) return c;
        c = Integer.compare(a.source.ordinal(), b.source.ordinal());
        if (c != 0) return c;
        c = Integer.compare(a.set, b.set);
        if (c != 0) return c;
        for (int i = 0; i < Math.min(a.dimValues.size(), b.dimValues.size()); i++) {
            c = a.dimValues.get(i).compareTo(b.dimValues.get(i));
            if (c != 0) return c;
        }
        return Integer.compare(a.dimValues.size(), b.dimValues.size());
    };

    static List<Metric> metrics(Acc a) {
        List<Metric> m = new ArrayList<>(64);
        switch (a.source) {
            case CLIENT: {
                long users = a.users, stutter = a.stutterUsers;
                m.add(Metric.num("users", users));
                m.add(Metric.num("stutter_users", stutter));
                m.add(Metric.num("stutter_users_video", a.stutterUsersVideo));
                m.add(Metric.num("stutter_users_audio", a.stutterUsersAudio));
                m.add(Metric.ratio("stutter_rate_uv", stutter, users));
                m.add(Metric.ratio("zero_stutter_rate", users - Math.min(stutter, users), users));
                m.add(Metric.num("stalls", a.stalls));
                m.add(Metric.num("stall_ms", a.stallMs));
                m.add(Metric.num("samples", a.samples));
                m.add(Metric.num("stalled_samples", a.stalledSamples));
                m.add(Metric.ratio("stutter_rate_pv", a.stalledSamples, a.samples));
                m.add(Metric.num("plays", a.plays));
                m.add(Metric.num("plays_ok", a.playsOk));
                m.add(Metric.ratio("pull_connect_rate", a.playsOk, a.plays));
                hist(m, "pull_connect_ms", a.pullConnectMs);
                m.add(Metric.num("first_frames", a.firstFrames));
                hist(m, "first_frame_ms", a.firstFrameMs);
                m.add(Metric.ratio("fast_open_rate", a.fastOpens, a.firstFrames));
                m.add(Metric.ratio("video_buffer_ms_avg", a.videoBufferMsSum, a.videoBufferSamples));
                m.add(Metric.ratio("audio_buffer_ms_avg", a.audioBufferMsSum, a.audioBufferSamples));
                m.add(Metric.num("play_errors", a.playErrors));
                m.add(Metric.num("dns_lookups", a.dnsLookups));
                m.add(Metric.ratio("dns_hit_rate", a.dnsHits, a.dnsLookups));
                m.add(Metric.num("pushes", a.pushes));
                m.add(Metric.num("pushes_ok", a.pushesOk));
                m.add(Metric.ratio("push_connect_rate", a.pushesOk, a.pushes));
                hist(m, "push_connect_ms", a.pushConnectMs);
                m.add(Metric.num("push_ends", a.pushEnds));
                m.add(Metric.num("push_drops", a.pushDrops));
                m.add(Metric.ratio("push_drop_rate", a.pushDrops, a.pushEnds));
                m.add(Metric.num("relays", a.relays));
                m.add(Metric.num("relays_failed", a.relaysFailed));
                m.add(Metric.ratio("relay_fail_rate", a.relaysFailed, a.relays));
                hist(m, "relay_ms", a.relayMs);
                break;
            }
            case CDN:
                m.add(Metric.num("requests", a.requests));
                m.add(Metric.num("bytes", a.bytes));
                m.add(Metric.num("bandwidth_mbps", (double) a.bytes * 8 / 60 / 1e6));
                m.add(Metric.num("errors_4xx", a.errors4xx));
                m.add(Metric.ratio("errors_4xx_rate", a.errors4xx, a.requests));
                m.add(Metric.num("errors_5xx", a.errors5xx));
                m.add(Metric.ratio("errors_5xx_rate", a.errors5xx, a.requests));
                hist(m, "ttfb_ms", a.ttfbMs);
                break;
            case ORIGIN:
                m.add(new Metric("no_data", 0.0, true));
                m.add(Metric.num("samples", a.samples));
                m.add(Metric.ratio("fps_avg", a.fpsSum, a.samples));
                m.add(a.samples == 0 ? Metric.nul("fps_min") : Metric.num("fps_min", a.fpsMin));
                m.add(Metric.ratio("bitrate_kbps_avg", a.bitrateKbpsSum, a.samples));
                m.add(a.samples == 0 ? Metric.nul("bitrate_kbps_min") : Metric.num("bitrate_kbps_min", a.bitrateKbpsMin));
                m.add(Metric.ratio("rtt_ms_avg", a.rttMsSum, a.samples));
                break;
        }
        return m;
    }

    /** The origin no_data row: no_data true, every other metric null. */
    static List<Metric> noDataMetrics() {
        return List.of(new Metric("no_data", 1.0, true), Metric.nul("samples"), Metric.nul("fps_avg"),
                Metric.nul("fps_min"), Metric.nul("bitrate_kbps_avg"), Metric.nul("bitrate_kbps_min"),
                Metric.nul("rtt_ms_avg"));
    }

    private static void hist(List<Metric> m, String name, LogHistogram h) {
        m.add(new Metric(name + "_p50", h.quantile(50), false));
        m.add(new Metric(name + "_p90", h.quantile(90), false));
        m.add(new Metric(name + "_p99", h.quantile(99), false));
        m.add(new Metric(name + "_avg", h.mean(), false));
    }

    private static final JsonFactory JSON = new JsonFactory();

    /** Writes rows as NDJSON. */
    static void writeAll(List<Row> rows, Writer w) throws IOException {
        JsonGenerator g = JSON.createGenerator(w);
        g.setRootValueSeparator(null);
        for (Row r : rows) {
            g.writeStartObject();
            g.writeStringField("window_start", DateTimeFormatter.ISO_INSTANT.format(Instant.ofEpochMilli(r.windowStart)));
            g.writeStringField("source", r.source.wire);
            g.writeObjectFieldStart("dims");
            for (int i = 0; i < r.dimNames.size(); i++) {
                g.writeStringField(r.dimNames.get(i), r.dimValues.get(i));
            }
            g.writeEndObject();
            g.writeObjectFieldStart("metrics");
            for (Metric m : r.metrics) {
                g.writeFieldName(m.name());
                if (m.value() == null) {
                    g.writeNull();
                } else if (m.bool()) {
                    g.writeBoolean(m.value() != 0);
                } else {
                    double v = m.value();
                    if (v == Math.rint(v) && Math.abs(v) < 1e15) {
                        g.writeNumber((long) v);
                    } else {
                        g.writeNumber(v);
                    }
                }
            }
            g.writeEndObject();
            g.writeEndObject();
            g.flush();
            w.write('\n');
        }
        g.flush();
    }
}

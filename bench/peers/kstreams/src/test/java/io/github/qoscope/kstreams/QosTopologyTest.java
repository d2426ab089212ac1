package io.github.qoscope.kstreams;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.TestInputTopic;
import org.apache.kafka.streams.TopologyTestDriver;
import org.apache.kafka.streams.state.WindowStore;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/**
 * The topology on a few hand-written events, with every expected number
 * computed by hand from the definitions (shared/domain.md, issue 4), not
 * from the code. Grouping sets are kept small: client total and province,
 * CDN total and vendor, origin stream_id×line; N = 5 for no_data.
 */
class QosTopologyTest {
    static final long T0 = Instant.parse("2026-11-23T12:00:00Z").toEpochMilli();
    static final long W0 = T0, W1 = T0 + 60_000, W2 = T0 + 120_000, W3 = T0 + 180_000;

    TopologyTestDriver driver;
    QosTopology.Counters counters;
    QosTopology.Config cfg;
    TestInputTopic<byte[], byte[]> client, cdn, origin;

    @BeforeEach
    void setUp() throws Exception {
        cfg = new QosTopology.Config();
        cfg.clientTopic = "client";
        cfg.cdnTopic = "cdn";
        cfg.originTopic = "origin";
        cfg.sets = GroupingSets.parse("{\"client\":[[],[\"province\"]],\"cdn\":[[],[\"vendor\"]],\"origin\":[[\"stream_id\",\"line\"]]}");
        counters = new QosTopology.Counters();
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, "test");
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, "unused:9092");
        p.put(StreamsConfig.STATE_DIR_CONFIG, Files.createTempDirectory("kstreams-test").toString());
        driver = new TopologyTestDriver(QosTopology.build(cfg, counters), p);
        ByteArraySerializer ser = new ByteArraySerializer();
        client = driver.createInputTopic("client", ser, ser);
        cdn = driver.createInputTopic("cdn", ser, ser);
        origin = driver.createInputTopic("origin", ser, ser);
    }

    @AfterEach
    void tearDown() {
        driver.close();
    }

    static void send(TestInputTopic<byte[], byte[]> t, long ts, String body) {
        String json = "{\"v\":1," + body.replace("TS", Long.toString(ts)) + "}";
        t.pipeInput(null, json.getBytes(StandardCharsets.UTF_8));
    }

    List<Row> rows() {
        WindowStore<String, Acc> store = driver.getWindowStore(QosTopology.STORE);
        return Rows.dump(store, cfg.sets, 5, counters.maxTs.get());
    }

    static Row find(List<Row> rows, long window, String source, String... dims) {
        for (Row r : rows) {
            if (r.windowStart == window && r.source.wire.equals(source) && r.dimValues.equals(List.of(dims))) {
                return r;
            }
        }
        throw new AssertionError("no row " + Instant.ofEpochMilli(window) + " " + source + " " + List.of(dims)
                + " among " + rows.stream().map(r -> Instant.ofEpochMilli(r.windowStart) + " " + r.source.wire + r.dimValues)
                        .collect(Collectors.joining(", ")));
    }

    static void eq(Row r, String metric, double want) {
        Row.Metric m = r.metric(metric);
        assertNotNull(m, metric);
        assertNotNull(m.value(), metric + " is null");
        assertEquals(want, m.value(), 1e-9 * Math.abs(want), metric);
    }

    /** A quantile: qoscope's histogram reports within 1 % of the exact nearest-rank value. */
    static void q(Row r, String metric, double exact) {
        Row.Metric m = r.metric(metric);
        assertNotNull(m.value(), metric + " is null");
        assertEquals(exact, m.value(), 0.01 * exact, metric);
    }

    static void isNull(Row r, String metric) {
        assertNull(r.metric(metric).value(), metric);
    }

    void pipeAll() {
        // ---- client, window 12:00 (users u1..u5; u6 only pushes)
        send(client, T0 + 1_000, "\"type\":\"heartbeat\",\"ts\":TS,\"user_id\":\"u1\",\"stream_id\":\"s1\",\"province\":\"gd\",\"stalled\":false,\"video_buffer_ms\":1000,\"audio_buffer_ms\":500");
        send(client, T0 + 10_000, "\"type\":\"stall\",\"ts\":TS,\"user_id\":\"u1\",\"stream_id\":\"s1\",\"province\":\"gd\",\"duration_ms\":2000,\"media\":\"video\"");
        send(client, T0 + 12_000, "\"type\":\"stall\",\"ts\":TS,\"user_id\":\"u2\",\"stream_id\":\"s1\",\"province\":\"gd\",\"duration_ms\":1999,\"media\":\"video\"");
        send(client, T0 + 20_000, "\"type\":\"stall\",\"ts\":TS,\"user_id\":\"u3\",\"stream_id\":\"s1\",\"province\":\"bj\",\"duration_ms\":3000,\"media\":\"audio\"");
        send(client, T0 + 30_000, "\"type\":\"stall\",\"ts\":TS,\"user_id\":\"u3\",\"stream_id\":\"s1\",\"province\":\"gd\",\"duration_ms\":2500,\"media\":\"video\"");
        send(client, T0 + 2_000, "\"type\":\"play_start\",\"ts\":TS,\"user_id\":\"u4\",\"stream_id\":\"s1\",\"province\":\"sh\",\"ok\":true,\"connect_ms\":100");
        send(client, T0 + 40_000, "\"type\":\"play_start\",\"ts\":TS,\"user_id\":\"u4\",\"stream_id\":\"s1\",\"province\":\"sh\",\"ok\":false,\"error\":\"timeout\"");
        send(client, T0 + 3_000, "\"type\":\"first_frame\",\"ts\":TS,\"user_id\":\"u4\",\"stream_id\":\"s1\",\"province\":\"sh\",\"first_frame_ms\":800");
        send(client, T0 + 4_000, "\"type\":\"first_frame\",\"ts\":TS,\"user_id\":\"u5\",\"stream_id\":\"s1\",\"first_frame_ms\":1000");
        send(client, T0 + 5_000, "\"type\":\"first_frame\",\"ts\":TS,\"user_id\":\"u5\",\"stream_id\":\"s1\",\"first_frame_ms\":1001,\"extra\":{\"nested\":[1,2]}");
        send(client, T0 + 6_000, "\"type\":\"push_start\",\"ts\":TS,\"user_id\":\"u6\",\"stream_id\":\"s1\",\"province\":\"gd\",\"role\":\"host\",\"ok\":true,\"connect_ms\":300");
        send(client, T0 + 7_000, "\"type\":\"dns\",\"ts\":TS,\"user_id\":\"u1\",\"province\":\"gd\",\"cache_hit\":true");
        // ---- CDN, window 12:00
        send(cdn, T0 + 1_000, "\"type\":\"cdn_request\",\"ts\":TS,\"vendor\":\"a\",\"node\":\"n1\",\"status\":200,\"bytes\":1000,\"ttfb_ms\":10");
        send(cdn, T0 + 2_000, "\"type\":\"cdn_request\",\"ts\":TS,\"vendor\":\"a\",\"node\":\"n1\",\"status\":404,\"bytes\":0,\"ttfb_ms\":20");
        send(cdn, T0 + 3_000, "\"type\":\"cdn_request\",\"ts\":TS,\"vendor\":\"b\",\"node\":\"n2\",\"status\":502,\"bytes\":500,\"ttfb_ms\":30");
        // ---- origin: s1/primary in 12:00 and 12:01, s1/backup in 12:00 only
        send(origin, T0 + 10_000, "\"type\":\"origin_stats\",\"ts\":TS,\"stream_id\":\"s1\",\"node\":\"o1\",\"line\":\"primary\",\"fps\":25,\"bitrate_kbps\":2000,\"rtt_ms\":30");
        send(origin, T0 + 20_000, "\"type\":\"origin_stats\",\"ts\":TS,\"stream_id\":\"s1\",\"node\":\"o1\",\"line\":\"backup\",\"fps\":30,\"bitrate_kbps\":3000,\"rtt_ms\":10");
        send(origin, T0 + 40_000, "\"type\":\"origin_stats\",\"ts\":TS,\"stream_id\":\"s1\",\"node\":\"o1\",\"line\":\"primary\",\"fps\":20,\"bitrate_kbps\":1500.5,\"rtt_ms\":50");
        send(origin, T0 + 65_000, "\"type\":\"origin_stats\",\"ts\":TS,\"stream_id\":\"s1\",\"node\":\"o1\",\"line\":\"primary\",\"fps\":24,\"bitrate_kbps\":2500,\"rtt_ms\":20");
        // ---- client, window 12:01, then 12:03:30, which closes 12:00 (12:00 + 1 min + 2 min grace) ...
        send(client, T0 + 90_000, "\"type\":\"heartbeat\",\"ts\":TS,\"user_id\":\"u1\",\"stream_id\":\"s1\",\"province\":\"gd\",\"stalled\":true");
        send(client, T0 + 210_000, "\"type\":\"heartbeat\",\"ts\":TS,\"user_id\":\"u9\",\"stream_id\":\"s1\",\"province\":\"gd\",\"stalled\":false");
        // ... so this event for 12:00 is late: dropped (counted by Kafka Streams), not aggregated.
        send(client, T0 + 50_000, "\"type\":\"heartbeat\",\"ts\":TS,\"user_id\":\"u8\",\"stream_id\":\"s1\",\"province\":\"gd\",\"stalled\":false");
    }

    @Test
    void clientMetricsByHand() {
        pipeAll();
        List<Row> rows = rows();

        Row t = find(rows, W0, "client");
        eq(t, "users", 5);                 // u1 u2 u3 u4 u5 (u6 only pushed; u8 is late)
        eq(t, "stutter_users", 2);         // u1 (2000 ms), u3; u2's 1999 ms is no stall
        eq(t, "stutter_users_video", 2);   // u1, u3 (in gd)
        eq(t, "stutter_users_audio", 1);   // u3 (in bj)
        eq(t, "stutter_rate_uv", 0.4);     // 2 / 5
        eq(t, "zero_stutter_rate", 0.6);   // (5 − 2) / 5
        eq(t, "stalls", 3);
        eq(t, "stall_ms", 7500);           // 2000 + 3000 + 2500
        eq(t, "samples", 1);               // one heartbeat (u8's is late)
        eq(t, "stalled_samples", 0);
        eq(t, "stutter_rate_pv", 0);
        eq(t, "plays", 2);
        eq(t, "plays_ok", 1);
        eq(t, "pull_connect_rate", 0.5);
        q(t, "pull_connect_ms_p50", 100);
        q(t, "pull_connect_ms_p99", 100);
        eq(t, "pull_connect_ms_avg", 100);
        eq(t, "first_frames", 3);          // 800, 1000, 1001
        q(t, "first_frame_ms_p50", 1000);  // rank ceil(1.5) = 2
        q(t, "first_frame_ms_p90", 1001);  // rank ceil(2.7) = 3
        eq(t, "first_frame_ms_avg", 2801.0 / 3);
        eq(t, "fast_open_rate", 2.0 / 3);  // 800 and 1000 are ≤ 1000 ms
        eq(t, "video_buffer_ms_avg", 1000);
        eq(t, "audio_buffer_ms_avg", 500);
        eq(t, "dns_lookups", 1);
        eq(t, "dns_hit_rate", 1);
        eq(t, "pushes", 1);
        eq(t, "push_connect_rate", 1);
        q(t, "push_connect_ms_p90", 300);
        isNull(t, "push_drop_rate");       // no push_end
        isNull(t, "relay_fail_rate");      // no relay
        isNull(t, "relay_ms_p50");

        Row gd = find(rows, W0, "client", "gd");
        eq(gd, "users", 3);                // u1, u2, u3 (u3's 2500 ms stall carried gd)
        eq(gd, "stutter_users", 2);        // u1, u3
        eq(gd, "stutter_users_audio", 0);
        eq(gd, "stalls", 2);
        eq(gd, "stall_ms", 4500);
        eq(gd, "pushes", 1);               // u6's push counts where its event says
        eq(gd, "dns_lookups", 1);
        Row bj = find(rows, W0, "client", "bj");
        eq(bj, "users", 1);
        eq(bj, "stutter_users_audio", 1);
        eq(bj, "stall_ms", 3000);
        isNull(bj, "stutter_rate_pv");     // no heartbeat in bj
        Row unknown = find(rows, W0, "client", "unknown");
        eq(unknown, "users", 1);           // u5 sent no province
        eq(unknown, "fast_open_rate", 0.5);
        Row sh = find(rows, W0, "client", "sh");
        eq(sh, "plays", 2);
        isNull(sh, "video_buffer_ms_avg");

        Row t1 = find(rows, W1, "client");
        eq(t1, "users", 1);
        eq(t1, "stalled_samples", 1);
        eq(t1, "stutter_users", 0);        // a stalled heartbeat is not a stall event
        isNull(t1, "video_buffer_ms_avg"); // absent, not zero
        eq(find(rows, W3, "client"), "users", 1);

        // The late heartbeat: one record per client grouping set dropped.
        assertEquals(2.0, dropped(), "dropped records");
        // 15 client events × 2 sets − the 2 dropped, 3 CDN × 2 sets, 4 origin × 1 set.
        assertEquals(15 * 2 - 2 + 3 * 2 + 4 * 1, counters.aggregated.get(), "aggregated per-key records");
        assertEquals(15, counters.consumed.get(Source.CLIENT.ordinal()));
    }

    @Test
    void cdnAndOriginMetricsByHand() {
        pipeAll();
        List<Row> rows = rows();
        Row c = find(rows, W0, "cdn");
        eq(c, "requests", 3);
        eq(c, "bytes", 1500);
        eq(c, "bandwidth_mbps", 1500.0 * 8 / 60 / 1e6);
        eq(c, "errors_4xx", 1);
        eq(c, "errors_4xx_rate", 1.0 / 3);
        eq(c, "errors_5xx_rate", 1.0 / 3);
        q(c, "ttfb_ms_p50", 20);           // rank 2 of 10, 20, 30
        q(c, "ttfb_ms_p90", 30);
        eq(c, "ttfb_ms_avg", 20);
        Row a = find(rows, W0, "cdn", "a");
        eq(a, "requests", 2);
        eq(a, "errors_5xx", 0);
        eq(a, "errors_5xx_rate", 0);

        Row p = find(rows, W0, "origin", "s1", "primary");
        assertEquals(0.0, p.metric("no_data").value());
        eq(p, "samples", 2);
        eq(p, "fps_avg", 22.5);
        eq(p, "fps_min", 20);
        eq(p, "bitrate_kbps_avg", 1750.25);
        eq(p, "bitrate_kbps_min", 1500.5);
        eq(p, "rtt_ms_avg", 40);
        eq(find(rows, W1, "origin", "s1", "primary"), "samples", 1);
        // The newest event is 12:03:30, so no_data rows go up to 12:03:
        // backup was seen in 12:00 only, primary in 12:00 and 12:01.
        for (long w : new long[] {W1, W2, W3}) {
            Row b = find(rows, w, "origin", "s1", "backup");
            assertEquals(1.0, b.metric("no_data").value());
            assertTrue(b.metric("no_data").bool());
            isNull(b, "samples");
            isNull(b, "fps_avg");
        }
        for (long w : new long[] {W2, W3}) {
            assertEquals(1.0, find(rows, w, "origin", "s1", "primary").metric("no_data").value());
        }
        long originRows = rows.stream().filter(r -> r.source == Source.ORIGIN).count();
        assertEquals(2 + 1 + 3 + 2, originRows, "origin rows: 2 with data in 12:00, 1 in 12:01, 5 no_data");
    }

    @Test
    void histogramNearestRank() {
        LogHistogram h = new LogHistogram();
        for (int v = 1; v <= 10; v++) {
            h.add(v);
        }
        // ranks ceil(5) = 5, ceil(9) = 9, ceil(9.9) = 10: within 1 %
        assertEquals(5, h.quantile(50), 0.05);
        assertEquals(9, h.quantile(90), 0.09);
        assertEquals(10, h.quantile(99), 0.1);
        assertEquals(5.5, h.mean(), 1e-12);
        LogHistogram z = new LogHistogram();
        z.add(0);
        z.add(0);
        z.add(7);
        assertEquals(0.0, z.quantile(50));  // rank 2: the zero bucket
        assertNull(new LogHistogram().quantile(50));
    }

    @Test
    void timestampScan() {
        assertEquals(1795435200123L, EventTimeExtractor.scanTs("{\"v\":1,\"type\":\"dns\",\"ts\":1795435200123,\"x\":1}".getBytes(StandardCharsets.UTF_8)));
        assertEquals(-1, EventTimeExtractor.scanTs("{\"v\":1,\"ts\":\"2026-11-23T12:00:00Z\"}".getBytes(StandardCharsets.UTF_8)));
    }

    double dropped() {
        double n = 0;
        for (Map.Entry<MetricName, ? extends Metric> m : driver.metrics().entrySet()) {
            if (m.getKey().name().equals("dropped-records-total") && m.getKey().group().equals("stream-task-metrics")) {
                n += ((Number) m.getValue().metricValue()).doubleValue();
            }
        }
        return n;
    }
}

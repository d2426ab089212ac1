package io.github.qoscope.kstreams;

import java.io.BufferedWriter;
import java.io.IOException;
import java.io.PrintStream;
import java.lang.management.ManagementFactory;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StoreQueryParameters;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.state.QueryableStoreTypes;
import org.apache.kafka.streams.state.ReadOnlyWindowStore;

/**
 * Runs the job against a broker until it has processed the expected number
 * of events, then writes every window's metrics in qoscope's offline row
 * format and exits. Progress goes to stdout as one JSON object per line
 * ("started", "done", "exit"), which the Go driver reads; logs go to stderr.
 *
 * <pre>
 * java -jar qoscope-kstreams-peer.jar --bootstrap 127.0.0.1:9092 \
 *   --client-topic T.client --cdn-topic T.cdn --origin-topic T.origin \
 *   --expect 1000000 --output rows.ndjson [--app-id ID] [--threads 1] ...
 * </pre>
 */
public final class Main {
    private Main() {}

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = parseArgs(argv);
        PrintStream out = System.out;
        String bootstrap = need(a, "bootstrap");
        long expect = Long.parseLong(need(a, "expect"));
        Path output = Path.of(need(a, "output"));

        QosTopology.Config cfg = new QosTopology.Config();
        cfg.clientTopic = need(a, "client-topic");
        cfg.cdnTopic = need(a, "cdn-topic");
        cfg.originTopic = need(a, "origin-topic");
        if (a.containsKey("grouping-sets")) {
            cfg.sets = GroupingSets.parse(a.get("grouping-sets"));
        }
        cfg.lateness = Duration.ofMillis(Long.parseLong(a.getOrDefault("lateness-ms", "120000")));
        cfg.inMemoryStore = "memory".equals(a.getOrDefault("store", "rocksdb"));
        cfg.outputTopic = a.get("output-topic");
        int noDataMinutes = Integer.parseInt(a.getOrDefault("no-data-minutes", "5"));
        Duration idle = Duration.ofSeconds(Long.parseLong(a.getOrDefault("idle-timeout-s", "30")));

        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, a.getOrDefault("app-id", "qoscope-kstreams-peer"));
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.STATE_DIR_CONFIG, a.getOrDefault("state-dir", Files.createTempDirectory("kstreams-peer").toString()));
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, Integer.parseInt(a.getOrDefault("threads", "1")));
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, a.getOrDefault("guarantee", StreamsConfig.AT_LEAST_ONCE));
        p.put(StreamsConfig.STATESTORE_CACHE_MAX_BYTES_CONFIG, Long.parseLong(a.getOrDefault("cache-bytes", String.valueOf(64L << 20))));
        if (a.containsKey("commit-ms")) {
            p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, Long.parseLong(a.get("commit-ms")));
        }
        // The topics hold a backlog written before the job starts.
        p.put(StreamsConfig.consumerPrefix("auto.offset.reset"), "earliest");
        p.put(StreamsConfig.producerPrefix("compression.type"), "lz4");
        p.put(StreamsConfig.producerPrefix("linger.ms"), 5);

        QosTopology.Counters counters = new QosTopology.Counters();
        KafkaStreams streams = new KafkaStreams(QosTopology.build(cfg, counters), p);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        streams.setUncaughtExceptionHandler(ex -> {
            failure.set(ex);
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        long startNanos = System.nanoTime();
        long startCpu = processCpuNanos();
        streams.start();
        out.println("{\"event\":\"started\"}");
        out.flush();

        // Wait until every expected event was parsed and every per-key record
        // it produced was either aggregated or dropped as late by the window.
        long lastProgress = System.nanoTime();
        long lastSeen = -1;
        boolean complete = false;
        while (failure.get() == null) {
            long consumed = counters.consumedTotal();
            long fanOut = 0;
            for (Source s : Source.values()) {
                fanOut += counters.consumed.get(s.ordinal()) * cfg.sets.of(s).size();
            }
            long dropped = droppedRecords(streams);
            long aggregated = counters.aggregated.get();
            if (consumed + counters.bad.get() >= expect && aggregated + dropped >= fanOut) {
                complete = consumed + counters.bad.get() == expect && aggregated + dropped == fanOut;
                break;
            }
            long seen = consumed + aggregated;
            if (seen != lastSeen) {
                lastSeen = seen;
                lastProgress = System.nanoTime();
            } else if (System.nanoTime() - lastProgress > idle.toNanos()) {
                break;
            }
            if (streams.state() == KafkaStreams.State.ERROR || streams.state() == KafkaStreams.State.NOT_RUNNING) {
                break;
            }
            Thread.sleep(20);
        }
        long doneNanos = System.nanoTime();
        long doneCpu = processCpuNanos();
        long first = counters.firstNanos.get();
        out.printf("{\"event\":\"done\",\"complete\":%b,\"consumed\":%d,\"bad\":%d,\"aggregated\":%d,\"dropped\":%d,"
                        + "\"wall_ns\":%d,\"wall_from_first_ns\":%d,\"cpu_ns\":%d,\"error\":%s}%n",
                complete, counters.consumedTotal(), counters.bad.get(), counters.aggregated.get(), droppedRecords(streams),
                doneNanos - startNanos, first == 0 ? 0 : doneNanos - first, doneCpu - startCpu,
                failure.get() == null ? "null" : quote(String.valueOf(failure.get())));
        out.flush();

        int rows = -1;
        if (failure.get() == null && streams.state() == KafkaStreams.State.RUNNING) {
            ReadOnlyWindowStore<String, Acc> store = streams.store(
                    StoreQueryParameters.fromNameAndType(QosTopology.STORE, QueryableStoreTypes.<String, Acc>windowStore()));
            List<Row> all = Rows.dump(store, cfg.sets, noDataMinutes, counters.maxTs.get());
            try (BufferedWriter w = Files.newBufferedWriter(output, StandardCharsets.UTF_8)) {
                Row.writeAll(all, w);
            }
            rows = all.size();
        }
        streams.close(Duration.ofSeconds(30));
        if (!"false".equals(a.get("cleanup"))) {
            streams.cleanUp();
        }
        out.printf("{\"event\":\"exit\",\"rows\":%d}%n", rows);
        out.flush();
        System.exit(complete && rows >= 0 ? 0 : 2);
    }

    /** Records Kafka Streams dropped (late for their window, or without a valid time). */
    static long droppedRecords(KafkaStreams streams) {
        double n = 0;
        for (Map.Entry<MetricName, ? extends Metric> m : streams.metrics().entrySet()) {
            MetricName name = m.getKey();
            if (name.name().equals("dropped-records-total") && name.group().equals("stream-task-metrics")) {
                Object v = m.getValue().metricValue();
                if (v instanceof Number) n += ((Number) v).doubleValue();
            }
        }
        return (long) n;
    }

    static long processCpuNanos() {
        java.lang.management.OperatingSystemMXBean os = ManagementFactory.getOperatingSystemMXBean();
        if (os instanceof com.sun.management.OperatingSystemMXBean) {
            return ((com.sun.management.OperatingSystemMXBean) os).getProcessCpuTime();
        }
        return -1;
    }

    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\"";
    }

    private static String need(Map<String, String> a, String k) {
        String v = a.get(k);
        if (v == null || v.isEmpty()) {
            throw new IllegalArgumentException("--" + k + " is required");
        }
        return v;
    }

    static Map<String, String> parseArgs(String[] argv) {
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < argv.length; i++) {
            String k = argv[i];
            if (!k.startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("expected --name value, got " + k);
            }
            m.put(k.substring(2), argv[++i]);
        }
        return m;
    }
}

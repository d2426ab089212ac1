package io.github.qoscope.kstreams;

import java.io.IOException;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KTable;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Named;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.kstream.Repartitioned;
import org.apache.kafka.streams.kstream.TimeWindows;
import org.apache.kafka.streams.kstream.Windowed;
import org.apache.kafka.streams.state.Stores;
import org.apache.kafka.streams.state.WindowStore;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * The job: the three source topics → parse (event time from "ts") → one
 * record per grouping key of the event's source → repartition by key →
 * mark each user's first sample per (window, key) ({@link UsersSeen}) →
 * tumbling one-minute event-time windows with grace = qoscope's allowed
 * lateness → an {@link Acc} per (window, key) in a fault-tolerant window
 * store (changelogged). This is the idiomatic Kafka Streams shape; its cost
 * is the fan-out through the repartition topic (one record per grouping set)
 * and a store read-modify-write per record.
 */
final class QosTopology {
    private static final Logger LOG = LoggerFactory.getLogger(QosTopology.class);

    static final String STORE = "minute-acc";

    /** What the job's counters say about progress (read by Main). */
    static final class Counters {
        /** Events parsed, per Source ordinal. */
        final AtomicLongArray consumed = new AtomicLongArray(Source.values().length);
        /** Records that were not a parsable event (skipped, logged). */
        final AtomicLong bad = new AtomicLong();
        /** Per-key records added to a window aggregate. */
        final AtomicLong aggregated = new AtomicLong();
        /** Newest event time seen (for the origin no_data rows at the end). */
        final AtomicLong maxTs = new AtomicLong(Long.MIN_VALUE);
        /** System.nanoTime() of the first event, 0 before. */
        final AtomicLong firstNanos = new AtomicLong();

        long consumedTotal() {
            long n = 0;
            for (int i = 0; i < consumed.length(); i++) n += consumed.get(i);
            return n;
        }
    }

    /** Job settings that shape the topology. */
    static final class Config {
        String clientTopic, cdnTopic, originTopic;
        GroupingSets sets = GroupingSets.defaults();
        Duration lateness = Duration.ofMinutes(2);
        /** How long windows stay in the store: long enough for the final dump. */
        Duration retention = Duration.ofDays(1);
        boolean inMemoryStore;
        /** Optional topic for every aggregate update (emit-and-keep-last), as row JSON. */
        String outputTopic;
    }

    static Topology build(Config cfg, Counters counters) {
        StreamsBuilder b = new StreamsBuilder();
        List<String> topics = List.of(cfg.clientTopic, cfg.cdnTopic, cfg.originTopic);
        Sample.SampleSerde sampleSerde = new Sample.SampleSerde();

        Materialized<String, Acc, WindowStore<Bytes, byte[]>> store = cfg.inMemoryStore
                ? Materialized.<String, Acc>as(Stores.inMemoryWindowStore(STORE, cfg.retention, Duration.ofMinutes(1), false))
                : Materialized.<String, Acc, WindowStore<Bytes, byte[]>>as(STORE).withRetention(cfg.retention);

        // Users seen per (window, key): kept as long as a window can still
        // take events (size + grace), changelogged like the aggregate.
        Duration seenRetention = Duration.ofMinutes(1).plus(cfg.lateness);
        b.addStateStore(Stores.windowStoreBuilder(
                cfg.inMemoryStore
                        ? Stores.inMemoryWindowStore(UsersSeen.STORE, seenRetention, Duration.ofMinutes(1), false)
                        : Stores.persistentWindowStore(UsersSeen.STORE, seenRetention, Duration.ofMinutes(1), false),
                Serdes.String(), Serdes.Short()).withCachingEnabled());

        KTable<Windowed<String>, Acc> table = b
                .stream(topics, Consumed.with(Serdes.ByteArray(), Serdes.ByteArray())
                        .withTimestampExtractor(new EventTimeExtractor()))
                .flatMap((k, v) -> fanOut(v, cfg.sets, counters), Named.as("fan-out"))
                .repartition(Repartitioned.with(Serdes.String(), sampleSerde).withName("by-key"))
                .processValues(UsersSeen::new, Named.as("users-seen"), UsersSeen.STORE)
                .groupByKey(Grouped.with(Serdes.String(), sampleSerde))
                .windowedBy(TimeWindows.ofSizeAndGrace(Duration.ofMinutes(1), cfg.lateness))
                .aggregate(Acc::new, (key, s, acc) -> {
                    counters.aggregated.incrementAndGet();
                    return acc.add(s);
                }, store.withKeySerde(Serdes.String()).withValueSerde(new Acc.AccSerde()));

        if (cfg.outputTopic != null) {
            table.toStream()
                    .map((wk, acc) -> KeyValue.pair(wk.window().start() + "/" + wk.key(), rowJson(wk, acc, cfg.sets)))
                    .to(cfg.outputTopic, Produced.with(Serdes.String(), Serdes.String()));
        }
        return b.build();
    }

    static List<KeyValue<String, Sample>> fanOut(byte[] value, GroupingSets sets, Counters counters) {
        Event e;
        try {
            e = Event.parse(value);
        } catch (IOException | RuntimeException ex) {
            if (counters.bad.incrementAndGet() <= 10) {
                LOG.warn("skipping a record that is not an event: {}", ex.getMessage());
            }
            return List.of();
        }
        counters.firstNanos.compareAndSet(0, System.nanoTime());
        Source src = e.source();
        counters.consumed.incrementAndGet(src.ordinal());
        counters.maxTs.accumulateAndGet(e.ts, Math::max);
        List<List<String>> ss = sets.of(src);
        Sample s = Sample.of(e);
        List<KeyValue<String, Sample>> out = new ArrayList<>(ss.size());
        for (int i = 0; i < ss.size(); i++) {
            out.add(KeyValue.pair(GroupKey.encode(e, src, i, ss.get(i)), s));
        }
        return out;
    }

    private static String rowJson(Windowed<String> wk, Acc acc, GroupingSets sets) {
        GroupKey gk = GroupKey.decode(wk.key());
        Row r = new Row(wk.window().start(), gk.source, gk.set, sets.of(gk.source).get(gk.set), gk.values, Row.metrics(acc));
        java.io.StringWriter w = new java.io.StringWriter();
        try {
            Row.writeAll(List.of(r), w);
        } catch (IOException ex) {
            throw new java.io.UncheckedIOException(ex);
        }
        return w.toString().trim();
    }
}

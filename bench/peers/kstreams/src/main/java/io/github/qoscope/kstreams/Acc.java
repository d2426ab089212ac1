package io.github.qoscope.kstreams;

import java.nio.ByteBuffer;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serializer;

/**
 * The aggregate of one grouping key in one one-minute window: distinct
 * user counts (exact: {@link UsersSeen} marks each user's first sample per
 * window and key), counts, sums, minimums and log histograms. The
 * fields are qoscope's raw columns (aggregator/raw.go), so the derived
 * metrics in {@link Metrics} are the same formulas.
 */
final class Acc {
    Source source;

    // Client.
    long users, stutterUsers, stutterUsersVideo, stutterUsersAudio;
    long stalls, stallMs, samples, stalledSamples, videoBufferMsSum, videoBufferSamples, audioBufferMsSum,
            audioBufferSamples, plays, playsOk, playErrors, dnsLookups, dnsHits, firstFrames, fastOpens, pushes,
            pushesOk, pushEnds, pushDrops, relays, relaysFailed;
    LogHistogram pullConnectMs = new LogHistogram(), firstFrameMs = new LogHistogram(),
            pushConnectMs = new LogHistogram(), relayMs = new LogHistogram();

    // CDN.
    long requests, bytes, errors4xx, errors5xx;
    LogHistogram ttfbMs = new LogHistogram();

    // Origin (samples shared with the client's heartbeats count).
    double fpsSum, fpsMin = Double.POSITIVE_INFINITY, bitrateKbpsSum, bitrateKbpsMin = Double.POSITIVE_INFINITY,
            rttMsSum;

    /** Adds one event's sample; every event counts under the key its own dimensions give. */
    Acc add(Sample s) {
        Source src = Event.sourceOf(s.type);
        source = src;
        switch (src) {
            case CLIENT:
                addClient(s);
                break;
            case CDN:
                requests++;
                bytes += s.a;
                if (s.status >= 400 && s.status <= 499) errors4xx++;
                if (s.status >= 500 && s.status <= 599) errors5xx++;
                ttfbMs.add(s.b);
                break;
            case ORIGIN:
                samples++;
                fpsSum += s.fps;
                fpsMin = Math.min(fpsMin, s.fps);
                bitrateKbpsSum += s.bitrateKbps;
                bitrateKbpsMin = Math.min(bitrateKbpsMin, s.bitrateKbps);
                rttMsSum += s.rttMs;
                break;
        }
        return this;
    }

    private void addClient(Sample s) {
        if (s.has(Sample.NEW_USER)) users++;
        if (s.has(Sample.NEW_STUTTER)) stutterUsers++;
        if (s.has(Sample.NEW_VIDEO)) stutterUsersVideo++;
        if (s.has(Sample.NEW_AUDIO)) stutterUsersAudio++;
        switch (s.type) {
            case Event.HEARTBEAT:
                samples++;
                if (s.has(Sample.STALLED)) stalledSamples++;
                if (s.has(Sample.HAS_VBUF)) {
                    videoBufferMsSum += s.b;
                    videoBufferSamples++;
                }
                if (s.has(Sample.HAS_ABUF)) {
                    audioBufferMsSum += s.c;
                    audioBufferSamples++;
                }
                break;
            case Event.STALL:
                // A buffer-empty period under 2 s made the user active (above) but is no stall.
                if (s.a >= Event.STALL_THRESHOLD_MS) {
                    stalls++;
                    stallMs += s.a;
                }
                break;
            case Event.PLAY_START:
                plays++;
                if (s.has(Sample.OK)) {
                    playsOk++;
                    pullConnectMs.add(s.a);
                }
                break;
            case Event.FIRST_FRAME:
                firstFrames++;
                firstFrameMs.add(s.a);
                if (s.a <= 1000) fastOpens++;
                break;
            case Event.PLAY_END:
                if (s.has(Sample.REASON_ERROR)) playErrors++;
                break;
            case Event.DNS:
                dnsLookups++;
                if (s.has(Sample.CACHE_HIT)) dnsHits++;
                break;
            case Event.PUSH_START:
                pushes++;
                if (s.has(Sample.OK)) {
                    pushesOk++;
                    pushConnectMs.add(s.a);
                }
                break;
            case Event.PUSH_END:
                pushEnds++;
                if (s.has(Sample.DROPPED)) pushDrops++;
                break;
            case Event.RELAY:
                relays++;
                if (s.has(Sample.OK)) {
                    relayMs.add(s.a);
                } else {
                    relaysFailed++;
                }
                break;
            default:
        }
    }

    /**
     * Binary serde: the state store and its changelog hold every Acc in this
     * form, and Kafka Streams' record cache keeps bytes, so every update of a
     * key (de)serializes its Acc: one exact-size ByteBuffer, no streams.
     */
    static final class AccSerde implements Serde<Acc>, Serializer<Acc>, Deserializer<Acc> {
        private static final int CLIENT_LONGS = 25;

        @Override
        public byte[] serialize(String topic, Acc a) {
            if (a == null) {
                return null;
            }
            int n = 1;
            switch (a.source) {
                case CLIENT:
                    n += CLIENT_LONGS * 8 + a.pullConnectMs.encodedSize() + a.firstFrameMs.encodedSize()
                            + a.pushConnectMs.encodedSize() + a.relayMs.encodedSize();
                    break;
                case CDN:
                    n += 4 * 8 + a.ttfbMs.encodedSize();
                    break;
                case ORIGIN:
                    n += 6 * 8;
                    break;
            }
            ByteBuffer out = ByteBuffer.allocate(n);
            out.put((byte) a.source.ordinal());
            switch (a.source) {
                case CLIENT:
                    out.putLong(a.users).putLong(a.stutterUsers).putLong(a.stutterUsersVideo).putLong(a.stutterUsersAudio)
                            .putLong(a.stalls).putLong(a.stallMs).putLong(a.samples).putLong(a.stalledSamples)
                            .putLong(a.videoBufferMsSum).putLong(a.videoBufferSamples).putLong(a.audioBufferMsSum)
                            .putLong(a.audioBufferSamples).putLong(a.plays).putLong(a.playsOk).putLong(a.playErrors)
                            .putLong(a.dnsLookups).putLong(a.dnsHits).putLong(a.firstFrames).putLong(a.fastOpens)
                            .putLong(a.pushes).putLong(a.pushesOk).putLong(a.pushEnds).putLong(a.pushDrops)
                            .putLong(a.relays).putLong(a.relaysFailed);
                    a.pullConnectMs.write(out);
                    a.firstFrameMs.write(out);
                    a.pushConnectMs.write(out);
                    a.relayMs.write(out);
                    break;
                case CDN:
                    out.putLong(a.requests).putLong(a.bytes).putLong(a.errors4xx).putLong(a.errors5xx);
                    a.ttfbMs.write(out);
                    break;
                case ORIGIN:
                    out.putLong(a.samples).putDouble(a.fpsSum).putDouble(a.fpsMin).putDouble(a.bitrateKbpsSum)
                            .putDouble(a.bitrateKbpsMin).putDouble(a.rttMsSum);
                    break;
            }
            return out.array();
        }

        @Override
        public Acc deserialize(String topic, byte[] data) {
            if (data == null) {
                return null;
            }
            ByteBuffer in = ByteBuffer.wrap(data);
            Acc a = new Acc();
            a.source = Source.values()[in.get()];
            switch (a.source) {
                case CLIENT:
                    a.users = in.getLong();
                    a.stutterUsers = in.getLong();
                    a.stutterUsersVideo = in.getLong();
                    a.stutterUsersAudio = in.getLong();
                    a.stalls = in.getLong();
                    a.stallMs = in.getLong();
                    a.samples = in.getLong();
                    a.stalledSamples = in.getLong();
                    a.videoBufferMsSum = in.getLong();
                    a.videoBufferSamples = in.getLong();
                    a.audioBufferMsSum = in.getLong();
                    a.audioBufferSamples = in.getLong();
                    a.plays = in.getLong();
                    a.playsOk = in.getLong();
                    a.playErrors = in.getLong();
                    a.dnsLookups = in.getLong();
                    a.dnsHits = in.getLong();
                    a.firstFrames = in.getLong();
                    a.fastOpens = in.getLong();
                    a.pushes = in.getLong();
                    a.pushesOk = in.getLong();
                    a.pushEnds = in.getLong();
                    a.pushDrops = in.getLong();
                    a.relays = in.getLong();
                    a.relaysFailed = in.getLong();
                    a.pullConnectMs = LogHistogram.read(in);
                    a.firstFrameMs = LogHistogram.read(in);
                    a.pushConnectMs = LogHistogram.read(in);
                    a.relayMs = LogHistogram.read(in);
                    break;
                case CDN:
                    a.requests = in.getLong();
                    a.bytes = in.getLong();
                    a.errors4xx = in.getLong();
                    a.errors5xx = in.getLong();
                    a.ttfbMs = LogHistogram.read(in);
                    break;
                case ORIGIN:
                    a.samples = in.getLong();
                    a.fpsSum = in.getDouble();
                    a.fpsMin = in.getDouble();
                    a.bitrateKbpsSum = in.getDouble();
                    a.bitrateKbpsMin = in.getDouble();
                    a.rttMsSum = in.getDouble();
                    break;
            }
            return a;
        }

        // Serde, Serializer and Deserializer all default these: pick one.
        @Override
        public void configure(java.util.Map<String, ?> configs, boolean isKey) {}

        @Override
        public void close() {}

        @Override
        public Serializer<Acc> serializer() {
            return this;
        }

        @Override
        public Deserializer<Acc> deserializer() {
            return this;
        }
    }
}

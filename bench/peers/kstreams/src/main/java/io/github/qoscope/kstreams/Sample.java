package io.github.qoscope.kstreams;

import java.io.ByteArrayInputStream;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.UncheckedIOException;
import org.apache.kafka.common.serialization.Deserializer;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serializer;

/**
 * What the aggregation needs of one event, sent once per grouping key
 * through the repartition topic: the type, the user (client events), flags
 * and the few numbers of its type, in a compact binary form (the fan-out
 * multiplies every byte by the number of grouping sets).
 */
final class Sample {
    static final int OK = 1, STALLED = 1 << 1, DROPPED = 1 << 2, CACHE_HIT = 1 << 3, HAS_VBUF = 1 << 4,
            HAS_ABUF = 1 << 5, MEDIA_VIDEO = 1 << 6, MEDIA_AUDIO = 1 << 7, REASON_ERROR = 1 << 8;
    /**
     * Set by {@link UsersSeen} after the repartition: this sample's user is new
     * to its (window, key) as a user, a stutter user, a video or an audio
     * stutter user. Distinct counts then add up like any count.
     */
    static final int NEW_USER = 1 << 9, NEW_STUTTER = 1 << 10, NEW_VIDEO = 1 << 11, NEW_AUDIO = 1 << 12;

    byte type;
    int flags;
    String user = "";
    long a; // connect_ms, first_frame_ms, duration_ms or bytes, by type
    long b; // video_buffer_ms or ttfb_ms
    long c; // audio_buffer_ms
    int status;
    double fps, bitrateKbps, rttMs;

    boolean has(int flag) {
        return (flags & flag) != 0;
    }

    static Sample of(Event e) {
        Sample s = new Sample();
        s.type = e.type;
        int f = 0;
        if (e.ok) f |= OK;
        if (e.stalled) f |= STALLED;
        if (e.dropped) f |= DROPPED;
        if (e.cacheHit) f |= CACHE_HIT;
        if ("video".equals(e.media)) f |= MEDIA_VIDEO;
        if ("audio".equals(e.media)) f |= MEDIA_AUDIO;
        if ("error".equals(e.reason)) f |= REASON_ERROR;
        switch (e.type) {
            case Event.PLAY_START:
            case Event.PUSH_START:
                s.a = e.connectMs;
                break;
            case Event.FIRST_FRAME:
                s.a = e.firstFrameMs;
                break;
            case Event.STALL:
            case Event.RELAY:
                s.a = e.durationMs;
                break;
            case Event.HEARTBEAT:
                if (e.videoBufferMs >= 0) {
                    f |= HAS_VBUF;
                    s.b = e.videoBufferMs;
                }
                if (e.audioBufferMs >= 0) {
                    f |= HAS_ABUF;
                    s.c = e.audioBufferMs;
                }
                break;
            case Event.CDN_REQUEST:
                s.status = e.status;
                s.a = e.bytes;
                s.b = e.ttfbMs;
                break;
            case Event.ORIGIN_STATS:
                s.fps = e.fps;
                s.bitrateKbps = e.bitrateKbps;
                s.rttMs = e.rttMs;
                break;
            default:
        }
        s.flags = f;
        if (Event.sourceOf(e.type) == Source.CLIENT) {
            s.user = e.userId;
        }
        return s;
    }

    /** Binary serde; only the members a type uses are written. */
    static final class SampleSerde implements Serde<Sample>, Serializer<Sample>, Deserializer<Sample> {
        @Override
        public byte[] serialize(String topic, Sample s) {
            ByteArrayOutputStream bo = new ByteArrayOutputStream(48);
            try (DataOutputStream out = new DataOutputStream(bo)) {
                out.writeByte(s.type);
                out.writeShort(s.flags);
                switch (s.type) {
                    case Event.CDN_REQUEST:
                        out.writeShort(s.status);
                        out.writeLong(s.a);
                        out.writeLong(s.b);
                        return bo.toByteArray();
                    case Event.ORIGIN_STATS:
                        out.writeDouble(s.fps);
                        out.writeDouble(s.bitrateKbps);
                        out.writeDouble(s.rttMs);
                        return bo.toByteArray();
                    default:
                }
                out.writeUTF(s.user);
                switch (s.type) {
                    case Event.HEARTBEAT:
                        if (s.has(HAS_VBUF)) out.writeLong(s.b);
                        if (s.has(HAS_ABUF)) out.writeLong(s.c);
                        break;
                    case Event.PLAY_END:
                    case Event.PUSH_END:
                    case Event.DNS:
                        break;
                    default:
                        out.writeLong(s.a);
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return bo.toByteArray();
        }

        @Override
        public Sample deserialize(String topic, byte[] data) {
            Sample s = new Sample();
            try (DataInputStream in = new DataInputStream(new ByteArrayInputStream(data))) {
                s.type = in.readByte();
                s.flags = in.readUnsignedShort();
                switch (s.type) {
                    case Event.CDN_REQUEST:
                        s.status = in.readUnsignedShort();
                        s.a = in.readLong();
                        s.b = in.readLong();
                        return s;
                    case Event.ORIGIN_STATS:
                        s.fps = in.readDouble();
                        s.bitrateKbps = in.readDouble();
                        s.rttMs = in.readDouble();
                        return s;
                    default:
                }
                s.user = in.readUTF();
                switch (s.type) {
                    case Event.HEARTBEAT:
                        if (s.has(HAS_VBUF)) s.b = in.readLong();
                        if (s.has(HAS_ABUF)) s.c = in.readLong();
                        break;
                    case Event.PLAY_END:
                    case Event.PUSH_END:
                    case Event.DNS:
                        break;
                    default:
                        s.a = in.readLong();
                }
            } catch (IOException e) {
                throw new UncheckedIOException(e);
            }
            return s;
        }

        // Serde, Serializer and Deserializer all default these: pick one.
        @Override
        public void configure(java.util.Map<String, ?> configs, boolean isKey) {}

        @Override
        public void close() {}

        @Override
        public Serializer<Sample> serializer() {
            return this;
        }

        @Override
        public Deserializer<Sample> deserializer() {
            return this;
        }
    }
}

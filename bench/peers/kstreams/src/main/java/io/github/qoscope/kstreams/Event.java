package io.github.qoscope.kstreams;

import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import java.io.IOException;

/**
 * The members of one qoscope event that the metrics read, decoded from the
 * canonical JSON that ingest writes to Kafka (schemas.AppendJSON: ts as Unix
 * milliseconds, snake_case members, unknown members possible and ignored).
 * Validation is ingest's job; a record that is not such an object is reported
 * by {@link #parse} as an {@link IOException}.
 */
final class Event {
    // Types in schemas.Type order, so that Type numbers match qoscope's.
    static final byte PLAY_START = 1, FIRST_FRAME = 2, STALL = 3, HEARTBEAT = 4, PLAY_END = 5,
            PUSH_START = 6, PUSH_END = 7, RELAY = 8, DNS = 9, CDN_REQUEST = 10, ORIGIN_STATS = 11;

    /** A stall (卡顿) is a buffer-empty period of at least two seconds. */
    static final long STALL_THRESHOLD_MS = 2000;

    private static final JsonFactory JSON = new JsonFactory();

    byte type;
    long ts;
    String userId = "";
    // Dimensions; "" when absent.
    String streamId = "", vendor = "", node = "", ip = "", country = "", province = "", city = "", isp = "",
            platform = "", clientVersion = "", quality = "", role = "", media = "", line = "", egressIsp = "",
            error = "", reason = "";
    boolean ok, stalled, dropped, cacheHit;
    long connectMs, firstFrameMs, durationMs, bytes, ttfbMs;
    // Buffers are optional on heartbeats: an absent one is not a zero.
    long videoBufferMs = -1, audioBufferMs = -1;
    int status;
    double fps, bitrateKbps, rttMs;

    static byte typeOf(String s) {
        switch (s) {
            case "play_start": return PLAY_START;
            case "first_frame": return FIRST_FRAME;
            case "stall": return STALL;
            case "heartbeat": return HEARTBEAT;
            case "play_end": return PLAY_END;
            case "push_start": return PUSH_START;
            case "push_end": return PUSH_END;
            case "relay": return RELAY;
            case "dns": return DNS;
            case "cdn_request": return CDN_REQUEST;
            case "origin_stats": return ORIGIN_STATS;
            default: return 0;
        }
    }

    /** The source of a type: client, cdn or origin (its Kafka topic). */
    static Source sourceOf(byte type) {
        if (type >= PLAY_START && type <= DNS) return Source.CLIENT;
        if (type == CDN_REQUEST) return Source.CDN;
        if (type == ORIGIN_STATS) return Source.ORIGIN;
        return null;
    }

    /** play_start, first_frame, stall, heartbeat and play_end make a user active (UV). */
    boolean pullSide() {
        return type >= PLAY_START && type <= PLAY_END;
    }

    boolean qualifyingStall() {
        return type == STALL && durationMs >= STALL_THRESHOLD_MS;
    }

    Source source() {
        return sourceOf(type);
    }

    /** The value of a dimension by its event field name (grouping sets use these names). */
    String dim(String name) {
        switch (name) {
            case "stream_id": return streamId;
            case "vendor": return vendor;
            case "node": return node;
            case "ip": return ip;
            case "country": return country;
            case "province": return province;
            case "city": return city;
            case "isp": return isp;
            case "platform": return platform;
            case "client_version": return clientVersion;
            case "quality": return quality;
            case "role": return role;
            case "media": return media;
            case "line": return line;
            case "egress_isp": return egressIsp;
            case "error": return error;
            case "reason": return reason;
            default: throw new IllegalArgumentException("not a dimension: " + name);
        }
    }

    static Event parse(byte[] json) throws IOException {
        Event e = new Event();
        try (JsonParser p = JSON.createParser(json)) {
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new IOException("not a JSON object");
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                JsonToken t = p.nextToken();
                if (t == JsonToken.VALUE_NULL) {
                    continue;
                }
                switch (name) {
                    case "type": e.type = typeOf(p.getText()); break;
                    case "ts": e.ts = p.getLongValue(); break;
                    case "user_id": e.userId = p.getText(); break;
                    case "stream_id": e.streamId = p.getText(); break;
                    case "vendor": e.vendor = p.getText(); break;
                    case "node": e.node = p.getText(); break;
                    case "ip": e.ip = p.getText(); break;
                    case "country": e.country = p.getText(); break;
                    case "province": e.province = p.getText(); break;
                    case "city": e.city = p.getText(); break;
                    case "isp": e.isp = p.getText(); break;
                    case "platform": e.platform = p.getText(); break;
                    case "client_version": e.clientVersion = p.getText(); break;
                    case "quality": e.quality = p.getText(); break;
                    case "role": e.role = p.getText(); break;
                    case "media": e.media = p.getText(); break;
                    case "line": e.line = p.getText(); break;
                    case "egress_isp": e.egressIsp = p.getText(); break;
                    case "error": e.error = p.getText(); break;
                    case "reason": e.reason = p.getText(); break;
                    case "ok": e.ok = p.getBooleanValue(); break;
                    case "stalled": e.stalled = p.getBooleanValue(); break;
                    case "dropped": e.dropped = p.getBooleanValue(); break;
                    case "cache_hit": e.cacheHit = p.getBooleanValue(); break;
                    case "connect_ms": e.connectMs = p.getLongValue(); break;
                    case "first_frame_ms": e.firstFrameMs = p.getLongValue(); break;
                    case "duration_ms": e.durationMs = p.getLongValue(); break;
                    case "bytes": e.bytes = p.getLongValue(); break;
                    case "ttfb_ms": e.ttfbMs = p.getLongValue(); break;
                    case "video_buffer_ms": e.videoBufferMs = p.getLongValue(); break;
                    case "audio_buffer_ms": e.audioBufferMs = p.getLongValue(); break;
                    case "status": e.status = p.getIntValue(); break;
                    case "fps": e.fps = p.getDoubleValue(); break;
                    case "bitrate_kbps": e.bitrateKbps = p.getDoubleValue(); break;
                    case "rtt_ms": e.rttMs = p.getDoubleValue(); break;
                    default: p.skipChildren(); // v, recv_ts, session_id, watch_ms, unknown members
                }
            }
        }
        if (e.type == 0) {
            throw new IOException("missing or unknown type");
        }
        return e;
    }
}

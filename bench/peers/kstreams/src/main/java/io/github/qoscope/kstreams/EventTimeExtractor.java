package io.github.qoscope.kstreams;

import java.io.IOException;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.streams.processor.TimestampExtractor;

/**
 * Event time is the event's "ts" (Unix ms), not the Kafka timestamp: windows
 * are event-time windows, exactly like qoscope's. Canonical records start
 * {"v":1,"type":"…","ts":N, so a scan for "ts": finds it without a second
 * full parse (the mapper parses the record once more anyway); anything else
 * falls back to a full parse.
 */
public final class EventTimeExtractor implements TimestampExtractor {
    private static final byte[] TS = {'"', 't', 's', '"', ':'};

    @Override
    public long extract(ConsumerRecord<Object, Object> record, long partitionTime) {
        Object v = record.value();
        if (!(v instanceof byte[])) {
            return -1; // Kafka Streams drops and counts records with a negative time
        }
        byte[] b = (byte[]) v;
        long ts = scanTs(b);
        if (ts >= 0) {
            return ts;
        }
        try {
            return Event.parse(b).ts;
        } catch (IOException e) {
            return -1;
        }
    }

    /** The integer value of the first top-level-looking "ts": member, or -1. */
    static long scanTs(byte[] b) {
        outer:
        for (int i = 0; i + TS.length < b.length && i < 64; i++) {
            for (int j = 0; j < TS.length; j++) {
                if (b[i + j] != TS[j]) continue outer;
            }
            int k = i + TS.length;
            long n = 0;
            int digits = 0;
            while (k < b.length && b[k] >= '0' && b[k] <= '9' && digits < 18) {
                n = n * 10 + (b[k] - '0');
                k++;
                digits++;
            }
            if (digits == 0 || (k < b.length && b[k] != ',' && b[k] != '}')) {
                return -1;
            }
            return n;
        }
        return -1;
    }
}

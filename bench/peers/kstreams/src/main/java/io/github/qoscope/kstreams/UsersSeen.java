package io.github.qoscope.kstreams;

import org.apache.kafka.streams.processor.api.FixedKeyProcessor;
import org.apache.kafka.streams.processor.api.FixedKeyProcessorContext;
import org.apache.kafka.streams.processor.api.FixedKeyRecord;
import org.apache.kafka.streams.state.WindowStore;

/**
 * Exact distinct users without sets in the aggregate. After the repartition
 * by grouping key, every (key, user) of a window is remembered in a
 * changelogged window store with what the user already was there (active,
 * stutter, video, audio); a sample that makes the user something new for
 * its key and window is flagged (Sample.NEW_*), and the aggregate only
 * counts flags. Keeping the sets inside the aggregate instead would make
 * every update (de)serialize the whole set through the store's cache: the
 * cost of an update would grow with the users of its key.
 */
final class UsersSeen implements FixedKeyProcessor<String, Sample, Sample> {
    static final String STORE = "users-seen";
    private static final int ACTIVE = 1, STUTTER = 2, VIDEO = 4, AUDIO = 8;

    private FixedKeyProcessorContext<String, Sample> ctx;
    private WindowStore<String, Short> seen;

    @Override
    public void init(FixedKeyProcessorContext<String, Sample> context) {
        ctx = context;
        seen = context.getStateStore(STORE);
    }

    @Override
    public void process(FixedKeyRecord<String, Sample> r) {
        Sample s = r.value();
        if (s.type >= Event.PLAY_START && s.type <= Event.PLAY_END) {
            int want = ACTIVE;
            if (s.type == Event.STALL && s.a >= Event.STALL_THRESHOLD_MS) {
                want |= STUTTER;
                if (s.has(Sample.MEDIA_VIDEO)) want |= VIDEO;
                if (s.has(Sample.MEDIA_AUDIO)) want |= AUDIO;
            }
            long window = Math.floorDiv(r.timestamp(), Rows.WINDOW_MS) * Rows.WINDOW_MS;
            String key = r.key() + GroupKey.SEP + s.user;
            Short old = seen.fetch(key, window);
            int had = old == null ? 0 : old;
            int fresh = want & ~had;
            if (fresh != 0) {
                seen.put(key, (short) (had | want), window);
                if ((fresh & ACTIVE) != 0) s.flags |= Sample.NEW_USER;
                if ((fresh & STUTTER) != 0) s.flags |= Sample.NEW_STUTTER;
                if ((fresh & VIDEO) != 0) s.flags |= Sample.NEW_VIDEO;
                if ((fresh & AUDIO) != 0) s.flags |= Sample.NEW_AUDIO;
            }
        }
        ctx.forward(r.withValue(s));
    }
}

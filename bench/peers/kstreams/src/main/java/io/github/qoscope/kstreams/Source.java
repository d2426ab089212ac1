package io.github.qoscope.kstreams;

/** The producer family of an event: one Kafka topic and one set of metrics each. */
enum Source {
    CLIENT("client"), CDN("cdn"), ORIGIN("origin");

    final String wire;

    Source(String wire) {
        this.wire = wire;
    }

    static Source of(String wire) {
        for (Source s : values()) {
            if (s.wire.equals(wire)) return s;
        }
        throw new IllegalArgumentException("unknown source " + wire);
    }
}

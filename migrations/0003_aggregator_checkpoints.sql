-- Aggregator checkpoints (issue 4): the state a Kafka aggregator needs to
-- continue a partition exactly where the rows already in the minute tables
-- left off (aggregator.Checkpoint; see aggregator/README.md, "Runner").
--
-- One logical row per (group_id, topic, kafka_partition). The runner writes
-- a new row after the minute rows of a flush were acknowledged and before it
-- commits the Kafka offset (Checkpoint.resume), so the newest checkpoint is
-- always consistent with the rows written: restarting from it re-reads the
-- events of the windows that were still open and skips the ones already in a
-- final row or a late counter. The checkpoint wins over the group's
-- committed offset, which only trails it.
--
--   group_id         Kafka consumer group of the aggregators
--   topic            source topic
--   kafka_partition  source partition
--   version          (next << 24) | sequence: grows with every checkpoint of
--                    the partition, so ReplacingMergeTree keeps the newest;
--                    readers take argMax(state, version) and need no FINAL
--   resume           first offset to consume after a restart
--   next             offset after the last message the state includes
--   plan_hash        hash of the windowing configuration the state was made
--                    with (a changed grouping configuration is logged)
--   state            aggregator.Checkpoint as JSON (late counters, origin
--                    presence, watermark); no row values
--   written_at       insert time
--
-- No TTL: a partition that stays idle for a long time must still find its
-- checkpoint. Rows of a group that no longer runs can be deleted with
-- ALTER TABLE aggregator_checkpoints DELETE WHERE group_id = '...'.

-- +goose NO TRANSACTION
-- +goose Up
CREATE TABLE IF NOT EXISTS {{.Table "aggregator_checkpoints"}} {{.OnCluster}}
(
    group_id String,
    topic LowCardinality(String),
    kafka_partition UInt32,
    version UInt64,
    resume Int64,
    next Int64,
    plan_hash String,
    state String,
    written_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = {{.Engine "ReplacingMergeTree" "version"}}
ORDER BY (group_id, topic, kafka_partition)
COMMENT 'aggregator checkpoints per consumer group and Kafka partition; read argMax(state, version)';

{{if .Cluster -}}
CREATE TABLE IF NOT EXISTS aggregator_checkpoints {{.OnCluster}} AS aggregator_checkpoints_local
ENGINE = {{.Distributed "aggregator_checkpoints_local" "topic" "kafka_partition"}};
{{- end}}

-- +goose Down
{{if .Cluster -}}
DROP TABLE IF EXISTS aggregator_checkpoints {{.OnCluster}} SYNC;
{{end -}}
DROP TABLE IF EXISTS {{.Table "aggregator_checkpoints"}} {{.OnCluster}} SYNC;

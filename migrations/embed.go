// Package migrations holds qoscope's versioned ClickHouse DDL, applied by
// `qoscope migrate` (internal/migrate) through goose.
//
// Rules for files in this directory (checked by internal/migrate before
// anything runs):
//   - name NNNN_snake_case.sql; the number is the version and never changes;
//   - exactly one "-- +goose Up" and one "-- +goose Down" section, both
//     non-empty, and "-- +goose NO TRANSACTION" (ClickHouse DDL is not
//     transactional; pretending otherwise would hide partial failures);
//   - every statement idempotent (IF [NOT] EXISTS, CREATE OR REPLACE) so that
//     a migration interrupted halfway can be re-run after `migrate force`;
//   - the text is a Go text/template: {{.OnCluster}}, {{.Table "x"}},
//     {{.Engine "ReplacingMergeTree" "version"}}, {{.Distributed "x_local" "k1" "k2"}}
//     and {{if .Cluster}} render the single-node or the cluster variant
//     (docs/CLUSTER.md); {{template "x" .Period "hour"}} renders a view
//     template defined in the same file for one period (minute, hour,
//     day; see 0005_metric_views.sql). ${VAR} substitution (goose ENVSUB)
//     is refused.
//   - an applied file is never edited: change the schema with a new file.
package migrations

import "embed"

// FS holds every migration file at its root.
//
//go:embed *.sql
var FS embed.FS

package harness

import (
	"context"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
	"github.com/qoscope/qoscope/query"
)

// BenchmarkWallLibrary is the query step's qoscope path (libraryWall over
// query.Querier) on a small fixture: 60 minutes of the client total and
// 112 province×isp keys and 100 stream×line cards a minute, copied to 24
// hours by replicateHours (the step's own replication), and 14 days of
// daily rows, in a fresh database. It reports the client side's allocations per
// question; the step's numbers at 20 clients over 7 days are in
// bench/REPORT.md. Needs ClickHouse (QOSCOPE_CLICKHOUSE_DSN).
func BenchmarkWallLibrary(b *testing.B) {
	env := testenv.ClickHouse(b)
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: env.DSN}, io.Discard); err != nil {
		b.Fatal(err)
	}
	end := time.Now().UTC().Truncate(time.Hour).Add(time.Hour)
	hour := end.Add(-time.Hour)
	ts := fmt.Sprint(end.Unix())
	exec := func(sqls ...string) {
		for _, sql := range sqls {
			if err := env.Conn.Exec(ctx, sql); err != nil {
				b.Fatal(err)
			}
		}
	}
	exec(
		`INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, users, stutter_users, plays, plays_ok)
		 SELECT toDateTime(`+ts+`, 'UTC') - toIntervalMinute(1 + number), '', map(), 'c', 0, 1, 1, 4000 + number, 100 + number % 7, 4000, 3990 FROM numbers(60)`,
		`INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final, users, stutter_users, plays, plays_ok)
		 SELECT toDateTime(`+ts+`, 'UTC') - toIntervalMinute(1 + intDiv(number, 112)), 'province,isp',
		        map('province', concat('p', toString(intDiv(number % 112, 4))), 'isp', concat('i', toString(number % 4))),
		        'c', 0, 1, 1, 30 + number % 50, number % 3, 30, 29 FROM numbers(60 * 112)`,
		`INSERT INTO origin_minute (window_start, grouping, dims, topic, kafka_partition, version, final, samples, fps_sum, fps_min, bitrate_kbps_sum, bitrate_kbps_min, rtt_ms_sum)
		 SELECT toDateTime(`+ts+`, 'UTC') - toIntervalMinute(1 + intDiv(number, 100)), 'stream_id,line',
		        map('stream_id', concat('live-', toString(intDiv(number % 100, 2))), 'line', if(number % 2 = 0, 'primary', 'backup')),
		        'o', 0, 1, 1, 12, 360, 29, 36000, 2900, 300 FROM numbers(60 * 100)`)
	// The step's replication; it recomputes the day rollups from the hour
	// rows (none here), so the daily rows come after it.
	if err := replicateHours(ctx, env.Conn, env.Database, hour, 24); err != nil {
		b.Fatal(err)
	}
	exec(
		`INSERT INTO client_day (window_start, grouping, dims, topic, kafka_partition, version, minutes, user_minutes, stutter_user_minutes_video, samples, stalled_samples, pushes, pushes_ok)
		 SELECT toStartOfDay(toDateTime(`+ts+`, 'UTC')) - toIntervalDay(number), '', map(), 'c', 0, 1, 1440, 5000000, 1000, 900000, 4000, 300, 297 FROM numbers(14)`,
		`INSERT INTO client_day (window_start, grouping, dims, topic, kafka_partition, version, minutes, user_minutes, stutter_user_minutes_video, samples, stalled_samples, pushes, pushes_ok)
		 SELECT toStartOfDay(toDateTime(`+ts+`, 'UTC')) - toIntervalDay(intDiv(number, 3)), 'role', map('role', ['host', 'cohost', 'audience'][number % 3 + 1]),
		        'c', 0, 1, 1440, 1000000 + number, 300, 300000, 1500, 100, 99 FROM numbers(14 * 3)`)
	plan, err := aggregator.NewPlan(aggregator.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	c := &libraryWall{q: query.NewQuerier(env.Conn, query.NewCatalog(plan), query.Options{}), spec: DefaultWallSpec(end)}
	for _, q := range WallQueries {
		b.Run(q, func(b *testing.B) {
			n, err := c.Ask(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			if n == 0 {
				b.Fatalf("%s: empty answer", q)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := c.Ask(ctx, q); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n), "items")
		})
	}
}

package runner_test

import (
	"context"
	"testing"

	"github.com/qoscope/qoscope/internal/testenv"
)

// checkRollups proves the hourly and daily rollups equal the sums of the
// final minute rows (through the views), key by key: user-minutes,
// samples, bytes, merged histograms, origin minimums and no_data minutes.
func checkRollups(t *testing.T, ctx context.Context, ch *testenv.ClickHouseEnv) {
	t.Helper()
	checks := []struct{ name, q string }{
		{"client_hour", `SELECT countIf(m.u != r.user_minutes OR m.su != r.stutter_user_minutes OR m.s != r.samples OR m.ff != toString(r.first_frame_ms_hist)), count()
			FROM (SELECT toStartOfHour(window_start) AS h, grouping, dims_key, sum(users) AS u, sum(stutter_users) AS su, sum(samples) AS s,
				toString(sumMap(first_frame_ms_hist)) AS ff FROM client_minute_metrics GROUP BY h, grouping, dims_key) AS m
			FULL OUTER JOIN client_hour_metrics AS r ON m.h = r.window_start AND m.grouping = r.grouping AND m.dims_key = r.dims_key`},
		{"client_day", `SELECT countIf(m.u != r.user_minutes OR m.s != r.samples OR m.ff != toString(r.first_frame_ms_hist)), count()
			FROM (SELECT toStartOfDay(window_start) AS d, grouping, dims_key, sum(users) AS u, sum(samples) AS s,
				toString(sumMap(first_frame_ms_hist)) AS ff FROM client_minute_metrics GROUP BY d, grouping, dims_key) AS m
			FULL OUTER JOIN client_day_metrics AS r ON m.d = r.window_start AND m.grouping = r.grouping AND m.dims_key = r.dims_key`},
		{"cdn_hour", `SELECT countIf(m.b != r.bytes OR m.n != r.requests OR m.tt != toString(r.ttfb_ms_hist)), count()
			FROM (SELECT toStartOfHour(window_start) AS h, grouping, dims_key, sum(bytes) AS b, sum(requests) AS n,
				toString(sumMap(ttfb_ms_hist)) AS tt FROM cdn_minute_metrics GROUP BY h, grouping, dims_key) AS m
			FULL OUTER JOIN cdn_hour_metrics AS r ON m.h = r.window_start AND m.grouping = r.grouping AND m.dims_key = r.dims_key`},
		{"origin_hour", `SELECT countIf(m.s != r.samples OR ifNull(m.fm, -1) != ifNull(r.fps_min, -1) OR m.nd != r.no_data_minutes), count()
			FROM (SELECT toStartOfHour(window_start) AS h, grouping, dims_key, sum(samples) AS s, min(fps_min) AS fm,
				countIf(no_data = 1) AS nd FROM origin_minute_metrics GROUP BY h, grouping, dims_key) AS m
			FULL OUTER JOIN origin_hour_metrics AS r ON m.h = r.window_start AND m.grouping = r.grouping AND m.dims_key = r.dims_key`},
		{"origin_day", `SELECT countIf(m.s != r.samples OR m.nd != r.no_data_minutes), count()
			FROM (SELECT toStartOfDay(window_start) AS d, grouping, dims_key, sum(samples) AS s,
				countIf(no_data = 1) AS nd FROM origin_minute_metrics GROUP BY d, grouping, dims_key) AS m
			FULL OUTER JOIN origin_day_metrics AS r ON m.d = r.window_start AND m.grouping = r.grouping AND m.dims_key = r.dims_key`},
	}
	for _, c := range checks {
		var bad, n uint64
		if err := ch.Conn.QueryRow(ctx, c.q).Scan(&bad, &n); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n == 0 || bad != 0 {
			t.Errorf("%s: %d of %d rollup rows differ from the sums of the minute rows", c.name, bad, n)
		}
	}
}

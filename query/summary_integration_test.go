package query

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/qoscope/qoscope/internal/migrate"
	"github.com/qoscope/qoscope/internal/testenv"
)

// The rows below are partial rows of two Kafka partitions, as the aggregator
// writes them; the expected values are summed and divided by hand.
func TestClientTotalsAndWorstKeys(t *testing.T) {
	env := testenv.ClickHouse(t)
	ctx := context.Background()
	if err := migrate.Run(ctx, migrate.Options{Command: migrate.CmdUp, DSN: env.DSN}, io.Discard); err != nil {
		t.Fatal(err)
	}
	w := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	ins := func(q string) {
		t.Helper()
		if err := env.Conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	ins(`INSERT INTO client_minute (window_start, grouping, dims, topic, kafka_partition, version, final,
			users, stutter_users, plays, plays_ok, first_frames, first_frame_ms_hist) VALUES
		('2026-11-23 12:00:00', '', map(), 'c', 0, 10, 1, 60, 6, 10, 9, 0, map()),
		('2026-11-23 12:00:00', '', map(), 'c', 1, 10, 0, 40, 4, 10, 10, 0, map()),
		-- a replayed copy of partition 1 with an older version: must not count
		('2026-11-23 12:00:00', '', map(), 'c', 1, 8, 0, 400, 400, 10, 10, 0, map()),
		('2026-11-23 12:01:00', '', map(), 'c', 0, 12, 0, 0, 0, 0, 0, 0, map()),
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','telecom'), 'c', 0, 10, 1, 20, 10, 0, 0, 0, map()),
		('2026-11-23 12:00:00', 'province,isp', map('province','guangdong','isp','telecom'), 'c', 1, 10, 1, 20, 0, 0, 0, 0, map()),
		('2026-11-23 12:00:00', 'province,isp', map('province','beijing','isp','unicom'), 'c', 0, 10, 1, 10, 1, 0, 0, 0, map()),
		('2026-11-23 12:00:00', 'province,isp', map('province','tibet','isp','mobile'), 'c', 0, 10, 1, 2, 2, 0, 0, 0, map())`)

	r := NewReader(env.Conn)
	got, err := r.ClientTotals(ctx, w, w.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d minutes, want 2: %+v", len(got), got)
	}
	m := got[0]
	// users 60+40 = 100, stutter users 6+4 = 10 → 0.1; plays_ok 19 of 20.
	if !m.Window.Equal(w) || m.Users != 100 || m.Final {
		t.Errorf("minute 12:00 = %+v, want 100 users, not final (partition 1 provisional)", m)
	}
	if m.StutterRateUV == nil || *m.StutterRateUV != 0.1 {
		t.Errorf("stutter_rate_uv = %v, want 0.1", m.StutterRateUV)
	}
	if m.PullConnectRate == nil || *m.PullConnectRate != 0.95 {
		t.Errorf("pull_connect_rate = %v, want 0.95", m.PullConnectRate)
	}
	if m.FirstFrameP90MS != nil {
		t.Errorf("first_frame_ms_p90 = %v, want NULL without first frames", *m.FirstFrameP90MS)
	}
	if got[1].StutterRateUV != nil || got[1].PullConnectRate != nil {
		t.Errorf("empty minute has non-null rates: %+v", got[1])
	}

	// guangdong/telecom: 10 of 40 = 0.25; beijing/unicom 1 of 10 = 0.1;
	// tibet/mobile has 2 users, under the 5-user floor.
	worst, err := r.WorstKeys(ctx, w, "province,isp", 5, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(worst) != 2 {
		t.Fatalf("got %d keys, want 2 (tibet under the floor): %+v", len(worst), worst)
	}
	if worst[0].Dims["province"] != "guangdong" || worst[0].Users != 40 || *worst[0].StutterRateUV != 0.25 {
		t.Errorf("worst = %+v, want guangdong/telecom with 40 users at 0.25", worst[0])
	}
	if worst[1].Dims["province"] != "beijing" || *worst[1].StutterRateUV != 0.1 {
		t.Errorf("second = %+v, want beijing/unicom at 0.1", worst[1])
	}
	// A grouping name is a bound value: a quote in it finds nothing rather
	// than breaking the SQL.
	if k, err := r.WorstKeys(ctx, w, "province' OR 1=1 --", 0, 10); err != nil || len(k) != 0 {
		t.Errorf("injection-shaped grouping: %v, %v", k, err)
	}
}

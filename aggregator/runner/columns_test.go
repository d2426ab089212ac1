package runner

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/qoscope/qoscope/migrations"
)

// createColumns returns the columns of table from a migration's CREATE
// TABLE {{.Table "table"}}, without MATERIALIZED and DEFAULT ones.
func createColumns(t *testing.T, file, table string) []string {
	t.Helper()
	b, err := migrations.FS.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sql := string(b)
	start := strings.Index(sql, `{{.Table "`+table+`"}}`)
	if start < 0 {
		t.Fatalf("table %s not in %s", table, file)
	}
	body := sql[start:]
	body = body[strings.Index(body, "(")+1 : strings.Index(body, "\n)")]
	var cols []string
	re := regexp.MustCompile(`^\s+([a-z0-9_]+)\s`)
	for _, l := range strings.Split(body, "\n") {
		if m := re.FindStringSubmatch(l); m != nil && !strings.Contains(l, "MATERIALIZED") && !strings.Contains(l, " DEFAULT ") {
			cols = append(cols, m[1])
		}
	}
	return cols
}

// The records carry exactly the columns of the minute tables that are
// not computed by the server.
func TestRecordColumnsMatchMigration(t *testing.T) {
	for _, s := range []*tableSpec{clientSpec, cdnSpec, originSpec} {
		want := createColumns(t, "0001_minute_tables.sql", s.name)
		got := slices.Clone(s.cols)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: record columns\n %q\ntable\n %q", s.name, got, want)
		}
	}
	got := slices.Clone(lateSpec.cols)
	want := createColumns(t, "0001_minute_tables.sql", "late_events")
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("late_events: %q vs %q", got, want)
	}
}

// The rollup statements fill every column of the rollup tables.
func TestRollupColumnsMatchMigration(t *testing.T) {
	for _, s := range []*tableSpec{clientSpec, cdnSpec, originSpec} {
		base := strings.TrimSuffix(s.name, "_minute")
		for _, period := range []string{"hour", "day"} {
			cols, _ := rollupColumns(s, period == "hour")
			got := append([]string{"window_start", "grouping", "dims", "topic", "kafka_partition", "version"}, cols...)
			want := createColumns(t, "0004_rollups.sql", base+"_"+period)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s_%s: statement columns\n %q\ntable\n %q", base, period, got, want)
			}
		}
	}
	sql := rollupSQL("db", clientSpec, "hour", 3600, []int32{0, 2})
	for _, want := range []string{"INSERT INTO `db`.`client_hour`", "FROM `db`.`client_minute` FINAL", "final = 1",
		"kafka_partition IN (0, 2)", "topic = ?", "sum(users)", "sumMap(first_frame_ms_hist)"} {
		if !strings.Contains(sql, want) {
			t.Errorf("hour rollup lacks %q:\n%s", want, sql)
		}
	}
	if sql := rollupSQL("db", originSpec, "day", 0, []int32{1}); !strings.Contains(sql, "FROM `db`.`origin_hour` FINAL") ||
		!strings.Contains(sql, "sum(no_data_minutes)") || strings.Contains(sql, "final = 1") {
		t.Errorf("day rollup:\n%s", sql)
	}
}

func TestBuildRecordsSplitsAndCounts(t *testing.T) {
	events := genEvents(t, 100, 2*time.Minute)
	final, _, late := partitionRows(t, events)
	recs := BuildRecords(memory.NewGoAllocator(), final, late, 100)
	defer func() {
		for _, r := range recs {
			r.Record.Release()
		}
	}()
	n := map[string]int64{}
	for _, r := range recs {
		if r.Record.NumRows() > 100 {
			t.Errorf("%s record of %d rows, max 100", r.Table(), r.Record.NumRows())
		}
		n[r.Table()] += r.Record.NumRows()
	}
	want := map[string]int64{}
	for _, r := range final {
		want[specFor(r.Source).name]++
	}
	if len(late) > 0 {
		want[tableLate] = int64(len(late))
	}
	for k, v := range want {
		if n[k] != v {
			t.Errorf("%s: %d rows in records, want %d", k, n[k], v)
		}
	}
}

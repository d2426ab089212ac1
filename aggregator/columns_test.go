package aggregator

import (
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/qoscope/qoscope/aggregator/hist"
	"github.com/qoscope/qoscope/migrations"
)

// rawColumns lists the table columns a raw accumulator fills, from its col
// tags: a histogram field X fills X_sum and X_hist.
func rawColumns(v any) []string {
	var cols []string
	t := reflect.TypeOf(v)
	for i := range t.NumField() {
		f := t.Field(i)
		c := f.Tag.Get("col")
		if c == "" {
			continue
		}
		if f.Type == reflect.TypeOf(hist.Histogram{}) {
			cols = append(cols, c+"_sum", c+"_hist")
			continue
		}
		cols = append(cols, c)
	}
	slices.Sort(cols)
	return cols
}

// tableColumns reads the value columns of a table from the first migration.
func tableColumns(t *testing.T, sql, table string) []string {
	t.Helper()
	start := strings.Index(sql, `{{.Table "`+table+`"}}`)
	if start < 0 {
		t.Fatalf("table %s not in migration", table)
	}
	body := sql[start:]
	body = body[strings.Index(body, "(")+1 : strings.Index(body, "\n)")]
	keys := map[string]bool{"window_start": true, "grouping": true, "dims": true, "dims_key": true, "topic": true,
		"kafka_partition": true, "version": true, "final": true, "written_at": true}
	var cols []string
	re := regexp.MustCompile(`^\s+([a-z0-9_]+)\s`)
	for _, l := range strings.Split(body, "\n") {
		if m := re.FindStringSubmatch(l); m != nil && !keys[m[1]] {
			cols = append(cols, m[1])
		}
	}
	slices.Sort(cols)
	return cols
}

// The Kafka runner writes these structs' fields into the minute tables by
// their col tags; the two must not drift apart.
func TestRawColumnsMatchMigration(t *testing.T) {
	b, err := migrations.FS.ReadFile("0001_minute_tables.sql")
	if err != nil {
		t.Fatal(err)
	}
	sql := string(b)
	for _, c := range []struct {
		table string
		raw   any
	}{{"client_minute", ClientRaw{}}, {"cdn_minute", CDNRaw{}}, {"origin_minute", OriginRaw{}}} {
		got, want := rawColumns(c.raw), tableColumns(t, sql, c.table)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: struct columns\n %q\ntable columns\n %q", c.table, got, want)
		}
	}
}

package migrate

import (
	"context"
	"regexp"
	"strings"
	"testing"

	"github.com/qoscope/qoscope/migrations"
)

// normalizeSQL collapses whitespace, so that the comparison below is about
// the SQL, not about how the template indents it.
func normalizeSQL(s string) string {
	s = regexp.MustCompile(`\s+`).ReplaceAllString(strings.TrimSpace(s), " ")
	return strings.ReplaceAll(strings.ReplaceAll(s, "( ", "("), " )", ")")
}

// viewStatements maps view name → normalized CREATE OR REPLACE VIEW statement.
func viewStatements(stmts []string) map[string]string {
	re := regexp.MustCompile(`^CREATE OR REPLACE VIEW ([a-z_]+) `)
	out := map[string]string{}
	for _, s := range stmts {
		if m := re.FindStringSubmatch(strings.TrimSpace(s)); m != nil {
			out[m[1]] = normalizeSQL(s)
		}
	}
	return out
}

// 0005 renders the minute, hour and day views of every source from one
// template per source. It must reproduce the hand-written views of 0002 and
// 0004 exactly (so that applying it changes no definition), on a single
// node and on a cluster, in both directions.
func TestViewTemplateMatchesHandWritten(t *testing.T) {
	for _, tmpl := range []templateData{
		{database: "qoscope"},
		{database: "qoscope", cluster: "main"},
		{database: "qoscope", cluster: "main", eachNode: true},
	} {
		_, srcs, err := loadSources(context.Background(), migrations.FS, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		byFile := map[string]source{}
		for _, s := range srcs {
			byFile[s.Path] = s
		}
		gen, ok := byFile["0005_metric_views.sql"]
		if !ok {
			t.Fatal("0005_metric_views.sql missing")
		}
		want := viewStatements(byFile["0002_minute_views.sql"].Up)
		delete(want, "late_events_metrics") // not per period; stays in 0002
		for k, v := range viewStatements(byFile["0004_rollups.sql"].Up) {
			want[k] = v
		}
		if len(want) != 9 {
			t.Fatalf("cluster %q: want 9 hand-written views (3 sources × 3 periods), found %d", tmpl.cluster, len(want))
		}
		for dir, stmts := range map[string][]string{"up": gen.Up, "down": gen.Down} {
			got := viewStatements(stmts)
			if len(stmts) != 9 || len(got) != 9 {
				t.Errorf("cluster %q, %s: want 9 view statements, got %d statements, %d views", tmpl.cluster, dir, len(stmts), len(got))
			}
			for name, w := range want {
				if g := got[name]; g != w {
					t.Errorf("cluster %q, %s: view %s differs from the hand-written one\n got: %s\nwant: %s", tmpl.cluster, dir, name, g, w)
				}
			}
		}
	}
}

func TestPeriodTemplateData(t *testing.T) {
	d := templateData{database: "qoscope", cluster: "main"}
	p, err := d.Period("hour")
	if err != nil || p.Seconds != 3600 || p.Minute() || p.OnCluster != "ON CLUSTER `main`" {
		t.Errorf("Period(hour) = %+v, %v", p, err)
	}
	if _, err := d.Period("week"); err == nil || !strings.Contains(err.Error(), "minute, hour or day") {
		t.Errorf("Period(week): want an error naming the periods, got %v", err)
	}
}

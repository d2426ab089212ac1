package grafana

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/migrations"
	"github.com/qoscope/qoscope/query"
)

var update = flag.Bool("update", false, "rewrite dashboards/*.json from Build")

func defaultCatalog(t testing.TB) *query.Catalog {
	t.Helper()
	plan, err := aggregator.NewPlan(aggregator.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return query.NewCatalog(plan)
}

// The committed JSON is what Build renders from the catalogue, so a
// catalogue change that would break a dashboard shows up here and in
// TestDashboardSQL.
func TestDashboardFilesUpToDate(t *testing.T) {
	files, err := Build(defaultCatalog(t))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		for name, b := range files {
			if err := os.WriteFile(filepath.Join("dashboards", name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	committed, err := fs.Glob(Files, "dashboards/*.json")
	if err != nil {
		t.Fatal(err)
	}
	if len(committed) != len(files) {
		t.Errorf("dashboards/ holds %d files, Build renders %d (run with -update)", len(committed), len(files))
	}
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join("dashboards", name))
		if err != nil {
			t.Fatalf("%s: %v (run go test ./dashboards/grafana -run TestDashboardFilesUpToDate -update)", name, err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("dashboards/%s differs from Build's output: run go test ./dashboards/grafana -run TestDashboardFilesUpToDate -update", name)
		}
	}
}

// dashboardFile is the part of a dashboard JSON the tests read.
type dashboardFile struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Time          struct {
		From string `json:"from"`
		To   string `json:"to"`
	} `json:"time"`
	Templating struct {
		List []variableJSON `json:"list"`
	} `json:"templating"`
	Panels []panelJSON `json:"panels"`
}

type dsRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type variableJSON struct {
	Type       string `json:"type"`
	Name       string `json:"name"`
	Query      string `json:"query"`
	Definition string `json:"definition"`
	Datasource *dsRef `json:"datasource"`
	Multi      bool   `json:"multi"`
	IncludeAll bool   `json:"includeAll"`
}

type panelJSON struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Interval   string `json:"interval"`
	Datasource *dsRef `json:"datasource"`
	GridPos    *struct {
		X, Y, W, H *int
	} `json:"gridPos"`
	Targets []struct {
		RefID      string `json:"refId"`
		RawSQL     string `json:"rawSql"`
		Format     *int   `json:"format"`
		QueryType  string `json:"queryType"`
		EditorType string `json:"editorType"`
		Datasource *dsRef `json:"datasource"`
	} `json:"targets"`
	FieldConfig struct {
		Overrides []struct {
			Matcher struct {
				ID      string `json:"id"`
				Options string `json:"options"`
			} `json:"matcher"`
		} `json:"overrides"`
	} `json:"fieldConfig"`
	Transformations []struct {
		ID      string         `json:"id"`
		Options map[string]any `json:"options"`
	} `json:"transformations"`
}

func loadDashboards(t testing.TB) map[string]dashboardFile {
	t.Helper()
	names, err := fs.Glob(Files, "dashboards/*.json")
	if err != nil || len(names) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	out := map[string]dashboardFile{}
	for _, n := range names {
		b, err := fs.ReadFile(Files, n)
		if err != nil {
			t.Fatal(err)
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		var d dashboardFile
		if err := dec.Decode(&d); err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		out[n] = d
	}
	return out
}

// expectedColumns are the columns a panel names (field overrides by name,
// transformation fields, "time" of a time series): the query must return
// each, or Grafana silently shows nothing for it.
func (p panelJSON) expectedColumns() []string {
	var cols []string
	add := func(c string) {
		if c != "" && !slices.Contains(cols, c) {
			cols = append(cols, c)
		}
	}
	for _, o := range p.FieldConfig.Overrides {
		if o.Matcher.ID == "byName" {
			add(o.Matcher.Options)
		}
	}
	derived := map[string]bool{}
	for _, tr := range p.Transformations {
		switch tr.ID {
		case "groupingToMatrix":
			for _, k := range []string{"rowField", "columnField", "valueField"} {
				if s, _ := tr.Options[k].(string); !derived[s] {
					add(s)
				}
			}
		case "calculateField":
			if inc, ok := tr.Options["include"].([]any); ok {
				for _, c := range inc {
					add(c.(string))
				}
			}
			if a, _ := tr.Options["alias"].(string); a != "" {
				derived[a] = true
			}
		}
	}
	for i, t := range p.Targets {
		if i == 0 && t.Format != nil && *t.Format == formatTimeSeries {
			add("time")
		}
	}
	return cols
}

// Structural validation (no Grafana binary here, see dashboards/README.md):
// required fields, unique panel ids, every datasource reference the
// provisioned uid, every target and variable SQL for the plugin, panels on
// the 24-column grid, the provisioning files consistent with them.
func TestDashboardStructure(t *testing.T) {
	uids := map[string]string{}
	for name, d := range loadDashboards(t) {
		if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 || d.Time.From == "" || d.Time.To == "" {
			t.Errorf("%s: uid %q, title %q, schemaVersion %d, time %+v", name, d.UID, d.Title, d.SchemaVersion, d.Time)
		}
		if prev, ok := uids[d.UID]; ok {
			t.Errorf("%s: uid %s also used by %s", name, d.UID, prev)
		}
		uids[d.UID] = name
		if len(d.Panels) == 0 {
			t.Errorf("%s: no panels", name)
		}
		ids := map[int]bool{}
		for _, p := range d.Panels {
			where := fmt.Sprintf("%s panel %d %q", name, p.ID, p.Title)
			if p.ID <= 0 || ids[p.ID] {
				t.Errorf("%s: id missing or not unique", where)
			}
			ids[p.ID] = true
			if p.Title == "" || p.Type == "" {
				t.Errorf("%s: title or type missing", where)
			}
			if p.GridPos == nil || p.GridPos.X == nil || p.GridPos.Y == nil || p.GridPos.W == nil || p.GridPos.H == nil ||
				*p.GridPos.W <= 0 || *p.GridPos.H <= 0 || *p.GridPos.X+*p.GridPos.W > 24 {
				t.Errorf("%s: gridPos %+v not on the 24-column grid", where, p.GridPos)
			}
			if p.Datasource == nil || p.Datasource.UID != DatasourceUID || p.Datasource.Type != DatasourceType {
				t.Errorf("%s: datasource %+v, want %s/%s", where, p.Datasource, DatasourceType, DatasourceUID)
			}
			if len(p.Targets) == 0 {
				t.Errorf("%s: no targets", where)
			}
			refs := map[string]bool{}
			for _, tg := range p.Targets {
				if tg.RefID == "" || refs[tg.RefID] || tg.RawSQL == "" || tg.EditorType != "sql" || tg.Format == nil ||
					(*tg.Format != formatTimeSeries && *tg.Format != formatTable) || (tg.QueryType != "timeseries" && tg.QueryType != "table") {
					t.Errorf("%s: target %+v incomplete", where, tg)
				}
				refs[tg.RefID] = true
				if tg.Datasource == nil || tg.Datasource.UID != DatasourceUID || tg.Datasource.Type != DatasourceType {
					t.Errorf("%s: target datasource %+v", where, tg.Datasource)
				}
			}
			if p.Type == "timeseries" && (p.Targets[0].Format == nil || *p.Targets[0].Format != formatTimeSeries) {
				t.Errorf("%s: a time series panel needs the time series format", where)
			}
		}
		names := map[string]bool{}
		for _, v := range d.Templating.List {
			if v.Type != "query" || v.Name == "" || names[v.Name] || v.Query == "" || v.Query != v.Definition || !v.Multi || !v.IncludeAll ||
				v.Datasource == nil || v.Datasource.UID != DatasourceUID || v.Datasource.Type != DatasourceType {
				t.Errorf("%s: variable %+v", name, v)
			}
			names[v.Name] = true
		}
	}

	var ds struct {
		APIVersion  int `yaml:"apiVersion"`
		Datasources []struct {
			UID            string            `yaml:"uid"`
			Type           string            `yaml:"type"`
			JSONData       map[string]any    `yaml:"jsonData"`
			SecureJSONData map[string]string `yaml:"secureJsonData"`
		} `yaml:"datasources"`
	}
	readYAML(t, "provisioning/datasources/qoscope.yaml", &ds)
	if ds.APIVersion != 1 || len(ds.Datasources) != 1 {
		t.Fatalf("datasource provisioning: %+v", ds)
	}
	d := ds.Datasources[0]
	if d.UID != DatasourceUID || d.Type != DatasourceType {
		t.Errorf("provisioned datasource %s/%s, dashboards use %s/%s", d.Type, d.UID, DatasourceType, DatasourceUID)
	}
	if d.JSONData["secure"] != true || d.JSONData["tlsSkipVerify"] != false {
		t.Errorf("datasource must be TLS with verification by default: %v", d.JSONData)
	}
	for k, want := range map[string]string{"host": "QOSCOPE_GRAFANA_CH_HOST", "port": "QOSCOPE_GRAFANA_CH_PORT", "username": "QOSCOPE_GRAFANA_CH_USER", "defaultDatabase": "QOSCOPE_GRAFANA_CH_DATABASE"} {
		if d.JSONData[k] != "${"+want+"}" {
			t.Errorf("jsonData.%s = %v, want ${%s}", k, d.JSONData[k], want)
		}
	}
	if d.SecureJSONData["password"] != "${QOSCOPE_GRAFANA_CH_PASSWORD}" || d.JSONData["password"] != nil {
		t.Errorf("the password must come from the environment, in secureJsonData: %v / %v", d.SecureJSONData, d.JSONData)
	}
	var prov struct {
		APIVersion int `yaml:"apiVersion"`
		Providers  []struct {
			Type    string `yaml:"type"`
			Options struct {
				Path string `yaml:"path"`
			} `yaml:"options"`
		} `yaml:"providers"`
	}
	readYAML(t, "provisioning/dashboards/qoscope.yaml", &prov)
	if prov.APIVersion != 1 || len(prov.Providers) != 1 || prov.Providers[0].Type != "file" || prov.Providers[0].Options.Path != "${QOSCOPE_GRAFANA_DASHBOARDS}" {
		t.Errorf("dashboard provisioning: %+v", prov)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := fs.ReadFile(Files, path)
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(false)
	if err := dec.Decode(v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// sqlWords are the keywords, functions' lambda parameters and the like
// that are not columns.
var sqlWords = strings.Fields(`select from where and or not as group by order limit union all with in desc asc nulls last
	having final interval second minute hour day null distinct is h pct c v k gamma hist_rank_bucket hist_quantile hist_count`)

var (
	identRe   = regexp.MustCompile(`[A-Za-z_][A-Za-z0-9_]*`)
	aliasRe   = regexp.MustCompile(`(?i)\bAS\s+([A-Za-z_][A-Za-z0-9_]*)`)
	stringRe  = regexp.MustCompile(`'(?:[^'\\]|\\.)*'`)
	macroRe   = regexp.MustCompile(`\$\{[^}]*\}|\$\w+`)
	viewRe    = regexp.MustCompile(`\b(client|cdn|origin)_(minute|hour|day)_metrics\b`)
	tableRe   = regexp.MustCompile(`\b(client|cdn|origin)_(minute|hour|day)\b`)
	tableCols = regexp.MustCompile(`(?m)^\s+([a-z_]+)\s+[A-Z]`)
)

// alertHistoryColumns are the columns of migrations/0006_alert_history.sql.
func alertHistoryColumns(t testing.TB) []string {
	b, err := fs.ReadFile(migrations.FS, "0006_alert_history.sql")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	start := strings.Index(s, "(\n")
	end := strings.Index(s, "\n)\nENGINE")
	if start < 0 || end < start {
		t.Fatal("cannot find alert_history's column list")
	}
	var cols []string
	for _, m := range tableCols.FindAllStringSubmatch(s[start:end], -1) {
		cols = append(cols, m[1])
	}
	return cols
}

// viewColumns are the columns of a view by the catalogue: key columns, each
// metric's column and its inputs (as TestViewColumnsMatchCatalogue in
// query/ holds them equal to the real views).
func viewColumns(cat *query.Catalog, view string) []string {
	for _, si := range cat.Sources() {
		for p, v := range si.Views {
			if v != view {
				continue
			}
			cols := []string{"window_start", "grouping", "dims_key", "dims", "partial_rows", "written_at"}
			if p == query.PeriodMinute {
				cols = append(cols, "final")
			}
			for _, m := range si.Metrics {
				if m.Has(p) {
					cols = append(cols, m.Inputs(p)...)
					cols = append(cols, m.Column(p))
				}
			}
			return cols
		}
	}
	return nil
}

// tableColumns are the columns of a table that query.ReadFrom reads it for:
// key columns and the columns the metrics other than gauges merge from
// (TestTableReadsMatchViews in query/ holds their merges equal to the
// views').
func tableColumns(cat *query.Catalog, table string) []string {
	for _, si := range cat.Sources() {
		for p, v := range si.Tables {
			if v != table {
				continue
			}
			cols := []string{"window_start", "grouping", "dims_key", "dims", "written_at"}
			if p == query.PeriodMinute {
				cols = append(cols, "final")
			}
			for _, m := range si.Metrics {
				if m.Has(p) && m.Kind != query.KindGauge {
					cols = append(cols, m.Inputs(p)...)
					if len(m.Inputs(p)) == 0 {
						cols = append(cols, m.Column(p))
					}
				}
			}
			return cols
		}
	}
	return nil
}

// unknownColumns lists the identifiers of sql that are neither SQL words,
// functions, aliases it defines, tables, nor columns of the views (by the
// catalogue) or tables it reads.
func unknownColumns(cat *query.Catalog, alertCols []string, sql string) []string {
	s := stringRe.ReplaceAllString(sql, "''")
	s = macroRe.ReplaceAllString(s, " ")
	known := slices.Clone(sqlWords)
	for _, m := range aliasRe.FindAllStringSubmatch(s, -1) {
		known = append(known, strings.ToLower(m[1]))
	}
	for _, v := range viewRe.FindAllString(s, -1) {
		known = append(known, v)
		known = append(known, viewColumns(cat, v)...)
	}
	for _, v := range tableRe.FindAllString(s, -1) {
		known = append(known, v)
		known = append(known, tableColumns(cat, v)...)
	}
	if strings.Contains(s, "alert_history") {
		known = append(known, "alert_history")
		known = append(known, alertCols...)
	}
	var unknown []string
	for _, loc := range identRe.FindAllStringIndex(s, -1) {
		id := s[loc[0]:loc[1]]
		if loc[0] > 0 && (s[loc[0]-1] >= '0' && s[loc[0]-1] <= '9') {
			continue // part of a number like 1e6
		}
		rest := strings.TrimLeft(s[loc[1]:], " ")
		if strings.HasPrefix(rest, "(") {
			continue // a function
		}
		if !slices.Contains(known, strings.ToLower(id)) && !slices.Contains(unknown, id) {
			unknown = append(unknown, id)
		}
	}
	return unknown
}

// Every column a panel or variable reads is a column of the views it
// names, by the metric catalogue (or of alert_history by its migration).
func TestColumnsInCatalogue(t *testing.T) {
	cat := defaultCatalog(t)
	alertCols := alertHistoryColumns(t)
	if !slices.Contains(alertCols, "retracted") || !slices.Contains(alertCols, "diagnosis") {
		t.Fatalf("alert_history columns read from its migration: %v", alertCols)
	}
	n := 0
	for name, d := range loadDashboards(t) {
		for _, p := range d.Panels {
			for _, tg := range p.Targets {
				n++
				if u := unknownColumns(cat, alertCols, tg.RawSQL); len(u) > 0 {
					t.Errorf("%s panel %q reads %v, not columns of the views it names (query/catalog.go)", name, p.Title, u)
				}
			}
		}
		for _, v := range d.Templating.List {
			n++
			if u := unknownColumns(cat, alertCols, v.Query); len(u) > 0 {
				t.Errorf("%s variable %s reads %v", name, v.Name, u)
			}
		}
	}
	if n < 30 {
		t.Errorf("only %d queries checked", n)
	}
	// The check itself: a misspelt metric and a rollup column read from a
	// minute view are found; the minute names are accepted.
	bad := "SELECT sum(stutter_users_x) AS a, sum(user_minutes) AS b FROM client_minute_metrics WHERE grouping = 'x' AND dims['vendor'] IN ('a')"
	if u := unknownColumns(cat, alertCols, bad); !slices.Equal(u, []string{"stutter_users_x", "user_minutes"}) {
		t.Errorf("unknownColumns(bad) = %v", u)
	}
	good := "SELECT sum(users) AS u, stutter_rate_uv FROM client_minute_metrics WHERE $__timeFilter(window_start) AND dims['vendor'] IN (${vendor:singlequote})"
	if u := unknownColumns(cat, alertCols, good); len(u) != 0 {
		t.Errorf("unknownColumns(good) = %v", u)
	}
}

// The expansion follows the plugin (see macros_test.go); expectations are
// written out by hand from its documentation.
func TestExpansion(t *testing.T) {
	e := &expansion{
		From:     time.Unix(1415792726, 0),
		To:       time.Unix(1447328726, 0),
		Interval: 20 * time.Second,
		Vars: map[string]varState{
			"vendor": {Values: []string{"a", "o'c"}},
			"isp":    {All: true, Options: []string{"telecom", "unicom"}},
		},
	}
	for _, c := range []struct{ in, want string }{
		{"$__timeFilter(time)", "time >= toDateTime(1415792726) AND time <= toDateTime(1447328726)"},
		{"$__timeInterval(column)", "toStartOfInterval(toDateTime(column), INTERVAL 20 second)"},
		{"$__fromTime - $__toTime, $__interval_s", "toDateTime(1415792726) - toDateTime(1447328726), 20"},
		{"x IN (${vendor:singlequote})", `x IN ('a','o\'c')`},
		{"$__conditionalAll(x IN (${vendor:singlequote}), $vendor)", `x IN ('a','o\'c')`},
		{"$__conditionalAll(y IN (${isp:singlequote}), $isp) AND ($__conditionalAll(0, $vendor))", "1=1 AND (0)"},
		{"y IN (${isp:singlequote})", "y IN ('telecom','unicom')"},
		{"$__conditionalAll(f(a, b), ${isp})", "1=1"},
	} {
		got, err := e.expand(c.in)
		if err != nil || got != c.want {
			t.Errorf("expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	for _, in := range []string{"$__timeGroup(t, 5m)", "${vendor:regex}", "$nosuch", "$__conditionalAll(a, $nosuch)", "$__conditionalAll(a)"} {
		if got, err := e.expand(in); err == nil {
			t.Errorf("expand(%q) = %q, want an error", in, got)
		}
	}
	if iv := grafanaInterval(time.Unix(0, 0), time.Unix(6*3600, 0), time.Minute); iv != time.Minute {
		t.Errorf("6h interval %v, want the 1m minimum", iv)
	}
	if iv := grafanaInterval(time.Unix(0, 0), time.Unix(30*86400, 0), time.Minute); iv != 2592*time.Second {
		t.Errorf("30d interval %v, want 2592s", iv)
	}
}

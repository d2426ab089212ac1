package aggregator

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/schemas"
	"github.com/qoscope/qoscope/schemas/route"
)

// Config is the windowing and breakdown configuration shared by the Kafka
// runner and the offline mode. YAML keys (all optional):
//
//	lateness:                    # allowed lateness per source (or one duration for all)
//	  client: 10m
//	  cdn: 30m
//	  origin: 10m
//	origin_no_data_minutes: 5    # N for origin no_data rows; default 5, 1..60
//	late_horizon: 24h            # how long per-window late counters are kept; default 24h
//	grouping_sets:               # per source; [] is the total; default: see DefaultGroupingSets
//	  client: [[], [province], [province, isp]]
//	  cdn:    [[], [vendor]]
//	  origin: [[stream_id, line]]
//
// A source whose list is omitted keeps its default; an explicit empty list
// disables the source's rows (its events are still counted in Stats).
type Config struct {
	// Lateness is, per source, how long a window keeps taking events after
	// its end: a partition's clock is the newest event time it has seen
	// (each event's ts, but never later than its recv_ts, so one fast client
	// clock cannot move it), the watermark is clock − Lateness, and a window
	// [s, s+60s) is final once the watermark reaches s+60s. Until then every
	// event for it is applied and its rows are re-emitted as a new version;
	// only events for final windows are late. Defaults follow how each source
	// really delivers (docs/METRICS.md, "Late data"): client 10m, cdn 30m,
	// origin 10m. YAML takes a duration for all sources or a map; the
	// variable QOSCOPE_AGGREGATOR_LATENESS takes "10m" or "client=10m,cdn=30m".
	Lateness Lateness `yaml:"lateness" env:"AGGREGATOR_LATENESS"`
	// OriginNoDataMinutes is N: an origin grouping key seen in one of the N
	// windows before window W and silent in W gets a no_data row for W.
	// Default 5; at most 60.
	OriginNoDataMinutes int `yaml:"origin_no_data_minutes" env:"AGGREGATOR_ORIGIN_NO_DATA_MINUTES"`
	// LateHorizon bounds how long after its end a window's cumulative late
	// counter is remembered (it is part of the checkpoint). A late event for
	// an older window is still counted, in Stats.TooLate and in a late row
	// for the window whose count restarts from the events seen since. Default 24h.
	LateHorizon time.Duration `yaml:"late_horizon" env:"AGGREGATOR_LATE_HORIZON"`
	// GroupingSets lists, per source, the grouping sets as lists of event
	// field names (schemas.ParseField). Order matters: it is the output
	// order and the dims order.
	GroupingSets GroupingSets `yaml:"grouping_sets"`
}

// GroupingSets holds the grouping sets of each source; nil means the default.
type GroupingSets struct {
	Client [][]string `yaml:"client"`
	CDN    [][]string `yaml:"cdn"`
	Origin [][]string `yaml:"origin"`
}

// DefaultGroupingSets are the default breakdowns (docs/METRICS.md).
func DefaultGroupingSets() GroupingSets {
	return GroupingSets{
		Client: [][]string{
			{}, {"province"}, {"isp"}, {"province", "isp"}, {"vendor"},
			{"vendor", "province", "isp"}, {"stream_id"}, {"quality"}, {"platform"},
			{"client_version"}, {"role"}, {"node"},
		},
		CDN: [][]string{
			{}, {"vendor"}, {"province"}, {"isp"}, {"vendor", "province", "isp"}, {"node"},
		},
		Origin: [][]string{{"stream_id", "line"}},
	}
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	return Config{
		Lateness:            DefaultLateness(),
		OriginNoDataMinutes: 5,
		LateHorizon:         24 * time.Hour,
		GroupingSets:        DefaultGroupingSets(),
	}
}

// Validate checks c; errors name the YAML key.
func (c *Config) Validate() error {
	var errs config.Errors
	c.ValidateIn(&errs)
	return errs.Err()
}

// ValidateIn records c's problems in errs, whose prefix places the keys in
// a larger file (the runner's aggregator section).
func (c *Config) ValidateIn(errs *config.Errors) {
	c.Lateness.validate("lateness", errs)
	if c.OriginNoDataMinutes < 1 || c.OriginNoDataMinutes > 60 {
		errs.Addf("origin_no_data_minutes: %d is not between 1 and 60", c.OriginNoDataMinutes)
	}
	if c.LateHorizon < time.Minute {
		errs.Addf("late_horizon: must be at least 1m")
	}
	for _, s := range []struct {
		name string
		sets [][]string
	}{{"client", c.GroupingSets.Client}, {"cdn", c.GroupingSets.CDN}, {"origin", c.GroupingSets.Origin}} {
		seen := map[string]int{}
		for i, set := range s.sets {
			key := fmt.Sprintf("grouping_sets.%s[%d]", s.name, i)
			dup := map[string]bool{}
			for j, d := range set {
				f, ok := schemas.ParseField(d)
				switch {
				case !ok:
					errs.Addf("%s[%d]: %q is not an event field", key, j, d)
				case f == schemas.FieldUserID || f == schemas.FieldSessionID:
					// A per-user key would make every row a single user
					// and the state grow with users × windows.
					errs.Addf("%s[%d]: %q cannot be a dimension", key, j, d)
				case dup[d]:
					errs.Addf("%s[%d]: %q listed twice", key, j, d)
				}
				dup[d] = true
			}
			sorted := slices.Clone(set)
			slices.Sort(sorted)
			canon := strings.Join(sorted, ",")
			if prev, ok := seen[canon]; ok {
				errs.Addf("%s: same dimensions as grouping_sets.%s[%d]", key, s.name, prev)
			}
			seen[canon] = i
		}
	}
}

// LoadConfig reads the YAML file at path (empty path: defaults only) strictly,
// applies QOSCOPE_AGGREGATOR_* environment overrides and validates.
// A grouping_sets source left out of the file keeps its default.
func LoadConfig(path string) (Config, error) {
	c := Config{
		Lateness:            DefaultConfig().Lateness,
		OriginNoDataMinutes: DefaultConfig().OriginNoDataMinutes,
		LateHorizon:         DefaultConfig().LateHorizon,
	}
	if err := config.Load(path, &c); err != nil {
		return Config{}, err
	}
	c.fillDefaultSets()
	return c, c.Validate()
}

func (c *Config) fillDefaultSets() {
	d := DefaultGroupingSets()
	if c.GroupingSets.Client == nil {
		c.GroupingSets.Client = d.Client
	}
	if c.GroupingSets.CDN == nil {
		c.GroupingSets.CDN = d.CDN
	}
	if c.GroupingSets.Origin == nil {
		c.GroupingSets.Origin = d.Origin
	}
}

// unknown replaces a missing (empty) dimension value.
const unknown = "unknown"

// GroupingSet is one resolved grouping set.
type GroupingSet struct {
	// Name is the dimension names joined by "," in configured order; "" is
	// the total. It is the `grouping` column of the minute tables.
	Name   string
	Fields []schemas.Field
	Names  []string
}

// component is a group of grouping sets linked by shared fields. Every
// grouping key depends on one component's fields only, so each component
// interns its own, small, tuples: with the default client sets the
// components are the total, {province, isp, vendor}, {stream_id},
// {quality}, {platform}, {client_version}, {role} and {node}, whose tuples
// number in the hundreds to thousands, where whole-event tuples would
// number about as many as users. A component of one field (most of them)
// has one grouping set, and its tuple and key are the field's value.
type component struct {
	fields []schemas.Field
	sets   []int // indexes into sourcePlan.sets
	off    int   // the component's values are sourcePlan.fields[off : off+len(fields)]
	kpos   int   // its sets are at kpos, kpos+1, … in component order (sourcePlan.pos)
}

// sourcePlan is the resolved layout of one source.
type sourcePlan struct {
	source schemas.Source
	sets   []GroupingSet
	comps  []component
	fields []schemas.Field // every component's fields, component after component
	get    []getter        // readers of fields
	// setComp[g] locates set g: component c = setComp[g].c, position j in
	// comps[c].sets.
	setComp []struct{ c, j int }
	// pos[g] is set g's position when the sets are listed component after
	// component (the order a window's client accumulators are stored in).
	pos []int
}

func (sp *sourcePlan) resolve() {
	// Union-find over sets: two sets sharing a field share a component.
	parent := make([]int, len(sp.sets))
	for i := range parent {
		parent[i] = i
	}
	var find func(int) int
	find = func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	owner := map[schemas.Field]int{}
	for g, gs := range sp.sets {
		for _, f := range gs.Fields {
			if o, ok := owner[f]; ok {
				parent[find(g)] = find(o)
			} else {
				owner[f] = g
			}
		}
	}
	index := map[int]int{} // root set -> component
	sp.setComp = make([]struct{ c, j int }, len(sp.sets))
	for g, gs := range sp.sets {
		r := find(g)
		c, ok := index[r]
		if !ok {
			c = len(sp.comps)
			index[r] = c
			sp.comps = append(sp.comps, component{})
		}
		cp := &sp.comps[c]
		sp.setComp[g] = struct{ c, j int }{c, len(cp.sets)}
		cp.sets = append(cp.sets, g)
		for _, f := range gs.Fields {
			if !slices.Contains(cp.fields, f) {
				cp.fields = append(cp.fields, f)
			}
		}
	}
	for c := range sp.comps {
		sp.comps[c].off = len(sp.fields)
		sp.fields = append(sp.fields, sp.comps[c].fields...)
	}
	sp.pos = make([]int, len(sp.sets))
	x := 0
	for c := range sp.comps {
		sp.comps[c].kpos = x
		for _, g := range sp.comps[c].sets {
			sp.pos[g] = x
			x++
		}
	}
	for _, f := range sp.fields {
		sp.get = append(sp.get, newGetter(f))
	}
}

// Plan is a validated Config resolved into field indexes. It is immutable and
// shared by every Partition.
type Plan struct {
	cfg      Config
	lateness [route.NumSources]int64 // ms, per source index
	noDataN  int64
	horizon  int64 // ms
	src      [route.NumSources]sourcePlan
}

// NewPlan validates c and resolves it.
func NewPlan(c Config) (*Plan, error) {
	c.fillDefaultSets()
	if err := c.Validate(); err != nil {
		return nil, err
	}
	p := &Plan{
		cfg:      c,
		lateness: [route.NumSources]int64{c.Lateness.Client.Milliseconds(), c.Lateness.CDN.Milliseconds(), c.Lateness.Origin.Milliseconds()},
		noDataN:  int64(c.OriginNoDataMinutes),
		horizon:  c.LateHorizon.Milliseconds(),
	}
	for si, sets := range [][][]string{c.GroupingSets.Client, c.GroupingSets.CDN, c.GroupingSets.Origin} {
		sp := &p.src[si]
		sp.source = route.Sources[si]
		for _, set := range sets {
			gs := GroupingSet{Name: strings.Join(set, ","), Names: slices.Clone(set)}
			for _, d := range set {
				f, _ := schemas.ParseField(d)
				gs.Fields = append(gs.Fields, f)
			}
			sp.sets = append(sp.sets, gs)
		}
		sp.resolve()
	}
	return p, nil
}

// Config returns the configuration the plan was built from.
func (p *Plan) Config() Config { return p.cfg }

// latenessOf is the allowed lateness (ms) of source s (Lateness.Of).
func (p *Plan) latenessOf(s schemas.Source) int64 {
	if i := route.Index(s); i >= 0 {
		return p.lateness[i]
	}
	return max(p.lateness[0], p.lateness[1], p.lateness[2])
}

// GroupingSets returns the resolved grouping sets of a source, in output order.
func (p *Plan) GroupingSets(s schemas.Source) []GroupingSet {
	if i := route.Index(s); i >= 0 {
		return p.src[i].sets
	}
	return nil
}

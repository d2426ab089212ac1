package harness

import (
	"fmt"
	"time"

	"github.com/qoscope/qoscope/aggregator/runner"
)

// micro returns the median of unit for package pkg's benchmark name.
func (r *Results) micro(pkg, name, unit string) (float64, bool) {
	for _, b := range r.Micro {
		if b.Package == pkg && b.Name == name {
			v, ok := b.Median[unit]
			return v, ok && v > 0
		}
	}
	return 0, false
}

func (r *Results) peer(name string) *PeerResult {
	for _, p := range r.Peers {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// usable reports whether a peer finished; flagged peers are usable but
// their ratios are flagged.
func usable(p *PeerResult) bool { return p != nil && p.Error == "" && p.Cost.Events > 0 }

// computeRatios derives qoscope-vs-peer ratios from numbers measured in
// this run. A ratio is left out when either side did not run.
func (r *Results) computeRatios() {
	var out []Ratio
	cost := func(name, unit, peerIs string, q, p float64, flagged bool, note string) {
		if q > 0 && p > 0 {
			out = append(out, Ratio{Name: name, Unit: unit, Qoscope: q, Peer: p, PeerIs: peerIs, Factor: p / q, Flagged: flagged, Note: note})
		}
	}
	rate := func(name, unit, peerIs string, q, p float64, flagged bool, note string) {
		if q > 0 && p > 0 {
			out = append(out, Ratio{Name: name, Unit: unit, Qoscope: q, Peer: p, PeerIs: peerIs, Factor: q / p, Flagged: flagged, Note: note})
		}
	}

	// Decoding.
	if q, ok := r.micro("ingest", "BenchmarkDecode", "events/s"); ok {
		for _, peer := range []string{"encoding_json", "fastjson"} {
			if ns, ok := r.micro("schemas", "BenchmarkBaseline/"+peer, "ns/op"); ok {
				rate("ingest decode+validate+enrich, one core", "events/s", peer+" decode of a heartbeat line", q, 1e9/ns, false,
					"the peer only decodes (no validation, no IP enrichment, no re-encoding, no line splitting): qoscope does more work per event")
			}
		}
	}
	if q, ok := r.micro("schemas", "BenchmarkParseLine/heartbeat", "ns/op"); ok {
		if p, ok := r.micro("schemas", "BenchmarkBaseline/encoding_json", "ns/op"); ok {
			cost("schemas.ParseLine of a heartbeat line, one core", "ns/event", "encoding/json into a struct", q, p, false,
				"same line; ParseLine also validates every field and parses the time")
		}
	}

	// IP lookup.
	for _, mix := range []string{"uniform", "mainland", "populated"} {
		q, ok1 := r.micro("internal/ipdb", "BenchmarkLookup/"+mix, "cpu-ns/op")
		p, ok2 := r.micro("internal/ipdb", "BenchmarkPeerRangeSearch/"+mix, "cpu-ns/op")
		if ok1 && ok2 {
			cost("IP lookup, "+mix+" addresses", "cpu-ns/lookup", "binary search over the same table's sorted ranges (ip2region's layout)", q, p, false, "")
		}
	}

	// Aggregation on the file.
	if r.Offline != nil {
		q := r.Offline.Step.CPUSecondsPerMillion
		for _, name := range []string{"chraw-native", "chraw-http"} {
			if p := r.peer(name); usable(p) {
				cost("aggregation of the file (parse + one-minute metrics)", "CPU-s per 1M events", name+": load + SQL in ClickHouse",
					q, p.Cost.CPUSecondsPerMillion, p.Flagged, "qoscope: offline mode, one goroutine; peer: client + ClickHouse process CPU")
			}
		}
	}
	if ns, ok := r.micro("aggregator", "BenchmarkAggregate", "cpu-ns/event"); ok {
		if p := r.peer("chraw-native"); usable(p) && p.Query != nil && p.Query.TotalCPUSec > 0 {
			cost("aggregation core, decoded events (no load, no parse)", "CPU-s per 1M events", "ClickHouse GROUPING SETS queries over the loaded raw table",
				ns/1000, p.Query.TotalCPUSec*1e6/float64(p.Cost.Events), p.Flagged,
				"qoscope: BenchmarkAggregate (AddBatch + Drain, as the runner drives it); peer: only the SQL queries, the load comes on top")
		}
	}

	// Streaming from Kafka.
	if e := r.EndToEnd; e != nil && e.Error == "" && e.Consume.CPUSecondsPerMillion > 0 {
		for _, name := range []string{"chkafka", "kstreams"} {
			p := r.peer(name)
			if !usable(p) {
				continue
			}
			flagged := p.Flagged || (e.Agreement != nil && !e.Agreement.OK)
			cost("streaming aggregation from a Kafka backlog", "CPU-s per 1M events", name,
				e.Consume.CPUSecondsPerMillion, p.Cost.CPUSecondsPerMillion, flagged,
				"all processes: qoscope runner + ClickHouse + broker vs the peer's")
			rate("streaming aggregation from a Kafka backlog", "events/s", name,
				e.EventsPerSecond, p.Cost.EventsPerSec, flagged, "")
		}
	}

	// Freshness of a live stream: both paced alike. A peer at 0 (every
	// window's numbers computed before it closed) is a valid result, so
	// only qoscope's side must be positive.
	if e := r.EndToEnd; e != nil && e.Paced != nil && e.Paced.Error == "" && e.Paced.Windows > 0 && e.Paced.FreshnessP99Sec > 0 {
		q := e.Paced
		if p := r.peer("chkafka"); p != nil && p.Paced != nil && p.Paced.Error == "" && p.Paced.Windows > 0 {
			pp := p.Paced
			note := fmt.Sprintf("paced ×%g; W closes at the first client event ≥ W end + %s of lateness (where qoscope's watermark closes it); peer: raw rows complete + its window SQL, clamped at 0 (before the clamp p99 %s s)",
				q.Pace, time.Duration(q.LatenessSec*float64(time.Second)), num(pp.SignedP99Sec))
			flagged := p.Flagged
			if pp.Pace != q.Pace || pp.LatenessSec != q.LatenessSec {
				flagged = true
				note = fmt.Sprintf("not the same stream: peer paced ×%g with %g s of lateness; ", pp.Pace, pp.LatenessSec) + note
			}
			out = append(out, Ratio{Name: "freshness p99 (paced)", Unit: "s", Qoscope: q.FreshnessP99Sec, Peer: pp.FreshnessP99Sec,
				PeerIs: "chkafka", Factor: pp.FreshnessP99Sec / q.FreshnessP99Sec, Flagged: flagged, Note: note})
		}
	}

	// Insert modes of the runner (not a peer: the choice the runner made).
	if a, ok := r.micro("aggregator/runner", "BenchmarkInsert/arrow_http", "rows/s"); ok {
		if n, ok := r.micro("aggregator/runner", "BenchmarkInsert/native", "rows/s"); ok {
			rate("insert of aggregator rows: ArrowStream over HTTP vs native", "rows/s", "native batch insert (clickhouse-go)", a, n, false,
				"the runner's default mode (runner.DefaultInsertMode) is "+runner.DefaultInsertMode)
		}
	}
	// The wall's queries: qoscope's rows vs raw events, same questions,
	// same clients, one after the other.
	if w := r.Wall; w != nil && w.Qoscope != nil && w.Raw != nil && w.Qoscope.Error == "" && w.Raw.Error == "" {
		for i, q := range w.Qoscope.Queries {
			if i >= len(w.Raw.Queries) || w.Raw.Queries[i].Query != q.Query {
				continue
			}
			p := w.Raw.Queries[i]
			cost("wall query "+q.Query+" p99, "+fmt.Sprint(w.Qoscope.Clients)+" concurrent clients", "ms", "the same question by SQL over the raw events of one hour",
				q.P99Ms, p.P99Ms, false, wallRatioNote(q.Query, w.Qoscope.Kind))
		}
	}
	// Steering: qoscope steer vs a static-JSON net/http server, same wrk
	// load, one after the other.
	if st := r.Steer; st != nil {
		for _, q := range st.Runs {
			if q.Server != "qoscope" || q.Error != "" {
				continue
			}
			p := st.run("static", q.Connections)
			if p == nil || p.Error != "" {
				continue
			}
			note := fmt.Sprintf("wrk %d connections in another process on the same cores; the peer answers one fixed manifest (HTTP alone)", q.Connections)
			rate(fmt.Sprintf("steering requests/s, %d connections", q.Connections), "requests/s", "Go net/http serving a fixed JSON body", q.RPS, p.RPS, false, note)
			cost(fmt.Sprintf("steering p99 latency, %d connections", q.Connections), "ms", "Go net/http serving a fixed JSON body", q.P99Ms, p.P99Ms, false, note)
		}
	}
	// Alert notifications: the same alerts, delivered by qoscope's webhook
	// and through Alertmanager, in the same run.
	if d, m := r.Alerts.path(alertPathDirect), r.Alerts.path(alertPathAM); d != nil && m != nil && d.Latency.N > 0 && m.Latency.N > 0 {
		note := fmt.Sprintf("the same alert changes of one evaluator (%d and %d), group_wait 1 s on both; minute end → request at the receiver", d.Changes, m.Changes)
		cost("alert notification latency p99", "s", "Alertmanager "+r.Alerts.Alertmanager+" in the path", d.Latency.P99, m.Latency.P99, false, note)
		cost("alert notification latency p50", "s", "Alertmanager "+r.Alerts.Alertmanager+" in the path", d.Latency.P50, m.Latency.P50, false, note)
	}
	// Scores: the live service vs net/http answering the same bytes, same
	// open-loop load, one after the other.
	if sc := r.Scores; sc != nil && sc.Error == "" {
		for _, setup := range []string{ScoresSetupReplica, ScoresSetupAllInOne} {
			for _, k := range scoresKinds {
				q, p := sc.run(setup, "qoscope", k.Name), sc.run(setup, "static", k.Name)
				if q == nil || p == nil || q.Requests == 0 || p.Requests == 0 {
					continue
				}
				cost("scores p99 at "+num(sc.Rate)+" requests/s, "+k.Name+" ("+setup+")", "ms", "Go net/http serving the same bytes", q.P99Ms, p.P99Ms, false,
					"open loop, coordinated omission corrected; the peer runs in the load generator's process")
			}
		}
	}
	r.Ratios = out
}

// path returns the alerts step's delivery path name (nil: not run).
func (a *AlertsResult) path(name string) *AlertPath {
	if a == nil || a.Error != "" {
		return nil
	}
	for _, p := range a.Paths {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// run returns the steering run of server at conns connections.
func (st *SteerResult) run(server string, conns int) *SteerLoad {
	for _, l := range st.Runs {
		if l.Server == server && l.Connections == conns {
			return l
		}
	}
	return nil
}

// wallRatioNote says what differs between the two sides of a wall ratio.
func wallRatioNote(q, kind string) string {
	note := "qoscope: " + kind + " over 7 days of minute rows and rollups; peer: one hour of raw events"
	if q == WallHistory {
		note += "; the peer's history covers its one hour, qoscope's 7 days (+7 for week-over-week)"
	}
	return note
}

// computeGoals compares the measured numbers with the issues' goals.
func (r *Results) computeGoals() {
	var out []Goal
	if v, ok := r.micro("ingest", "BenchmarkDecode", "events/s"); ok {
		out = append(out, Goal{Name: "decode+validate+enrich per core", Unit: "events/s", Goal: "≥ 150,000", Measured: v, Met: v >= 150_000, Source: "ingest BenchmarkDecode -cpu 1"})
	}
	if ns, ok := r.micro("aggregator", "BenchmarkAggregate", "cpu-ns/event"); ok {
		v := 1e9 / ns
		out = append(out, Goal{Name: "aggregation core per core", Unit: "events/s", Goal: "≥ 1,000,000", Measured: v, Met: v >= 1e6, Source: "aggregator BenchmarkAggregate (1e9 / cpu-ns/event)"})
	}
	if v, ok := r.micro("aggregator", "BenchmarkBytesPerUser", "B/user"); ok {
		// The budget of 200 bytes is the aggregation state's; the
		// de-duplication set of retried events comes on top, ~13.5 bytes
		// per event held (aggregator/README.md, "Duplicates").
		d, _ := r.micro("aggregator", "BenchmarkBytesPerUser", "dedup-B/user")
		out = append(out, Goal{Name: "bytes per active user-minute, aggregation state", Unit: "bytes", Goal: "≤ 200", Measured: v - d, Met: v-d <= 200,
			Source: "aggregator BenchmarkBytesPerUser (B/user − dedup-B/user)"})
		if d > 0 {
			out = append(out, Goal{Name: "bytes per active user-minute, de-duplication set (~10 events)", Unit: "bytes", Goal: "≤ 170 (17 per event)", Measured: d, Met: d <= 170,
				Source: "aggregator BenchmarkBytesPerUser dedup-B/user"})
		}
	}
	// Ingest looks addresses up in batches (LookupMany); one at a time is
	// the API's other entry point and the worst case for spread audiences.
	for _, mix := range []string{"populated", "mainland", "uniform"} {
		if v, ok := r.micro("internal/ipdb", "BenchmarkLookupMany/"+mix, "cpu-ns/op"); ok {
			out = append(out, Goal{Name: "IP lookup as ingest does it, batched (" + mix + " addresses)", Unit: "ns", Goal: "≤ 20", Measured: v, Met: v <= 20, Source: "internal/ipdb BenchmarkLookupMany/" + mix + " cpu-ns/op"})
		}
		if v, ok := r.micro("internal/ipdb", "BenchmarkLookup/"+mix, "cpu-ns/op"); ok {
			out = append(out, Goal{Name: "IP lookup one at a time (" + mix + " addresses)", Unit: "ns", Goal: "≤ 20", Measured: v, Met: v <= 20, Source: "internal/ipdb BenchmarkLookup/" + mix + " cpu-ns/op"})
		}
	}
	// Freshness is a live-traffic goal: the paced run's when there is one.
	if e := r.EndToEnd; e != nil {
		if p := e.Paced; p != nil && p.Error == "" && p.Windows > 0 {
			out = append(out, Goal{Name: "freshness p99 (window close → final rows visible)", Unit: "s", Goal: "≤ 2", Measured: p.FreshnessP99Sec, Met: p.FreshnessP99Sec <= 2,
				Source: fmt.Sprintf("end to end, paced ×%g (a window every %.0f s), %d windows", p.Pace, 60/p.Pace, p.Windows)})
		} else if e.Error == "" && e.Windows > 0 {
			out = append(out, Goal{Name: "freshness p99 (window close → final rows visible)", Unit: "s", Goal: "≤ 2", Measured: e.FreshnessP99Sec, Met: e.FreshnessP99Sec <= 2,
				Source: fmt.Sprintf("end to end over a backlog (no paced run), %d windows", e.Windows)})
		}
	}
	if w := r.Wall; w != nil && w.Qoscope != nil && w.Qoscope.Error == "" {
		for _, q := range w.Qoscope.Queries {
			if q.N == 0 {
				continue
			}
			out = append(out, Goal{Name: fmt.Sprintf("wall query %s p99 at %d concurrent clients", q.Query, w.Qoscope.Clients), Unit: "ms",
				Goal: fmt.Sprintf("≤ %g", w.GoalP99Ms), Measured: q.P99Ms, Met: q.P99Ms <= w.GoalP99Ms,
				Source: fmt.Sprintf("query step (%s), %d answers over %.0f s, warm", w.Qoscope.Kind, q.N, w.DurationS)})
		}
	}
	if st := r.Steer; st != nil {
		for _, l := range st.Runs {
			if l.Server != "qoscope" || l.Error != "" {
				continue
			}
			src := fmt.Sprintf("steer step, wrk -c %d, %d requests, %d non-2xx", l.Connections, l.Requests, l.Non2xx+l.SocketErrors)
			out = append(out, Goal{Name: fmt.Sprintf("steering requests/s at %d connections", l.Connections), Unit: "requests/s",
				Goal: "≥ 25,000", Measured: l.RPS, Met: l.RPS >= st.GoalRPS && l.Non2xx+l.SocketErrors == 0, Source: src})
			out = append(out, Goal{Name: fmt.Sprintf("steering p99 at %d connections", l.Connections), Unit: "ms",
				Goal: fmt.Sprintf("≤ %g", st.GoalP99), Measured: l.P99Ms, Met: l.P99Ms <= st.GoalP99, Source: src})
		}
	}
	if a := r.Alerts; a != nil && a.Error == "" {
		for _, p := range a.Paths {
			if p.Latency.N == 0 {
				continue
			}
			out = append(out, Goal{Name: "alert notification p99, minute end → webhook (" + p.Name + ")", Unit: "s", Goal: fmt.Sprintf("≤ %g", a.GoalP99S),
				Measured: p.Latency.P99, Met: p.Latency.P99 <= a.GoalP99S && p.Missing == 0,
				Source: fmt.Sprintf("alerts step, %d users realtime, %d changes over %d minutes, %d missing", a.Users, p.Changes, a.Minutes, p.Missing)})
		}
	}
	if sc := r.Scores; sc != nil && sc.Error == "" {
		for _, l := range sc.Runs {
			// The goal is the API's (the replica); the all-in-one rows are in
			// the step's table, beside the pipeline's own CPU.
			if l.Server != "qoscope" || l.Setup != ScoresSetupReplica || l.Requests == 0 {
				continue
			}
			out = append(out, Goal{Name: "scores p99 at " + group(fmt.Sprint(int(sc.Rate))) + " requests/s, " + l.Kind + " (" + l.Setup + ")", Unit: "ms", Goal: fmt.Sprintf("≤ %g", sc.GoalP99),
				Measured: l.P99Ms, Met: l.P99Ms <= sc.GoalP99 && l.Errors == 0,
				Source: fmt.Sprintf("scores step, open loop %s s, %d requests, %d errors", num(sc.DurationS), l.Requests, l.Errors)})
		}
	}
	r.Goals = out
}

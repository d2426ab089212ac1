package gen

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"

	"math/rand/v2"

	"github.com/qoscope/qoscope/internal/ipdb"
)

// IPTable is what the generator needs from the IP table: an address of a
// given province and ISP, and the location the table reports for it (so
// events carry exactly what ingest's enrichment would fill in).
// *ipdb.Table implements it.
type IPTable interface {
	Sample(country, province, isp string, r *rand.Rand) (netip.Addr, bool)
	Lookup(ip netip.Addr) (ipdb.Location, bool)
}

// Random stream kinds (see newRand).
const (
	randUser   = 1
	randStream = 2
)

// world is the static part of a simulation: who exists and where. It is
// built once from the scenario and never changes while simulating.
type world struct {
	sc        *Scenario
	users     []user
	streams   []stream
	vendors   []vendor
	qualities []Quality
	originQ   int // index of the quality tier named "origin", -1 if none
	lines     []OriginLine

	provinces []string
	isps      []string // every ISP name used, in first-seen order
	// nodes[v][region][k] is edge node k of vendor v in region (province×ISP).
	nodes [][][]string
	// vendorW[region] is the default vendor weight vector of a region.
	vendorW     [][]float64
	streamPick  picker
	qualityPick picker

	incidents []incident
}

type vendor struct {
	Vendor
	maxKbps float64 // scaled to the run's users
	// regionStallX[region] multiplies the stall rate there.
	regionStallX []float64
}

type stream struct {
	id    string
	idx   int
	host  int // user index of the host
	r     *rand.Rand
	next  []int64 // next origin_stats time per line
	lineE []lineEvent
}

// lineEvent is the prebuilt origin_stats identity of one stream×line.
type lineEvent struct {
	node, line, egress string
}

func regionOf(pi, ii, nISP int) int { return pi*nISP + ii }

// buildWorld lays out users, rooms and vendors. users overrides the
// scenario's count (capacities scale with it).
func buildWorld(sc *Scenario, users int, seed uint64, table IPTable, geo bool) (*world, error) {
	w := &world{sc: sc, qualities: sc.Qualities, lines: sc.Origin.Lines, originQ: -1}
	for i, q := range sc.Qualities {
		if q.Name == "origin" {
			w.originQ = i
		}
	}
	ispIndex := map[string]int{}
	addISP := func(n string) int {
		if i, ok := ispIndex[n]; ok {
			return i
		}
		ispIndex[n] = len(w.isps)
		w.isps = append(w.isps, n)
		return len(w.isps) - 1
	}
	for _, x := range sc.ISPs {
		addISP(x.Name)
	}
	provIndex := map[string]int{}
	for i, p := range sc.Provinces {
		provIndex[p.Name] = i
		w.provinces = append(w.provinces, p.Name)
		for _, x := range p.ISPs {
			addISP(x.Name)
		}
	}
	for _, v := range sc.Vendors {
		for _, r := range v.Regions {
			if r.ISP != "" {
				addISP(r.ISP)
			}
		}
	}
	nISP := len(w.isps)
	nRegion := len(w.provinces) * nISP

	// Vendors: default shares, regional overrides, capacities and nodes.
	scale := float64(users) / float64(sc.Users)
	w.vendorW = make([][]float64, nRegion)
	for reg := range w.vendorW {
		w.vendorW[reg] = make([]float64, len(sc.Vendors))
	}
	for vi, v := range sc.Vendors {
		vs := vendor{Vendor: v, maxKbps: v.MaxMbps * 1000 * scale, regionStallX: make([]float64, nRegion)}
		for reg := range nRegion {
			w.vendorW[reg][vi] = v.Share
			vs.regionStallX[reg] = 1
		}
		for _, r := range v.Regions {
			for pi := range w.provinces {
				if r.Province != "" && r.Province != w.provinces[pi] {
					continue
				}
				for ii := range w.isps {
					if r.ISP != "" && r.ISP != w.isps[ii] {
						continue
					}
					reg := regionOf(pi, ii, nISP)
					w.vendorW[reg][vi] = r.Share
					if r.StallRateX != nil {
						vs.regionStallX[reg] = *r.StallRateX
					}
				}
			}
		}
		w.vendors = append(w.vendors, vs)
		nodes := make([][]string, nRegion)
		for pi, p := range w.provinces {
			for ii, isp := range w.isps {
				reg := regionOf(pi, ii, nISP)
				for k := 1; k <= v.NodesPerRegion; k++ {
					nodes[reg] = append(nodes[reg], fmt.Sprintf("%s-%s-%s-%02d", v.Name, p, isp, k))
				}
			}
		}
		w.nodes = append(w.nodes, nodes)
	}
	for reg, ws := range w.vendorW {
		sum := 0.0
		for _, x := range ws {
			sum += x
		}
		if sum <= 0 {
			pi, ii := reg/nISP, reg%nISP
			return nil, fmt.Errorf("vendors: every vendor has share 0 in %s/%s", w.provinces[pi], w.isps[ii])
		}
	}

	// Rooms: popularity and on-mic line-up.
	sw := make([]float64, sc.Streams.Count)
	for i := range sw {
		sw[i] = 1 / math.Pow(float64(i+1), sc.Streams.Zipf)
	}
	w.streamPick = newPicker(sw)
	w.qualityPick = newPicker(weightsOf(qualityWeights(sc.Qualities)))
	width := max(4, len(strconv.Itoa(sc.Streams.Count)))
	cohostW := make([]float64, len(sc.Streams.Cohosts))
	for i, c := range sc.Streams.Cohosts {
		cohostW[i] = c.Weight
	}
	var cohostPick picker
	if len(cohostW) > 0 {
		cohostPick = newPicker(cohostW)
	}
	type onMic struct {
		room int
		role string
	}
	var mics []onMic
	for i := range sc.Streams.Count {
		st := stream{
			id:  fmt.Sprintf("%s%0*d", sc.Streams.IDPrefix, width, i+1),
			idx: i,
			r:   newRand(seed, randStream, uint64(i)),
		}
		st.host = len(mics)
		mics = append(mics, onMic{i, "host"})
		if len(cohostW) > 0 {
			for range sc.Streams.Cohosts[cohostPick.pick(st.r)].Count {
				mics = append(mics, onMic{i, "cohost"})
			}
		}
		for _, l := range sc.Origin.Lines {
			// Lines report at their own phase, like independent agents.
			st.next = append(st.next, int64(st.r.IntN(int(sc.OriginInterval.Milliseconds()))))
			st.lineE = append(st.lineE, lineEvent{node: l.Node, line: l.Name, egress: l.EgressISP})
		}
		w.streams = append(w.streams, st)
	}
	if len(mics) > users {
		return nil, fmt.Errorf("users: %d is fewer than the %d hosts and co-hosts of %d rooms (streams.count)", users, len(mics), sc.Streams.Count)
	}

	// Every province×ISP users may be drawn from must exist in the IP
	// table, checked up front so the error does not depend on the seed.
	probe := rand.New(rand.NewPCG(1, 2))
	for _, p := range sc.Provinces {
		list := sc.ISPs
		if p.ISPs != nil {
			list = p.ISPs
		}
		for _, x := range list {
			if p.Weight > 0 && x.Weight > 0 {
				if _, ok := table.Sample(sc.Country, p.Name, x.Name, probe); !ok {
					return nil, fmt.Errorf("provinces: the IP table has no %s/%s/%s addresses (use the table's canonical names, e.g. guangdong, telecom)", sc.Country, p.Name, x.Name)
				}
			}
		}
	}

	// Users: region, IP, platform, version.
	provPick := newPicker(provinceWeights(sc.Provinces))
	defaultISP := newPicker(weightsOf(sc.ISPs))
	ispPicks := make([]picker, len(sc.Provinces))
	ispNames := make([][]string, len(sc.Provinces))
	for i, p := range sc.Provinces {
		list := sc.ISPs
		if p.ISPs != nil {
			list = p.ISPs
		}
		ispPicks[i] = newPicker(weightsOf(list))
		if p.ISPs == nil {
			ispPicks[i] = defaultISP
		}
		for _, x := range list {
			ispNames[i] = append(ispNames[i], x.Name)
		}
	}
	platPick := newPicker(weightsOf(platformWeights(sc.Platforms)))
	verPicks := make([]picker, len(sc.Platforms))
	for i, p := range sc.Platforms {
		verPicks[i] = newPicker(weightsOf(p.Versions))
	}
	uw := len(strconv.Itoa(users - 1))
	w.users = make([]user, users)
	for i := range w.users {
		u := &w.users[i]
		u.idx = i
		u.r = newRand(seed, randUser, uint64(i))
		r := u.r
		pi := provPick.pick(r)
		isp := ispNames[pi][ispPicks[pi].pick(r)]
		ii := ispIndex[isp]
		u.region = regionOf(pi, ii, nISP)
		addr, ok := table.Sample(sc.Country, w.provinces[pi], isp, r)
		if !ok {
			return nil, fmt.Errorf("provinces: the IP table has no %s/%s/%s addresses", sc.Country, w.provinces[pi], isp)
		}
		u.province, u.isp = w.provinces[pi], isp
		loc, _ := table.Lookup(addr)
		pl := platPick.pick(r)
		t := &u.tmpl
		t.V = 1
		t.UserID = "u" + pad(i, max(uw, 7))
		t.IP = addr.String()
		if geo {
			t.Country, t.Province, t.City, t.ISP = loc.Country, loc.Province, loc.City, loc.ISP
		}
		t.Platform = sc.Platforms[pl].Name
		t.ClientVersion = sc.Platforms[pl].Versions[verPicks[pl].pick(r)].Name
		t.Role = "audience"
		u.room = -1
		if i < len(mics) {
			u.room = mics[i].room
			u.onMic = true
			t.Role = mics[i].role
		}
	}

	for _, in := range sc.Incidents {
		ri, err := w.compileIncident(in)
		if err != nil {
			return nil, err
		}
		w.incidents = append(w.incidents, ri)
	}
	return w, nil
}

func pad(i, width int) string {
	s := strconv.Itoa(i)
	for len(s) < width {
		s = "0" + s
	}
	return s
}

func qualityWeights(qs []Quality) []Weighted {
	out := make([]Weighted, len(qs))
	for i, q := range qs {
		out[i] = Weighted{q.Name, q.Weight}
	}
	return out
}

func platformWeights(ps []Platform) []Weighted {
	out := make([]Weighted, len(ps))
	for i, p := range ps {
		out[i] = Weighted{p.Name, p.Weight}
	}
	return out
}

func provinceWeights(ps []Province) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = p.Weight
	}
	return out
}

// streamIndex resolves a stream id of the scenario to its room.
func (w *world) streamIndex(id string) (int, bool) {
	for i := range w.streams {
		if w.streams[i].id == id {
			return i, true
		}
	}
	return -1, false
}

// incident is a compiled Incident: names resolved to indexes, times in ms
// relative to the start.
type incident struct {
	from, to int64
	kind     int
	vendor   int    // -1: any
	province string // "": any
	isp      string
	stream   int // -1: any
	line     string
	src      Incident
}

const (
	incCDN = iota
	incBitrate
	incPush
	incSilent
)

func (w *world) compileIncident(in Incident) (incident, error) {
	ri := incident{from: in.From.Milliseconds(), to: in.To.Milliseconds(), vendor: -1, stream: -1, src: in}
	stream := func(id string) error {
		if id == "" {
			return nil
		}
		i, ok := w.streamIndex(id)
		if !ok {
			return fmt.Errorf("incident %q: stream %q does not exist (streams.count is %d: %s .. %s)", in.Name, id, len(w.streams), w.streams[0].id, w.streams[len(w.streams)-1].id)
		}
		ri.stream = i
		return nil
	}
	var err error
	switch {
	case in.CDNDegradation != nil:
		d := in.CDNDegradation
		ri.kind = incCDN
		for i, v := range w.vendors {
			if v.Name == d.Vendor {
				ri.vendor = i
			}
		}
		ri.province, ri.isp = d.Province, d.ISP
	case in.OriginBitrateDrop != nil:
		ri.kind = incBitrate
		ri.line = in.OriginBitrateDrop.Line
		err = stream(in.OriginBitrateDrop.Stream)
	case in.PushFailure != nil:
		d := in.PushFailure
		ri.kind = incPush
		ri.province, ri.isp = d.Province, d.ISP
		err = stream(d.Stream)
	case in.OriginSilent != nil:
		ri.kind = incSilent
		ri.line = in.OriginSilent.Line
		err = stream(in.OriginSilent.Stream)
	}
	return ri, err
}

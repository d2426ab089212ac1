package steer

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"
)

// benchAddrs returns n addresses spread over the synthetic IP table's
// blocks (every province and carrier, a few foreign and unknown ones).
func benchAddrs(b *testing.B, n int) []string {
	b.Helper()
	blocks := geo(b).Ranges()
	out := make([]string, 0, n)
	for i := 0; len(out) < n; i++ {
		bl := blocks[i%len(blocks)]
		a := bl.First.As4()
		a[3] = byte(1 + i%250)
		out = append(out, netip.AddrFrom4(a).String()+":4000")
	}
	return out
}

// BenchmarkAppendManifest: region lookup, draw and manifest of the pure
// core, over the 136 regions of the synthetic table and 4,096 sessions.
func BenchmarkAppendManifest(b *testing.B) {
	s := Compile(benchTable(), nil)
	keys := make([]regionKey, 0, len(s.regions))
	for k := range s.regions {
		keys = append(keys, k)
	}
	reqs := make([]Request, 4096)
	for i := range reqs {
		k := keys[i%len(keys)]
		reqs[i] = Request{Kind: Kind(i % 2), TTL: 300, Session: fmt.Sprintf("%016x", uint64(i)*0x9e3779b97f4a7c15), Province: k.province, ISP: k.isp}
	}
	buf := make([]byte, 0, 512)
	var n int
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		buf, _ = s.AppendManifest(buf[:0], &reqs[i&4095])
		n += len(buf)
	}
	b.SetBytes(int64(n / max(b.N, 1)))
}

// BenchmarkHandler: a whole request in the handler (no network): the
// client address → region in the IP table → draw → manifest → headers,
// over 4,096 addresses of the synthetic IP table and as many sessions.
func BenchmarkHandler(b *testing.B) {
	h := newTestHandler(b, DefaultConfig(), benchTable(), testAt, &clock{testAt.Add(time.Second)})
	addrs := benchAddrs(b, 4096)
	rs := make([]*http.Request, len(addrs))
	for i, a := range addrs {
		kind := "hls"
		if i%2 == 1 {
			kind = "dash"
		}
		rs[i] = httptest.NewRequest(http.MethodGet, fmt.Sprintf("/steer/%s?session=%016x", kind, uint64(i)*0x9e3779b97f4a7c15), nil)
		rs[i].RemoteAddr = a
	}
	w := &fakeRW{h: http.Header{}}
	h.ServeHLS(w, rs[0])
	w.n = 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		clear(w.h)
		r := rs[i&4095]
		if i&1 == 0 {
			h.ServeHLS(w, r)
		} else {
			h.ServeDASH(w, r)
		}
	}
	b.SetBytes(int64(w.n / max(b.N, 1)))
}

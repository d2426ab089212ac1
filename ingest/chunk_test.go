package ingest

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/schemas"
)

// Events are enriched in chunks, and check errors (wrong endpoint, future
// ts) surface only when a chunk is flushed, after parse errors of later
// lines: the response must still list every error once, in line order, and
// the records must keep line order, across several chunks.
func TestDecodeChunksKeepLineOrder(t *testing.T) {
	var calls, looked int
	geo := func(ips []netip.Addr, locs []Location, found []bool) {
		calls++
		looked += len(ips)
		for i, ip := range ips {
			// 10.0.x.y is known, as province "p<x>"; anything else is not.
			found[i] = ip.Is4() && ip.As4()[0] == 10
			a := ip.As16()
			if found[i] {
				locs[i] = Location{Country: "cn", Province: fmt.Sprintf("p%d", a[14]), City: "c", ISP: "telecom"}
			}
		}
	}
	d := testDecoder(t, geo)
	now := ms(testNow)
	const n = 200
	want := map[int]string{} // line → field of the expected error
	var body strings.Builder
	for line := 1; line <= n; line++ {
		ev := clientEvent("heartbeat", fmt.Sprintf("u%d", line), now)
		ip := fmt.Sprintf("10.0.%d.1", line%250)
		switch line {
		case 3, 70: // future: a check error, reported at flush
			ev = clientEvent("heartbeat", "u", now+time.Hour.Milliseconds())
			want[line] = "ts"
		case 65, 130: // not JSON: a parse error, reported at once
			ev = "{nope"
			want[line] = ""
		case 129: // a CDN event on the client endpoint: a check error
			ev = cdnEvent("v", "n", now)
			want[line] = "type"
		case 150: // an address the table does not know
			ip = "192.0.2.1"
		case 151: // IPv6: looked up, not found (the table is IPv4 only)
			ip = "2001:db8::1"
		case 152: // the sender's province wins over the table's
			ev = strings.Replace(ev, `"user_id"`, `"province":"mine","user_id"`, 1)
		}
		ev = strings.Replace(ev, `"user_id"`, fmt.Sprintf(`"ip":%q,"user_id"`, ip), 1)
		body.WriteString(ev + "\n")
	}
	var b Batch
	if err := d.Decode(schemas.SourceClient, []byte(body.String()), now, &b); err != nil {
		t.Fatal(err)
	}
	if b.Lines != n || b.Accepted() != n-len(want) || len(b.Errors) != len(want) {
		t.Fatalf("lines %d accepted %d errors %d, want %d %d %d", b.Lines, b.Accepted(), len(b.Errors), n, n-len(want), len(want))
	}
	for i, e := range b.Errors {
		field, ok := want[e.Line]
		if !ok || e.Field != field || (i > 0 && e.Line <= b.Errors[i-1].Line) {
			t.Fatalf("error %d: line %d field %q (want one of %v, ascending)", i, e.Line, e.Field, want)
		}
	}
	prev := 0
	for i := 0; i < b.Accepted(); i++ {
		line, _, val := b.Record(i)
		if line <= prev || want[line] != "" || line == 65 || line == 130 {
			t.Fatalf("record %d is line %d after %d", i, line, prev)
		}
		prev = line
		v := decodeValue(t, val)
		var wantProv any = fmt.Sprintf("p%d", line%250)
		switch line {
		case 150, 151:
			wantProv = nil // not enriched: the field stays absent
		case 152:
			wantProv = "mine"
		}
		if v["province"] != wantProv || v["recv_ts"] != float64(now) {
			t.Fatalf("line %d: province %v recv_ts %v, want %v", line, v["province"], v["recv_ts"], wantProv)
		}
	}
	// Every accepted event was looked up, in batches of at most
	// chunkEvents: 200 lines make 4 chunks.
	if looked != n-len(want) || calls != (n+chunkEvents-1)/chunkEvents {
		t.Fatalf("geo called %d times for %d addresses", calls, looked)
	}
}

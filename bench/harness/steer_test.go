package harness

import "testing"

// wrk 4.1 --latency output, units as wrk prints them.
const wrkOut = `Running 15s test @ http://127.0.0.1:40123/
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   512.33us  301.10us   12.40ms   91.02%
    Req/Sec    30.12k     1.20k   33.00k    70.00%
  Latency Distribution
     50%  450.00us
     75%  600.00us
     90%  800.00us
     99%    1.75ms
  451234 requests in 15.00s, 150.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  30082.27
Transfer/sec:     10.00MB
`

func TestParseWrk(t *testing.T) {
	var l SteerLoad
	if err := parseWrk(wrkOut, &l); err != nil {
		t.Fatal(err)
	}
	if l.Requests != 451234 || l.RPS != 30082.27 || l.P50Ms != 0.45 || l.P75Ms != 0.6 || l.P90Ms != 0.8 || l.P99Ms != 1.75 ||
		l.MaxMs != 12.4 || l.Non2xx != 4 || l.SocketErrors != 3 {
		t.Fatalf("%+v", l)
	}
	if err := parseWrk("nothing", &SteerLoad{}); err == nil {
		t.Fatal("no error for output without numbers")
	}
}

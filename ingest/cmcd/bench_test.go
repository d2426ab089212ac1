package cmcd

import (
	"net/http"
	"testing"
	"time"
)

// reportCPU reports process CPU time per op ("cpu-ns/op") and requests per
// CPU-second, which stay meaningful when other processes share the cores.
func reportCPU(b *testing.B, start time.Duration) {
	if used := processCPU() - start; used > 0 && b.N > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(b.N)/used.Seconds(), "requests/cpu-s")
	}
}

func BenchmarkCMCD(b *testing.B) {
	b.Run("query_v1", func(b *testing.B) {
		b.SetBytes(int64(len(specQuery)))
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			d, err := Parse(specQuery)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := ToEvents(d, recv, "113.108.12.34"); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
	b.Run("headers_v2", func(b *testing.B) {
		h := http.Header{}
		h.Set("CMCD-Object", "br=(3200;v 128;a),ot=v")
		h.Set("CMCD-Request", "bl=(21300;v 3000;a),mtp=(48100),sta=p")
		h.Set("CMCD-Session", `cid="room-88231",sid="6e2fb550-c457-11e9-bb97-0800200c9a66",v=2,msd=950`)
		h.Set("CMCD-Status", `bsd=(2500;v),cdn="cdn-a",com.qoscope-uid="u-1001"`)
		size := 0
		for _, v := range h {
			size += len(v[0])
		}
		b.SetBytes(int64(size))
		b.ReportAllocs()
		cpu := processCPU()
		for b.Loop() {
			d, err := ParseHeaders(h)
			if err != nil {
				b.Fatal(err)
			}
			evs, err := ToEvents(d, recv, "113.108.12.34")
			if err != nil || len(evs) != 3 {
				b.Fatal(err, len(evs))
			}
		}
		reportCPU(b, cpu)
	})
}

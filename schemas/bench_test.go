package schemas

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/valyala/fastjson"
)

// benchLines are realistic lines by type; heartbeat is the bulk of traffic.
var benchLines = map[string]string{
	"heartbeat": `{"v":1,"type":"heartbeat","ts":"2026-11-23T12:00:05.250Z","user_id":"u-1001","session_id":"9b2f0c1e-7f4a-4c55-8e0b-2d6f1a9c3e77",` +
		`"stream_id":"room-88231","vendor":"cdnA","node":"edge-gz-03","ip":"113.108.12.34","platform":"android","client_version":"5.12.3",` +
		`"quality":"1080p","role":"audience","video_buffer_ms":3200,"audio_buffer_ms":3400,"bitrate_kbps":2800,"fps":29.97,"stalled":false}`,
	"play_start": `{"v":1,"type":"play_start","ts":1795435200120,"user_id":"u-1001","session_id":"9b2f0c1e-7f4a-4c55-8e0b-2d6f1a9c3e77",` +
		`"stream_id":"room-88231","vendor":"cdnA","node":"edge-gz-03","ip":"113.108.12.34","platform":"android","client_version":"5.12.3",` +
		`"quality":"1080p","role":"audience","ok":true,"connect_ms":180}`,
	"stall": `{"v":1,"type":"stall","ts":1795435210000,"user_id":"u-1001","session_id":"9b2f0c1e-7f4a-4c55-8e0b-2d6f1a9c3e77","stream_id":"room-88231",` +
		`"vendor":"cdnA","node":"edge-gz-03","ip":"113.108.12.34","platform":"ios","duration_ms":2300,"media":"video","role":"audience"}`,
	"cdn_request": `{"v":1,"type":"cdn_request","ts":"2026-11-23T12:00:01Z","vendor":"cdnA","node":"edge-gz-03","ip":"113.108.12.34",` +
		`"stream_id":"room-88231","status":200,"bytes":1048576,"ttfb_ms":35,"duration_ms":410}`,
	"origin_stats": `{"v":1,"type":"origin_stats","ts":1795435200000,"stream_id":"room-88231","node":"origin-bj-1","line":"primary",` +
		`"egress_isp":"telecom","bitrate_kbps":3000,"fps":30,"rtt_ms":12.5}`,
}

// reportCPU reports CPU time per op and the events per CPU-second it
// implies, the per-core throughput that a loaded machine's ns/op hides.
func reportCPU(b *testing.B, start time.Duration) {
	if used := processCPU() - start; used > 0 && b.N > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
		b.ReportMetric(float64(b.N)/used.Seconds(), "events/cpu-s")
	}
}

// benchMix is a client-heavy mix: 6 heartbeats, then one of each other kind.
var benchMix = []string{"heartbeat", "heartbeat", "heartbeat", "heartbeat", "heartbeat", "heartbeat",
	"play_start", "stall", "cdn_request", "origin_stats"}

func BenchmarkParseLine(b *testing.B) {
	run := func(b *testing.B, lines [][]byte) {
		size := 0
		for _, l := range lines {
			size += len(l)
		}
		b.SetBytes(int64(size / len(lines)))
		b.ReportAllocs()
		var e Event
		i := 0
		cpu := processCPU()
		for b.Loop() {
			if err := ParseLine(lines[i], &e); err != nil {
				b.Fatal(err)
			}
			if i++; i == len(lines) {
				i = 0
			}
		}
		reportCPU(b, cpu)
	}
	for _, name := range []string{"heartbeat", "play_start", "stall", "cdn_request", "origin_stats"} {
		b.Run(name, func(b *testing.B) { run(b, [][]byte{[]byte(benchLines[name])}) })
	}
	b.Run("mix", func(b *testing.B) {
		var lines [][]byte
		for _, n := range benchMix {
			lines = append(lines, []byte(benchLines[n]))
		}
		run(b, lines)
	})
	b.Run("testdata", func(b *testing.B) {
		data, err := os.ReadFile("testdata/events.ndjson")
		if err != nil {
			b.Fatal(err)
		}
		run(b, bytes.Split(bytes.TrimSpace(data), []byte("\n")))
	})
}

func BenchmarkAppendJSON(b *testing.B) {
	for _, name := range []string{"heartbeat", "cdn_request", "origin_stats"} {
		b.Run(name, func(b *testing.B) {
			var e Event
			if err := ParseLine([]byte(benchLines[name]), &e); err != nil {
				b.Fatal(err)
			}
			e.RecvTS = noon
			buf := AppendJSON(nil, &e)
			b.SetBytes(int64(len(buf)))
			b.ReportAllocs()
			cpu := processCPU()
			for b.Loop() {
				buf = AppendJSON(buf[:0], &e)
			}
			reportCPU(b, cpu)
		})
	}
}

func BenchmarkSplit(b *testing.B) {
	var nd, arr bytes.Buffer
	arr.WriteByte('[')
	for i := range 1000 {
		l := benchLines[benchMix[i%len(benchMix)]]
		nd.WriteString(l + "\n")
		if i > 0 {
			arr.WriteByte(',')
		}
		arr.WriteString(l)
	}
	arr.WriteByte(']')
	for name, body := range map[string][]byte{"ndjson": nd.Bytes(), "array": arr.Bytes()} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				n := 0
				_ = Split(body, func(int, []byte) bool { n++; return true })
				if n != 1000 {
					b.Fatal(n)
				}
			}
		})
	}
}

// Baselines, decode only (no validation, no time parsing), to show what the
// hand-written scanner saves: encoding/json into a struct and fastjson.
func BenchmarkBaseline(b *testing.B) {
	line := []byte(benchLines["heartbeat"])
	b.Run("encoding_json", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		var e struct {
			V                                                                                               int
			Type, TS, UserID, SessionID, StreamID, Vendor, Node, IP, Platform, ClientVersion, Quality, Role string
			VideoBufferMS                                                                                   int64 `json:"video_buffer_ms"`
			AudioBufferMS                                                                                   int64 `json:"audio_buffer_ms"`
			BitrateKbps, FPS                                                                                float64
			Stalled                                                                                         bool
		}
		cpu := processCPU()
		for b.Loop() {
			if err := json.Unmarshal(line, &e); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
	b.Run("fastjson", func(b *testing.B) {
		b.SetBytes(int64(len(line)))
		b.ReportAllocs()
		var p fastjson.Parser
		cpu := processCPU()
		for b.Loop() {
			v, err := p.ParseBytes(line)
			if err != nil {
				b.Fatal(err)
			}
			_ = v.GetStringBytes("user_id")
		}
		reportCPU(b, cpu)
	})
}

package allinone

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/qoscope/qoscope/ingest"
	"github.com/qoscope/qoscope/internal/logging"
	"github.com/qoscope/qoscope/internal/testenv"
	"github.com/qoscope/qoscope/query"
)

// TestPipelineEndToEnd sends events over HTTP to the all-in-one process and
// reads the minute back from the ClickHouse views: ingest → Kafka →
// aggregator → ClickHouse → query, on the real servers.
func TestPipelineEndToEnd(t *testing.T) {
	p := startPipeline(t, nil)
	ctx := context.Background()

	// Three viewers in the previous minute; u2 stalls for 2.5 s (a stall),
	// u3 for 1.9 s (not one). Expected by hand: users 3, stutter users 1,
	// stutter_rate_uv 1/3; plays 2 of which 1 ok → pull_connect_rate 0.5.
	w := time.Now().UTC().Truncate(time.Minute).Add(-time.Minute)
	ts := func(s int) int64 { return w.Add(time.Duration(s) * time.Second).UnixMilli() }
	lines := []string{
		fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":"u1","stream_id":"s1","stalled":false}`, ts(5)),
		fmt.Sprintf(`{"v":1,"type":"stall","ts":%d,"user_id":"u2","stream_id":"s1","duration_ms":2500,"media":"video"}`, ts(10)),
		fmt.Sprintf(`{"v":1,"type":"stall","ts":%d,"user_id":"u3","stream_id":"s1","duration_ms":1900,"media":"video"}`, ts(20)),
		fmt.Sprintf(`{"v":1,"type":"play_start","ts":%d,"user_id":"u1","stream_id":"s1","ok":true,"connect_ms":120}`, ts(1)),
		fmt.Sprintf(`{"v":1,"type":"play_start","ts":%d,"user_id":"u3","stream_id":"s1","ok":false,"error":"timeout"}`, ts(2)),
	}
	p.post(t, "client", lines)

	r := query.NewReader(p.ch.Conn)
	deadline := time.Now().Add(90 * time.Second)
	for {
		got, err := r.ClientTotals(ctx, w, w.Add(time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 1 && got[0].Users == 3 {
			m := got[0]
			if m.StutterRateUV == nil || *m.StutterRateUV != 1.0/3 {
				t.Errorf("stutter_rate_uv = %v, want 1/3", m.StutterRateUV)
			}
			if m.PullConnectRate == nil || *m.PullConnectRate != 0.5 {
				t.Errorf("pull_connect_rate = %v, want 0.5", m.PullConnectRate)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("minute %s not visible with 3 users after 90 s: %+v", w.Format(time.TimeOnly), got)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// TestShutdownDrainsInflightUpload stops the all-in-one process while an
// upload is in flight (its body half sent): the upload is still answered
// 200 and its events are in ClickHouse once the process has returned,
// because ingest drains before the aggregator stops (stop.go).
func TestShutdownDrainsInflightUpload(t *testing.T) {
	kafka := testenv.Kafka(t)
	ch := testenv.ClickHouse(t)

	const token = "e2e-token-0123456789abcdef"
	const scrape = "e2e-scrape-0123456789abcdef"
	cfg := DefaultConfig()
	cfg.Kafka = kafka.Config()
	cfg.ClickHouse = ch.Config()
	cfg.Listen = "127.0.0.1:0"
	cfg.Tokens = []ingest.TokenConfig{
		{Name: "e2e", Token: token, Sources: []string{"client"}},
		{Name: "scrape", Token: scrape, Sources: []string{"metrics"}},
	}
	cfg.Producer.Partitions = testenv.DefaultPartitions
	cfg.Aggregator.GroupID = kafka.GroupID("agg-drain")
	cfg.Aggregator.FlushInterval = time.Second
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, cfg, logging.New(io.Discard, cfg.Log), Options{Stdout: io.Discard, Stderr: io.Discard, Ready: ready})
	}()
	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("all-in-one stopped before ready: %v", err)
	}
	base := "http://" + addr.String()

	// Two viewers in the previous minute, sent in one upload whose second
	// line is held back until the stop has begun.
	w := time.Now().UTC().Truncate(time.Minute).Add(-time.Minute)
	ts := w.Add(30 * time.Second).UnixMilli()
	line1 := fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":"d1","stream_id":"drain","stalled":false}`+"\n", ts)
	line2 := fmt.Sprintf(`{"v":1,"type":"heartbeat","ts":%d,"user_id":"d2","stream_id":"drain","stalled":false}`+"\n", ts)
	pr, pw := io.Pipe()
	type result struct {
		status int
		body   string
		err    error
	}
	res := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, base+"/v1/events/client", pr)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			res <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		res <- result{status: resp.StatusCode, body: string(b)}
	}()
	if _, err := pw.Write([]byte(line1)); err != nil {
		t.Fatal(err)
	}
	// In flight: /metrics counts the upload and the scrape itself.
	noKeepAlive := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for {
		req, _ := http.NewRequest(http.MethodGet, base+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+scrape)
		resp, err := noKeepAlive.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), "\nqoscope_ingest_http_inflight_requests 2\n") {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	// The stop has begun once /readyz says so or the listener is closed.
	for {
		resp, err := noKeepAlive.Get(base + "/readyz")
		if err != nil {
			break
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := pw.Write([]byte(line2)); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	r := <-res
	if r.err != nil || r.status != http.StatusOK || !strings.Contains(r.body, `"accepted":2`) {
		t.Fatalf("in-flight upload: %+v", r)
	}
	if err := <-done; err != nil {
		t.Fatalf("all-in-one did not stop cleanly: %v", err)
	}
	// Read right after the process returned, without waiting: the rows
	// must already be there.
	got, err := query.NewReader(ch.Conn).ClientTotals(context.Background(), w, w.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Users != 2 {
		t.Fatalf("minute %s after the stop: %+v, want 2 users", w.Format(time.TimeOnly), got)
	}
}

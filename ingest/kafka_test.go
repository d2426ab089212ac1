package ingest

// End-to-end tests of the produce path with the real kafka-go writer: each
// scenario runs against franz-go's in-process kfake broker (always) and
// against the real Apache Kafka of testenv (QOSCOPE_KAFKA_BROKERS; skipped
// with a reason when absent, failing instead under
// QOSCOPE_REQUIRE_INTEGRATION=1).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/internal/testenv"
)

// kenv is a Kafka to test against.
type kenv struct {
	name       string
	kafka      config.Kafka
	partitions int
	fake       *kfake.Cluster // nil for the real broker
}

func fakeKafka(t testing.TB) kenv {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatalf("kfake: %v", err)
	}
	t.Cleanup(c.Close)
	k := config.DefaultKafka()
	k.Brokers = c.ListenAddrs()
	k.DialTimeout = 5 * time.Second
	return kenv{name: "kfake", kafka: k, partitions: 3, fake: c}
}

func realKafka(t testing.TB) kenv {
	t.Helper()
	e := testenv.Kafka(t)
	return kenv{name: "kafka", kafka: e.Config(), partitions: e.Partitions}
}

// forEachKafka runs fn against kfake and the real broker.
func forEachKafka(t *testing.T, fn func(t *testing.T, k kenv)) {
	t.Run("kfake", func(t *testing.T) { fn(t, fakeKafka(t)) })
	t.Run("kafka", func(t *testing.T) { fn(t, realKafka(t)) })
}

// kafkaServer is an ingest server with the real Kafka producer, served over
// real HTTP.
func kafkaServer(t testing.TB, k kenv, edit func(*Config)) (*Server, string) {
	t.Helper()
	cfg := testConfig()
	cfg.Kafka = k.kafka
	cfg.Producer.Partitions = k.partitions
	if edit != nil {
		edit(&cfg)
	}
	s, err := NewServer(cfg, Deps{})
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := s.EnsureTopics(ctx); err != nil {
		t.Fatalf("EnsureTopics: %v", err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(func() {
		hs.Close()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, hs.URL
}

type httpReply struct {
	status int
	header http.Header
	resp   response
	body   string
}

func send(t testing.TB, url, path, token string, body []byte, hdr map[string]string) httpReply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", path, err)
	}
	defer res.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(res.Body)
	r := httpReply{status: res.StatusCode, header: res.Header, body: buf.String()}
	if res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(buf.Bytes(), &r.resp); err != nil {
			t.Fatalf("POST %s: bad body %q", path, buf.String())
		}
	}
	return r
}

// recordCount is the exact number of records in topic: the sum of its
// partitions' end offsets (topics are fresh and never truncated).
func recordCount(t testing.TB, k kenv, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(k.kafka.Brokers...), Timeout: 30 * time.Second}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
		t.Fatalf("metadata of %s: %v %+v", topic, err, md)
	}
	var reqs []kafka.OffsetRequest
	for _, p := range md.Topics[0].Partitions {
		reqs = append(reqs, kafka.LastOffsetOf(p.ID))
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		t.Fatalf("list offsets of %s: %v", topic, err)
	}
	n := 0
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("offsets of %s/%d: %v", topic, po.Partition, po.Error)
		}
		n += int(po.LastOffset)
	}
	return n
}

// consume reads every record of topic (recordCount of them).
func consume(t testing.TB, k kenv, topic string) []*kgo.Record {
	t.Helper()
	n := recordCount(t, k, topic)
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.kafka.Brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	var recs []*kgo.Record
	for len(recs) < n {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s: %v", len(recs), n, topic, ctx.Err())
		}
		fs.EachError(func(topic string, p int32, err error) { t.Fatalf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) { recs = append(recs, r) })
	}
	return recs
}

// wantPartition is where a keyed record must land: murmur2(key) mod
// partitions, the Java client's default partitioner.
func wantPartition(key []byte, partitions int) int {
	ps := make([]int, partitions)
	for i := range ps {
		ps[i] = i
	}
	return (&kafka.Murmur2Balancer{}).Balance(kafka.Message{Key: key}, ps...)
}

func TestKafkaMixedEvents(t *testing.T) {
	forEachKafka(t, func(t *testing.T, k kenv) {
		total := 100_000
		if k.fake != nil {
			total = 20_000 // the in-process broker keeps everything in memory
		}
		mixedEventsScenario(t, k, total)
	})
}

// mixedEventsScenario sends total valid events, 70% client, 20% CDN, 10%
// origin, in concurrent requests of 500 and checks every one arrives once,
// in its topic, with its key, in the key's partition.
func mixedEventsScenario(t *testing.T, k kenv, total int) {
	s, url := kafkaServer(t, k, nil)
	now := time.Now().UnixMilli()
	type req struct {
		path, token string
		body        []byte
		n           int
	}
	var reqs []req
	counts := map[string]int{}
	const per = 500
	for seq := 0; seq < total; {
		var b bytes.Buffer
		var path, tok, src string
		switch (seq / per) % 10 {
		case 0, 1:
			path, tok, src = "/v1/events/cdn", tokCDN, "cdn"
		case 2:
			path, tok, src = "/v1/events/origin", tokOrigin, "origin"
		default:
			path, tok, src = "/v1/events/client", tokSDK, "client"
		}
		n := 0
		for ; n < per && seq < total; n, seq = n+1, seq+1 {
			var line string
			switch src {
			case "client":
				line = clientEvent(clientTypes[seq%len(clientTypes)], fmt.Sprintf("user-%d", seq%997), now)
			case "cdn":
				line = cdnEvent(fmt.Sprintf("vendor%d", seq%3), fmt.Sprintf("node-%d", seq%41), now)
			case "origin":
				line = originEvent(fmt.Sprintf("stream-%d", seq%53), now)
			}
			// An unknown member: preserved, and it identifies the event.
			b.WriteString(strings.TrimSuffix(line, "}") + fmt.Sprintf(`,"seq":%d}`+"\n", seq))
		}
		counts[src] += n
		reqs = append(reqs, req{path, tok, b.Bytes(), n})
	}

	var wg sync.WaitGroup
	work := make(chan req)
	errs := make(chan string, len(reqs))
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				rep := send(t, url, r.path, r.token, r.body, nil)
				if rep.status != 200 || rep.resp.Accepted != r.n || rep.resp.Rejected != 0 {
					errs <- fmt.Sprintf("%s: %d %s", r.path, rep.status, rep.body)
				}
			}
		}()
	}
	for _, r := range reqs {
		work <- r
	}
	close(work)
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Fatal(e)
	}

	seen := make([]bool, total)
	topics := map[string]string{"client": s.cfg.Kafka.Topics.Client, "cdn": s.cfg.Kafka.Topics.CDN, "origin": s.cfg.Kafka.Topics.Origin}
	for src, topic := range topics {
		recs := consume(t, k, topic)
		if len(recs) != counts[src] {
			t.Fatalf("%s: %d records, want %d", topic, len(recs), counts[src])
		}
		for _, r := range recs {
			var v struct {
				Seq      int    `json:"seq"`
				Type     string `json:"type"`
				UserID   string `json:"user_id"`
				Vendor   string `json:"vendor"`
				Node     string `json:"node"`
				StreamID string `json:"stream_id"`
				RecvTS   int64  `json:"recv_ts"`
			}
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatalf("%s: bad value %q", topic, r.Value)
			}
			if seen[v.Seq] {
				t.Fatalf("event seq %d twice", v.Seq)
			}
			seen[v.Seq] = true
			var wantKey string
			switch src {
			case "client":
				wantKey = v.UserID
			case "cdn":
				wantKey = v.Vendor + "/" + v.Node
			case "origin":
				wantKey = v.StreamID
			}
			if string(r.Key) != wantKey || wantKey == "" || wantKey == "/" {
				t.Fatalf("%s seq %d: key %q, want %q", topic, v.Seq, r.Key, wantKey)
			}
			if p := wantPartition(r.Key, k.partitions); int(r.Partition) != p {
				t.Fatalf("%s key %q in partition %d, want %d", topic, r.Key, r.Partition, p)
			}
			if v.RecvTS < now-60_000 || v.RecvTS > time.Now().UnixMilli() {
				t.Fatalf("recv_ts %d not stamped", v.RecvTS)
			}
		}
	}
	for seq, ok := range seen {
		if !ok {
			t.Fatalf("event seq %d lost", seq)
		}
	}
	if n := recordCount(t, k, s.cfg.Kafka.Topics.DeadLetter); n != 0 {
		t.Fatalf("%d dead letters for valid events", n)
	}
}

func TestKafkaBadLines(t *testing.T) {
	forEachKafka(t, func(t *testing.T, k kenv) {
		s, url := kafkaServer(t, k, nil)
		now := time.Now().UnixMilli()
		var lines []string
		for i := 1; i <= 1000; i++ {
			switch i {
			case 100:
				lines = append(lines, `{"v":1,"type":"heartbeat",`) // truncated JSON
			case 500:
				lines = append(lines, strings.Replace(clientEvent("stall", "u500", now), `"media":"video"`, `"media":"smell"`, 1))
			case 900:
				lines = append(lines, clientEvent("dns", "u900", now+time.Hour.Milliseconds()))
			default:
				lines = append(lines, clientEvent(clientTypes[i%len(clientTypes)], fmt.Sprintf("u%d", i), now))
			}
		}
		r := send(t, url, "/v1/events/client", tokSDK, []byte(strings.Join(lines, "\n")), nil)
		if r.status != 200 || r.resp.Accepted != 997 || r.resp.Rejected != 3 || len(r.resp.Errors) != 3 {
			t.Fatalf("got %d %s", r.status, r.body)
		}
		want := []struct {
			line  int
			field string
		}{{100, ""}, {500, "media"}, {900, "ts"}}
		for i, w := range want {
			e := r.resp.Errors[i]
			if e.Line != w.line || e.Field != w.field || e.Reason == "" {
				t.Errorf("error %d = %+v, want line %d field %q", i, e, w.line, w.field)
			}
		}
		if got := r.resp.Errors[2].Reason; got != "ts is 1h0m0s ahead of the server clock, more than the allowed 5m0s (max_future_skew)" &&
			!strings.HasPrefix(got, "ts is 59m59.") { // the receive clock may tick between now and the request
			t.Errorf("future reason %q", got)
		}
		if n := len(consume(t, k, s.cfg.Kafka.Topics.Client)); n != 997 {
			t.Fatalf("client topic has %d records, want 997", n)
		}
		dls := consume(t, k, s.cfg.Kafka.Topics.DeadLetter)
		if len(dls) != 3 {
			t.Fatalf("dead-letter topic has %d records, want 3", len(dls))
		}
		got := map[int]DeadLetter{}
		for _, rec := range dls {
			d := decodeDeadLetter(t, rec.Value)
			got[d.Line] = d
		}
		for i, w := range want {
			d, ok := got[w.line]
			if !ok || d.Field != w.field || d.Reason != r.resp.Errors[i].Reason || d.Raw != lines[w.line-1] || d.Token != "sdk" || d.Source != "client" {
				t.Errorf("dead letter for line %d: %+v", w.line, d)
			}
		}
	})
}

func TestKafkaCompressedBodies(t *testing.T) {
	forEachKafka(t, func(t *testing.T, k kenv) {
		s, url := kafkaServer(t, k, nil)
		now := time.Now().UnixMilli()
		var b bytes.Buffer
		for i := 0; i < 300; i++ {
			b.WriteString(cdnEvent("v", fmt.Sprintf("n%d", i), now) + "\n")
		}
		for _, enc := range []struct {
			name string
			data []byte
		}{{"gzip", gzipBytes(t, b.Bytes())}, {"zstd", zstdBytes(t, b.Bytes())}} {
			r := send(t, url, "/v1/events/cdn", tokCDN, enc.data, map[string]string{"Content-Encoding": enc.name})
			if r.status != 200 || r.resp.Accepted != 300 {
				t.Fatalf("%s: %d %s", enc.name, r.status, r.body)
			}
		}
		if n := len(consume(t, k, s.cfg.Kafka.Topics.CDN)); n != 600 {
			t.Fatalf("cdn topic has %d records, want 600", n)
		}
	})
}

// TestKafkaRejectedRequestsWriteNothing: 401, 403 and 413 leave the topics
// untouched; a marker request sent afterwards is the only record.
func TestKafkaRejectedRequestsWriteNothing(t *testing.T) {
	forEachKafka(t, func(t *testing.T, k kenv) {
		s, url := kafkaServer(t, k, func(c *Config) { c.Limits.MaxBodyBytes = 64 << 10 })
		now := time.Now().UnixMilli()
		ev := []byte(clientEvent("dns", "x", now))
		if r := send(t, url, "/v1/events/client", "", ev, nil); r.status != 401 || r.header.Get("WWW-Authenticate") == "" {
			t.Fatalf("no token: %d", r.status)
		}
		if r := send(t, url, "/v1/events/client", "wrong-token-wrong-token", ev, nil); r.status != 401 {
			t.Fatalf("wrong token: %d", r.status)
		}
		if r := send(t, url, "/v1/events/client", tokCDN, ev, nil); r.status != 403 {
			t.Fatalf("cdn token: %d", r.status)
		}
		big := bytes.Repeat(append(ev, '\n'), (64<<10)/len(ev)+1)
		if r := send(t, url, "/v1/events/client", tokSDK, big, nil); r.status != 413 || !strings.Contains(r.body, "max_body_bytes") {
			t.Fatalf("big: %d %s", r.status, r.body)
		}
		if r := send(t, url, "/v1/events/client", tokSDK, []byte(clientEvent("dns", "marker", now)), nil); r.status != 200 {
			t.Fatalf("marker: %d %s", r.status, r.body)
		}
		recs := consume(t, k, s.cfg.Kafka.Topics.Client)
		if len(recs) != 1 || string(recs[0].Key) != "marker" {
			t.Fatalf("client topic holds %d records (first key %q), want only the marker", len(recs), recs[0].Key)
		}
		if n := recordCount(t, k, s.cfg.Kafka.Topics.DeadLetter); n != 0 {
			t.Fatalf("%d dead letters", n)
		}
	})
}

// closedPort returns a loopback address that refuses connections.
func closedPort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestKafkaUnreachable: "Kafka stopped" is simulated by a broker address
// whose port refuses connections (nothing listens there).
func TestKafkaUnreachable(t *testing.T) {
	cfg := testConfig()
	cfg.Kafka.Brokers = []string{closedPort(t)}
	cfg.Kafka.DialTimeout = time.Second
	cfg.Producer.ProduceTimeout = 3 * time.Second
	s, err := NewServer(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.EnsureTopics(ctx); err == nil || !strings.Contains(err.Error(), "cannot create ingest topics") {
		t.Fatalf("EnsureTopics: %v, want a clear error", err)
	}
	hs := httptest.NewServer(s.Handler())
	defer hs.Close()
	r := send(t, hs.URL, "/v1/events/client", tokSDK, []byte(clientEvent("dns", "u", time.Now().UnixMilli())+"\nbad"), nil)
	if r.status != 503 || r.header.Get("Retry-After") != "5" || !strings.Contains(r.body, `"accepted":0`) {
		t.Fatalf("got %d Retry-After=%q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	res, err := http.Get(hs.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 503 {
		t.Fatalf("readyz: %d", res.StatusCode)
	}
}

// TestKafkaStoppedAfterStart: the broker goes away while ingest runs (a
// kfake cluster is Closed): requests get 503 and accept nothing.
func TestKafkaStoppedAfterStart(t *testing.T) {
	k := fakeKafka(t)
	_, url := kafkaServer(t, k, func(c *Config) {
		c.Producer.ProduceTimeout = 3 * time.Second
		c.Producer.MaxAttempts = 2
	})
	now := time.Now().UnixMilli()
	if r := send(t, url, "/v1/events/client", tokSDK, []byte(clientEvent("dns", "u", now)), nil); r.status != 200 {
		t.Fatalf("before stop: %d %s", r.status, r.body)
	}
	k.fake.Close()
	r := send(t, url, "/v1/events/client", tokSDK, []byte(clientEvent("dns", "u", now)), nil)
	if r.status != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, `"accepted":0`) {
		t.Fatalf("after stop: %d %s", r.status, r.body)
	}
}

// TestKafkaPartialFailure: the broker acknowledges the events but rejects the
// dead letter. The request gets 503 (its rejected line was not durably
// recorded), although its valid events are in Kafka: a retry duplicates
// them. This is the documented at-least-once case (docs/INGEST.md).
func TestKafkaPartialFailure(t *testing.T) {
	k := fakeKafka(t)
	s, url := kafkaServer(t, k, nil)
	dlTopic := s.cfg.Kafka.Topics.DeadLetter
	k.fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.fake.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if len(pr.Topics) != 1 || pr.Topics[0].Topic != dlTopic {
			return nil, nil, false
		}
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = 29 // TOPIC_AUTHORIZATION_FAILED: not retriable
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	now := time.Now().UnixMilli()
	body := clientEvent("dns", "a", now) + "\nbad line\n" + clientEvent("dns", "b", now)
	r := send(t, url, "/v1/events/client", tokSDK, []byte(body), map[string]string{"Idempotency-Key": "retry-me"})
	if r.status != 503 || !strings.Contains(r.body, `"accepted":0`) {
		t.Fatalf("got %d %s", r.status, r.body)
	}
	if got := testutil.ToFloat64(s.m.kafkaErrors.WithLabelValues("partial")); got != 1 {
		t.Fatalf("kafka_errors{kind=partial} = %v, want 1", got)
	}
	recs := consume(t, k, s.cfg.Kafka.Topics.Client)
	if len(recs) != 2 {
		t.Fatalf("client topic has %d records; this test documents that the 2 valid events were written", len(recs))
	}
	for _, rec := range recs {
		if len(rec.Headers) != 2 || rec.Headers[0].Key != "idempotency-key" || string(rec.Headers[0].Value) != "retry-me" {
			t.Fatalf("headers %+v: a downstream could not deduplicate the retry", rec.Headers)
		}
	}
}

// TestKafkaNotEnoughReplicas: a broker answering NOT_ENOUGH_REPLICAS (the
// partition has fewer in-sync replicas than min.insync.replicas, e.g.
// brokers are down) is retried by the writer; once it clears the request
// gets 200 with its events written once, and while it lasts past
// producer.max_attempts the request gets 503 with Retry-After, counted as
// kind "replicas".
func TestKafkaNotEnoughReplicas(t *testing.T) {
	k := fakeKafka(t)
	s, url := kafkaServer(t, k, func(c *Config) { c.Producer.MaxAttempts = 3 })
	clientTopic := s.cfg.Kafka.Topics.Client
	var refuse atomic.Int64 // produce requests to the client topic still to refuse
	var refused atomic.Int64
	k.fake.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		k.fake.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if len(pr.Topics) != 1 || pr.Topics[0].Topic != clientTopic || refuse.Add(-1) < 0 {
			return nil, nil, false
		}
		refused.Add(1)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = 19 // NOT_ENOUGH_REPLICAS
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	now := time.Now().UnixMilli()

	// One user, so one partition and one produce request per attempt.
	refuse.Store(2)
	body := clientEvent("dns", "u1", now) + "\n" + clientEvent("heartbeat", "u1", now)
	if r := send(t, url, "/v1/events/client", tokSDK, []byte(body), nil); r.status != 200 || r.resp.Accepted != 2 {
		t.Fatalf("refused twice, then accepted: %d %s", r.status, r.body)
	}
	if n := refused.Load(); n != 2 {
		t.Fatalf("the broker refused %d produce requests, want 2 (the writer must retry NOT_ENOUGH_REPLICAS)", n)
	}
	if n := recordCount(t, k, clientTopic); n != 2 {
		t.Fatalf("client topic holds %d records, want 2", n)
	}

	refuse.Store(1 << 30)
	r := send(t, url, "/v1/events/client", tokSDK, []byte(clientEvent("dns", "u2", now)), nil)
	if r.status != 503 || r.header.Get("Retry-After") != "5" || !strings.Contains(r.body, `"accepted":0`) {
		t.Fatalf("refused on every attempt: %d Retry-After=%q %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	if got := testutil.ToFloat64(s.m.kafkaErrors.WithLabelValues("replicas")); got != 1 {
		t.Fatalf("kafka_errors{kind=replicas} = %v, want 1", got)
	}
	if n := recordCount(t, k, clientTopic); n != 2 {
		t.Fatalf("client topic holds %d records after a refused request, want still 2", n)
	}
}

func TestEnsureTopics(t *testing.T) {
	k := fakeKafka(t)
	s, _ := kafkaServer(t, k, func(c *Config) { c.Producer.Partitions = 5 })
	for _, topic := range []string{s.cfg.Kafka.Topics.Client, s.cfg.Kafka.Topics.CDN, s.cfg.Kafka.Topics.Origin, s.cfg.Kafka.Topics.DeadLetter} {
		c := &kafka.Client{Addr: kafka.TCP(k.kafka.Brokers...)}
		md, err := c.Metadata(context.Background(), &kafka.MetadataRequest{Topics: []string{topic}})
		if err != nil || len(md.Topics) != 1 || len(md.Topics[0].Partitions) != 5 {
			t.Fatalf("topic %s: %v %+v", topic, err, md)
		}
	}
	// Readiness sees the same topics.
	if err := s.producer.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}

	// Not allowed to create: a clear error naming the missing topic.
	k2 := fakeKafka(t)
	cfg := testConfig()
	cfg.Kafka = k2.kafka
	cfg.Producer.CreateTopics = false
	s2, err := NewServer(cfg, Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := s2.EnsureTopics(ctx); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("EnsureTopics without create_topics: %v", err)
	}
}

// TestKafkaCMCD: the query-string, header and v2 body forms of CMCD land
// in the client topic as the documented events, keyed by user.
func TestKafkaCMCD(t *testing.T) {
	forEachKafka(t, func(t *testing.T, k kenv) {
		s, url := kafkaServer(t, k, nil)
		get := func(path string, hdr map[string]string) httpReply {
			req, _ := http.NewRequest(http.MethodGet, url+path, nil)
			req.Header.Set("Authorization", "Bearer "+tokSDK)
			for k, v := range hdr {
				req.Header.Set(k, v)
			}
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			var r httpReply
			r.status = res.StatusCode
			_ = json.NewDecoder(res.Body).Decode(&r.resp)
			return r
		}
		if r := get(cmcdQueryPath, nil); r.status != 200 || r.resp.Accepted != 1 {
			t.Fatalf("query: %+v", r)
		}
		if r := get("/v1/cmcd", cmcdHeaders); r.status != 200 || r.resp.Accepted != 1 {
			t.Fatalf("headers: %+v", r)
		}
		if r := send(t, url, "/v1/cmcd", tokSDK, []byte(cmcdBody(time.Now().UnixMilli())), nil); r.status != 200 || r.resp.Accepted != 3 || r.resp.Rejected != 1 {
			t.Fatalf("body: %+v", r)
		}
		got := map[string]int{}
		for _, rec := range consume(t, k, s.cfg.Kafka.Topics.Client) {
			var v struct{ Type, UserID string }
			var m map[string]any
			if err := json.Unmarshal(rec.Value, &m); err != nil {
				t.Fatal(err)
			}
			v.Type, _ = m["type"].(string)
			v.UserID, _ = m["user_id"].(string)
			if string(rec.Key) != v.UserID {
				t.Errorf("key %q for user %q", rec.Key, v.UserID)
			}
			got[v.UserID+"/"+v.Type]++
		}
		want := map[string]int{"u-42/heartbeat": 1, "u-43/heartbeat": 1, "s-3/first_frame": 1, "s-3/stall": 1, "s-3/heartbeat": 1}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("client topic %v, want %v", got, want)
		}
		if n := recordCount(t, k, s.cfg.Kafka.Topics.DeadLetter); n != 1 {
			t.Fatalf("%d dead letters, want 1", n)
		}
	})
}

package ingest

// The project rule "nothing accepted with a 2xx is ever lost", proved
// against a real 3-broker Kafka while one broker is killed with SIGKILL
// mid-stream. It needs the cluster of `qoscope infra up --kafka-brokers 3`
// (`go tool task test:kafka-cluster`); elsewhere it skips with the reason
// (see testenv.KafkaCluster).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/aggregator"
	"github.com/qoscope/qoscope/internal/testenv"
	"github.com/qoscope/qoscope/schemas"
	"github.com/twmb/franz-go/pkg/kgo"
)

// clusterBatch is one POST of the test and what became of it.
type clusterBatch struct {
	seq0, n  int // its lines carry seq0 .. seq0+n-1
	body     []byte
	status   int  // of the first attempt
	attempts int  // including the first
	accepted bool // some attempt got a 2xx
	phase    string
}

// postOnce sends one batch. A transport error is returned as an error (the
// in-process server must not drop connections); any other answer as its
// status, Retry-After and body.
func postOnce(url string, body []byte, key string) (int, string, string, error) {
	req, err := http.NewRequest(http.MethodPost, url+"/v1/events/client", bytes.NewReader(body))
	if err != nil {
		return 0, "", "", err
	}
	req.Header.Set("Authorization", "Bearer "+tokSDK)
	// The same key on every attempt of a batch, as a client must retry.
	req.Header.Set("Idempotency-Key", key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Retry-After"), string(b), err
}

// lineAudit compares the seq numbers read back from Kafka with those that
// must be there: the lines of every batch that got a 2xx. It returns the
// missing ones and how many extra copies were read (at-least-once allows
// duplicates, never a loss).
func lineAudit(want []int, got []int) (missing []int, duplicates int) {
	seen := make(map[int]int, len(got))
	for _, s := range got {
		seen[s]++
	}
	for _, c := range seen {
		duplicates += c - 1
	}
	for _, s := range want {
		if seen[s] == 0 {
			missing = append(missing, s)
		}
	}
	return missing, duplicates
}

func TestLineAuditCatchesALoss(t *testing.T) {
	// The audit of the cluster test must be able to fail.
	missing, dups := lineAudit([]int{1, 2, 3, 4}, []int{4, 1, 1, 3, 9})
	if !slices.Equal(missing, []int{2}) || dups != 1 {
		t.Fatalf("lineAudit: missing %v, %d duplicates; want [2] and 1", missing, dups)
	}
}

// TestKafkaBrokerKilledLosesNothing: ingest writes to topics it creates
// with replication factor 3 (min.insync.replicas derived: 2) on a 3-broker
// cluster. Batches of unique client events are posted by a few concurrent
// clients; after a third of them the broker leading the most partitions of
// the client topic is killed with SIGKILL, a third more are posted while it
// is down (all of them must get a 2xx before it comes back), it is
// restarted, and the last third follows. Clients resend a batch that got a
// 503 after its Retry-After, until it gets a 2xx. Every line of every 2xx
// batch must then be in Kafka (duplicates are allowed: they are the
// documented at-least-once case), and every non-2xx answer must be a 503
// with Retry-After that accepted nothing.
func TestKafkaBrokerKilledLosesNothing(t *testing.T) {
	cluster := testenv.KafkaCluster(t, 3)
	env := testenv.Kafka(t, testenv.WithTopics())
	for _, name := range []string{"client", "cdn", "origin", "deadletter"} {
		env.ReserveTopic(name)
	}
	const partitions = 6
	k := kenv{name: "kafka-cluster", kafka: env.Config(), partitions: partitions}
	k.kafka.DialTimeout = 5 * time.Second
	s, url := kafkaServer(t, k, func(c *Config) {
		c.Producer.ReplicationFactor = 3
		c.Producer.MinInSyncReplicas = 0 // derived
		// Whole seconds only; 1s keeps the clients' back-off short.
		c.Producer.RetryAfter = time.Second
	})
	if got := s.cfg.Producer.EffectiveMinInSyncReplicas(); got != 2 {
		t.Fatalf("derived min.insync.replicas = %d, want 2 for replication factor 3", got)
	}
	clientTopic := s.cfg.Kafka.Topics.Client
	admin := &kafka.Client{Addr: kafka.TCP(cluster.Brokers...), Timeout: 10 * time.Second}
	checkTopicReplication(t, admin, clientTopic, partitions, 3, "2")

	const (
		batches  = 300
		perBatch = 100
		workers  = 4
	)
	now := time.Now().UnixMilli()
	all := make([]*clusterBatch, batches)
	for i := range all {
		var b bytes.Buffer
		for j := range perBatch {
			seq := i*perBatch + j
			line := clientEvent(clientTypes[seq%len(clientTypes)], fmt.Sprintf("user-%d", seq%997), now)
			// An unknown member: preserved, and it identifies the line.
			b.WriteString(strings.TrimSuffix(line, "}") + fmt.Sprintf(`,"seq":%d}`+"\n", seq))
		}
		all[i] = &clusterBatch{seq0: i * perBatch, n: perBatch, body: b.Bytes()}
	}

	var (
		mu          sync.Mutex
		problems    []string
		okWhile     atomic.Int64 // batches accepted while the broker was down
		unavailable atomic.Int64 // non-2xx answers, retries included
		brokerOut   atomic.Bool
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		problems = append(problems, fmt.Sprintf(format, args...))
	}
	// send posts one batch and checks the answer's contract; it returns
	// the status (0 for a transport error) and how long the client must
	// wait before its next request.
	send := func(b *clusterBatch) (int, time.Duration) {
		status, retryAfter, body, err := postOnce(url, b.body, fmt.Sprintf("batch-%d", b.seq0))
		switch {
		case err != nil:
			problem("batch at seq %d: %v", b.seq0, err)
			return 0, time.Second
		case status == http.StatusOK:
			var r response
			if err := json.Unmarshal([]byte(body), &r); err != nil || r.Accepted != b.n || r.Rejected != 0 {
				problem("batch at seq %d: 200 with body %s, want %d accepted", b.seq0, body, b.n)
			}
			return status, 0
		case status == http.StatusServiceUnavailable:
			if retryAfter != "1" || !strings.Contains(body, `"accepted":0`) {
				problem("batch at seq %d: 503 with Retry-After %q and body %s, want Retry-After 1 and accepted 0", b.seq0, retryAfter, body)
			}
			return status, time.Second
		default:
			problem("batch at seq %d: status %d (%s), want 200, or 503 while kafka fails over", b.seq0, status, body)
			return status, time.Second
		}
	}
	// run posts batches [from, to) with the concurrent clients. Like a
	// real one, a client that gets a 503 waits Retry-After and sends the
	// same batch again; it gives up after clientAttempts or when the phase
	// has lasted two minutes (the batch is then resent at the end), so
	// that a cluster that never recovers fails the test instead of
	// stalling it.
	const clientAttempts = 60
	run := func(from, to int, phase string) {
		deadline := time.Now().Add(2 * time.Minute)
		work := make(chan *clusterBatch)
		var wg sync.WaitGroup
		for range workers {
			wg.Go(func() {
				for b := range work {
					b.phase = phase
					for !b.accepted && b.attempts < clientAttempts && (b.attempts == 0 || time.Now().Before(deadline)) {
						status, wait := send(b)
						if b.attempts == 0 {
							b.status = status
						}
						b.attempts++
						b.accepted = status == http.StatusOK
						if !b.accepted {
							unavailable.Add(1)
						} else if brokerOut.Load() {
							okWhile.Add(1)
						}
						time.Sleep(wait)
					}
				}
			})
		}
		for _, b := range all[from:to] {
			work <- b
		}
		close(work)
		wg.Wait()
	}

	start := time.Now()
	run(0, batches/3, "before")
	victim := cluster.Node(mostLeadership(t, admin, clientTopic))
	t.Logf("killing broker %d (pid %d), the leader of most %s partitions", victim.ID, victim.PID(), clientTopic)
	killedAt := time.Now()
	victim.Kill()
	brokerOut.Store(true)
	run(batches/3, 2*batches/3, "broker down")
	brokerOut.Store(false)
	restartAt := time.Now()
	victim.Restart()
	t.Logf("broker %d was down %v; restarted (pid %d) in %v", victim.ID, restartAt.Sub(killedAt).Round(time.Millisecond),
		victim.PID(), time.Since(restartAt).Round(time.Millisecond))
	run(2*batches/3, batches, "after restart")
	streamed := time.Since(start)

	// A client that gave up resends later: every batch must land in the end.
	retried := 0
	for _, b := range all {
		if b.attempts > 1 || !b.accepted {
			retried++
		}
		for tries := 0; !b.accepted && tries < 10; tries++ {
			status, wait := send(b)
			b.attempts++
			b.accepted = status == http.StatusOK
			time.Sleep(wait)
		}
		if !b.accepted {
			t.Errorf("batch at seq %d: no 2xx after %d attempts", b.seq0, b.attempts)
		}
	}
	for _, p := range problems {
		t.Error(p)
	}

	counts := map[string]map[int]int{} // phase -> first attempts' status -> batches
	for _, b := range all {
		if counts[b.phase] == nil {
			counts[b.phase] = map[int]int{}
		}
		counts[b.phase][b.status]++
	}
	for _, phase := range []string{"before", "broker down", "after restart"} {
		t.Logf("%-13s first attempts by status: %v", phase, counts[phase])
	}
	t.Logf("streamed %d batches in %v; %d batches needed a retry, %d non-2xx answers in all", batches, streamed.Round(time.Millisecond), retried, unavailable.Load())
	// With 2 of 3 replicas in sync the cluster must keep accepting: min
	// ISR 2 tolerates one broker down. The broker was restarted only after
	// the clients were done with the middle third.
	if n := okWhile.Load(); n != int64(2*batches/3-batches/3) {
		t.Errorf("%d of the %d batches sent while broker %d was down got a 2xx before its restart: with replication factor 3 and min.insync.replicas 2 one broker down must not stop writes",
			n, 2*batches/3-batches/3, victim.ID)
	}

	// Read everything back with a fresh client, from the start of every
	// partition to its end.
	var want, got []int
	for _, b := range all {
		if b.accepted {
			for seq := b.seq0; seq < b.seq0+b.n; seq++ {
				want = append(want, seq)
			}
		}
	}
	recs := consume(t, k, clientTopic)
	for _, r := range recs {
		var v struct {
			Seq *int `json:"seq"`
		}
		if err := json.Unmarshal(r.Value, &v); err != nil || v.Seq == nil {
			t.Fatalf("%s partition %d offset %d: value without seq: %q", clientTopic, r.Partition, r.Offset, r.Value)
		}
		got = append(got, *v.Seq)
	}
	missing, dups := lineAudit(want, got)
	t.Logf("read %d records from %s; checked %d lines of %d accepted batches: %d missing, %d duplicated",
		len(recs), clientTopic, len(want), len(want)/perBatch, len(missing), dups)
	if len(want) != batches*perBatch {
		t.Errorf("%d lines were accepted in the end, want all %d", len(want), batches*perBatch)
	}
	if len(missing) > 0 {
		t.Errorf("%d lines accepted with a 2xx are not in Kafka, e.g. seq %v", len(missing), missing[:min(len(missing), 10)])
	}
	if distinct := len(got) - dups; distinct != batches*perBatch {
		t.Errorf("%d distinct lines in Kafka, want %d (%d records, %d duplicates)", distinct, batches*perBatch, len(got), dups)
	}
	if n := recordCount(t, k, s.cfg.Kafka.Topics.DeadLetter); n != 0 {
		t.Errorf("%d dead letters for valid events", n)
	}

	// Through the aggregator: what was read back, duplicates included,
	// aggregates to the rows of a fault-free delivery of the same lines
	// (each seq once, its first copy), and the copies are the outcomes
	// "duplicate".
	faulty, st := aggregateRecords(t, recs, false)
	clean, _ := aggregateRecords(t, recs, true)
	if faulty != clean {
		t.Errorf("the aggregates of what Kafka holds differ from those of a fault-free delivery:\n%s\n----\n%s", faulty, clean)
	}
	if st.Duplicate != uint64(dups) || st.Late != 0 || st.Applied != uint64(batches*perBatch) {
		t.Errorf("aggregator stats %+v, want %d applied, %d duplicate (the copies read back), 0 late", st, batches*perBatch, dups)
	}
	t.Logf("aggregated: %d applied, %d duplicates dropped", st.Applied, st.Duplicate)
	waitFullISR(t, admin, clientTopic, 3)
}

// aggregateRecords runs the aggregator over recs, one Partition per Kafka
// partition in offset order (as the runner does), and returns its final
// rows summed over partitions (versions, which name offsets, left out) and
// its stats. firstCopy keeps only the first record of each seq: the
// delivery without the duplicates of retried batches.
func aggregateRecords(t *testing.T, recs []*kgo.Record, firstCopy bool) (string, aggregator.Stats) {
	t.Helper()
	plan, err := aggregator.NewPlan(aggregator.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	parts := map[int32]*aggregator.Partition{}
	seen := map[int]bool{}
	for _, r := range recs {
		var e schemas.Event
		if err := schemas.ParseLine(r.Value, &e); err != nil {
			t.Fatalf("partition %d offset %d: %v", r.Partition, r.Offset, err)
		}
		if firstCopy {
			var v struct{ Seq int }
			if err := json.Unmarshal(r.Value, &v); err != nil {
				t.Fatal(err)
			}
			if seen[v.Seq] {
				continue
			}
			seen[v.Seq] = true
		}
		p := parts[r.Partition]
		if p == nil {
			p = aggregator.NewPartition(plan, aggregator.PartitionID{Topic: r.Topic, Partition: r.Partition}, schemas.SourceClient)
			parts[r.Partition] = p
		}
		p.Add(r.Offset, &e)
	}
	var rows []aggregator.Row
	var st aggregator.Stats
	for _, p := range parts {
		p.CloseAll()
		rows = append(rows, p.Drain().Final...)
		s := p.Stats()
		st.Applied += s.Applied
		st.Late += s.Late
		st.Duplicate += s.Duplicate
	}
	if len(rows) == 0 {
		t.Fatal("no rows aggregated")
	}
	var b strings.Builder
	for _, r := range aggregator.MergePartitions(rows) {
		fmt.Fprintf(&b, "%d %s %s %v", r.WindowStart, r.Source, r.Grouping, r.Dims)
		for _, m := range r.Metrics(nil) {
			fmt.Fprintf(&b, " %s=%v", m.Name, m.Value)
		}
		b.WriteByte('\n')
	}
	return b.String(), st
}

// checkTopicReplication asserts that ingest created topic with the given
// partitions, replicas and min.insync.replicas.
func checkTopicReplication(t *testing.T, c *kafka.Client, topic string, partitions, replicas int, minISR string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
		t.Fatalf("metadata of %s: %v %+v", topic, err, md)
	}
	if n := len(md.Topics[0].Partitions); n != partitions {
		t.Fatalf("%s has %d partitions, want %d", topic, n, partitions)
	}
	for _, p := range md.Topics[0].Partitions {
		if len(p.Replicas) != replicas {
			t.Fatalf("%s partition %d has %d replicas, want %d", topic, p.ID, len(p.Replicas), replicas)
		}
	}
	res, err := c.DescribeConfigs(ctx, &kafka.DescribeConfigsRequest{Resources: []kafka.DescribeConfigRequestResource{{
		ResourceType: kafka.ResourceTypeTopic, ResourceName: topic, ConfigNames: []string{"min.insync.replicas"},
	}}})
	if err != nil || len(res.Resources) != 1 || res.Resources[0].Error != nil {
		t.Fatalf("configs of %s: %v %+v", topic, err, res)
	}
	for _, e := range res.Resources[0].ConfigEntries {
		if e.ConfigName == "min.insync.replicas" {
			if e.ConfigValue != minISR {
				t.Fatalf("%s: min.insync.replicas = %s, want %s", topic, e.ConfigValue, minISR)
			}
			return
		}
	}
	t.Fatalf("%s: no min.insync.replicas in its configs", topic)
}

// mostLeadership returns the node id that leads the most partitions of topic.
func mostLeadership(t *testing.T, c *kafka.Client, topic string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil || len(md.Topics) != 1 || md.Topics[0].Error != nil {
		t.Fatalf("metadata of %s: %v %+v", topic, err, md)
	}
	leads := map[int]int{}
	best := 0
	for _, p := range md.Topics[0].Partitions {
		leads[p.Leader.ID]++
		if leads[p.Leader.ID] > leads[best] || (leads[p.Leader.ID] == leads[best] && p.Leader.ID < best) {
			best = p.Leader.ID
		}
	}
	t.Logf("%s partitions led per broker: %v", topic, leads)
	return best
}

// waitFullISR waits until every partition of topic has replicas in-sync
// replicas again: the restarted broker caught up. A broker that never
// rejoins fails the test after two minutes.
func waitFullISR(t *testing.T, c *kafka.Client, topic string, replicas int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	var last string
	for {
		md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
		if err == nil && len(md.Topics) == 1 {
			full := true
			var isr []string
			for _, p := range md.Topics[0].Partitions {
				full = full && len(p.Isr) == replicas
				isr = append(isr, fmt.Sprintf("%d:%d", p.ID, len(p.Isr)))
			}
			if full {
				t.Logf("%s: every partition has %d in-sync replicas again (waited %v)", topic, replicas, time.Since(start).Round(time.Millisecond))
				return
			}
			last = strings.Join(isr, " ")
		} else {
			last = fmt.Sprint(err)
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: the restarted broker did not rejoin every ISR (partition:isr %s)", topic, last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

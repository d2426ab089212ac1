package testenv_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/segmentio/kafka-go"

	"github.com/qoscope/qoscope/internal/testenv"
)

// TestRoundTripKafkaConsumerGroupResumesAtCommittedOffset writes 10,000
// messages with acks=all, consumes part of them in a consumer group with
// explicit commits, closes the reader with fetched-but-uncommitted messages
// outstanding, and proves that a new reader in the same group starts exactly
// at the committed offsets: the uncommitted messages are delivered again,
// nothing committed is delivered again, nothing is lost.
func TestRoundTripKafkaConsumerGroupResumesAtCommittedOffset(t *testing.T) {
	const (
		total      = 10_000
		committed  = 4_000 // K: messages committed before the "crash"
		fetched    = 6_000 // fetched by the first reader; committed..fetched are not committed
		partitions = 3
		commitEach = 500
	)
	k := testenv.Kafka(t, testenv.WithTopics("roundtrip"), testenv.WithPartitions(partitions))
	topic, group := k.Topic("roundtrip"), k.GroupID("roundtrip")
	// A deadline only so that a lost message fails the test instead of hanging it.
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	w := &kafka.Writer{
		Addr:         kafka.TCP(k.Brokers...),
		Topic:        topic,
		RequiredAcks: kafka.RequireAll,
		Balancer:     &kafka.Hash{},
		BatchSize:    1000,
		BatchTimeout: 5 * time.Millisecond,
	}
	msgs := make([]kafka.Message, total)
	for i := range msgs {
		msgs[i] = kafka.Message{Key: []byte("key-" + strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))}
	}
	for chunk := range slices.Chunk(msgs, 2000) {
		if err := w.WriteMessages(ctx, chunk...); err != nil {
			t.Fatalf("write: %v", err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}

	client := k.Client()
	end := endOffsets(ctx, t, client, topic, partitions)
	var sumEnd int64
	for _, e := range end {
		sumEnd += e
	}
	if sumEnd != total {
		t.Fatalf("partitions hold %d messages (end offsets %v), want %d", sumEnd, end, total)
	}

	newReader := func() *kafka.Reader {
		return kafka.NewReader(kafka.ReaderConfig{
			Brokers:        k.Brokers,
			GroupID:        group,
			Topic:          topic,
			StartOffset:    kafka.FirstOffset,
			CommitInterval: 0, // CommitMessages commits synchronously
			MinBytes:       1,
			MaxBytes:       1 << 20,
			MaxWait:        250 * time.Millisecond,
		})
	}

	// Phase 1: fetch 6,000, commit the first 4,000 in chunks, "crash".
	r1 := newReader()
	var first []kafka.Message
	for len(first) < fetched {
		m, err := r1.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("reader 1 fetch after %d messages: %v", len(first), err)
		}
		checkMessage(t, m)
		first = append(first, m)
		if n := len(first); n <= committed && n%commitEach == 0 {
			if err := r1.CommitMessages(ctx, first[n-commitEach:n]...); err != nil {
				t.Fatalf("reader 1 commit at %d: %v", n, err)
			}
		}
	}
	if err := r1.Close(); err != nil {
		t.Fatalf("close reader 1: %v", err)
	}

	// What the group must resume from: per partition, one past the last
	// committed message (partitions without a commit start at their first
	// offset, 0 on this fresh topic).
	resume := make([]int64, partitions)
	for _, m := range first[:committed] {
		if m.Partition < 0 || m.Partition >= partitions {
			t.Fatalf("message from partition %d of a %d-partition topic", m.Partition, partitions)
		}
		resume[m.Partition] = max(resume[m.Partition], m.Offset+1)
	}
	got := committedOffsets(ctx, t, client, topic, group, partitions)
	for p := range partitions {
		want := resume[p]
		if want == 0 {
			want = -1 // nothing committed on p
		}
		if got[p] != want {
			t.Fatalf("partition %d: broker has committed offset %d, the %d committed messages imply %d", p, got[p], committed, want)
		}
	}

	// Phase 2: a new reader in the same group reads the rest.
	r2 := newReader()
	defer r2.Close()
	wantRest := 0
	for p := range partitions {
		wantRest += int(end[p] - resume[p])
	}
	if wantRest != total-committed {
		t.Fatalf("offsets account for %d remaining messages, want %d", wantRest, total-committed)
	}
	seen := map[[2]int64]bool{}
	firstSeen := make([]int64, partitions)
	for p := range firstSeen {
		firstSeen[p] = -1
	}
	var second []kafka.Message
	uncommitted := 0 // index of the first message of second not yet committed
	for len(second) < wantRest {
		m, err := r2.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("reader 2 fetch after %d of %d messages: %v", len(second), wantRest, err)
		}
		checkMessage(t, m)
		id := [2]int64{int64(m.Partition), m.Offset}
		if m.Offset < resume[m.Partition] {
			t.Fatalf("reader 2 re-read partition %d offset %d, before the committed offset %d", m.Partition, m.Offset, resume[m.Partition])
		}
		if seen[id] {
			t.Fatalf("reader 2 got partition %d offset %d twice", m.Partition, m.Offset)
		}
		seen[id] = true
		if firstSeen[m.Partition] < 0 {
			firstSeen[m.Partition] = m.Offset
		}
		second = append(second, m)
		if len(second)-uncommitted == commitEach || len(second) == wantRest {
			if err := r2.CommitMessages(ctx, second[uncommitted:]...); err != nil {
				t.Fatalf("reader 2 commit: %v", err)
			}
			uncommitted = len(second)
		}
	}
	t.Logf("end offsets %v, committed after reader 1 %v, reader 2 started at %v, redelivered %d uncommitted", end, resume, firstSeen, fetched-committed)
	for p := range partitions {
		if end[p] > resume[p] && firstSeen[p] != resume[p] {
			t.Errorf("partition %d: reader 2 started at offset %d, want the committed offset %d", p, firstSeen[p], resume[p])
		}
	}
	// Every fetched-but-uncommitted message of reader 1 was delivered again.
	for _, m := range first[committed:] {
		if !seen[[2]int64{int64(m.Partition), m.Offset}] {
			t.Errorf("uncommitted message partition %d offset %d (value %s) was not redelivered", m.Partition, m.Offset, m.Value)
		}
	}
	// Committed-by-1 plus read-by-2 is every message exactly once.
	count := make([]int, total)
	for _, m := range append(first[:committed:committed], second...) {
		v, _ := strconv.Atoi(string(m.Value))
		count[v]++
	}
	for v, c := range count {
		if c != 1 {
			t.Fatalf("value %d consumed %d times across the restart, want exactly once", v, c)
		}
	}
	got = committedOffsets(ctx, t, client, topic, group, partitions)
	for p := range partitions {
		if got[p] != end[p] {
			t.Errorf("partition %d: final committed offset %d, want end offset %d", p, got[p], end[p])
		}
	}
}

// checkMessage verifies that a message is intact: its key matches its value.
func checkMessage(t *testing.T, m kafka.Message) {
	t.Helper()
	v, err := strconv.Atoi(string(m.Value))
	if err != nil || v < 0 || string(m.Key) != "key-"+string(m.Value) {
		t.Fatalf("corrupt message at partition %d offset %d: key %q value %q", m.Partition, m.Offset, m.Key, m.Value)
	}
}

func endOffsets(ctx context.Context, t *testing.T, c *kafka.Client, topic string, partitions int) []int64 {
	t.Helper()
	req := &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{}}
	for p := range partitions {
		req.Topics[topic] = append(req.Topics[topic], kafka.LastOffsetOf(p))
	}
	resp, err := c.ListOffsets(ctx, req)
	if err != nil {
		t.Fatalf("list offsets: %v", err)
	}
	end := make([]int64, partitions)
	for _, po := range resp.Topics[topic] {
		if po.Error != nil {
			t.Fatalf("list offsets partition %d: %v", po.Partition, po.Error)
		}
		end[po.Partition] = po.LastOffset
	}
	return end
}

func committedOffsets(ctx context.Context, t *testing.T, c *kafka.Client, topic, group string, partitions int) []int64 {
	t.Helper()
	ps := make([]int, partitions)
	for p := range ps {
		ps[p] = p
	}
	resp, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err == nil {
		err = resp.Error
	}
	if err != nil {
		t.Fatalf("offset fetch: %v", err)
	}
	got := make([]int64, partitions)
	for i := range got {
		got[i] = -2 // not reported
	}
	for _, p := range resp.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("offset fetch partition %d: %v", p.Partition, p.Error)
		}
		got[p.Partition] = p.CommittedOffset
	}
	return got
}

// TestRoundTripClickHouseNativeBatchInsert inserts 100,000 rows in one
// native-protocol batch into a MergeTree table and checks aggregates against
// values computed by hand from the generating formulas.
func TestRoundTripClickHouseNativeBatchInsert(t *testing.T) {
	const rows = 100_000
	ch := testenv.ClickHouse(t)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()

	err := ch.Conn.Exec(ctx, `CREATE TABLE roundtrip (
		id UInt64,
		session String,
		bitrate_kbps UInt32,
		rebuffer_delta Int64,
		ts DateTime64(3, 'UTC'),
		tags Array(LowCardinality(String))
	) ENGINE = MergeTree ORDER BY (session, id)`)
	if err != nil {
		t.Fatalf("create table: %v", err)
	}
	base := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	batch, err := ch.Conn.PrepareBatch(ctx, "INSERT INTO roundtrip")
	if err != nil {
		t.Fatalf("prepare batch: %v", err)
	}
	for i := range rows {
		tags := []string{"even"}
		if i%2 == 1 {
			tags = []string{"odd", "x"}
		}
		err := batch.Append(
			uint64(i),
			fmt.Sprintf("s-%03d", i%1000),
			uint32(i%5000),
			int64(i%7)-3,
			base.Add(time.Duration(i)*time.Millisecond),
			tags,
		)
		if err != nil {
			t.Fatalf("append row %d: %v", i, err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatalf("send batch: %v", err)
	}

	var (
		count, sumID, sessions, sumBitrate, withX uint64
		sumRebuffer                               int64
		minTS, maxTS                              time.Time
	)
	err = ch.Conn.QueryRow(ctx, `SELECT count(), sum(id), uniqExact(session), sum(bitrate_kbps),
		sum(rebuffer_delta), countIf(has(tags, 'x')), min(ts), max(ts) FROM roundtrip`).
		Scan(&count, &sumID, &sessions, &sumBitrate, &sumRebuffer, &withX, &minTS, &maxTS)
	if err != nil {
		t.Fatalf("aggregate query: %v", err)
	}
	// By hand: ids 0..99999 sum to 99999*100000/2. i%5000 runs 20 full
	// cycles of 0..4999, each summing to 4999*5000/2. i%7-3 sums to 0 over
	// each full cycle of 7; 100000 = 7*14285 + 5 leaves i%7 = 0..4, i.e.
	// -3-2-1+0+1 = -5. Half the rows are odd.
	checks := []struct {
		name      string
		got, want any
	}{
		{"count()", count, uint64(100_000)},
		{"sum(id)", sumID, uint64(4_999_950_000)},
		{"uniqExact(session)", sessions, uint64(1000)},
		{"sum(bitrate_kbps)", sumBitrate, uint64(20 * 12_497_500)},
		{"sum(rebuffer_delta)", sumRebuffer, int64(-5)},
		{"countIf(has(tags,'x'))", withX, uint64(50_000)},
		{"min(ts)", minTS.UTC(), base},
		{"max(ts)", maxTS.UTC(), base.Add(99_999 * time.Millisecond)},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	// One row in full, by bound parameter.
	var (
		session string
		bitrate uint32
		reb     int64
		ts      time.Time
		tags    []string
	)
	err = ch.Conn.QueryRow(withParams(ctx, "id", "12345"),
		"SELECT session, bitrate_kbps, rebuffer_delta, ts, tags FROM roundtrip WHERE id = {id:UInt64}").Scan(&session, &bitrate, &reb, &ts, &tags)
	if err != nil {
		t.Fatalf("row query: %v", err)
	}
	// 12345 % 7 = 4, so rebuffer_delta = 1.
	if session != "s-345" || bitrate != 2345 || reb != 1 || !ts.Equal(base.Add(12345*time.Millisecond)) || !slices.Equal(tags, []string{"odd", "x"}) {
		t.Errorf("row 12345 = (%q, %d, %d, %v, %q), want (s-345, 2345, 1, %v, [odd x])", session, bitrate, reb, ts, tags, base.Add(12345*time.Millisecond))
	}

	// The table is a MergeTree in the test's own database.
	var engine string
	if err := ch.Conn.QueryRow(withParams(ctx, "db", ch.Database),
		"SELECT engine FROM system.tables WHERE database = {db:String} AND name = 'roundtrip'").Scan(&engine); err != nil {
		t.Fatalf("system.tables: %v", err)
	}
	if engine != "MergeTree" {
		t.Errorf("engine = %q, want MergeTree", engine)
	}

	// The insert went over the native protocol (interface 1 = TCP) and wrote
	// every row in one query. system.query_log exists on the servers
	// devinfra starts; an external server may not keep it.
	var hasLog uint8
	if err := ch.Conn.QueryRow(ctx, "EXISTS TABLE system.query_log").Scan(&hasLog); err != nil {
		t.Fatalf("exists query_log: %v", err)
	}
	if hasLog == 0 {
		if ch.Managed {
			t.Fatalf("system.query_log is missing on a server started by devinfra (its config enables it)")
		}
		t.Log("system.query_log is not enabled on this external server; protocol check skipped")
		return
	}
	if err := ch.Conn.Exec(ctx, "SYSTEM FLUSH LOGS"); err != nil {
		t.Fatalf("flush logs: %v", err)
	}
	var iface uint8
	var written uint64
	err = ch.Conn.QueryRow(withParams(ctx, "db", ch.Database), `SELECT interface, written_rows FROM system.query_log
		WHERE current_database = {db:String} AND query_kind = 'Insert' AND type = 'QueryFinish'`).Scan(&iface, &written)
	if err != nil {
		t.Fatalf("query_log: %v", err)
	}
	if iface != 1 || written != rows {
		t.Errorf("insert in query_log: interface %d, written_rows %d; want 1 (native TCP), %d", iface, written, rows)
	}
}

// withParams binds server-side query parameters ({name:Type} in the SQL).
func withParams(ctx context.Context, kv ...string) context.Context {
	p := clickhouse.Parameters{}
	for i := 0; i+1 < len(kv); i += 2 {
		p[kv[i]] = kv[i+1]
	}
	return clickhouse.Context(ctx, clickhouse.WithParameters(p))
}

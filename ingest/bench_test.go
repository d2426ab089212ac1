package ingest

import (
	"bytes"
	"net/http"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/qoscope/qoscope/internal/testenv"
)

// BenchmarkHTTPToKafka measures acknowledged events/s through the whole
// service: HTTP POST of 500-event NDJSON requests from parallel clients,
// decode, Kafka produce with acks=all, 200 response. It runs against the
// in-process kfake broker and, when QOSCOPE_KAFKA_BROKERS is set, the real
// broker. Note that on a 2-core machine the client, the server and (for
// kfake) the broker share the CPUs.
func BenchmarkHTTPToKafka(b *testing.B) {
	b.Run("kfake", func(b *testing.B) { benchHTTPToKafka(b, fakeKafka(b)) })
	b.Run("kafka", func(b *testing.B) {
		if os.Getenv(testenv.EnvKafkaBrokers) == "" {
			b.Skip("set " + testenv.EnvKafkaBrokers + " to benchmark the real broker")
		}
		benchHTTPToKafka(b, realKafka(b))
	})
}

func benchHTTPToKafka(b *testing.B, k kenv) {
	s, url := kafkaServer(b, k, nil)
	const per = 500
	body := benchBody(per, time.Now().UnixMilli())
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var failed atomic.Int64
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(8) // requests in flight per GOMAXPROCS: they share Kafka batches
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req, _ := http.NewRequest(http.MethodPost, url+"/v1/events/client", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tokSDK)
			res, err := client.Do(req)
			if err != nil {
				failed.Add(1)
				continue
			}
			_, _ = new(bytes.Buffer).ReadFrom(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				failed.Add(1)
			}
		}
	})
	b.StopTimer()
	if n := failed.Load(); n > 0 {
		b.Fatalf("%d requests failed", n)
	}
	b.ReportMetric(float64(b.N)*per/b.Elapsed().Seconds(), "events/s")
	if kp, ok := s.producer.(*KafkaProducer); ok {
		st := kp.Stats()
		if st.Writes > 0 {
			b.ReportMetric(float64(st.Messages)/float64(st.Writes), "msgs/produce")
		}
	}
}

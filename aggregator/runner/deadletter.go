package runner

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/segmentio/kafka-go"
)

// Dead-letter classes (label of qoscope_aggregator_deadlettered_total).
const (
	ClassUndecodable = "undecodable" // not a valid event (schemas.ParseLine refused it)
	ClassTooLate     = "too_late"    // its window closed more than late_horizon ago
)

// DeadLetter is the JSON value of a record the aggregator writes to the
// dead-letter topic (kafka.topics.deadletter): one consumed message it
// could not count, with where it came from and why. The field names follow
// ingest's dead letters where they mean the same; stage tells them apart.
type DeadLetter struct {
	Stage     string `json:"stage"` // "aggregator"
	Class     string `json:"class"`
	Reason    string `json:"reason"`
	Field     string `json:"field,omitempty"`
	Source    string `json:"source,omitempty"` // event source, when decoded
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	Offset    int64  `json:"offset"`
	// WindowStart and Watermark (Unix ms) explain a too_late record.
	WindowStart int64 `json:"window_start,omitempty"`
	Watermark   int64 `json:"watermark,omitempty"`
	// Raw is the message value when it is valid UTF-8, else RawBase64.
	Raw       string `json:"raw,omitempty"`
	RawBase64 []byte `json:"raw_base64,omitempty"`
	RawBytes  int    `json:"raw_bytes"`
	Truncated bool   `json:"truncated,omitempty"`
}

// deadLetterMessage builds the Kafka record of d for value raw (cut to max bytes).
func deadLetterMessage(topic string, d DeadLetter, raw []byte, max int) kafka.Message {
	d.Stage = "aggregator"
	d.RawBytes = len(raw)
	if len(raw) > max {
		raw = raw[:max]
		d.Truncated = true
		for i := 0; i < utf8.UTFMax && len(raw) > 0 && !utf8.Valid(raw); i++ {
			raw = raw[:len(raw)-1]
		}
	}
	if utf8.Valid(raw) {
		d.Raw = string(raw)
	} else {
		d.RawBase64 = raw
	}
	v, _ := json.Marshal(d) // strings, ints and bytes only: cannot fail
	key := d.Source
	if key == "" {
		key = d.Topic
	}
	return kafka.Message{
		Topic: topic,
		Key:   []byte(key),
		Value: v,
		Headers: []kafka.Header{
			{Key: "stage", Value: []byte("aggregator")},
			{Key: "class", Value: []byte(d.Class)},
			{Key: "origin", Value: []byte(d.Topic + "/" + strconv.Itoa(int(d.Partition)) + "@" + strconv.FormatInt(d.Offset, 10))},
		},
	}
}

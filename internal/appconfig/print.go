package appconfig

import (
	"fmt"
	"io"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/qoscope/qoscope/aggregator/runner"
	alertlive "github.com/qoscope/qoscope/alert/live"
	"github.com/qoscope/qoscope/ingest"
	"github.com/qoscope/qoscope/internal/allinone"
	"github.com/qoscope/qoscope/internal/config"
	"github.com/qoscope/qoscope/query/api"
	"github.com/qoscope/qoscope/score/live"
	"github.com/qoscope/qoscope/steer"
)

// Redacted replaces secret values: inline token secrets and the password
// of the ClickHouse DSN and HTTP URL. token_file and token_env stay: they
// name where a secret is, not the secret.
const Redacted = "<redacted>"

// PrintIngest prints `qoscope ingest`'s effective configuration.
func PrintIngest(w io.Writer, c ingest.Config) error {
	f := Default()
	f.Kafka, f.Log, f.Ingest = c.Kafka, c.Log, c
	return Print(w, f, "kafka", "log", ingest.Section)
}

// PrintAggregate prints `qoscope aggregate`'s effective configuration.
func PrintAggregate(w io.Writer, c runner.Config) error {
	f := Default()
	f.Kafka, f.ClickHouse, f.Log, f.Aggregator = c.Kafka, c.ClickHouse, c.Log, c
	return Print(w, f, "kafka", "clickhouse", "log", runner.Section)
}

// PrintAllInOne prints `qoscope all-in-one`'s effective configuration,
// with embedded_kafka.enabled resolved.
func PrintAllInOne(w io.Writer, c allinone.Config) error {
	f := Default()
	f.Kafka, f.ClickHouse, f.Log, f.Ingest, f.Aggregator, f.AllInOne, f.Serve = c.Kafka, c.ClickHouse, c.Log, c.Config, c.Aggregator, c.Section, c.Serve
	on := c.Embedded()
	f.AllInOne.EmbeddedKafka.Enabled = &on
	return Print(w, f, "kafka", "clickhouse", "log", ingest.Section, runner.Section, allinone.SectionKey, api.Section)
}

// PrintServe prints `qoscope serve`'s effective configuration: the
// shared clickhouse and log sections, the aggregator section (whose
// windowing keys serve reads), the serve section and the alert section.
func PrintServe(w io.Writer, c api.Config) error {
	f := Default()
	f.ClickHouse, f.Log, f.Aggregator.Aggregator, f.Serve, f.Alert = c.ClickHouse, c.Log, c.Aggregator, c, c.Alert
	// The scores section and the kafka its topic uses (score/live).
	f.Scores, f.Kafka = c.Scores, c.Scores.Kafka
	return Print(w, f, "kafka", "clickhouse", "log", runner.Section, api.Section, live.Section, alertlive.Section)
}

// PrintSteer prints `qoscope steer`'s effective configuration: log and
// the steer section.
func PrintSteer(w io.Writer, c steer.Config) error {
	f := Default()
	f.Log, f.Steer = c.Log, c
	return Print(w, f, "log", steer.Section)
}

// Print writes the given top-level sections of f as YAML, in File's order,
// secrets redacted, durations as "5m0s". Its output is itself a valid
// configuration file. A future command's --print-config calls it with its
// own sections.
func Print(w io.Writer, f File, sections ...string) error {
	redact(&f)
	n, err := toNode(reflect.ValueOf(f))
	if err != nil {
		return err
	}
	keep := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		if slices.Contains(sections, n.Content[i].Value) {
			keep = append(keep, n.Content[i], n.Content[i+1])
		}
	}
	n.Content = keep
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	if err := enc.Encode(n); err != nil {
		return fmt.Errorf("cannot print config: %w", err)
	}
	return enc.Close()
}

func redact(f *File) {
	f.Ingest.Tokens = slices.Clone(f.Ingest.Tokens)
	for i := range f.Ingest.Tokens {
		if f.Ingest.Tokens[i].Token != "" {
			f.Ingest.Tokens[i].Token = Redacted
		}
	}
	f.Serve.Tokens = slices.Clone(f.Serve.Tokens)
	for i := range f.Serve.Tokens {
		if f.Serve.Tokens[i].Token != "" {
			f.Serve.Tokens[i].Token = Redacted
		}
	}
	if f.Steer.Scores.Token != "" {
		f.Steer.Scores.Token = Redacted
	}
	// A receiver's inline secret, and its URL (a robot's webhook URL
	// carries the robot's access token).
	f.Alert.Notify.Receivers = slices.Clone(f.Alert.Notify.Receivers)
	for i := range f.Alert.Notify.Receivers {
		r := &f.Alert.Notify.Receivers[i]
		if r.Secret != "" {
			r.Secret = Redacted
		}
		if r.URL != "" && r.Type != "alertmanager" && r.Type != "webhook" {
			r.URL = Redacted
		}
	}
	f.ClickHouse.DSN = config.RedactURL(f.ClickHouse.DSN)
	if f.ClickHouse.HTTP != "" {
		f.ClickHouse.HTTP = config.RedactURL(f.ClickHouse.HTTP)
	}
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	marshalerType = reflect.TypeFor[yaml.Marshaler]()
)

// toNode encodes v like yaml.v3 does, except that durations are written
// as Go duration strings (yaml.v3 writes nanoseconds) so the output reads
// like the documented defaults and decodes back unchanged.
func toNode(v reflect.Value) (*yaml.Node, error) {
	if v.Type() == durationType {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: time.Duration(v.Int()).String()}, nil
	}
	if v.Type().Implements(marshalerType) && (v.Kind() != reflect.Pointer || !v.IsNil()) {
		out, err := v.Interface().(yaml.Marshaler).MarshalYAML()
		if err != nil {
			return nil, err
		}
		return toNode(reflect.ValueOf(out))
	}
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface:
		if v.IsNil() {
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
		return toNode(v.Elem())
	case reflect.Struct:
		m := &yaml.Node{Kind: yaml.MappingNode}
		t := v.Type()
		for i := range t.NumField() {
			sf := t.Field(i)
			tag := sf.Tag.Get("yaml")
			if !sf.IsExported() || tag == "-" {
				continue
			}
			c, err := toNode(v.Field(i))
			if err != nil {
				return nil, err
			}
			_, opts, _ := strings.Cut(tag, ",")
			if strings.Contains(opts, "inline") {
				m.Content = append(m.Content, c.Content...)
				continue
			}
			if strings.Contains(opts, "omitempty") && v.Field(i).IsZero() {
				continue
			}
			m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: yamlName(sf)}, c)
		}
		return m, nil
	case reflect.Slice, reflect.Array:
		s := &yaml.Node{Kind: yaml.SequenceNode, Style: yaml.FlowStyle}
		for i := range v.Len() {
			c, err := toNode(v.Index(i))
			if err != nil {
				return nil, err
			}
			if c.Kind == yaml.MappingNode {
				s.Style = 0 // lists of objects (tokens) read better in block style
			}
			s.Content = append(s.Content, c)
		}
		return s, nil
	case reflect.Map:
		m := &yaml.Node{Kind: yaml.MappingNode}
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			kn, err := toNode(k)
			if err != nil {
				return nil, err
			}
			c, err := toNode(v.MapIndex(k))
			if err != nil {
				return nil, err
			}
			m.Content = append(m.Content, kn, c)
		}
		return m, nil
	}
	n := &yaml.Node{}
	if err := n.Encode(v.Interface()); err != nil {
		return nil, fmt.Errorf("cannot print config: %w", err)
	}
	return n, nil
}

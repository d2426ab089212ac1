// Package config loads a service's configuration: defaults set by the caller,
// then a YAML file decoded strictly (unknown keys are errors), then QOSCOPE_*
// environment overrides, then the service's validate().
//
// The order matters: a file that mistypes a key must fail loudly instead of
// silently running on defaults, and the environment wins over the file so the
// same file can be shipped to every host of a cluster.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"github.com/caarlos0/env/v11"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix prefixes every environment override, e.g. QOSCOPE_KAFKA_BROKERS.
const EnvPrefix = "QOSCOPE_"

// Validator is implemented by every service config. Errors name the key.
type Validator interface {
	Validate() error
}

// Load fills dst (already holding defaults) from the YAML file at path (skipped
// when path is empty) and from the environment, then validates it.
func Load(path string, dst Validator) error {
	if path != "" {
		b, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("cannot read config file: %w", err)
		}
		if err := DecodeYAML(b, dst); err != nil {
			return fmt.Errorf("config file %s: %w", path, err)
		}
	}
	if err := ApplyEnv(dst); err != nil {
		return err
	}
	if err := dst.Validate(); err != nil {
		return fmt.Errorf("invalid config: %w", err)
	}
	return nil
}

// DecodeYAML decodes b into dst, rejecting unknown keys and trailing documents.
// yaml's own errors carry the line number and key ("line 3: field foo not
// found in type ..."), which is what an operator needs to fix the file.
func DecodeYAML(b []byte, dst any) error {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // empty file: defaults
		}
		return err
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return errors.New("config must hold exactly one YAML document")
	}
	return nil
}

// ApplyEnv overrides fields tagged `env:"..."` from QOSCOPE_* variables.
func ApplyEnv(dst any) error {
	if err := env.ParseWithOptions(dst, env.Options{Prefix: EnvPrefix}); err != nil {
		// caarlos0/env names the struct field, not the variable the operator
		// set: find the variable(s) that fail on their own.
		if bad := failingEnvVars(dst); len(bad) > 0 {
			return fmt.Errorf("invalid environment override %s: %w", strings.Join(bad, ", "), err)
		}
		return fmt.Errorf("invalid environment override: %w", err)
	}
	return nil
}

func failingEnvVars(dst any) []string {
	params, err := env.GetFieldParamsWithOptions(dst, env.Options{Prefix: EnvPrefix})
	if err != nil {
		return nil
	}
	var bad []string
	for _, p := range params {
		v, ok := os.LookupEnv(p.Key)
		if !ok {
			continue
		}
		probe := reflect.New(reflect.TypeOf(dst).Elem()).Interface()
		one := env.Options{Prefix: EnvPrefix, Environment: map[string]string{p.Key: v}}
		if env.ParseWithOptions(probe, one) != nil {
			bad = append(bad, p.Key)
		}
	}
	return bad
}

// Errors collects validation problems so an operator sees all of them at once.
// The zero value is ready to use. In returns a view that records into the
// same list with a key prefix, so a section's own Validate can name its keys
// relative to the section ("listen") and still be reported by their full
// path in the configuration file ("ingest.listen").
type Errors struct {
	prefix string
	list   *[]string
}

// Addf records a problem; the message should start with the key name.
func (e *Errors) Addf(format string, args ...any) {
	if e.list == nil {
		e.list = new([]string)
	}
	msg := fmt.Sprintf(format, args...)
	if e.prefix != "" {
		msg = e.prefix + "." + msg
	}
	*e.list = append(*e.list, msg)
}

// In returns a view of e whose messages are prefixed with key (itself
// prefixed with e's own prefix).
func (e *Errors) In(key string) *Errors {
	if e.list == nil {
		e.list = new([]string)
	}
	if e.prefix != "" {
		key = e.prefix + "." + key
	}
	return &Errors{prefix: key, list: e.list}
}

// Len is the number of problems recorded.
func (e *Errors) Len() int {
	if e.list == nil {
		return 0
	}
	return len(*e.list)
}

// Messages returns the problems recorded, in order.
func (e *Errors) Messages() []string {
	if e.list == nil {
		return nil
	}
	return *e.list
}

// Err returns nil when no problem was recorded.
func (e *Errors) Err() error {
	if e.Len() == 0 {
		return nil
	}
	return errors.New(strings.Join(*e.list, "; "))
}

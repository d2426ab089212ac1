package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// The numbers are score's (score/offline_test.go computes them by hand);
// this checks the flags reach score.Run and the table reaches stdout.
func TestScoresCommand(t *testing.T) {
	var out, errb bytes.Buffer
	err := dispatch(context.Background(), []string{"scores",
		"--config", "../../score/testdata/offline/scores.yaml",
		"--input", "../../score/testdata/offline/client.ndjson",
		"--input", "../../score/testdata/offline/cdn.ndjson",
		"--blacklist", "../../score/testdata/offline/blacklist.yaml",
		"--at", "2026-11-20T12:05:00Z", "--output", "-", "--log-format", "json"}, &out, &errb)
	if err != nil {
		t.Fatalf("%v\n%s", err, errb.String())
	}
	var doc struct {
		At      string `json:"at"`
		Regions []struct {
			Province, ISP string
			Vendors       []struct {
				Vendor      string
				Blacklisted bool
				Ratio       float64
			}
		}
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("%v: %s", err, out.String())
	}
	if doc.At != "2026-11-20T12:05:00Z" || len(doc.Regions) != 2 || doc.Regions[0].Province != "beijing" ||
		doc.Regions[1].Province != "guangdong" || !doc.Regions[0].Vendors[1].Blacklisted || doc.Regions[0].Vendors[1].Ratio != 0 ||
		doc.Regions[1].Vendors[1].Blacklisted {
		t.Fatalf("unexpected table: %s", out.String())
	}
	if !strings.Contains(errb.String(), "cdn-z has rows but no contract") {
		t.Fatalf("warning not logged: %s", errb.String())
	}
}

func TestScoresCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"scores", "--config", "x.yaml", "--input", "r", "--at", "noon"}, `scores: --at "noon": not RFC 3339`},
		{[]string{"scores", "--config", "../../score/testdata/offline/scores.yaml", "--input", "r"}, "scores: --at is required"},
		{[]string{"scores", "--config", "../../score/testdata/offline/scores.yaml", "--input", "r", "--at", "2026-11-20T12:05:00Z", "--log-level", "loud"}, "scores: log.level"},
		{[]string{"scores", "extra"}, "unexpected argument"},
	} {
		var out, errb bytes.Buffer
		err := dispatch(context.Background(), tc.args, &out, &errb)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
	var out, errb bytes.Buffer
	if err := dispatch(context.Background(), []string{"scores", "extra"}, &out, &errb); !errors.Is(err, errUsage) {
		t.Errorf("a stray argument is a usage error: %v", err)
	}
}

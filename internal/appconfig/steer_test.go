package appconfig

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

const steerTok = "steer-token-0123456789abcdef"

// steer reads log and its own section; QOSCOPE_STEER_* override the file;
// the scores token never prints.
func TestLoadSteer(t *testing.T) {
	clearEnv(t)
	p := writeFile(t, `log: {level: debug}
steer:
  listen: 0.0.0.0:8095
  ttl: 60s
  pathways: {cdn-a: alpha, cdn-b: beta}
  trusted_proxies: [10.0.0.0/8, 127.0.0.1]
  rate_limit: {per_ip: 2}
  scores:
    url: http://serve:8090/api/v1/scores
    token: `+steerTok+`
`)
	t.Setenv("QOSCOPE_STEER_SCORES_INTERVAL", "30s")
	cfg, err := LoadSteer(p)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "0.0.0.0:8095" || cfg.TTL != time.Minute || cfg.Pathways["cdn-b"] != "beta" || len(cfg.TrustedProxies) != 2 ||
		cfg.RateLimit.PerIP != 2 || cfg.RateLimit.Burst != 20 || cfg.Scores.Interval != 30*time.Second || cfg.Log.Level != "debug" {
		t.Fatalf("steer config: %+v", cfg)
	}
	var b bytes.Buffer
	if err := PrintSteer(&b, cfg); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if strings.Contains(out, steerTok) || !strings.Contains(out, "token: "+Redacted) || !strings.Contains(out, "cdn-a: alpha") || strings.Contains(out, "\nserve:") {
		t.Errorf("print-config:\n%s", out)
	}
}

func TestLoadSteerErrorsNameKeys(t *testing.T) {
	clearEnv(t)
	_, err := LoadSteer(writeFile(t, "steer:\n  ttl: 0s\n  trusted_proxies: [x]\n  scores: {url: nowhere}\n"))
	if err == nil || !IsInvalid(err) {
		t.Fatalf("want an invalid config, got %v", err)
	}
	for _, want := range []string{"steer.ttl: 0s", `steer.trusted_proxies: "x"`, `steer.scores.url: "nowhere"`, "steer.scores: exactly one of token"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// A scores file needs no URL or token.
	if _, err := LoadSteer(writeFile(t, "steer:\n  scores: {file: /tmp/s.json}\n")); err != nil {
		t.Errorf("file mode: %v", err)
	}
}

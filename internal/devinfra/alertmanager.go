package devinfra

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// AlertmanagerVersion is the Alertmanager the delivery tests run against
// (docs/ALERTS.md, "Delivery"). Later releases cannot be built with `go
// install`: their web UI must first be built with npm.
const AlertmanagerVersion = "v0.28.1"

// alertmanagerMarker is in the command line of every Alertmanager started
// here, so that Stop never signals a reused PID.
const alertmanagerMarker = "alertmanager"

// InstallAlertmanager builds github.com/prometheus/alertmanager/cmd/alertmanager
// at AlertmanagerVersion with `go install` (about 30–60 s) into
// <cacheDir>/alertmanager/<version>/bin, once, and returns the binary's
// path. goTool is the go command (default "go").
func InstallAlertmanager(ctx context.Context, cacheDir, goTool string, log zerolog.Logger) (string, error) {
	if cacheDir == "" {
		return "", errors.New("alertmanager: cache dir required")
	}
	if goTool == "" {
		goTool = "go"
	}
	dir := filepath.Join(cacheDir, "alertmanager", AlertmanagerVersion)
	bin := filepath.Join(dir, "bin", "alertmanager")
	if isExecutable(bin) {
		return bin, nil
	}
	unlock, err := lockFile(filepath.Join(cacheDir, "alertmanager", "lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // another process built it while we waited
		return bin, nil
	}
	// Built into a temporary directory and renamed: an interrupted build
	// leaves no half binary where the cache is looked up.
	tmp := filepath.Join(dir, "bin.tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return "", err
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return "", err
	}
	log.Info().Str("version", AlertmanagerVersion).Str("dir", dir).Msg("building alertmanager with go install (once, cached)")
	cmd := exec.CommandContext(ctx, goTool, "install", "github.com/prometheus/alertmanager/cmd/alertmanager@"+AlertmanagerVersion)
	// Outside any module, so the project's go.mod and tool directives do
	// not apply; GOFLAGS from the caller could (-mod=vendor), so cleared.
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "GOBIN="+tmp, "GOFLAGS=", "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("cannot build alertmanager %s: %w\n%s", AlertmanagerVersion, err, tail(out, 30))
	}
	if err := os.RemoveAll(filepath.Join(dir, "bin")); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "bin")); err != nil {
		return "", fmt.Errorf("cannot install alertmanager: %w", err)
	}
	if !isExecutable(bin) {
		return "", fmt.Errorf("alertmanager: go install made no %s", bin)
	}
	return bin, nil
}

// AlertmanagerOptions configures StartAlertmanager.
type AlertmanagerOptions struct {
	// Binary is InstallAlertmanager's result.
	Binary string
	// Dir holds the config, data and log; created.
	Dir string
	// WebhookURL is the one receiver's webhook (send_resolved: true).
	WebhookURL string
	// GroupBy of the one route; default [alertname]. ["..."] makes every
	// alert its own group (one notification per alert change).
	GroupBy []string
	// GroupWait, GroupInterval, RepeatInterval of the one route; defaults
	// 1s, 1s, 1h (short, for tests).
	GroupWait, GroupInterval, RepeatInterval time.Duration
	// ReadyTimeout bounds the wait for /-/ready. Default 30s.
	ReadyTimeout time.Duration
}

// Alertmanager is one started by StartAlertmanager.
type Alertmanager struct {
	// URL is its base URL (http://127.0.0.1:port).
	URL string
	PID int
	Log string
	p   *process
}

// StartAlertmanager starts Alertmanager on a free loopback port, without
// clustering, with one route (grouping by GroupBy) to one webhook
// receiver, and waits until it is ready. Stop it with Stop.
func StartAlertmanager(ctx context.Context, o AlertmanagerOptions) (*Alertmanager, error) {
	if o.Binary == "" || o.Dir == "" || o.WebhookURL == "" {
		return nil, errors.New("alertmanager: binary, dir and webhook url are required")
	}
	def := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	def(&o.GroupWait, time.Second)
	def(&o.GroupInterval, time.Second)
	def(&o.RepeatInterval, time.Hour)
	def(&o.ReadyTimeout, 30*time.Second)
	if len(o.GroupBy) == 0 {
		o.GroupBy = []string{"alertname"}
	}
	groupBy := make([]string, len(o.GroupBy))
	for i, l := range o.GroupBy {
		groupBy[i] = strconv.Quote(l)
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, "data"), 0o755); err != nil {
		return nil, err
	}
	conf := fmt.Sprintf(`route:
  receiver: hook
  group_by: [%s]
  group_wait: %s
  group_interval: %s
  repeat_interval: %s
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`, strings.Join(groupBy, ", "), promDuration(o.GroupWait), promDuration(o.GroupInterval), promDuration(o.RepeatInterval), o.WebhookURL)
	cfgPath := filepath.Join(o.Dir, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	ports, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	logPath := filepath.Join(o.Dir, "alertmanager.log")
	p, err := startDetached(o.Dir, logPath, o.Binary,
		"--config.file="+cfgPath, "--storage.path="+filepath.Join(o.Dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=info")
	if err != nil {
		return nil, err
	}
	am := &Alertmanager{URL: "http://" + addr, PID: p.pid, Log: logPath, p: p}
	deadline := time.Now().Add(o.ReadyTimeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, am.URL+"/-/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return am, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("alertmanager exited before it was ready: %v\n%s", p.waitErr, fileTail(logPath, 30))
		case <-ctx.Done():
			_ = am.Stop(context.Background())
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = am.Stop(context.Background())
			return nil, fmt.Errorf("alertmanager not ready after %v\n%s", o.ReadyTimeout, fileTail(logPath, 30))
		}
	}
}

// Stop stops the Alertmanager by its PID (SIGTERM, then SIGKILL).
func (a *Alertmanager) Stop(ctx context.Context) error {
	return stopPID(ctx, a.PID, alertmanagerMarker, 10*time.Second)
}

// promDuration writes d as Prometheus durations are written (1s, 1h).
func promDuration(d time.Duration) string {
	if d%time.Second != 0 {
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
	return strconv.FormatInt(int64(d/time.Second), 10) + "s"
}

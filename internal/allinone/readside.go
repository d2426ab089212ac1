package allinone

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/qoscope/qoscope/deploy"
	"github.com/qoscope/qoscope/notify"
)

// demoReadSide completes the demo's serve section with what the
// configuration leaves out, so that the demo shows alerts, notifications
// and the scheduler's scores with no file:
//   - the example alert rules and contracts (deploy/alerts/rules.yaml,
//     deploy/config/scores.yaml), written to dir so that a user can edit
//     the rules while the demo runs (serve reloads them);
//   - a webhook receiver in this process that checks signatures and prints
//     each notification (receiver.go), as on-call would get it;
//   - a blacklist hold time of 3 minutes instead of 10, so the recovery of
//     the incident's vendor is seen within the demo.
//
// The receiver, when started, runs until ctx ends.
func demoReadSide(ctx context.Context, cfg *Config, dir string, out io.Writer) error {
	sc := &cfg.Serve
	if sc.Alert.Rules == "" {
		p := filepath.Join(dir, "alert-rules.yaml")
		if err := os.WriteFile(p, deploy.AlertRules, 0o600); err != nil {
			return fmt.Errorf("cannot write the demo's alert rules: %w", err)
		}
		sc.Alert.Rules = p
	}
	if sc.Scores.Config == "" {
		p := filepath.Join(dir, "scores.yaml")
		if err := os.WriteFile(p, deploy.Scores, 0o600); err != nil {
			return fmt.Errorf("cannot write the demo's scores contracts: %w", err)
		}
		sc.Scores.Config = p
		sc.Scores.HoldTime = 3 * time.Minute
	}
	if sc.Alert.ExternalURL == "" {
		sc.Alert.ExternalURL = "http://" + sc.Listen
	}
	if len(sc.Alert.Notify.Receivers) == 0 {
		secret, err := RandomToken()
		if err != nil {
			return err
		}
		r, err := startReceiver(ctx, []byte(secret), out)
		if err != nil {
			return err
		}
		// One notification per alert, a second after it fires: the demo
		// shows each as it happens (docs/ALERTS.md, "Delivery").
		sc.Alert.Notify.Receivers = []notify.ReceiverConfig{{
			Name: "demo-oncall", Type: "webhook", URL: r.url, Secret: secret,
			GroupBy: []string{"..."}, GroupWait: time.Second, GroupInterval: 10 * time.Second, RepeatInterval: time.Hour,
		}}
	}
	return nil
}

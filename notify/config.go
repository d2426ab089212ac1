package notify

import (
	"fmt"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/qoscope/qoscope/internal/config"
)

// Config is the `alert.notify` section of the configuration file
// (deploy/config/qoscope.yaml documents every key; docs/ALERTS.md,
// "Delivery", the behaviour). Every alert goes to every receiver whose
// matchers it satisfies.
type Config struct {
	// Receivers are where notifications go, each with its matchers and
	// grouping. None: Submit stores alerts and nothing is sent.
	Receivers []ReceiverConfig `yaml:"receivers"`
	// ExternalURL is the webhook payload's externalURL (where qoscope's
	// wall is). Optional.
	ExternalURL string `yaml:"external_url"`
	// Tick is the longest the send loop waits between two looks for groups
	// and notifications that are due; it also wakes when one falls due
	// (group_wait, group_interval, a retry) and after each Submit.
	// Default 1s.
	Tick time.Duration `yaml:"tick"`
	// Timeout bounds one request to a receiver. Default 10s.
	Timeout time.Duration `yaml:"timeout"`
	// RetryMin and RetryMax bound the exponential backoff between attempts
	// of a notification that failed with a retryable error (5xx, 429,
	// network). Defaults 1s and 5m.
	RetryMin time.Duration `yaml:"retry_min"`
	RetryMax time.Duration `yaml:"retry_max"`
	// GiveUpAfter: a notification still failing this long after it was
	// created is marked failed. Default 24h.
	GiveUpAfter time.Duration `yaml:"give_up_after"`
	// SilenceRefresh is how often silences are read again from the store,
	// for silences another instance created. Default 10s.
	SilenceRefresh time.Duration `yaml:"silence_refresh"`
	// Lookback is how far back a starting Run reads notifications and
	// resolved alerts to rebuild its groups. Default 168h (7 days), at
	// least every repeat_interval.
	Lookback time.Duration `yaml:"lookback"`
}

// Receiver types.
const (
	TypeAlertmanager = "alertmanager"
	TypeWebhook      = "webhook"
	TypeDingTalk     = "dingtalk"
	TypeWeCom        = "wecom"
	TypeFeishu       = "feishu"
	TypePagerDuty    = "pagerduty"
)

var receiverTypes = []string{TypeAlertmanager, TypeWebhook, TypeDingTalk, TypeWeCom, TypeFeishu, TypePagerDuty}

// ReceiverConfig is one receiver: where, which alerts, how grouped.
type ReceiverConfig struct {
	// Name identifies the receiver in metrics, logs and the outbox;
	// unique. Renaming a receiver starts its groups afresh.
	Name string `yaml:"name"`
	// Type is alertmanager, webhook, dingtalk, wecom, feishu or pagerduty.
	Type string `yaml:"type"`
	// URL is where to POST: Alertmanager's base URL (…:9093; /api/v2/alerts
	// is appended), the webhook's URL, the robot's webhook URL (it carries
	// the robot's token: prefer url_env or url_file), or PagerDuty's events
	// endpoint (default https://events.pagerduty.com/v2/enqueue). Exactly
	// one of url, url_env, url_file, except pagerduty where all may be
	// empty.
	URL     string `yaml:"url"`
	URLEnv  string `yaml:"url_env"`
	URLFile string `yaml:"url_file"`
	// Secret signs the webhook's body (HMAC-SHA256, required for webhook),
	// the DingTalk and Feishu URL/body (optional: robots without
	// "signature" security), or is PagerDuty's routing key (required). At
	// most one of secret, secret_env, secret_file.
	Secret     string `yaml:"secret"`
	SecretEnv  string `yaml:"secret_env"`
	SecretFile string `yaml:"secret_file"`
	// Matchers select the alerts (Alertmanager syntax: severity="critical",
	// team=~"cdn|origin"); none: every alert.
	Matchers []string `yaml:"matchers"`
	// GroupBy are the labels whose values make a group: one notification
	// carries one group's alerts. [] groups everything together; ["..."]
	// makes each alert its own group. Default [alertname]. Not for
	// alertmanager, which groups by itself.
	GroupBy []string `yaml:"group_by"`
	// GroupWait is how long a new group waits for more alerts before its
	// first notification. Default 30s.
	GroupWait time.Duration `yaml:"group_wait"`
	// GroupInterval is how long a group waits after a notification before
	// notifying about changes (new or resolved alerts). Default 5m.
	GroupInterval time.Duration `yaml:"group_interval"`
	// RepeatInterval re-sends an unchanged firing group. Default 4h.
	RepeatInterval time.Duration `yaml:"repeat_interval"`
	// SendResolved sends notifications of resolved alerts. Default true.
	SendResolved *bool `yaml:"send_resolved"`
	// ResendInterval (alertmanager) is how often firing alerts are posted
	// again, as Prometheus does, so a restarted Alertmanager learns them
	// and does not resolve them. Default 1m.
	ResendInterval time.Duration `yaml:"resend_interval"`
	// Timeout overrides the section's timeout for this receiver.
	Timeout time.Duration `yaml:"timeout"`
}

// DefaultConfig returns the documented defaults (no receivers).
func DefaultConfig() Config {
	return Config{
		Tick:           time.Second,
		Timeout:        10 * time.Second,
		RetryMin:       time.Second,
		RetryMax:       5 * time.Minute,
		GiveUpAfter:    24 * time.Hour,
		SilenceRefresh: 10 * time.Second,
		Lookback:       7 * 24 * time.Hour,
	}
}

// Default receiver values.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
	DefaultResendInterval = time.Minute
	DefaultPagerDutyURL   = "https://events.pagerduty.com/v2/enqueue"
)

// groupByAll in group_by makes every alert its own group (Alertmanager's "...").
const groupByAll = "..."

// Validate reports every invalid key at once, each named from the
// section (errs is the section's view, e.g. errs.In("alert.notify")). It
// fills the receivers' defaults.
func (c *Config) Validate(errs *config.Errors) {
	pos := func(key string, d time.Duration) {
		if d <= 0 {
			errs.Addf("%s: %v: must be positive", key, d)
		}
	}
	pos("tick", c.Tick)
	pos("timeout", c.Timeout)
	pos("retry_min", c.RetryMin)
	pos("retry_max", c.RetryMax)
	pos("give_up_after", c.GiveUpAfter)
	pos("silence_refresh", c.SilenceRefresh)
	pos("lookback", c.Lookback)
	if c.RetryMax < c.RetryMin {
		errs.Addf("retry_max: %v is below retry_min %v", c.RetryMax, c.RetryMin)
	}
	if c.ExternalURL != "" {
		if u, err := url.Parse(c.ExternalURL); err != nil || u.Scheme == "" || u.Host == "" {
			errs.Addf("external_url: %q is not an absolute URL", c.ExternalURL)
		}
	}
	names := map[string]bool{}
	for i := range c.Receivers {
		r := &c.Receivers[i]
		key := fmt.Sprintf("receivers[%d]", i)
		if r.Name != "" {
			key = fmt.Sprintf("receivers[%d] (%s)", i, r.Name)
		}
		r.validate(errs.In(key), names, c.Lookback)
	}
}

func (r *ReceiverConfig) validate(errs *config.Errors, names map[string]bool, lookback time.Duration) {
	switch {
	case r.Name == "":
		errs.Addf("name: required")
	case names[r.Name]:
		errs.Addf("name: %q is used twice", r.Name)
	case !labelNameRE.MatchString(strings.ReplaceAll(r.Name, "-", "_")):
		errs.Addf("name: %q: want letters, digits, _ and -", r.Name)
	}
	names[r.Name] = true
	if !slices.Contains(receiverTypes, r.Type) {
		errs.Addf("type: %q is not one of %s", r.Type, strings.Join(receiverTypes, ", "))
	}
	urls := count(r.URL, r.URLEnv, r.URLFile)
	secrets := count(r.Secret, r.SecretEnv, r.SecretFile)
	switch {
	case urls > 1:
		errs.Addf("url: at most one of url, url_env, url_file")
	case urls == 0 && r.Type != TypePagerDuty:
		errs.Addf("url: one of url, url_env, url_file is required")
	}
	if r.URL != "" {
		if u, err := url.Parse(r.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs.Addf("url: not an http(s) URL")
		}
	}
	switch {
	case secrets > 1:
		errs.Addf("secret: at most one of secret, secret_env, secret_file")
	case secrets == 0 && (r.Type == TypeWebhook || r.Type == TypePagerDuty):
		errs.Addf("secret: one of secret, secret_env, secret_file is required for %s (%s)", r.Type, map[string]string{TypeWebhook: "the HMAC key", TypePagerDuty: "the routing key"}[r.Type])
	case secrets == 1 && (r.Type == TypeAlertmanager || r.Type == TypeWeCom):
		errs.Addf("secret: %s takes none", r.Type)
	}
	for _, s := range r.Matchers {
		if _, err := ParseMatcher(s); err != nil {
			errs.Addf("matchers: %v", err)
		}
	}
	if r.GroupBy == nil {
		r.GroupBy = []string{"alertname"}
	}
	for _, l := range r.GroupBy {
		if l != groupByAll && !labelNameRE.MatchString(l) {
			errs.Addf("group_by: %q is not a label name", l)
		}
	}
	if slices.Contains(r.GroupBy, groupByAll) && len(r.GroupBy) > 1 {
		errs.Addf("group_by: %q stands alone", groupByAll)
	}
	def := func(p *time.Duration, v time.Duration, key string) {
		switch {
		case *p == 0:
			*p = v
		case *p < 0:
			errs.Addf("%s: %v: must be positive", key, *p)
		}
	}
	def(&r.GroupWait, DefaultGroupWait, "group_wait")
	def(&r.GroupInterval, DefaultGroupInterval, "group_interval")
	def(&r.RepeatInterval, DefaultRepeatInterval, "repeat_interval")
	def(&r.ResendInterval, DefaultResendInterval, "resend_interval")
	if r.Timeout < 0 {
		errs.Addf("timeout: %v: must be positive", r.Timeout)
	}
	if r.RepeatInterval > lookback {
		errs.Addf("repeat_interval: %v is beyond the section's lookback %v (a restart would forget the last notification)", r.RepeatInterval, lookback)
	}
	if r.SendResolved == nil {
		r.SendResolved = new(bool)
		*r.SendResolved = true
	}
	if r.Type == TypeAlertmanager && (len(r.GroupBy) != 1 || r.GroupBy[0] != "alertname") {
		errs.Addf("group_by: alertmanager groups by itself (its route's group_by)")
	}
}

func count(ss ...string) int {
	n := 0
	for _, s := range ss {
		if s != "" {
			n++
		}
	}
	return n
}

// resolve reads a value given inline, by environment variable or by file.
func resolve(key, inline, env, file string, getenv func(string) string) (string, error) {
	switch {
	case env != "":
		v := strings.TrimSpace(getenv(env))
		if v == "" {
			return "", fmt.Errorf("%s_env: environment variable %s is empty or unset", key, env)
		}
		return v, nil
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("%s_file: cannot read: %w", key, err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return inline, nil
}

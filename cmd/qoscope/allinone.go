package main

import (
	"context"
	"io"

	"github.com/qoscope/qoscope/internal/allinone"
)

func runAllInOne(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("all-in-one", stderr)
	var o allinone.Options
	fs.StringVar(&o.ConfigFile, "config", "", "YAML config file (optional; QOSCOPE_* env vars override it)")
	fs.BoolVar(&o.Demo, "demo", false, "run the demo: embedded Kafka (unless QOSCOPE_KAFKA_BROKERS is set), generated traffic, a minute report")
	fs.StringVar(&o.StateDir, "state-dir", "", "with -demo: keep the embedded Kafka's data here across runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Stdout, o.Stderr = stdout, stderr
	return allinone.Run(ctx, o)
}

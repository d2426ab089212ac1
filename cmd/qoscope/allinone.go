package main

import (
	"context"
	"io"

	"github.com/qoscope/qoscope/internal/allinone"
	"github.com/qoscope/qoscope/internal/appconfig"
)

func runAllInOne(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("all-in-one", stderr)
	var o allinone.Options
	configFile := fs.String("config", "", configFlagUsage+"; all-in-one reads every section but migrate")
	printConfig := fs.Bool("print-config", false, printConfigUsage)
	demo := fs.Bool("demo", false, "run the demo: generated traffic and a minute report (embedded Kafka unless kafka.brokers or QOSCOPE_KAFKA_BROKERS names one)")
	stateDir := fs.String("state-dir", "", "with -demo: keep the embedded Kafka's data here across runs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := appconfig.LoadAllInOne(*configFile, *demo, *stateDir)
	if *printConfig && (err == nil || appconfig.IsInvalid(err)) {
		return printConfigThen(func() error { return appconfig.PrintAllInOne(stdout, cfg) }, err)
	}
	if err != nil {
		return err
	}
	o.Config, o.Stdout, o.Stderr = cfg, stdout, stderr
	return allinone.Run(ctx, o)
}

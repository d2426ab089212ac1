package main

import (
	"context"
	"io"

	"github.com/qoscope/qoscope/internal/appconfig"
	"github.com/qoscope/qoscope/query/api"
)

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("serve", stderr)
	configFile := fs.String("config", "", configFlagUsage+"; serve reads clickhouse, log, aggregator (grouping sets, lateness) and serve")
	printConfig := fs.Bool("print-config", false, printConfigUsage)
	listen := fs.String("listen", "", "HTTP listen address, overriding serve.listen (e.g. 127.0.0.1:8090)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := appconfig.LoadServe(*configFile)
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *printConfig && (err == nil || appconfig.IsInvalid(err)) {
		return printConfigThen(func() error { return appconfig.PrintServe(stdout, cfg) }, err)
	}
	if err != nil {
		return err
	}
	return api.Run(ctx, api.Options{Config: cfg, Stderr: stderr})
}

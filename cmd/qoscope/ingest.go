package main

import (
	"context"
	"io"

	"github.com/qoscope/qoscope/ingest"
	"github.com/qoscope/qoscope/internal/appconfig"
)

func runIngest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("ingest", stderr)
	var o ingest.Options
	configFile := fs.String("config", "", configFlagUsage+"; ingest reads kafka, log and ingest")
	printConfig := fs.Bool("print-config", false, printConfigUsage)
	fs.StringVar(&o.Listen, "listen", "", "HTTP listen address, overriding ingest.listen (e.g. :8080)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := appconfig.LoadIngest(*configFile)
	if o.Listen != "" {
		cfg.Listen = o.Listen
	}
	if *printConfig && (err == nil || appconfig.IsInvalid(err)) {
		return printConfigThen(func() error { return appconfig.PrintIngest(stdout, cfg) }, err)
	}
	if err != nil {
		return err
	}
	o.Config, o.Stderr = cfg, stderr
	return ingest.Run(ctx, o)
}

package main

import (
	"context"
	"io"

	"github.com/qoscope/qoscope/ingest"
)

func runIngest(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("ingest", stderr)
	var o ingest.Options
	fs.StringVar(&o.ConfigFile, "config", "", "YAML config file (optional; QOSCOPE_* env vars override it)")
	fs.StringVar(&o.Listen, "listen", "", "HTTP listen address, overriding the config's listen (e.g. :8080)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Stderr = stderr
	return ingest.Run(ctx, o)
}

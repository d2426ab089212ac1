package main

import (
	"context"
	"io"

	"github.com/qoscope/qoscope/internal/allinone"
)

func runAllInOne(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("all-in-one", stderr)
	var o allinone.Options
	fs.StringVar(&o.ConfigFile, "config", "", "YAML config file (optional; QOSCOPE_* env vars override it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Stderr = stderr
	return allinone.Run(ctx, o)
}

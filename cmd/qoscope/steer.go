package main

import (
	"context"
	"fmt"
	"io"

	"github.com/qoscope/qoscope/internal/appconfig"
	"github.com/qoscope/qoscope/steer"
)

func runSteer(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("steer", stderr)
	configFile := fs.String("config", "", configFlagUsage+"; steer reads log and steer")
	printConfig := fs.Bool("print-config", false, printConfigUsage)
	listen := fs.String("listen", "", "HTTP listen address, overriding steer.listen (e.g. 0.0.0.0:8095)")
	scoresFile := fs.String("scores-file", "", "score table JSON (qoscope scores --output) read once instead of polling serve, overriding steer.scores.file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("steer: unexpected argument %q: %w", fs.Arg(0), errUsage)
	}
	cfg, err := appconfig.LoadSteer(*configFile)
	if *listen != "" || *scoresFile != "" {
		if *listen != "" {
			cfg.Listen = *listen
		}
		if *scoresFile != "" {
			cfg.Scores.File = *scoresFile
		}
		// The flags may fix what the file left invalid (no token in file
		// mode): validate again.
		if err == nil || appconfig.IsInvalid(err) {
			err = appconfig.ValidateSteer(&cfg)
		}
	}
	if *printConfig && (err == nil || appconfig.IsInvalid(err)) {
		return printConfigThen(func() error { return appconfig.PrintSteer(stdout, cfg) }, err)
	}
	if err != nil {
		return err
	}
	return steer.Run(ctx, steer.Options{Config: cfg, Stderr: stderr})
}

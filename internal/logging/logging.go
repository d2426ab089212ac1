// Package logging builds the process's zerolog.Logger. Components receive it
// by injection and add their own "component" field; nothing logs globally.
package logging

import (
	"io"
	"os"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/term"

	"github.com/qoscope/qoscope/internal/config"
)

// New returns a logger writing to w in the configured format. Format "auto"
// picks the human console writer when w is a terminal and JSON otherwise, so
// the same binary is readable by hand and by log shippers.
func New(w io.Writer, c config.Log) zerolog.Logger {
	level, err := zerolog.ParseLevel(c.Level)
	if err != nil {
		level = zerolog.InfoLevel
	}
	out := w
	console := c.Format == "console"
	if c.Format == "auto" || c.Format == "" {
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			console = true
		}
	}
	if console {
		out = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(out).Level(level).With().Timestamp().Logger()
}

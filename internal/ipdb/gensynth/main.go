// Command gensynth writes the synthetic demo IP ranges shipped with
// internal/ipdb (see ipdb.WriteSyntheticCSV). Run it through
// `go generate ./internal/ipdb`.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"

	"github.com/qoscope/qoscope/internal/ipdb"
)

func main() {
	out := flag.String("out", "synthetic.csv", "file to write")
	flag.Parse()
	if err := run(*out); err != nil {
		fmt.Fprintln(os.Stderr, "gensynth:", err)
		os.Exit(1)
	}
}

func run(out string) error {
	var b bytes.Buffer
	if err := ipdb.WriteSyntheticCSV(&b); err != nil {
		return err
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

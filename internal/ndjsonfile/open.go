// Package ndjsonfile opens the NDJSON inputs of the offline commands
// (`qoscope aggregate --input`, `alert eval`, `scores`): a file or stdin,
// plain or gzip, detected by content rather than by name, so that a
// compressed file renamed or piped through stdin still reads.
package ndjsonfile

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"io"
	"os"
)

// Open opens name ("-" is stdin) and returns a buffered reader of its
// decompressed content and the function that closes what was opened.
func Open(name string, stdin io.Reader) (*bufio.Reader, func(), error) {
	r := stdin
	closeFile := func() {}
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, fmt.Errorf("cannot open input: %w", err)
		}
		r, closeFile = f, func() { f.Close() }
	}
	br := bufio.NewReaderSize(r, 1<<16)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		gz, err := gzip.NewReader(br)
		if err != nil {
			closeFile()
			return nil, nil, fmt.Errorf("%s: cannot read gzip: %w", name, err)
		}
		return bufio.NewReaderSize(gz, 1<<16), func() { gz.Close(); closeFile() }, nil
	}
	return br, closeFile, nil
}

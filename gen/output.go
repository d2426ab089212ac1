package gen

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/klauspost/compress/gzip"

	"github.com/qoscope/qoscope/schemas"
)

// chunk is one tick's events, encoded as NDJSON in emission order.
type chunk struct {
	tickEnd int64 // Unix ms
	data    []byte
	ends    []int32 // ends[i] is the end (after '\n') of line i
	srcs    []schemas.Source
}

func (c *chunk) reset() {
	c.data = c.data[:0]
	c.ends = c.ends[:0]
	c.srcs = c.srcs[:0]
}

func (c *chunk) lines() int { return len(c.ends) }

// line returns line i including its '\n'.
func (c *chunk) line(i int) []byte {
	start := int32(0)
	if i > 0 {
		start = c.ends[i-1]
	}
	return c.data[start:c.ends[i]]
}

// sink receives every chunk, in order, from one goroutine.
type sink interface {
	write(c *chunk) error
	close() error
}

// fileOut is one NDJSON file, gzip-compressed when asked.
type fileOut struct {
	name string
	f    io.WriteCloser // nil for stdout
	gz   *gzip.Writer
	bw   *bufio.Writer
	n    int64
}

func openOut(path string, compress bool, stdout io.Writer) (*fileOut, error) {
	o := &fileOut{name: path}
	var w io.Writer
	if path == "-" {
		w = stdout
	} else {
		f, err := os.Create(path)
		if err != nil {
			return nil, fmt.Errorf("cannot create output: %w", err)
		}
		o.f = f
		w = f
	}
	if compress {
		// Level 1 keeps gzip from being the bottleneck; NDJSON still
		// shrinks about 8×.
		gz, _ := gzip.NewWriterLevel(w, gzip.BestSpeed)
		o.gz = gz
		w = gz
	}
	o.bw = bufio.NewWriterSize(w, 1<<20)
	return o, nil
}

func (o *fileOut) Write(b []byte) (int, error) {
	n, err := o.bw.Write(b)
	if err != nil {
		return n, fmt.Errorf("cannot write %s: %w", o.name, err)
	}
	return n, nil
}

func (o *fileOut) close() error {
	err := o.bw.Flush()
	if o.gz != nil {
		err = errors.Join(err, o.gz.Close())
	}
	if o.f != nil {
		err = errors.Join(err, o.f.Close())
	}
	if err != nil {
		return fmt.Errorf("cannot finish %s: %w", o.name, err)
	}
	return nil
}

// fileSink writes every event to one file.
type fileSink struct {
	out   *fileOut
	lines *atomic.Int64
}

func newFileSink(path string, stdout io.Writer, lines *atomic.Int64) (*fileSink, error) {
	o, err := openOut(path, strings.HasSuffix(path, ".gz"), stdout)
	if err != nil {
		return nil, err
	}
	return &fileSink{out: o, lines: lines}, nil
}

func (s *fileSink) write(c *chunk) error {
	if _, err := s.out.Write(c.data); err != nil {
		return err
	}
	s.lines.Add(int64(c.lines()))
	return nil
}

func (s *fileSink) close() error { return s.out.close() }

// dirSink writes client.ndjson, cdn.ndjson and origin.ndjson (.gz) in dir,
// one file per ingest endpoint.
type dirSink struct {
	outs  [4]*fileOut
	lines *atomic.Int64
}

func newDirSink(dir string, compress bool, lines *atomic.Int64) (*dirSink, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create output directory: %w", err)
	}
	s := &dirSink{lines: lines}
	for _, src := range []schemas.Source{schemas.SourceClient, schemas.SourceCDN, schemas.SourceOrigin} {
		name := src.String() + ".ndjson"
		if compress {
			name += ".gz"
		}
		o, err := openOut(filepath.Join(dir, name), compress, nil)
		if err != nil {
			_ = s.close()
			return nil, err
		}
		s.outs[src] = o
	}
	return s, nil
}

func (s *dirSink) write(c *chunk) error {
	for i := range c.lines() {
		if _, err := s.outs[c.srcs[i]].Write(c.line(i)); err != nil {
			return err
		}
	}
	s.lines.Add(int64(c.lines()))
	return nil
}

func (s *dirSink) close() error {
	var err error
	for _, o := range s.outs {
		if o != nil {
			err = errors.Join(err, o.close())
		}
	}
	return err
}

package ndjsonfile

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "a.ndjson")
	os.WriteFile(plain, []byte("{\"a\":1}\n"), 0o644)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte("{\"b\":2}\n"))
	w.Close()
	zipped := filepath.Join(dir, "b.ndjson") // no .gz: detected by content
	os.WriteFile(zipped, gz.Bytes(), 0o644)
	broken := filepath.Join(dir, "c.gz")
	os.WriteFile(broken, []byte{0x1f, 0x8b, 0, 1}, 0o644)

	for _, c := range []struct {
		name  string
		stdin io.Reader
		want  string
	}{{plain, nil, "{\"a\":1}\n"}, {zipped, nil, "{\"b\":2}\n"}, {"-", bytes.NewReader(gz.Bytes()), "{\"b\":2}\n"}, {"-", strings.NewReader("x\n"), "x\n"}} {
		r, closeFn, err := Open(c.name, c.stdin)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		b, _ := io.ReadAll(r)
		closeFn()
		if string(b) != c.want {
			t.Errorf("%s: %q, want %q", c.name, b, c.want)
		}
	}
	if _, _, err := Open(filepath.Join(dir, "missing"), nil); err == nil || !strings.Contains(err.Error(), "cannot open input") {
		t.Errorf("missing file: %v", err)
	}
	if _, _, err := Open(broken, nil); err == nil || !strings.Contains(err.Error(), broken+": cannot read gzip") {
		t.Errorf("broken gzip: %v", err)
	}
}

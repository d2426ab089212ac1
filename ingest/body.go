package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// bodyReader reads request bodies under one size limit that holds both on
// the wire and after decompression, so a 10 KB zstd bomb cannot expand into
// gigabytes. Decompressors are pooled: building a zstd decoder costs far more
// than decoding a typical request.
type bodyReader struct {
	max  int64
	gz   sync.Pool // *gzip.Reader
	zstd sync.Pool // *zstd.Decoder
}

func newBodyReader(max int64) *bodyReader {
	br := &bodyReader{max: max}
	// Window and memory caps make the decoder reject frames that would need
	// more memory than the body limit allows before it allocates it.
	window := uint64(max)
	if window < 8<<20 {
		window = 8 << 20 // typical encoders use up to 8 MiB windows
	}
	br.zstd.New = func() any {
		d, err := zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1), // synchronous: no goroutines to leak from the pool
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(window),
			zstd.WithDecoderMaxMemory(window),
		)
		if err != nil {
			return err
		}
		return d
	}
	return br
}

// read fills buf with r's decoded body or returns a *RequestError.
func (br *bodyReader) read(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) error {
	if r.ContentLength > br.max {
		return tooLarge(br.max, "")
	}
	body := http.MaxBytesReader(w, r.Body, br.max)
	var src io.Reader = body
	enc := strings.ToLower(strings.TrimSpace(r.Header.Get("Content-Encoding")))
	switch enc {
	case "", "identity":
	case "gzip", "x-gzip":
		zr, _ := br.gz.Get().(*gzip.Reader)
		var err error
		if zr == nil {
			zr, err = gzip.NewReader(body)
		} else {
			err = zr.Reset(body)
		}
		if err != nil {
			return decodeErr(enc, err, br.max)
		}
		defer br.gz.Put(zr)
		src = zr
	case "zstd":
		v := br.zstd.Get()
		d, ok := v.(*zstd.Decoder)
		if !ok {
			return fmt.Errorf("cannot create zstd decoder: %v", v)
		}
		if err := d.Reset(body); err != nil {
			br.zstd.Put(d)
			return decodeErr(enc, err, br.max)
		}
		defer func() {
			_ = d.Reset(nil) // release the request body
			br.zstd.Put(d)
		}()
		src = d
	default:
		return &RequestError{Status: http.StatusUnsupportedMediaType,
			Msg: fmt.Sprintf("Content-Encoding %q is not supported (use gzip, zstd or none)", enc)}
	}
	if r.ContentLength > 0 && enc == "" {
		buf.Grow(int(r.ContentLength))
	}
	// One byte past the limit tells "exactly max" from "more than max".
	n, err := buf.ReadFrom(io.LimitReader(src, br.max+1))
	if err != nil {
		return decodeErr(enc, err, br.max)
	}
	if n > br.max {
		return tooLarge(br.max, enc)
	}
	return nil
}

func tooLarge(max int64, enc string) *RequestError {
	what := "body"
	if enc != "" {
		what = "decompressed body"
	}
	return &RequestError{Status: http.StatusRequestEntityTooLarge,
		Msg: fmt.Sprintf("%s exceeds %d bytes (limits.max_body_bytes); split the request", what, max)}
}

func decodeErr(enc string, err error, max int64) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return tooLarge(max, "")
	}
	if errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return &RequestError{Status: http.StatusRequestEntityTooLarge,
			Msg: fmt.Sprintf("zstd frame needs a window over %d bytes; compress with a smaller window", max)}
	}
	if enc == "" || enc == "identity" {
		// A client that stops sending mid-body; nothing to tell it.
		return &RequestError{Status: http.StatusBadRequest, Msg: "cannot read body: " + err.Error()}
	}
	return &RequestError{Status: http.StatusBadRequest, Msg: fmt.Sprintf("invalid %s body: %v", enc, err)}
}

// Package dashboards holds the war-room screens: the built-in wall
// (wall/, served by `qoscope serve` at /) and, beside it, the Grafana
// dashboards. docs/WALL.md describes the wall's panels, colours, kiosk
// mode, auth and Content-Security-Policy.
//
// The wall is plain HTML, CSS and JavaScript written by hand (SVG
// sparklines, no chart library), so there is no front-end toolchain: the
// files under wall/ are what browsers get, embedded into the binary.
package dashboards

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"net/http"
	"path"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/qoscope/qoscope/internal/config"
)

//go:embed wall/index.html wall/app.js wall/app.css wall/icon.svg
var files embed.FS

// Config is the serve section's `wall` key (deploy/config/qoscope.yaml).
type Config struct {
	// Enabled serves the wall at /. Default true.
	Enabled bool `yaml:"enabled" env:"ENABLED"`
	// FrameAncestors is the CSP frame-ancestors list: who may show the wall
	// in a frame ('none', 'self', or origins such as
	// https://portal.example.com). Default ['none'].
	FrameAncestors []string `yaml:"frame_ancestors" env:"FRAME_ANCESTORS" envSeparator:","`
}

// DefaultConfig is the documented default: served, framed by nobody.
func DefaultConfig() Config {
	return Config{Enabled: true, FrameAncestors: []string{"'none'"}}
}

// Validate adds the problems of c to errs (prefixed by the caller's key).
func (c *Config) Validate(errs *config.Errors) {
	if len(c.FrameAncestors) == 0 {
		errs.Addf("frame_ancestors: empty; use ['none'] to forbid framing")
	}
	for _, a := range c.FrameAncestors {
		switch {
		case a == "'none'" || a == "'self'":
			if len(c.FrameAncestors) > 1 && a == "'none'" {
				errs.Addf("frame_ancestors: 'none' cannot be combined with other sources")
			}
		case strings.HasPrefix(a, "https://") || strings.HasPrefix(a, "http://"):
			if strings.ContainsAny(a, " ;,'\"") {
				errs.Addf("frame_ancestors: %q is not a plain origin", a)
			}
		default:
			errs.Addf("frame_ancestors: %q is not 'none', 'self' or an http(s):// origin", a)
		}
	}
}

// Assets are the files the page loads, at /wall/<name>; each is linked
// from index.html with ?v=<its content hash>, so it may be cached for a
// year and a new build is fetched at once.
var Assets = []string{"app.js", "app.css", "icon.svg"}

// AssetPrefix is where the assets are served.
const AssetPrefix = "/wall/"

type asset struct {
	body, gz    []byte
	ctype, hash string
}

// Wall serves the page and its assets.
type Wall struct {
	csp    string
	index  asset
	assets map[string]asset
}

// New prepares the page for cfg: the assets' hashes are written into
// index.html and every file is compressed once.
func New(cfg Config) (*Wall, error) {
	w := &Wall{assets: map[string]asset{}}
	// The page loads nothing from elsewhere and runs no inline code: the
	// policy forbids both, so a CDN font or an injected script fails in the
	// browser instead of leaking the viewer.
	w.csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; " +
		"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors " +
		strings.Join(cfg.FrameAncestors, " ")
	page, err := files.ReadFile("wall/index.html")
	if err != nil {
		return nil, fmt.Errorf("wall: %w", err)
	}
	for _, name := range Assets {
		b, err := files.ReadFile("wall/" + name)
		if err != nil {
			return nil, fmt.Errorf("wall: %w", err)
		}
		a, err := newAsset(b, contentType(name))
		if err != nil {
			return nil, err
		}
		w.assets[name] = a
		ref := AssetPrefix + name
		if !bytes.Contains(page, []byte(`"`+ref+`"`)) {
			return nil, fmt.Errorf("wall: index.html does not link %s", ref)
		}
		page = bytes.ReplaceAll(page, []byte(`"`+ref+`"`), []byte(`"`+ref+"?v="+a.hash+`"`))
	}
	w.index, err = newAsset(page, "text/html; charset=utf-8")
	if err != nil {
		return nil, err
	}
	return w, nil
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	return "application/octet-stream"
}

func newAsset(b []byte, ctype string) (asset, error) {
	sum := sha256.Sum256(b)
	var gz bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if _, err := zw.Write(b); err != nil {
		return asset{}, fmt.Errorf("wall: cannot compress: %w", err)
	}
	if err := zw.Close(); err != nil {
		return asset{}, fmt.Errorf("wall: cannot compress: %w", err)
	}
	return asset{body: b, gz: gz.Bytes(), ctype: ctype, hash: hex.EncodeToString(sum[:8])}, nil
}

// CompressedSize is what a first load transfers (gzip): the page and
// every asset.
func (w *Wall) CompressedSize() int {
	n := len(w.index.gz)
	for _, a := range w.assets {
		n += len(a.gz)
	}
	return n
}

// Mount adds GET / and GET /wall/<asset> to r. The page is public (it
// holds no data; its script asks the API with the viewer's token).
func (w *Wall) Mount(r chi.Router) {
	r.Get("/", w.page)
	for _, name := range Assets {
		a := w.assets[name]
		r.Get(AssetPrefix+name, func(rw http.ResponseWriter, req *http.Request) {
			// Immutable only under the hash this build links: an old or
			// missing ?v= is revalidated by ETag.
			if req.URL.Query().Get("v") == a.hash {
				rw.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			} else {
				rw.Header().Set("Cache-Control", "no-cache")
			}
			w.write(rw, req, a)
		})
	}
}

func (w *Wall) page(rw http.ResponseWriter, req *http.Request) {
	h := rw.Header()
	h.Set("Content-Security-Policy", w.csp)
	h.Set("Cache-Control", "no-cache")
	// The token arrives in the fragment, which browsers never send; the
	// policy also keeps the page's URL out of other sites' logs.
	h.Set("Referrer-Policy", "no-referrer")
	if fo := frameOptions(w.csp); fo != "" {
		h.Set("X-Frame-Options", fo)
	}
	w.write(rw, req, w.index)
}

// frameOptions is the X-Frame-Options matching frame-ancestors, for
// browsers that predate CSP 2; origins cannot be expressed there, so they
// get none (CSP decides).
func frameOptions(csp string) string {
	switch {
	case strings.HasSuffix(csp, "frame-ancestors 'none'"):
		return "DENY"
	case strings.HasSuffix(csp, "frame-ancestors 'self'"):
		return "SAMEORIGIN"
	}
	return ""
}

func (w *Wall) write(rw http.ResponseWriter, req *http.Request, a asset) {
	h := rw.Header()
	body, etag := a.body, `"`+a.hash+`"`
	gz := acceptsGzip(req.Header.Get("Accept-Encoding"))
	if gz {
		// Each encoding is its own representation (RFC 9110 §8.8.3).
		body, etag = a.gz, `"`+a.hash+`-gz"`
	}
	h.Set("ETag", etag)
	h.Set("Content-Type", a.ctype)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	if match := req.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		rw.WriteHeader(http.StatusNotModified)
		return
	}
	if gz {
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	rw.WriteHeader(http.StatusOK)
	if req.Method != http.MethodHead {
		_, _ = rw.Write(body)
	}
}

// acceptsGzip: gzip is listed without q=0.
func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			return strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0"
		}
	}
	return false
}

package dashboards

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/qoscope/qoscope/internal/config"
)

func serve(t *testing.T, cfg Config) http.Handler {
	t.Helper()
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	w.Mount(r)
	return r
}

func get(h http.Handler, path string, header ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// The page carries the policy that forbids every other origin and inline
// code, and links each asset under its content hash.
func TestPagePolicyAndLinks(t *testing.T) {
	h := serve(t, DefaultConfig())
	rec := get(h, "/")
	if rec.Code != 200 {
		t.Fatalf("GET /: %d", rec.Code)
	}
	csp := rec.Header().Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "script-src 'self';", "style-src 'self';", "connect-src 'self'", "frame-ancestors 'none'", "object-src 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP lacks %q: %s", want, csp)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "*") {
		t.Errorf("CSP allows inline code or any origin: %s", csp)
	}
	if got := rec.Header().Get("X-Frame-Options"); got != "DENY" {
		t.Errorf("X-Frame-Options %q, want DENY", got)
	}
	if got := rec.Header().Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("Referrer-Policy %q", got)
	}
	page := rec.Body.String()
	for _, name := range Assets {
		m := regexp.MustCompile(`"/wall/` + regexp.QuoteMeta(name) + `\?v=([0-9a-f]{16})"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("page does not link /wall/%s with a hash", name)
		}
		// Under the linked hash: a year; otherwise revalidated.
		a := get(h, "/wall/"+name+"?v="+m[1])
		if a.Code != 200 || a.Header().Get("Cache-Control") != "public, max-age=31536000, immutable" {
			t.Errorf("/wall/%s?v=%s: %d %q", name, m[1], a.Code, a.Header().Get("Cache-Control"))
		}
		old := get(h, "/wall/"+name+"?v=0000000000000000")
		if old.Header().Get("Cache-Control") != "no-cache" {
			t.Errorf("/wall/%s under another hash: %q, want no-cache", name, old.Header().Get("Cache-Control"))
		}
		if nm := get(h, "/wall/"+name, "If-None-Match", a.Header().Get("ETag")); nm.Code != http.StatusNotModified {
			t.Errorf("/wall/%s If-None-Match its ETag: %d", name, nm.Code)
		}
	}
	// Inline script or style would be blocked by the policy above: there
	// must be none, nor an inline handler or style attribute.
	for _, bad := range []string{"<script>", "<style", " style=", " onclick=", " onload=", "javascript:"} {
		if strings.Contains(page, bad) {
			t.Errorf("page holds %q, which the CSP blocks", bad)
		}
	}
}

func TestFrameAncestorsConfigured(t *testing.T) {
	h := serve(t, Config{Enabled: true, FrameAncestors: []string{"'self'", "https://portal.example.com"}})
	rec := get(h, "/")
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.HasSuffix(csp, "frame-ancestors 'self' https://portal.example.com") {
		t.Errorf("CSP %s", csp)
	}
	if got := rec.Header().Get("X-Frame-Options"); got != "" {
		t.Errorf("X-Frame-Options %q: it cannot name an origin, so CSP alone decides", got)
	}
	var errs config.Errors
	c := Config{FrameAncestors: []string{"'none'", "'self'"}}
	c.Validate(&errs)
	c = Config{FrameAncestors: []string{"portal.example.com"}}
	c.Validate(&errs)
	c = Config{FrameAncestors: []string{"https://a.example.com; script-src *"}}
	c.Validate(&errs)
	c = Config{}
	c.Validate(&errs)
	if got := errs.Len(); got != 4 {
		t.Errorf("%d errors, want 4: %v", got, errs.Messages())
	}
}

// The first load stays small (docs/WALL.md: < 500 kB compressed) and
// gzip is served to clients that accept it.
func TestGzipAndSize(t *testing.T) {
	w, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if n := w.CompressedSize(); n > 500_000 || n < 1000 {
		t.Errorf("first load %d bytes compressed", n)
	}
	t.Logf("first load: %d bytes gzip", w.CompressedSize())
	h := serve(t, DefaultConfig())
	plain := get(h, "/wall/app.js")
	gz := get(h, "/wall/app.js", "Accept-Encoding", "br, gzip;q=0.8")
	if gz.Header().Get("Content-Encoding") != "gzip" || plain.Header().Get("Content-Encoding") != "" {
		t.Fatalf("encodings %q / %q", gz.Header().Get("Content-Encoding"), plain.Header().Get("Content-Encoding"))
	}
	if gz.Header().Get("ETag") == plain.Header().Get("ETag") {
		t.Error("the gzip and identity representations share an ETag")
	}
	zr, err := gzip.NewReader(gz.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(b, plain.Body.Bytes()) {
		t.Errorf("gzip body differs from the plain one (%v)", err)
	}
	if no := get(h, "/wall/app.js", "Accept-Encoding", "gzip;q=0"); no.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 got gzip")
	}
}

// No file of the wall names another origin: fonts, scripts, images and
// API calls are all same-origin (the SVG namespace is a name, not a
// request).
func TestNoExternalReferences(t *testing.T) {
	url := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|[^a-z]url\(|import\(|new Worker`)
	for _, name := range append([]string{"index.html"}, Assets...) {
		b, err := files.ReadFile("wall/" + name)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range url.FindAllString(string(b), -1) {
			if m == "http://www.w3.org" {
				continue
			}
			t.Errorf("%s references %q", name, m)
		}
	}
}

package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

// whoami names the token and its scopes for any valid token, never the
// secret; without one it is a 401 like the rest of the API.
func TestWhoami(t *testing.T) {
	f := newFixture(t, time.Time{})
	for _, c := range []struct {
		token, name string
		scopes      []string
	}{{readToken, "wall", []string{"read"}}, {adminToken, "ops", []string{"admin"}}} {
		code, b := f.getWith(t, c.token, "/api/v1/whoami")
		var w Whoami
		if err := json.Unmarshal(b, &w); code != http.StatusOK || err != nil {
			t.Fatalf("%s: %d %s", c.name, code, b)
		}
		if w.Name != c.name || !slices.Equal(w.Scopes, c.scopes) {
			t.Errorf("%s: %+v", c.name, w)
		}
		if strings.Contains(string(b), readToken) || strings.Contains(string(b), adminToken) {
			t.Errorf("answer carries a secret: %s", b)
		}
	}
	if code, _ := f.getWith(t, "", "/api/v1/whoami"); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
	if code, _ := f.getWith(t, readToken, "/api/v1/whoami?x=1"); code != http.StatusBadRequest {
		t.Errorf("unknown parameter: %d", code)
	}
}

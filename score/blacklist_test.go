package score

import (
	"strings"
	"testing"
)

func vendors(names ...string) []VendorScore {
	out := make([]VendorScore, len(names))
	for i, n := range names {
		out[i].Vendor = n
	}
	return out
}

func TestApplyBlacklist(t *testing.T) {
	vs := vendors("a", "b", "c")
	warns := applyBlacklist("guangdong", "telecom", vs, map[string]string{"a": "5xx", "c": "stalls"})
	if len(warns) != 0 || !vs[0].Blacklisted || vs[1].Blacklisted || !vs[2].Blacklisted {
		t.Fatalf("got %+v, warnings %q", vs, warns)
	}
	if *vs[0].Reason != "5xx" || vs[1].Reason != nil || *vs[2].Reason != "stalls" {
		t.Fatalf("reasons: got %+v", vs)
	}
}

func TestBlacklistNeverRemovesTheLastVendor(t *testing.T) {
	vs := vendors("a", "b")
	warns := applyBlacklist("guangdong", "telecom", vs, map[string]string{"a": "5xx", "b": "stalls"})
	if !vs[0].Blacklisted || vs[1].Blacklisted {
		t.Fatalf("want a blacklisted and b kept, got %+v", vs)
	}
	if vs[1].Reason == nil || !strings.Contains(*vs[1].Reason, "last eligible vendor of guangdong/telecom") || !strings.Contains(*vs[1].Reason, "stalls") {
		t.Fatalf("b's reason should say why it was kept: %v", vs[1].Reason)
	}
	if len(warns) != 1 || !strings.HasPrefix(warns[0], "b in guangdong/telecom: not blacklisted") {
		t.Fatalf("warnings: %q", warns)
	}
}

func TestParseBlacklistErrors(t *testing.T) {
	c := &Contracts{Vendors: map[string]Contract{"cdn-a": {MaxMbps: 1}}}
	for _, tc := range []struct{ body, want string }{
		{"- {vendor: cdn-x, province: guangdong, isp: telecom, reason: r}", `bl.yaml: [0].vendor: "cdn-x" has no contract`},
		{"- {vendor: cdn-a, province: guangdong, isp: telecom}", "bl.yaml: [0].reason: required"},
		{"- {vendor: cdn-a, isp: telecom, reason: r}", "bl.yaml: [0].province: required"},
		{"- {vendor: cdn-a, province: g, isp: t, reason: r}\n- {vendor: cdn-a, province: g, isp: t, reason: s}", "[1].vendor: cdn-a in g/t is already blacklisted by entry [0]"},
		{"- {vendor: cdn-a, province: g, isp: t, reason: r, until: x}", "field until not found"},
	} {
		_, err := ParseBlacklist([]byte(tc.body), "bl.yaml", c)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error containing %q", tc.body, err, tc.want)
		}
	}
	bl, err := ParseBlacklist([]byte("- {vendor: cdn-a, province: g, isp: t, reason: r}"), "bl.yaml", c)
	if err != nil || len(bl) != 1 || bl[0] != (BlacklistEntry{"cdn-a", "g", "t", "r"}) {
		t.Fatalf("valid file: got %+v, %v", bl, err)
	}
}

package score

import (
	"fmt"
	"os"

	"github.com/qoscope/qoscope/internal/config"
)

// BlacklistEntry removes a vendor from one province × ISP.
type BlacklistEntry struct {
	Vendor   string `yaml:"vendor"`
	Province string `yaml:"province"`
	ISP      string `yaml:"isp"`
	// Reason is required: it is shown to the scheduler and on the wall.
	Reason string `yaml:"reason"`
}

// Blacklist is the blacklist file: a YAML list of entries.
type Blacklist []BlacklistEntry

// LoadBlacklist reads a blacklist file and checks it against the contracts.
func LoadBlacklist(path string, c *Contracts) (Blacklist, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read blacklist file: %w", err)
	}
	return ParseBlacklist(b, path, c)
}

// ParseBlacklist decodes strictly and validates; errors name the file and
// the entry's index.
func ParseBlacklist(b []byte, name string, c *Contracts) (Blacklist, error) {
	var bl Blacklist
	if err := config.DecodeYAML(b, &bl); err != nil {
		return nil, fmt.Errorf("blacklist file %s: %w", name, err)
	}
	var errs config.Errors
	seen := map[BlacklistEntry]int{}
	for i, e := range bl {
		ee := errs.In(fmt.Sprintf("[%d]", i))
		if _, ok := c.Vendors[e.Vendor]; !ok {
			ee.Addf("vendor: %q has no contract in the scores file", e.Vendor)
		}
		if e.Province == "" {
			ee.Addf("province: required")
		}
		if e.ISP == "" {
			ee.Addf("isp: required")
		}
		if e.Reason == "" {
			ee.Addf("reason: required (it is shown to the scheduler)")
		}
		k := BlacklistEntry{Vendor: e.Vendor, Province: e.Province, ISP: e.ISP}
		if j, ok := seen[k]; ok {
			ee.Addf("vendor: %s in %s/%s is already blacklisted by entry [%d]", e.Vendor, e.Province, e.ISP, j)
		}
		seen[k] = i
	}
	if err := errs.Err(); err != nil {
		return nil, fmt.Errorf("blacklist file %s: %w", name, err)
	}
	return bl, nil
}

// applyBlacklist marks the region's blacklisted vendors (vs is sorted by
// vendor name, entries apply in that order) and refuses the entry that
// would leave the region without an eligible vendor: that vendor stays
// eligible and its reason says why. It returns the refusals as warnings.
func applyBlacklist(province, isp string, vs []VendorScore, reasons map[string]string) []string {
	if len(reasons) == 0 {
		return nil
	}
	eligible := len(vs)
	var warns []string
	for i := range vs {
		reason, ok := reasons[vs[i].Vendor]
		if !ok {
			continue
		}
		if eligible == 1 {
			msg := fmt.Sprintf("not blacklisted: last eligible vendor of %s/%s (blacklist reason: %s)", province, isp, reason)
			vs[i].Reason = &msg
			warns = append(warns, fmt.Sprintf("%s in %s/%s: %s", vs[i].Vendor, province, isp, msg))
			continue
		}
		vs[i].Blacklisted = true
		r := reason
		vs[i].Reason = &r
		eligible--
	}
	return warns
}

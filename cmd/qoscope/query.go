package main

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/qoscope/qoscope/query/api"
)

const queryUsage = `usage: qoscope query series|breakdown|streams|history|alerts|scores [flags]

Asks a running qoscope serve (GET /api/v1/<endpoint>) and prints an aligned
table, or the JSON answer with --json. The flags mirror the API's query
parameters (docs/API.md). The token (scope read) comes from --token-file or
QOSCOPE_QUERY_TOKEN.

examples:
  qoscope query series --metric stutter_rate_uv --group-by isp --step 5m
  qoscope query breakdown --metric zero_stutter_rate --by province,isp --sort users --limit 10
  qoscope query streams
  qoscope query history --days 7
  qoscope query alerts                      (active, with the diagnosis)
  qoscope query alerts --from 2026-12-06T10:00:00Z --to 2026-12-06T11:00:00Z --rule stutter-uv-high
  qoscope query scores --province guangdong --isp telecom

flags:
`

// queryFlags are each endpoint's flags: flag name → API parameter.
var queryFlags = map[string][][2]string{
	"series":    {{"metric", "metric"}, {"source", "source"}, {"group-by", "group_by"}, {"from", "from"}, {"to", "to"}, {"step", "step"}},
	"breakdown": {{"metric", "metric"}, {"source", "source"}, {"by", "by"}, {"extra", "extra"}, {"at", "at"}, {"sort", "sort"}, {"order", "order"}, {"limit", "limit"}, {"min-users", "min_users"}},
	"streams":   {{"at", "at"}},
	"history":   {{"days", "days"}},
	"alerts":    {{"from", "from"}, {"to", "to"}, {"rule", "rule"}},
	"scores":    {{"province", "province"}, {"isp", "isp"}},
}

func runQuery(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || !slices.Contains(api.Endpoints, args[0]) {
		fmt.Fprint(stderr, queryUsage)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return nil
		}
		return fmt.Errorf("query: want one of %s first: %w", strings.Join(api.Endpoints, ", "), errUsage)
	}
	endpoint := args[0]
	fs := newFlagSet("query "+endpoint, stderr)
	o := api.QueryOptions{Endpoint: endpoint, Stdout: stdout, Params: url.Values{}}
	fs.StringVar(&o.URL, "url", "http://"+api.DefaultListen, "the query API's base URL")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (scope read); default: $QOSCOPE_QUERY_TOKEN")
	fs.BoolVar(&o.JSON, "json", false, "print the JSON answer instead of a table")
	vals := map[string]*string{}
	for _, f := range queryFlags[endpoint] {
		vals[f[1]] = fs.String(f[0], "", "API parameter "+f[1])
	}
	var filters stringList
	if endpoint == "series" || endpoint == "breakdown" {
		fs.Var(&filters, "filter", "dimension:value (repeatable)")
	}
	fs.Usage = func() {
		fmt.Fprint(stderr, queryUsage)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("query %s: unexpected argument %q: %w", endpoint, fs.Arg(0), errUsage)
	}
	for p, v := range vals {
		if *v != "" {
			o.Params.Set(p, *v)
		}
	}
	for _, f := range filters {
		o.Params.Add("filter", f)
	}
	o.Token = strings.TrimSpace(os.Getenv("QOSCOPE_QUERY_TOKEN"))
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("--token-file: %w", err)
		}
		o.Token = strings.TrimSpace(string(b))
	}
	if o.Token == "" {
		return fmt.Errorf("query: no token: set QOSCOPE_QUERY_TOKEN or --token-file (a serve.tokens entry with scope read)")
	}
	return api.Query(ctx, o)
}

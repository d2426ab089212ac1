package allinone

import (
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"

	"github.com/qoscope/qoscope/query/api"
)

// prepareServe builds the query API (`qoscope serve`'s api.Server, not a
// second implementation) on this process's ClickHouse connection and
// listens on serve.listen, before any component starts, so that a taken
// port fails the start.
func prepareServe(cfg Config, ch driver.Conn, base zerolog.Logger, written <-chan struct{}) (*api.Server, net.Listener, error) {
	sc := cfg.Serve
	sc.ClickHouse, sc.Log, sc.Aggregator = cfg.ClickHouse, cfg.Log, cfg.Aggregator.Aggregator
	// The evaluator finds this process's aggregator by its group and
	// topics; the scores' topic goes to this process's broker (the
	// embedded one's address is only known now). One process: no leader
	// election (alert.leader needs kafka.brokers in serve's own config).
	sc.Alert.AggregatorGroup, sc.Alert.Topics = cfg.Aggregator.GroupID, cfg.Kafka.Topics
	sc.Scores.Kafka = cfg.Kafka
	srv, err := api.New(sc, api.Deps{Conn: ch, Logger: base, Written: written})
	if err != nil {
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", sc.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot listen on %s (serve.listen): %w", sc.Listen, err)
	}
	return srv, ln, nil
}

// printServe tells where the API is, with the generated read token when
// the loader made one.
func printServe(w io.Writer, cfg Config, addr net.Addr) {
	base := "http://" + addr.String()
	fmt.Fprintf(w, "qoscope serve: query API at %s/api/v1 (OpenAPI: %s/api/v1/openapi.json, live: %s/api/v1/live)\n", base, base, base)
	if cfg.ServeOneRunToken && len(cfg.Serve.Tokens) > 0 {
		t := cfg.Serve.Tokens[0]
		if cfg.Serve.Wall.Enabled {
			// The token rides in the fragment, which browsers never send
			// (docs/WALL.md, "Auth").
			fmt.Fprintf(w, "qoscope wall: open %s/#token=%s\n", base, t.Token)
		}
		fmt.Fprintf(w, "  this run's token (name %q, scopes %s) is %s\n  try: curl -H 'Authorization: Bearer %s' '%s/api/v1/series?metric=stutter_rate_uv&group_by=isp'\n"+
			"  or:  qoscope query series --url %s --metric stutter_rate_uv --group-by isp (token in QOSCOPE_QUERY_TOKEN)\n",
			t.Name, strings.Join(t.Scopes, ", "), t.Token, t.Token, base, base)
	}
}

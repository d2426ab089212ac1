// Package chconn opens ClickHouse connections from a config.ClickHouse, so
// every service parses DSNs, sets timeouts and redacts passwords the same way.
package chconn

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Open parses dsn and returns a native-protocol connection after a ping.
func Open(ctx context.Context, dsn string) (driver.Conn, error) {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		// The parser echoes the DSN, which may hold a password: do not wrap it.
		return nil, fmt.Errorf("cannot parse clickhouse dsn %s", redact(dsn))
	}
	if opts.DialTimeout == 0 {
		opts.DialTimeout = 10 * time.Second
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("cannot open clickhouse %s: %w", redact(dsn), err)
	}
	pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := conn.Ping(pctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot reach clickhouse %s: %w", redact(dsn), err)
	}
	return conn, nil
}

// Database returns the database named by the DSN path.
func Database(dsn string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("cannot parse clickhouse dsn %s", redact(dsn))
	}
	db := strings.Trim(u.Path, "/")
	if db == "" {
		return "", fmt.Errorf("clickhouse dsn %s names no database", redact(dsn))
	}
	return db, nil
}

func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "<unparseable dsn>"
	}
	return u.Redacted()
}

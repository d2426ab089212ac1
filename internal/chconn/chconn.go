// Package chconn opens ClickHouse connections from a config.ClickHouse, so
// every service parses DSNs, sets timeouts and redacts passwords the same way.
package chconn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Open parses dsn and returns a native-protocol connection after a ping.
// While the server is unreachable (refused, reset: restarting, or started
// together with the service) the ping is retried for up to 15 s.
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
	if err := Retry(pctx, func() error { return conn.Ping(pctx) }); err != nil {
		conn.Close()
		return nil, fmt.Errorf("cannot reach clickhouse %s: %w", redact(dsn), err)
	}
	return conn, nil
}

// Unreachable reports whether err is a failure to reach the server (a
// refused or reset connection, a closed socket, a network timeout) rather
// than an answer from it: worth trying again once the server is back.
func Unreachable(err error) bool {
	if err == nil {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, net.ErrClosed)
}

// Retry runs f until it succeeds, fails otherwise than Unreachable, or ctx
// ends (then f's last error), every 250 ms.
func Retry(ctx context.Context, f func() error) error {
	for {
		err := f()
		if !Unreachable(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(250 * time.Millisecond):
		}
	}
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

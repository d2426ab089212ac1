package allinone

import (
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"
)

// extraComponents returns the pipeline parts that run beside ingest.
func extraComponents(cfg Config, ch driver.Conn, log zerolog.Logger) []component {
	return nil
}

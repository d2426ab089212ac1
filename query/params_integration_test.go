package query

import (
	"context"
	"testing"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/qoscope/qoscope/internal/testenv"
)

// A string bound by a statement reaches ClickHouse as it was: backslashes,
// tabs, newlines, NUL, quotes and the hostile strings of hostile_test.go.
func TestStringParametersRoundTrip(t *testing.T) {
	ch := testenv.ClickHouse(t)
	values := append([]string{`a\b`, `a\\b`, "a\tb", "a\nb", "a\rb", `a\nb`, "a\x00b", `it's`, `a\'b`, `\`, "x\\", "cdn-b × 广东"}, hostileStrings(200)...)
	for _, v := range values {
		s := newStmt()
		s.w("SELECT ", s.str(v))
		var got string
		err := ch.Conn.QueryRow(clickhouse.Context(context.Background(), clickhouse.WithParameters(s.params)), s.String()).Scan(&got)
		if err != nil || got != v {
			t.Errorf("bound %q: got %q, %v", v, got, err)
		}
	}
}

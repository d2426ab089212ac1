package migrate

import (
	"context"
	"testing"

	"github.com/qoscope/qoscope/internal/testenv"
	"github.com/qoscope/qoscope/migrations"
)

// No ClickHouse cluster (Keeper, several replicas) runs here, so the cluster
// variant cannot be applied; the server's parser still checks every rendered
// statement, which catches template mistakes that produce invalid SQL.
func TestIntegrationClusterVariantParses(t *testing.T) {
	env := testenv.ClickHouse(t)
	ctx := context.Background()
	_, srcs, err := loadSources(ctx, migrations.FS, templateData{database: env.Database, cluster: "qoscope_cluster"})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, s := range srcs {
		for _, stmt := range append(append([]string{}, s.Up...), s.Down...) {
			rows, err := env.Conn.Query(ctx, "EXPLAIN AST "+stmt)
			if err == nil {
				err = rows.Close()
			}
			if err != nil {
				t.Errorf("%s: cluster statement does not parse: %v\n%s", s.Path, err, stmt)
			}
			n++
		}
	}
	if n < 20 {
		t.Errorf("checked only %d statements", n)
	}
	// The migrator's own tables in their cluster form parse too.
	for _, stmt := range []string{versionTableDDL("qoscope_cluster"), runLogDDL("qoscope_cluster")} {
		if err := env.Conn.Exec(ctx, "EXPLAIN AST "+stmt); err != nil {
			t.Errorf("does not parse: %v\n%s", err, stmt)
		}
	}
}

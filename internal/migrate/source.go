package migrate

import (
	"bufio"
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing/fstest"
	"text/template"

	"github.com/pressly/goose/v3"
)

// source is one migration file after rendering and checking.
type source struct {
	Version int64
	Path    string // path inside the migrations fs.FS, e.g. "0001_minute_tables.sql"
	Up      []string
	Down    []string
}

// fileNameRE is stricter than goose (which silently skips names it cannot
// parse): a mistyped name must be an error, not a migration that never runs.
var fileNameRE = regexp.MustCompile(`^([0-9]+)_[a-z0-9_]+\.sql$`)

// loadSources reads every *.sql file at the root of src, renders it for the
// target (single node or cluster), checks it and splits it into statements
// with goose's own parser. It returns the rendered files as an fs.FS for
// goose and the sources in ascending version order. Every error names the file.
func loadSources(ctx context.Context, src fs.FS, tmpl templateData) (fs.FS, []source, error) {
	entries, err := fs.ReadDir(src, ".")
	if err != nil {
		return nil, nil, fmt.Errorf("cannot list migrations: %w", err)
	}
	rendered := fstest.MapFS{}
	var out []source
	seen := map[int64]string{}
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || path.Ext(name) != ".sql" {
			continue
		}
		m := fileNameRE.FindStringSubmatch(name)
		if m == nil {
			return nil, nil, fmt.Errorf("migration %s: file name must be NNNN_snake_case.sql (a version number, '_', lowercase letters, digits or '_')", name)
		}
		version, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || version < 1 {
			return nil, nil, fmt.Errorf("migration %s: version must be a number from 1 to %d", name, int64(1<<63-1))
		}
		if other, dup := seen[version]; dup {
			return nil, nil, fmt.Errorf("migration %s: version %d is also used by %s", name, version, other)
		}
		seen[version] = name
		raw, err := fs.ReadFile(src, name)
		if err != nil {
			return nil, nil, fmt.Errorf("migration %s: cannot read: %w", name, err)
		}
		if err := lintAnnotations(string(raw)); err != nil {
			return nil, nil, fmt.Errorf("migration %s: %w", name, err)
		}
		text, err := render(name, string(raw), tmpl)
		if err != nil {
			return nil, nil, fmt.Errorf("migration %s: %w", name, err)
		}
		up, down, err := splitStatements(ctx, name, text)
		if err != nil {
			return nil, nil, fmt.Errorf("migration %s: %w", name, err)
		}
		variant := "single-node"
		if tmpl.cluster != "" {
			variant = "cluster"
		}
		if len(up) == 0 {
			return nil, nil, fmt.Errorf("migration %s: the Up section has no statement (%s variant)", name, variant)
		}
		if len(down) == 0 {
			return nil, nil, fmt.Errorf("migration %s: the Down section has no statement (%s variant); every migration must be reversible, or its Down must fail with a message saying why it cannot be", name, variant)
		}
		rendered[name] = &fstest.MapFile{Data: []byte(text), Mode: 0o444}
		out = append(out, source{Version: version, Path: name, Up: up, Down: down})
	}
	if len(out) == 0 {
		return nil, nil, errors.New("no migration files (*.sql) found")
	}
	slices.SortFunc(out, func(a, b source) int { return cmp.Compare(a.Version, b.Version) })
	return rendered, out, nil
}

// lintAnnotations checks the goose annotations line by line, before goose
// parses the file, to give errors with line numbers and to enforce this
// project's rules: NO TRANSACTION (ClickHouse has no transactional DDL),
// exactly one Up then one Down (goose treats a missing Down as "nothing to
// undo"), and no ENVSUB (environment values would reach DDL unvalidated).
func lintAnnotations(text string) error {
	var ups, downs, noTx int
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "--") || !strings.Contains(line, "+goose") {
			continue
		}
		ann := strings.TrimSpace(strings.Replace(strings.TrimLeft(line, "- "), "+goose", "", 1))
		switch strings.ToUpper(ann) {
		case "UP":
			if downs > 0 {
				return fmt.Errorf("line %d: '-- +goose Up' must come before '-- +goose Down'", n)
			}
			ups++
		case "DOWN":
			downs++
		case "NO TRANSACTION":
			noTx++
		case "STATEMENTBEGIN", "STATEMENTEND":
		case "ENVSUB ON", "ENVSUB OFF":
			return fmt.Errorf("line %d: ENVSUB is not allowed: environment values would reach the DDL unvalidated; use the template fields (.OnCluster, .Table, .Engine, .Distributed)", n)
		default:
			return fmt.Errorf("line %d: unknown goose annotation %q", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("cannot read: %w", err)
	}
	switch {
	case ups != 1:
		return fmt.Errorf("found %d '-- +goose Up' annotations, want exactly 1", ups)
	case downs == 0:
		return errors.New("missing '-- +goose Down' section: every migration must say how to undo it")
	case downs != 1:
		return fmt.Errorf("found %d '-- +goose Down' annotations, want exactly 1", downs)
	case noTx == 0:
		return errors.New("missing '-- +goose NO TRANSACTION': ClickHouse DDL is not transactional, so no migration may claim to be")
	}
	return nil
}

func render(name, text string, data templateData) (string, error) {
	t, err := template.New(name).Option("missingkey=error").Parse(text)
	if err != nil {
		return "", fmt.Errorf("cannot parse template: %w", err)
	}
	var b strings.Builder
	if err := t.Execute(&b, data); err != nil {
		return "", fmt.Errorf("cannot render template: %w", err)
	}
	return b.String(), nil
}

// splitStatements runs the file through goose against a database/sql
// connection that only records what it is asked to execute. The statements
// are therefore split exactly as goose will split them when it runs them for
// real, and goose's parse errors surface for every file, in both directions,
// before anything touches the server.
func splitStatements(ctx context.Context, name, text string) (up, down []string, err error) {
	rec := &recorder{}
	db := sql.OpenDB(rec)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectClickHouse, db,
		fstest.MapFS{name: &fstest.MapFile{Data: []byte(text)}},
		goose.WithDisableVersioning(true),
		goose.WithDisableGlobalRegistry(true),
		goose.WithLogger(goose.NopLogger()),
	)
	if err != nil {
		return nil, nil, err
	}
	if _, err := p.Up(ctx); err != nil {
		return nil, nil, unwrapPartial(err)
	}
	up = rec.take()
	if _, err := p.DownTo(ctx, 0); err != nil {
		return nil, nil, unwrapPartial(err)
	}
	return up, rec.take(), nil
}

// unwrapPartial drops goose's "partial migration error (type:sql,version:N)"
// prefix, which names no file; callers add the file name.
func unwrapPartial(err error) error {
	var pe *goose.PartialError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// recorder is a database/sql connector whose connections record ExecContext
// statements and refuse everything else.
type recorder struct {
	mu    sync.Mutex
	stmts []string
}

func (r *recorder) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.stmts
	r.stmts = nil
	return s
}

func (r *recorder) Connect(context.Context) (driver.Conn, error) { return recConn{r}, nil }
func (r *recorder) Driver() driver.Driver                        { return recDriver{} }

type recDriver struct{}

func (recDriver) Open(string) (driver.Conn, error) { return nil, errRecorderOnly }

var errRecorderOnly = errors.New("statement recorder: only ExecContext is supported")

type recConn struct{ r *recorder }

func (recConn) Prepare(string) (driver.Stmt, error) { return nil, errRecorderOnly }
func (recConn) Close() error                        { return nil }
func (recConn) Begin() (driver.Tx, error) {
	return nil, errors.New("transactions are not supported: mark the migration '-- +goose NO TRANSACTION'")
}

func (c recConn) ExecContext(_ context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if len(args) > 0 {
		return nil, errRecorderOnly
	}
	c.r.mu.Lock()
	c.r.stmts = append(c.r.stmts, query)
	c.r.mu.Unlock()
	return driver.RowsAffected(0), nil
}

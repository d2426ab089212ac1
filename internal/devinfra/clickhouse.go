package devinfra

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// The ClickHouse engine comes from chdb's npm package for linux-x64-gnu
// (ClickHouse 26.7.2.1). Both hashes were taken from a download checked by
// hand; a mismatch means a different or damaged artifact and is an error.
const (
	CHDBPackage            = "@chdb/lib-linux-x64-gnu"
	CHDBVersion            = "26.7.3-stable.1"
	chdbTarballSHA256      = "c0d32b129e988f2b9a9a31c9141aecf5e1e2453f9a079efc4d36ab8e3f92b2ad"
	chdbLibSHA256          = "36ad4e999882821ef13cf2d0f52c93f48e6ee1b4498b35a201c23ce4b8d15bf5"
	chdbLibMemberInTarball = "package/libchdb.so"
)

//go:embed chhost/chhost.c
var chhostSource []byte

// ClickHouseInstall is libchdb.so and the compiled host in the cache.
type ClickHouseInstall struct {
	// Lib is the verified libchdb.so; Host the compiled chhost binary.
	Lib, Host string
	// Downloaded is true if libchdb.so was fetched by this call; Compiled if
	// the host was (re)built.
	Downloaded, Compiled bool
}

// InstallClickHouse fetches libchdb.so with `npm pack` (npm's own cache is
// pointed at a temporary directory inside ours and removed afterwards, so
// the 178 MB tarball is not kept twice), verifies both SHA-256 sums, keeps
// only the library, and compiles chhost.c with the C compiler. Each step is
// skipped when its result is already in the cache.
func InstallClickHouse(ctx context.Context, opts Options) (*ClickHouseInstall, error) {
	o := opts
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("invalid infra options: %w", err)
	}
	root := filepath.Join(o.CacheDir, "clickhouse")
	dir := filepath.Join(root, "chdb-"+CHDBVersion)
	srcSum := sha256.Sum256(chhostSource)
	inst := &ClickHouseInstall{
		Lib:  filepath.Join(dir, "libchdb.so"),
		Host: filepath.Join(root, "chhost-"+hex.EncodeToString(srcSum[:8])),
	}
	if checkCHDB(inst.Lib) == nil && isExecutable(inst.Host) {
		return inst, nil
	}
	unlock, err := lockFile(filepath.Join(root, ".lock"))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := checkCHDB(inst.Lib); err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			o.Log.Warn().Err(err).Msg("clickhouse cache is incomplete, fetching again")
		}
		if err := fetchCHDB(ctx, &o, root, dir); err != nil {
			return nil, err
		}
		inst.Downloaded = true
	}
	if !isExecutable(inst.Host) {
		if err := compileHost(ctx, &o, root, inst.Host); err != nil {
			return nil, err
		}
		inst.Compiled = true
	}
	return inst, nil
}

// checkCHDB trusts the marker written after the full SHA-256 check plus the
// file's size: hashing 566 MB on every `infra up` would cost seconds.
func checkCHDB(lib string) error {
	marker, err := os.ReadFile(lib + ".sha256")
	if err != nil {
		return err
	}
	fields := strings.Fields(string(marker))
	if len(fields) != 2 || fields[0] != chdbLibSHA256 {
		return fmt.Errorf("%s.sha256 does not record the expected hash", lib)
	}
	st, err := os.Stat(lib)
	if err != nil {
		return err
	}
	if strconv.FormatInt(st.Size(), 10) != fields[1] {
		return fmt.Errorf("%s has %d bytes, marker says %s", lib, st.Size(), fields[1])
	}
	return nil
}

func fetchCHDB(ctx context.Context, o *Options, root, dir string) error {
	start := time.Now()
	spec := CHDBPackage + "@" + CHDBVersion
	o.Log.Info().Str("package", spec).Str("dir", dir).Msg("fetching clickhouse engine from npm")
	tmp, err := os.MkdirTemp(root, "tmp-")
	if err != nil {
		return fmt.Errorf("cannot create temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)
	if _, err := runCaptured(ctx, tmp, o.NPM, "pack", "--ignore-scripts", "--silent",
		"--cache", filepath.Join(tmp, "npm-cache"), "--pack-destination", tmp, spec); err != nil {
		return fmt.Errorf("cannot fetch %s: %w", spec, err)
	}
	tarballs, _ := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if len(tarballs) != 1 {
		return fmt.Errorf("npm pack %s produced %d tarballs, want 1", spec, len(tarballs))
	}
	sum, _, err := sha256File(tarballs[0])
	if err != nil {
		return err
	}
	if sum != chdbTarballSHA256 {
		return fmt.Errorf("%s tarball has SHA-256 %s, want %s: refusing to use it", spec, sum, chdbTarballSHA256)
	}
	lib := filepath.Join(tmp, "libchdb.so")
	size, sum, err := extractMember(tarballs[0], chdbLibMemberInTarball, lib)
	if err != nil {
		return fmt.Errorf("cannot extract %s from %s: %w", chdbLibMemberInTarball, spec, err)
	}
	if sum != chdbLibSHA256 {
		return fmt.Errorf("%s from %s has SHA-256 %s, want %s: refusing to use it", chdbLibMemberInTarball, spec, sum, chdbLibSHA256)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	final := filepath.Join(dir, "libchdb.so")
	if err := os.Rename(lib, final); err != nil {
		return fmt.Errorf("cannot move libchdb.so into the cache: %w", err)
	}
	// The marker is written last: it is what makes the install count.
	if err := os.WriteFile(final+".sha256", fmt.Appendf(nil, "%s %d\n", sum, size), 0o644); err != nil {
		return err
	}
	o.Log.Info().Int64("bytes", size).Dur("took", time.Since(start)).Msg("clickhouse engine fetched and verified")
	return nil
}

// extractMember copies one regular file out of a .tgz to dst, hashing it on
// the way.
func extractMember(tgz, member, dst string) (int64, string, error) {
	f, err := os.Open(tgz)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return 0, "", err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return 0, "", fmt.Errorf("no %s in the tarball", member)
		}
		if err != nil {
			return 0, "", err
		}
		if h.Name != member || h.Typeflag != tar.TypeReg {
			continue
		}
		out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
		if err != nil {
			return 0, "", err
		}
		hash := sha256.New()
		n, err := io.Copy(io.MultiWriter(out, hash), tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return 0, "", err
		}
		return n, hex.EncodeToString(hash.Sum(nil)), nil
	}
}

// compileHost builds chhost.c; the binary's name carries the source hash, so
// a changed source gets a new binary and old ones are removed.
func compileHost(ctx context.Context, o *Options, root, host string) error {
	tmp, err := os.MkdirTemp(root, "tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	src := filepath.Join(tmp, "chhost.c")
	if err := os.WriteFile(src, chhostSource, 0o644); err != nil {
		return err
	}
	bin := filepath.Join(tmp, "chhost")
	if _, err := runCaptured(ctx, tmp, o.CC, "-O2", "-Wall", "-o", bin, src, "-ldl"); err != nil {
		return fmt.Errorf("cannot compile the clickhouse host: %w", err)
	}
	if err := os.Rename(bin, host); err != nil {
		return err
	}
	old, _ := filepath.Glob(filepath.Join(root, "chhost-*"))
	for _, f := range old {
		if f != host {
			_ = os.Remove(f)
		}
	}
	o.Log.Info().Str("host", host).Msg("clickhouse host compiled")
	return nil
}

func isExecutable(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// chKeepAlive opens the listeners and then never finishes: the listeners of
// clickhouse-local live only while its query runs. sleepEachRow(1) with one
// row per block costs no CPU.
const chKeepAlive = "SYSTEM START LISTEN TCP; SYSTEM START LISTEN HTTP; " +
	"SELECT sleepEachRow(1) FROM system.numbers FORMAT Null SETTINGS max_block_size=1, max_execution_time=0"

func upClickHouse(ctx context.Context, o *Options, record func(Server) error) error {
	inst, err := InstallClickHouse(ctx, *o)
	if err != nil {
		return err
	}
	return retryOnPortRace(o, "clickhouse", func() error {
		ports, err := freePorts(2)
		if err != nil {
			return err
		}
		node := chNode{name: "clickhouse", dir: filepath.Join(o.StateDir, "clickhouse"), tcpPort: ports[0], httpPort: ports[1]}
		return startClickHouse(ctx, o, inst, node, record)
	})
}

// chNode is one ClickHouse server to start: the main one or a cluster node.
type chNode struct {
	// name is used in logs and errors; dir holds its config, data and logs.
	name, dir string
	// The caller chooses the ports: a cluster's nodes name each other's in
	// their configs, which are written before any of them starts.
	tcpPort, httpPort int
	// extraConfig is XML added inside <clickhouse> (cluster settings).
	extraConfig string
}

func startClickHouse(ctx context.Context, o *Options, inst *ClickHouseInstall, node chNode, record func(Server) error) error {
	dir := node.dir
	srv := Server{
		Config:  filepath.Join(dir, "config.xml"),
		DataDir: filepath.Join(dir, "data"),
		Log:     filepath.Join(dir, "host.log"),
	}
	serverLog := filepath.Join(dir, "clickhouse-server.log")
	errorLog := filepath.Join(dir, "clickhouse-server.err.log")
	if err := os.RemoveAll(srv.DataDir); err != nil {
		return fmt.Errorf("cannot clear %s data: %w", node.name, err)
	}
	if err := os.MkdirAll(srv.DataDir, 0o755); err != nil {
		return err
	}
	for _, l := range []string{srv.Log, serverLog, errorLog} {
		if err := os.WriteFile(l, nil, 0o644); err != nil {
			return err
		}
	}
	if err := os.WriteFile(srv.Config, []byte(clickHouseConfig(serverLog, errorLog, node.extraConfig)), 0o644); err != nil {
		return err
	}
	native := net.JoinHostPort("127.0.0.1", strconv.Itoa(node.tcpPort))
	srv.Addr = "clickhouse://" + native + "/" + ClickHouseDatabase
	srv.HTTP = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(node.httpPort))

	p, err := startDetached(dir, srv.Log, inst.Host, inst.Lib,
		"--path="+srv.DataDir,
		"--listen_host=127.0.0.1",
		"--tcp_port="+strconv.Itoa(node.tcpPort),
		"--http_port="+strconv.Itoa(node.httpPort),
		"--config-file="+srv.Config,
		// The command line wins over <logger><level>; without it
		// clickhouse-local logs at trace level.
		"--log-level=warning",
		"--query="+chKeepAlive,
	)
	if err != nil {
		return err
	}
	srv.PID = p.pid
	if err := record(srv); err != nil {
		abandon(o, p, srv.Config)
		return err
	}
	o.Log.Info().Str("server", node.name).Int("pid", p.pid).Str("native", native).Str("http", srv.HTTP).Msg("clickhouse started, waiting until ready")
	start := time.Now()
	err = waitReady(ctx, o, node.name, p, []string{srv.Log, errorLog}, func(ctx context.Context) error {
		if err := pingClickHouse(ctx, Server{Addr: "clickhouse://" + native + "/default", HTTP: srv.HTTP}); err != nil {
			return err
		}
		return execClickHouse(ctx, "clickhouse://"+native+"/default", "CREATE DATABASE IF NOT EXISTS "+ClickHouseDatabase)
	})
	if err != nil {
		abandon(o, p, srv.Config)
		return err
	}
	o.Log.Info().Str("server", node.name).Int("pid", p.pid).Str("native", native).Dur("took", time.Since(start)).Msg("clickhouse ready")
	return nil
}

// clickHouseConfig raises the background pools from clickhouse-local's 2
// (merges and the schedule pool starve under a test suite's inserts) and
// turns on system.query_log, which clickhouse-local leaves off. extra is
// more XML inside <clickhouse>.
func clickHouseConfig(serverLog, errorLog, extra string) string {
	return fmt.Sprintf(`<clickhouse>
  <background_pool_size>16</background_pool_size>
  <background_schedule_pool_size>16</background_schedule_pool_size>
  <query_log>
    <database>system</database>
    <table>query_log</table>
    <flush_interval_milliseconds>1000</flush_interval_milliseconds>
  </query_log>
  <logger>
    <level>warning</level>
    <log>%s</log>
    <errorlog>%s</errorlog>
    <console>0</console>
  </logger>
%s</clickhouse>
`, xmlEscape(serverLog), xmlEscape(errorLog), extra)
}

func xmlEscape(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}

// pingClickHouse checks HTTP /ping (if known) and a native-protocol Ping.
func pingClickHouse(ctx context.Context, srv Server) error {
	if srv.HTTP != "" {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(srv.HTTP, "/")+"/ping", nil)
		if err != nil {
			return fmt.Errorf("http ping: %w", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return fmt.Errorf("http ping: %w", err)
		}
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != "Ok." {
			return fmt.Errorf("http ping: status %d, body %q", resp.StatusCode, body)
		}
	}
	return execClickHouse(ctx, srv.Addr, "")
}

// execClickHouse opens a native connection, pings, runs query if any.
func execClickHouse(ctx context.Context, dsn, query string) error {
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		return fmt.Errorf("cannot parse clickhouse dsn %s: %w", redact(dsn), err)
	}
	opts.DialTimeout = 2 * time.Second
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return fmt.Errorf("native connect: %w", err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		return fmt.Errorf("native ping: %w", err)
	}
	if query != "" {
		if err := conn.Exec(ctx, query); err != nil {
			return fmt.Errorf("%s: %w", query, err)
		}
	}
	return nil
}

// redact hides the password of a DSN for display.
func redact(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil || u.User == nil {
		if err != nil {
			return "<unparseable dsn>"
		}
		return dsn
	}
	return u.Redacted()
}

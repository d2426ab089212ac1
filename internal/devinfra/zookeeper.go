package devinfra

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// ZooKeeperVersion is the org.apache.zookeeper:zookeeper release that
// coordinates the replicated tables of a ClickHouse cluster (Options.ClusterNodes).
const ZooKeeperVersion = "3.9.5"

// zooKeeperDeps are the server and the jars it needs at run time that its
// pom does not bring: metrics-core and snappy-java are "provided" there, and
// without either the server starts but never serves (it answers `ruok`, then
// "not currently serving requests" forever). slf4j-simple makes it log, to
// stderr, i.e. its log file.
var zooKeeperDeps = []string{
	"org.apache.zookeeper:zookeeper:" + ZooKeeperVersion,
	"io.dropwizard.metrics:metrics-core:4.1.12.1",
	"org.xerial.snappy:snappy-java:1.1.10.7",
	"org.slf4j:slf4j-simple:2.0.13",
}

// InstallZooKeeper resolves ZooKeeperVersion and the jars it needs to serve
// from Maven Central into the cache, once (see installMavenJars).
func InstallZooKeeper(ctx context.Context, opts Options) (*JarInstall, error) {
	o := opts
	if err := o.Validate(); err != nil {
		return nil, fmt.Errorf("invalid infra options: %w", err)
	}
	dir, n, resolved, err := installMavenJars(ctx, &o, mavenJars{
		name:    "zookeeper",
		version: ZooKeeperVersion,
		deps:    zooKeeperDeps,
		mainJar: "zookeeper-" + ZooKeeperVersion + ".jar",
	})
	if err != nil {
		return nil, err
	}
	return newJarInstall(dir, n, resolved), nil
}

// startZooKeeper starts a standalone ZooKeeper in dir on a free port and
// waits until it serves.
func startZooKeeper(ctx context.Context, o *Options, inst *JarInstall, dir string, record func(Server) error) error {
	srv := Server{
		Config:  filepath.Join(dir, "zoo.cfg"),
		DataDir: filepath.Join(dir, "data"),
		Log:     filepath.Join(dir, "zookeeper.log"),
	}
	if err := os.RemoveAll(srv.DataDir); err != nil {
		return fmt.Errorf("cannot clear zookeeper data: %w", err)
	}
	if err := os.MkdirAll(srv.DataDir, 0o755); err != nil {
		return err
	}
	ports, err := freePorts(1)
	if err != nil {
		return err
	}
	srv.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
	if err := os.WriteFile(srv.Config, []byte(zooKeeperConfig(ports[0], srv.DataDir)), 0o644); err != nil {
		return err
	}
	// Truncate the previous run's log so that error tails show this run.
	if err := os.WriteFile(srv.Log, nil, 0o644); err != nil {
		return err
	}
	// A test cluster's coordination load is a few znodes per table: a small
	// heap, the serial collector and C1 only keep the JVM's start-up and
	// footprint small on a 2-core machine that also runs Kafka.
	p, err := startDetached(dir, srv.Log, o.Java,
		"-Xms32m", "-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-Djava.awt.headless=true",
		"-Dorg.slf4j.simpleLogger.showDateTime=true", "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSSZ",
		"-cp", inst.Classpath(),
		"org.apache.zookeeper.server.ZooKeeperServerMain", srv.Config,
	)
	if err != nil {
		return err
	}
	srv.PID = p.pid
	if err := record(srv); err != nil {
		abandon(o, p, srv.Config)
		return err
	}
	o.Log.Info().Int("pid", p.pid).Str("addr", srv.Addr).Msg("zookeeper started, waiting until ready")
	start := time.Now()
	err = waitReady(ctx, o, "zookeeper", p, []string{srv.Log}, func(ctx context.Context) error {
		return pingZooKeeper(ctx, srv)
	})
	if err != nil {
		abandon(o, p, srv.Config)
		return err
	}
	o.Log.Info().Int("pid", p.pid).Str("addr", srv.Addr).Dur("took", time.Since(start)).Msg("zookeeper ready")
	return nil
}

// zooKeeperConfig is a standalone server on loopback. forceSync=no: the data
// is thrown away with the state dir, and an fsync per transaction slows
// every replicated insert on a busy CI disk. The admin server (Jetty on
// 8080) is off: it would take a fixed port.
func zooKeeperConfig(port int, dataDir string) string {
	return fmt.Sprintf(`# written by qoscope devinfra
tickTime=500
dataDir=%s
clientPort=%d
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=ruok,stat
forceSync=no
`, dataDir, port)
}

// pingZooKeeper sends the `stat` four-letter word. Its reply starts with
// "Zookeeper version:" only once the server serves requests; `ruok` answers
// "imok" earlier, while it cannot yet serve.
func pingZooKeeper(ctx context.Context, srv Server) error {
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := d.DialContext(dctx, "tcp", srv.Addr)
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(5 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return err
	}
	if _, err := conn.Write([]byte("stat")); err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	reply, err := io.ReadAll(io.LimitReader(conn, 64<<10))
	if err != nil {
		return fmt.Errorf("stat: %w", err)
	}
	if !bytes.HasPrefix(reply, []byte("Zookeeper version:")) {
		line, _, _ := bytes.Cut(reply, []byte("\n"))
		return fmt.Errorf("stat: not serving: %q", line)
	}
	return nil
}

package devinfra

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestReusableReplacesOnAChangedClusterSize(t *testing.T) {
	// Nothing here runs or answers: the node count alone must decide,
	// before any server is pinged.
	node := Server{Addr: "clickhouse://127.0.0.1:1/qoscope", PID: 1 << 30, Config: "/nonexistent/config.xml"}
	for _, c := range []struct {
		recorded, want int
		reason         string
	}{
		{0, 2, "has 0 nodes, want 2"},
		{2, 0, "has 2 nodes, want 0"},
		{2, 3, "has 2 nodes, want 3"},
	} {
		old := &State{ClusterNodes: make([]Server, c.recorded)}
		for i := range old.ClusterNodes {
			old.ClusterNodes[i] = node
		}
		o := Options{CacheDir: "c", StateDir: "s", ClusterNodes: c.want}
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		if got := reusable(context.Background(), &o, old); !strings.Contains(got, c.reason) {
			t.Errorf("%d nodes recorded, %d wanted: reusable = %q, want it to say %q", c.recorded, c.want, got, c.reason)
		}
	}
	// A ZooKeeper left from an interrupted cluster start is not kept either.
	o := Options{CacheDir: "c", StateDir: "s"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := reusable(context.Background(), &o, &State{ZooKeeper: Server{Addr: "127.0.0.1:1", PID: 1 << 30}}); got == "" {
		t.Error("a state with a ZooKeeper but no cluster wanted is reusable")
	}
}

func TestDownStopsZooKeeperAndClusterNodes(t *testing.T) {
	stateDir := t.TempDir()
	var st State
	var markers, dataDirs []string
	for _, name := range []string{"zookeeper", "clickhouse-node1", "clickhouse-node2"} {
		marker := filepath.Join(stateDir, name, "config")
		data := filepath.Join(stateDir, name, "data")
		if err := os.MkdirAll(data, 0o755); err != nil {
			t.Fatal(err)
		}
		p := startMarked(t, "sleep 60; exit 0", marker)
		srv := Server{Addr: "127.0.0.1:1", PID: p.pid, Config: marker, DataDir: data}
		if name == "zookeeper" {
			st.ZooKeeper = srv
		} else {
			st.ClusterNodes = append(st.ClusterNodes, srv)
		}
		markers, dataDirs = append(markers, marker), append(dataDirs, data)
	}
	// Node 3 of an interrupted Up: never started, nothing to stop.
	st.ClusterNodes = append(st.ClusterNodes, Server{})
	if err := writeState(stateDir, &st); err != nil {
		t.Fatal(err)
	}
	o := Options{CacheDir: t.TempDir(), StateDir: stateDir, StopTimeout: 5 * time.Second}
	if err := Down(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	pids := []int{st.ZooKeeper.PID, st.ClusterNodes[0].PID, st.ClusterNodes[1].PID}
	for i, pid := range pids {
		if inspectPID(pid, markers[i]) != procGone {
			t.Errorf("%s (pid %d) still running after Down", markers[i], pid)
		}
		if _, err := os.Stat(dataDirs[i]); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("data dir %s not removed", dataDirs[i])
		}
	}
	if _, err := ReadState(stateDir); !errors.Is(err, ErrNoState) {
		t.Errorf("state after down: %v, want ErrNoState", err)
	}
}

func TestStatusListsTheCluster(t *testing.T) {
	stateDir := t.TempDir()
	st := &State{
		ZooKeeper:    Server{Addr: "127.0.0.1:1", PID: 1 << 30, Config: "/nonexistent/zoo.cfg"},
		ClusterNodes: []Server{{Addr: "clickhouse://127.0.0.1:1/qoscope", PID: 1 << 30, Config: "/nonexistent/config.xml"}, {}},
	}
	if err := writeState(stateDir, st); err != nil {
		t.Fatal(err)
	}
	sts, err := Status(context.Background(), Options{CacheDir: t.TempDir(), StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range sts {
		names = append(names, s.Name+"="+s.State)
	}
	// The state lacks node 2, so no node address was written (readers must
	// not see part of a cluster) and node 1 is known by its PID only.
	want := "kafka=not recorded clickhouse=not recorded zookeeper=gone clickhouse-node1=gone clickhouse-node2=not recorded"
	if got := strings.Join(names, " "); got != want {
		t.Errorf("status:\n got %s\nwant %s", got, want)
	}
}

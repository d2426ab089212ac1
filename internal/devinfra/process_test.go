package devinfra

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// startMarked starts a shell script whose command line carries marker (as
// $0), the way servers carry their config path. The script must not end in a
// simple command: dash execs that command, and the marker would vanish from
// /proc/PID/cmdline.
func startMarked(t *testing.T, script, marker string) *process {
	t.Helper()
	dir := t.TempDir()
	p, err := startDetached(dir, filepath.Join(dir, "log"), "sh", "-c", script, marker)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = signalGroup(p.pid, 9)
		<-p.exited
	})
	// Until the child has exec'd, its cmdline is this test binary's.
	waitFor(t, "the shell to start", func() bool { return inspectPID(p.pid, marker) == procOurs })
	return p
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// ignoresTERM reports whether pid has SIGTERM (15) in its ignored set.
func ignoresTERM(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "SigIgn:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err == nil && mask&(1<<(15-1)) != 0
		}
	}
	return false
}

func TestStopPIDTerminatesTheGroup(t *testing.T) {
	marker := "qoscope-test-marker-" + t.Name()
	p := startMarked(t, "sleep 60 & wait", marker)
	if st := inspectPID(p.pid, marker); st != procOurs {
		t.Fatalf("started process is %v", st)
	}
	if err := stopPID(context.Background(), p.pid, marker, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if st := inspectPID(p.pid, marker); st != procGone {
		t.Errorf("after stop: %v", st)
	}
	// The child sleep was in the same group and must be gone too: the
	// group is empty, so signalling it fails with ESRCH.
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		t.Fatal("shell not reaped")
	}
	if n := liveGroupMembers(t, p.pid); n != 0 {
		t.Errorf("process group still has %d live members after stop", n)
	}
}

// liveGroupMembers counts non-zombie processes in process group pgid.
func liveGroupMembers(t *testing.T, pgid int) int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil || len(stats) == 0 {
		t.Skip("no procfs")
	}
	n := 0
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		fields := strings.Fields(string(b[i+1:]))
		// fields[0] is the state, fields[2] the process group.
		if len(fields) > 2 && fields[2] == strconv.Itoa(pgid) && fields[0] != "Z" && fields[0] != "X" {
			n++
		}
	}
	return n
}

func TestStopPIDEscalatesToSIGKILL(t *testing.T) {
	marker := "qoscope-test-marker-" + t.Name()
	// Ignoring TERM is inherited by the sleep.
	p := startMarked(t, `trap "" TERM; sleep 60; exit 0`, marker)
	waitFor(t, "the TERM trap", func() bool { return ignoresTERM(p.pid) })
	start := time.Now()
	if err := stopPID(context.Background(), p.pid, marker, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if inspectPID(p.pid, marker) != procGone {
		t.Error("process survived SIGKILL")
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Error("stopped before the SIGTERM grace period: TERM was not ignored, the test proves nothing")
	}
}

func TestStopPIDLeavesForeignAndDeadPIDsAlone(t *testing.T) {
	marker := "qoscope-test-marker-" + t.Name()
	p := startMarked(t, "sleep 60; exit 0", marker)
	// Same PID, different marker: as after PID reuse. Must not be signalled.
	if st := inspectPID(p.pid, "some-other-config"); st != procForeign {
		t.Fatalf("inspect with wrong marker: %v, want foreign", st)
	}
	if err := stopPID(context.Background(), p.pid, "some-other-config", time.Second); err != nil {
		t.Fatal(err)
	}
	if inspectPID(p.pid, marker) != procOurs {
		t.Fatal("a process with a foreign command line was stopped")
	}

	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	if err := stopPID(context.Background(), dead.Process.Pid, "", time.Second); err != nil {
		t.Errorf("stopping a dead pid: %v", err)
	}
	if inspectPID(0, "") != procGone || inspectPID(-1, "") != procGone {
		t.Error("non-positive pids must count as gone")
	}
}

func TestDownHandlesStaleState(t *testing.T) {
	stateDir := t.TempDir()
	marker := filepath.Join(stateDir, "clickhouse", "config.xml")
	live := startMarked(t, "sleep 60; exit 0", marker)
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	kafkaData := filepath.Join(stateDir, "kafka", "data")
	chData := filepath.Join(stateDir, "clickhouse", "data")
	for _, d := range []string{kafkaData, chData} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	outside := t.TempDir() // a data dir outside the state dir is never deleted
	st := &State{
		Kafka:      Server{Addr: "127.0.0.1:1", PID: dead.Process.Pid, Config: filepath.Join(stateDir, "kafka", "server.properties"), DataDir: kafkaData},
		ClickHouse: Server{Addr: "clickhouse://127.0.0.1:2/qoscope", PID: live.pid, Config: marker, DataDir: chData},
	}
	if err := writeState(stateDir, st); err != nil {
		t.Fatal(err)
	}
	o := Options{CacheDir: t.TempDir(), StateDir: stateDir, StopTimeout: 5 * time.Second}
	if err := Down(context.Background(), o); err != nil {
		t.Fatalf("down with one dead and one live server: %v", err)
	}
	if inspectPID(live.pid, marker) != procGone {
		t.Error("live server not stopped")
	}
	for _, d := range []string{kafkaData, chData} {
		if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("data dir %s not removed", d)
		}
	}
	if _, err := ReadState(stateDir); !errors.Is(err, ErrNoState) {
		t.Errorf("state after down: %v, want ErrNoState", err)
	}
	// Down again, and Down on a state dir that never existed, are no-ops.
	if err := Down(context.Background(), o); err != nil {
		t.Error(err)
	}
	o.StateDir = filepath.Join(outside, "never")
	if err := Down(context.Background(), o); err != nil {
		t.Error(err)
	}

	// External servers are recorded but never touched.
	st = &State{Kafka: Server{Addr: "kafka.example:9092"}, ClickHouse: Server{Addr: "clickhouse://x:9000/db", DataDir: outside}}
	if err := writeState(stateDir, st); err != nil {
		t.Fatal(err)
	}
	o.StateDir = stateDir
	if err := Down(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(outside); err != nil {
		t.Errorf("external data dir touched: %v", err)
	}
}

func TestChhostRestartsReadsTheHostLog(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "host.log")
	body := "Processing configuration file\n" +
		"terminate called after throwing an instance of 'DB::NetException'\n" +
		"  what():  Connection reset by peer, while reading from socket (no query)\n" +
		"chhost: server process 41 ended with status 134 after 70 s; restarting it (restart 1)\n" +
		"chhost: server process 57 ended with status 134 after 12 s; restarting it (restart 2)\n"
	if err := os.WriteFile(log, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	n, last := chhostRestarts(log)
	if n != 2 || len(last) != 4 || !strings.Contains(last[3], "restart 2") || !strings.Contains(last[1], "Connection reset") {
		t.Fatalf("restarts %d, last lines %q", n, last)
	}
	if err := os.WriteFile(log, []byte("chhost: server process 41 ended with status 1 after 0 s; not restarting\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if n, _ := chhostRestarts(log); n != 0 {
		t.Fatalf("a startup failure counted as %d restarts", n)
	}
	if n, _ := chhostRestarts(filepath.Join(dir, "missing.log")); n != 0 {
		t.Fatalf("missing log: %d", n)
	}
}

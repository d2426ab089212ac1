package measure

import (
	"os/exec"
	"strconv"
	"testing"
	"time"
)

// A process's CPU includes what its live children have used: the local
// ClickHouse server runs as a child of the PID devinfra records.
func TestProcCPUCountsLiveChildren(t *testing.T) {
	// The child burns CPU, then sleeps so that it is still alive (not yet
	// reaped into the parent's cutime) when it is measured.
	cmd := exec.Command("sh", "-c", `sh -c 'i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; exec sleep 30' & wait`)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var kids []int
	var own time.Duration
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		kids = childPIDs(cmd.Process.Pid)
		if len(kids) != 1 {
			continue
		}
		if v, err := procStatCPU(kids[0]); err == nil && v > 0 && sleeping(kids[0]) {
			own = v
			break
		}
	}
	if own == 0 {
		t.Fatalf("the child (%v) never showed CPU time and went to sleep", kids)
	}
	parent, err := procStatCPU(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	total, err := ProcCPU(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if total < parent+own {
		t.Fatalf("ProcCPU %v < parent %v + live child %v", total, parent, own)
	}
}

// sleeping reports whether pid runs `sleep` (its busy loop is over).
func sleeping(pid int) bool {
	out, err := exec.Command("ps", "-o", "comm=", "-p", strconv.Itoa(pid)).Output()
	return err == nil && string(out) == "sleep\n"
}

package devinfra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// process is a server started by this process. exited is closed once the
// child has been reaped, which only this process can do; after `infra up`
// returns the child is an orphan and is watched by PID instead.
type process struct {
	pid     int
	exited  chan struct{}
	waitErr error // valid after exited is closed
}

// startDetached starts name with args in its own session, so that it keeps
// running after `qoscope infra up` exits and a Ctrl-C in the caller's terminal
// does not reach it, with stdin from /dev/null and stdout+stderr appended to
// logPath.
func startDetached(dir, logPath, name string, args ...string) (*process, error) {
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open log %s: %w", logPath, err)
	}
	// The child has its own copy of the descriptor.
	defer logf.Close()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("cannot start %s: %w", name, err)
	}
	p := &process{pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// procState reports whether pid is a live process whose command line contains
// marker. A zombie counts as dead: on machines whose PID 1 does not reap
// orphans, a stopped server stays in the process table as a zombie forever. A
// live process without the marker is a reused PID, not our server.
type procState int

const (
	procGone procState = iota
	procOurs
	procForeign
)

func (s procState) String() string {
	switch s {
	case procOurs:
		return "running"
	case procForeign:
		return "gone (pid reused by another process)"
	default:
		return "gone"
	}
}

func inspectPID(pid int, marker string) procState {
	if pid <= 0 {
		return procGone
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return procGone
		}
		// No procfs (not Linux): fall back to signal 0 and trust the PID.
		if syscall.Kill(pid, 0) == nil {
			return procOurs
		}
		return procGone
	}
	// Field 3 follows the parenthesised command name, which may itself
	// contain spaces or parentheses.
	if i := bytes.LastIndexByte(stat, ')'); i >= 0 && i+2 < len(stat) {
		switch stat[i+2] {
		case 'Z', 'X', 'x':
			return procGone
		}
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(cmdline) == 0 {
		// Empty: the process is exiting (its memory is already released)
		// or a kernel thread; neither is a server to stop.
		return procGone
	}
	if marker != "" && !bytes.Contains(cmdline, []byte(marker)) {
		return procForeign
	}
	return procOurs
}

// stopPID stops the process group led by pid (servers are started with
// Setsid, so pid is also the group id): SIGTERM, then SIGKILL after timeout.
// It returns nil if the process is already gone or the PID now belongs to
// someone else, whom it never signals.
func stopPID(ctx context.Context, pid int, marker string, timeout time.Duration) error {
	if inspectPID(pid, marker) != procOurs {
		return nil
	}
	if err := signalGroup(pid, syscall.SIGTERM); err != nil {
		return err
	}
	if waitGone(ctx, pid, marker, timeout) {
		return nil
	}
	if err := signalGroup(pid, syscall.SIGKILL); err != nil {
		return err
	}
	if waitGone(ctx, pid, marker, 10*time.Second) {
		return nil
	}
	return fmt.Errorf("process %d still alive after SIGKILL", pid)
}

func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		// Not a group leader (should not happen); signal the process alone.
		err = syscall.Kill(pid, sig)
	}
	if err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("cannot send %v to process %d: %w", sig, pid, err)
	}
	return nil
}

func waitGone(ctx context.Context, pid int, marker string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if inspectPID(pid, marker) != procOurs {
			return true
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runCaptured runs a short-lived tool (mvn, npm, gcc, the Kafka storage
// tool) and returns an error carrying the tail of its output, which is where
// those tools explain themselves.
func runCaptured(ctx context.Context, dir string, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	if err != nil {
		return out.Bytes(), fmt.Errorf("%s %s failed: %w\n%s", name, strings.Join(args, " "), err, tail(out.Bytes(), 40))
	}
	return out.Bytes(), nil
}

// tail returns the last n lines of b, indented, for error messages.
func tail(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "    | " + strings.Join(lines, "\n    | ")
}

// fileTail returns the last n lines of the file at path (at most its last
// 64 KiB), for readiness errors.
func fileTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("    (no log: %v)", err)
	}
	defer f.Close()
	const max = 64 << 10
	if st, err := f.Stat(); err == nil && st.Size() > max {
		if _, err := f.Seek(st.Size()-max, io.SeekStart); err != nil {
			return fmt.Sprintf("    (cannot read log: %v)", err)
		}
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("    (cannot read log: %v)", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return "    (log is empty)"
	}
	return tail(b, n)
}

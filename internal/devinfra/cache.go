package devinfra

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"syscall"
)

// DefaultCacheDir returns ${QOSCOPE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/qoscope}.
// getenv is os.Getenv in production; tests pass their own.
func DefaultCacheDir(getenv func(string) string) (string, error) {
	if d := getenv("QOSCOPE_CACHE_DIR"); d != "" {
		return filepath.Abs(d)
	}
	if d := getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Abs(filepath.Join(d, "qoscope"))
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("cannot find a cache directory: set QOSCOPE_CACHE_DIR, XDG_CACHE_HOME or HOME")
	}
	return filepath.Join(home, ".cache", "qoscope"), nil
}

// DefaultStateDir returns ${QOSCOPE_STATE_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/qoscope}.
func DefaultStateDir(getenv func(string) string) (string, error) {
	if d := getenv("QOSCOPE_STATE_DIR"); d != "" {
		return filepath.Abs(d)
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Abs(filepath.Join(d, "qoscope"))
	}
	home := getenv("HOME")
	if home == "" {
		return "", errors.New("cannot find a state directory: pass --state-dir or set QOSCOPE_STATE_DIR, XDG_STATE_HOME or HOME")
	}
	return filepath.Join(home, ".local", "state", "qoscope"), nil
}

// lockFile takes an exclusive advisory lock on path, blocking until it is
// free, so that two concurrent runs (two checkouts sharing the cache, or two
// `infra up` on one state dir) do not install or start over each other. The
// lock dies with the process, so a killed run cannot leave it behind.
func lockFile(path string) (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("cannot open lock %s: %w", path, err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("cannot lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// sha256File returns the hex SHA-256 of the file at path.
func sha256File(path string) (string, int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("cannot hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
// All listeners are held until every port is chosen so that the n are
// distinct; a server that then loses a race for its port exits at once and
// is started again with new ones (see startWithRetry).
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot find a free port: %w", err)
		}
		defer l.Close()
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

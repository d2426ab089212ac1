//go:build unix

package runner

import (
	"os"
	"syscall"
)

// killSelf does what kill -9 does: no deferred function, no flush, no
// group leave.
func killSelf() {
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {}
}

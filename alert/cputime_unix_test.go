//go:build unix

package alert

import (
	"syscall"
	"time"
)

// processCPU is the CPU time used by the whole process (all threads, so GC
// work counts). The benchmarks report it per minute evaluated as
// "cpu-ns/op", which unlike ns/op does not grow when other processes share
// the cores (bench/README.md, "Alerts").
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

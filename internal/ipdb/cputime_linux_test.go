//go:build linux

package ipdb

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU measures the CPU time of the benchmark's own OS thread. On a
// shared machine ns/op is wall time and grows with everybody else's load;
// cpu-ns/op leaves out the time the thread was waiting for a core (it still
// includes cache and memory contention, which are real costs).
type threadCPU struct{ start time.Duration }

func startThreadCPU(b *testing.B) *threadCPU {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
	return &threadCPU{start: threadTime()}
}

func (c *threadCPU) report(b *testing.B) {
	if b.N > 0 {
		b.ReportMetric(float64(threadTime()-c.start)/float64(b.N), "cpu-ns/op")
	}
}

func threadTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

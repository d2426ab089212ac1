//go:build !unix

package alert

import "time"

func processCPU() time.Duration { return 0 }

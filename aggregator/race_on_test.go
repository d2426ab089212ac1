//go:build race

package aggregator

// raceEnabled: the race detector multiplies run time and memory per
// allocation, so memory measurements are skipped under it.
const raceEnabled = true

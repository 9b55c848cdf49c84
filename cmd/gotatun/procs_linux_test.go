package main

import (
	"testing"
	"time"
)

func TestProcessCPUCountsWork(t *testing.T) {
	before := processCPU()
	wallStart := time.Now()
	deadline := wallStart.Add(10 * time.Second)
	x := uint64(1)
	for processCPU()-before < 20*time.Millisecond {
		if time.Now().After(deadline) {
			t.Fatalf("processCPU advanced %v in 10 s of spinning", processCPU()-before)
		}
		for range 100000 {
			x = x*6364136223846793005 + 1442695040888963407
		}
	}
	used, wall := processCPU()-before, time.Since(wallStart)
	// One goroutine spun; the rest of the process is idle.
	if used > 2*wall+50*time.Millisecond {
		t.Fatalf("processCPU says %v in %v of wall time (x=%d)", used, wall, x)
	}
}

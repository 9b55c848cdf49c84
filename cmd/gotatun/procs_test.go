package main

import (
	"log/slog"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// fakeLoad drives a procsTuner with a chosen CPU use per tick.
type fakeLoad struct {
	t     *testing.T
	tuner *procsTuner
	now   time.Time
	cpu   time.Duration
	sets  []int
}

func newFakeLoad(t *testing.T) *fakeLoad {
	f := &fakeLoad{t: t, now: time.Unix(1000, 0)}
	f.tuner = newProcsTuner(2, func(n int) { f.sets = append(f.sets, n) })
	f.tuner.start(f.now, f.cpu)
	if len(f.sets) != 1 || f.sets[0] != 1 {
		t.Fatalf("start set %v, want [1]", f.sets)
	}
	return f
}

// run spends ticks at cores of CPU use and returns GOMAXPROCS after each.
func (f *fakeLoad) run(ticks int, cores float64) []int {
	var got []int
	for range ticks {
		f.now = f.now.Add(procsTick)
		f.cpu += time.Duration(cores * float64(procsTick))
		got = append(got, f.tuner.observe(f.now, f.cpu))
	}
	return got
}

// idle spends one sample of n ticks at cores of CPU use, as the tuner
// does while idle, and returns GOMAXPROCS after it.
func (f *fakeLoad) idle(n int, cores float64) int {
	d := time.Duration(n) * procsTick
	f.now = f.now.Add(d)
	f.cpu += time.Duration(cores * float64(d))
	return f.tuner.observe(f.now, f.cpu)
}

func (f *fakeLoad) expect(ticks int, cores float64, want ...int) {
	f.t.Helper()
	got := f.run(ticks, cores)
	if len(got) != len(want) {
		f.t.Fatalf("bad test: %d ticks, %d wanted values", ticks, len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			f.t.Fatalf("%d ticks at %.2f cores: GOMAXPROCS %v, want %v", ticks, cores, got, want)
		}
	}
}

func TestProcsTunerStaysOnOnePWithSlack(t *testing.T) {
	f := newFakeLoad(t)
	f.expect(20, 0, slices.Repeat([]int{1}, 20)...)
	f.expect(20, 0.94, slices.Repeat([]int{1}, 20)...)
	if len(f.sets) != 1 {
		t.Fatalf("GOMAXPROCS set %v, want only the start", f.sets)
	}
}

func TestProcsTunerUsesBothWhenOneIsBusy(t *testing.T) {
	f := newFakeLoad(t)
	// One busy tick is not enough: the decision takes two.
	f.expect(1, 1.0, 1)
	f.expect(1, 1.0, 2)
	if want := []int{1, 2}; !slices.Equal(f.sets, want) {
		t.Fatalf("GOMAXPROCS set %v, want %v", f.sets, want)
	}
	// A busy tick after an idle one averages to below the threshold.
	g := newFakeLoad(t)
	g.expect(3, 0, 1, 1, 1)
	g.expect(1, 1.0, 1)
	g.expect(1, 1.0, 2)
}

func TestProcsTunerBackToOneAfterQuietWindow(t *testing.T) {
	f := newFakeLoad(t)
	f.expect(2, 1.0, 1, 2)
	// Under two Ps, 0.75 cores is above the way back down.
	f.expect(40, 0.75, slices.Repeat([]int{2}, 40)...)
	f.expect(20, 1.0, slices.Repeat([]int{2}, 20)...)
	// The window averages: after a busy stretch, three quiet ticks of
	// eight bring it below the threshold.
	f.expect(2, 0, 2, 2)
	f.expect(1, 0, 1)
	if want := []int{1, 2, 1}; !slices.Equal(f.sets, want) {
		t.Fatalf("GOMAXPROCS set %v, want %v", f.sets, want)
	}
}

func TestProcsTunerJudgesOnlyTimeUnderCurrentSetting(t *testing.T) {
	f := newFakeLoad(t)
	// A long quiet spell on one P, then load: switching up must not wait
	// for the quiet samples to leave a window, and switching down must
	// not count time spent on one P.
	f.expect(10, 0, slices.Repeat([]int{1}, 10)...)
	f.expect(2, 0.96, 1, 2)
	f.expect(procsDownWindow-1, 0, slices.Repeat([]int{2}, procsDownWindow-1)...)
	f.expect(1, 0, 1)
	// Straight back up when the load returns.
	f.expect(2, 1.0, 1, 2)
}

func TestProcsTunerIgnoresClockSteps(t *testing.T) {
	f := newFakeLoad(t)
	// Samples at the same instant or going back say nothing about load.
	f.cpu += time.Second
	if got := f.tuner.observe(f.now, f.cpu); got != 1 {
		t.Fatalf("GOMAXPROCS %d after a sample at the same instant, want 1", got)
	}
	f.cpu += time.Second
	if got := f.tuner.observe(f.now.Add(-time.Second), f.cpu); got != 1 {
		t.Fatalf("GOMAXPROCS %d after a sample from the past, want 1", got)
	}
}

func TestProcsTunerSamplesSlowlyOnlyWhenIdleOnOneP(t *testing.T) {
	f := newFakeLoad(t)
	if got := f.tuner.wait(procsTick); got != procsTick {
		t.Fatalf("wait %v before any load is known, want one tick", got)
	}
	f.expect(1, 0.01, 1)
	if got := f.tuner.wait(procsTick); got != procsIdleTicks*procsTick {
		t.Fatalf("wait %v when idle on one P, want %d ticks", got, procsIdleTicks)
	}
	f.expect(1, 0.2, 1)
	if got := f.tuner.wait(procsTick); got != procsTick {
		t.Fatalf("wait %v at 0.2 cores, want one tick", got)
	}

	// After a long idle sample, a full core still reaches two Ps after
	// two ordinary ticks of it.
	if f.idle(procsIdleTicks, 0) != 1 {
		t.Fatal("switched while idle")
	}
	if f.idle(procsIdleTicks, 0.3) != 1 {
		t.Fatal("switched on a partly busy idle sample")
	}
	f.expect(2, 1.0, 1, 2)
	// On two Ps the tuner keeps the short tick even with no load, to
	// come back to one P in time.
	f.expect(1, 0, 2)
	if got := f.tuner.wait(procsTick); got != procsTick {
		t.Fatalf("wait %v on two Ps, want one tick", got)
	}
}

// TestTuneProcsSetsRuntime runs the tuner against the real runtime with a
// CPU reading the test controls.
func TestTuneProcsSetsRuntime(t *testing.T) {
	t.Setenv("GOMAXPROCS", "")
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)

	start := time.Now()
	var busy atomic.Bool // true: the fake process uses one full core
	var busySince, used atomic.Int64
	cpu := func() time.Duration {
		now := time.Since(start)
		if busy.Load() {
			return time.Duration(used.Load() + int64(now) - busySince.Load())
		}
		return time.Duration(used.Load())
	}
	setBusy := func(b bool) {
		now := int64(time.Since(start))
		if b {
			busySince.Store(now)
		} else {
			used.Store(used.Load() + now - busySince.Load())
		}
		busy.Store(b)
	}

	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tuneProcs(stop, cpu, 5*time.Millisecond, slog.New(slog.DiscardHandler))
	}()
	waitProcs := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for runtime.GOMAXPROCS(0) != want {
			if time.Now().After(deadline) {
				t.Fatalf("GOMAXPROCS %d, want %d", runtime.GOMAXPROCS(0), want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitProcs(1)
	setBusy(true)
	waitProcs(2)
	setBusy(false)
	waitProcs(1)
	close(stop)
	<-done
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Fatalf("GOMAXPROCS %d after stop, want 2", got)
	}
}

func TestTuneProcsLeavesExplicitSettingAlone(t *testing.T) {
	prev := runtime.GOMAXPROCS(2)
	defer runtime.GOMAXPROCS(prev)
	t.Setenv("GOMAXPROCS", "2")
	stop := make(chan struct{})
	close(stop)
	tuneProcs(stop, func() time.Duration { return 0 }, time.Millisecond, slog.New(slog.DiscardHandler))
	if got := runtime.GOMAXPROCS(0); got != 2 {
		t.Fatalf("GOMAXPROCS %d, want the 2 the environment asked for", got)
	}

	t.Setenv("GOMAXPROCS", "")
	runtime.GOMAXPROCS(3)
	tuneProcs(stop, func() time.Duration { return 0 }, time.Millisecond, slog.New(slog.DiscardHandler))
	if got := runtime.GOMAXPROCS(0); got != 3 {
		t.Fatalf("GOMAXPROCS %d, want 3 left alone on more than two CPUs", got)
	}
}

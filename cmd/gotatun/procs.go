package main

import (
	"log/slog"
	"os"
	"runtime"
	"time"
)

// The daemon's packet path is two loops (TUN to UDP and UDP to TUN). With
// a P for each, the idle P's thread sleeps in the runtime's poller and is
// woken for every packet of the quieter direction; with one P the running
// loop picks that work up when it next blocks, without a thread wake-up.
// On a machine with two CPUs shared with other work one P is both faster
// and cheaper, but a daemon that needs more than one core must get both.
// procsTuner runs on one P while that P has slack and on all of them
// while it has not.
const (
	// procsTick is how often the tuner samples the process's CPU time.
	procsTick = 250 * time.Millisecond
	// procsUpLoad is the CPU use, in cores, that counts as one P being
	// busy, measured over procsUpWindow. Kernel time in our system calls
	// counts too, so a P that still waits between batches can show 0.85.
	procsUpLoad   = 0.95
	procsUpWindow = 2 // ticks
	// procsDownLoad is the CPU use below which one P is enough again,
	// measured over procsDownWindow.
	procsDownLoad   = 0.70
	procsDownWindow = 8 // ticks
	// While the daemon idles on one P (under procsIdleLoad over the last
	// sample) the tuner samples only every procsIdleTicks ticks, so an
	// idle daemon does not wake its machine four times a second. The
	// price: load that starts then reaches two Ps up to two idle samples
	// later.
	procsIdleLoad  = 0.05
	procsIdleTicks = 8
)

// procsSample is the process's CPU time at one moment.
type procsSample struct {
	at  time.Time
	cpu time.Duration
}

// procsTuner switches GOMAXPROCS between 1 and busy.
type procsTuner struct {
	busy  int // GOMAXPROCS while one P is not enough
	procs int
	set   func(int)
	// recent holds the last procsDownWindow+1 samples, oldest first.
	recent []procsSample
}

func newProcsTuner(busy int, set func(int)) *procsTuner {
	return &procsTuner{busy: busy, procs: busy, set: set}
}

// start puts the tuner on one P and takes the first sample.
func (t *procsTuner) start(now time.Time, cpu time.Duration) {
	t.procs = 1
	t.set(1)
	t.recent = append(t.recent[:0], procsSample{now, cpu})
}

// observe records a sample and changes GOMAXPROCS when the load asks for
// it; it returns the value in force afterwards.
func (t *procsTuner) observe(now time.Time, cpu time.Duration) int {
	if len(t.recent) == procsDownWindow+1 {
		copy(t.recent, t.recent[1:])
		t.recent = t.recent[:procsDownWindow]
	}
	t.recent = append(t.recent, procsSample{now, cpu})
	if t.procs == 1 {
		if load, ok := t.load(procsUpWindow); ok && load >= procsUpLoad {
			t.switchTo(t.busy)
		}
	} else if load, ok := t.load(procsDownWindow); ok && load < procsDownLoad {
		t.switchTo(1)
	}
	return t.procs
}

// wait is the time to the next sample: tick, or procsIdleTicks of them
// while the daemon idles on one P.
func (t *procsTuner) wait(tick time.Duration) time.Duration {
	if t.procs == 1 {
		if load, ok := t.load(1); ok && load < procsIdleLoad {
			return procsIdleTicks * tick
		}
	}
	return tick
}

// load is the CPU use in cores over the last ticks intervals; ok is false
// until there are that many under the current setting.
func (t *procsTuner) load(ticks int) (cores float64, ok bool) {
	n := len(t.recent)
	if n <= ticks {
		return 0, false
	}
	from, to := t.recent[n-1-ticks], t.recent[n-1]
	wall := to.at.Sub(from.at)
	if wall <= 0 {
		return 0, false
	}
	return float64(to.cpu-from.cpu) / float64(wall), true
}

// switchTo applies procs and starts the windows afresh, so each decision
// looks only at time spent under the current setting.
func (t *procsTuner) switchTo(procs int) {
	t.procs = procs
	t.set(procs)
	t.recent = append(t.recent[:0], t.recent[len(t.recent)-1])
}

// tuneProcs runs a procsTuner, sampling cpu (the process's CPU time) every
// tick (less often while idle), until stop is closed; then it puts
// GOMAXPROCS back to two. It applies only when the runtime would use
// exactly two CPUs and GOMAXPROCS is not set in the environment: on more
// CPUs the device hands crypto to workers that need the Ps. Otherwise it
// returns at once and leaves GOMAXPROCS alone.
func tuneProcs(stop <-chan struct{}, cpu func() time.Duration, tick time.Duration, log *slog.Logger) {
	if os.Getenv("GOMAXPROCS") != "" || runtime.GOMAXPROCS(0) != 2 {
		return
	}
	t := newProcsTuner(2, func(n int) { runtime.GOMAXPROCS(n) })
	t.start(time.Now(), cpu())
	timer := time.NewTimer(tick)
	defer timer.Stop()
	for {
		select {
		case <-stop:
			t.switchTo(t.busy)
			return
		case now := <-timer.C:
			if before := t.procs; t.observe(now, cpu()) != before {
				log.Debug("GOMAXPROCS changed", "procs", t.procs)
			}
			timer.Reset(t.wait(tick))
		}
	}
}

package device

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/maybenot"
)

// repeatingDelay delays outgoing traffic for 20 ms, 0 to 10 ms after a
// normal packet is sent, again after every delay.
func repeatingDelay(t testing.TB) string {
	t.Helper()
	var s0, s1 maybenot.State
	s0.Transitions[maybenot.EventNormalSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	s1.Action = &maybenot.Action{Kind: maybenot.ActionBlockOutgoing,
		Timeout: maybenot.Dist{Type: maybenot.DistUniform, Param1: 0, Param2: 10000}, Duration: constDist(20000)}
	s1.Transitions[maybenot.EventBlockingEnd] = []maybenot.Trans{{To: 0, Probability: 1}}
	// A delay refused by a cap is tried again at the next packet.
	s1.Transitions[maybenot.EventNormalSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	m := maybenot.Machine{States: []maybenot.State{s0, s1}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m.String()
}

// eagerPadding sends a decoy 2 ms after every normal packet and every
// decoy, with no budget of its own: only the caps hold it back.
func eagerPadding(t testing.TB) string {
	t.Helper()
	var s0, s1 maybenot.State
	s0.Transitions[maybenot.EventNormalSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	s1.Action = &maybenot.Action{Kind: maybenot.ActionSendPadding, Timeout: constDist(2000)}
	s1.Transitions[maybenot.EventNormalSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	s1.Transitions[maybenot.EventPaddingSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	m := maybenot.Machine{States: []maybenot.State{s0, s1}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m.String()
}

// limitWatch checks the framework-wide limits from a peer's timeline.
type limitWatch struct {
	mu              sync.Mutex
	normal, padding int
	begins, ends    int
	delayStart      time.Time
	delaying        bool
	delayed         time.Duration
	start           time.Time
}

func (w *limitWatch) observe(tr daita.Trace) {
	if tr.Action != nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch tr.Event.Kind {
	case maybenot.EventNormalSent:
		w.normal++
	case maybenot.EventPaddingSent:
		w.padding++
	case maybenot.EventBlockingBegin:
		w.begins++
		if !w.delaying {
			w.delaying, w.delayStart = true, tr.Time
		}
	case maybenot.EventBlockingEnd:
		w.ends++
		if w.delaying {
			w.delaying = false
			w.delayed += tr.Time.Sub(w.delayStart)
		}
	}
}

// TestDAITALongRun runs the Mullvad machines, the Maybenot README machine
// and a delaying machine at both ends for minutes of simulated mixed
// traffic with both fractions capped: every packet arrives, the caps hold,
// and goroutines and memory stay flat.
func TestDAITALongRun(t *testing.T) {
	minutes := 3
	if testing.Short() {
		minutes = 1
	}
	pr := newPair(t)
	pr.ping(t, "before")
	watch := map[*Device]*limitWatch{pr.a.d: {start: pr.clock.Now()}, pr.b.d: {start: pr.clock.Now()}}
	for d, w := range watch {
		d.dsched = daita.NewScheduler(daita.SchedulerOptions{Clock: pr.clock, Rand: d.rand, Observe: w.observe})
	}
	// A runs machines only the caps hold back; B the Mullvad machines,
	// whose budgets go past any cap, with no cap.
	cfg := daita.DefaultConfig()
	cfg.Machines = []string{eagerPadding(t), repeatingDelay(t)}
	cfg.MaxDecoyFrac, cfg.MaxDelayFrac = 0.3, 0.2
	cfg.MaxDelayedPackets, cfg.MinDelayCapacity = 64, 8
	if err := pr.a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: pr.b.pub, DAITA: &cfg}}}); err != nil {
		t.Fatal(err)
	}
	cfgB := daita.DefaultConfig()
	cfgB.Machines = append(benchMachines(t), repeatingDelay(t))
	cfgB.MaxDelayedPackets, cfgB.MinDelayCapacity = 64, 8
	if err := pr.b.d.Apply(Config{Peers: []PeerConfig{{PublicKey: pr.a.pub, DAITA: &cfgB}}}); err != nil {
		t.Fatal(err)
	}
	var gotA, gotB atomic.Int64
	stop := make(chan struct{})
	var drain sync.WaitGroup
	for _, x := range []struct {
		n   *node
		got *atomic.Int64
	}{{pr.a, &gotA}, {pr.b, &gotB}} {
		drain.Add(1)
		go func() {
			defer drain.Done()
			for {
				select {
				case b := <-x.n.tun.Outbound():
					x.got.Add(1)
					x.n.tun.Recycle(b)
				case <-stop:
					return
				}
			}
		}()
	}
	defer func() { close(stop); drain.Wait() }()

	r := rand.New(rand.NewPCG(1, 2))
	pa := ipv4Packet("10.0.0.1", "10.0.0.2", make([]byte, 600))
	pb := ipv4Packet("10.0.0.2", "10.0.0.1", make([]byte, 1200))
	var sentA, sentB int64
	baseA, baseB := int64(pr.a.d.stats.tunPackets.Load()), int64(pr.b.d.stats.tunPackets.Load())
	baseGotA, baseGotB := gotA.Load(), gotB.Load()
	var g0 int
	var heap1 uint64
	end := pr.clock.Now().Add(time.Duration(minutes) * time.Minute)
	for step := 0; pr.clock.Now().Before(end); step++ {
		if step == 200 {
			g0 = runtime.NumGoroutine()
			heap1 = heapNow()
		}
		for range r.IntN(4) {
			pr.a.inject(pa)
			sentA++
		}
		for range r.IntN(6) {
			pr.b.inject(pb)
			sentB++
		}
		// Let the packets pass before time moves on.
		eventually(t, "packets through", func() bool {
			return int64(pr.a.d.stats.tunPackets.Load()) == baseA+sentA && int64(pr.b.d.stats.tunPackets.Load()) == baseB+sentB
		})
		pr.clock.Advance(time.Duration(r.Int64N(int64(200 * time.Millisecond))))
	}
	pr.clock.Advance(time.Second) // every delay over
	eventually(t, "every packet delivered", func() bool { return gotB.Load()-baseGotB == sentA && gotA.Load()-baseGotA == sentB })
	elapsed := pr.clock.Now().Sub(watch[pr.a.d].start)
	for d, w := range watch {
		w.mu.Lock()
		frac := float64(w.padding) / float64(w.padding+w.normal)
		dfrac := float64(w.delayed) / float64(elapsed)
		t.Logf("%v: %d normal, %d decoys (%.3f), delayed %.3f of the time (%d, %d)", d.LocalPort(), w.normal, w.padding, frac, dfrac, w.begins, w.ends)
		// The framework checks before scheduling: a few machines' worth
		// of decoys or one delay may go past the cap.
		if d == pr.a.d {
			if float64(w.padding) > cfg.MaxDecoyFrac*float64(w.padding+w.normal)+float64(len(cfg.Machines)) {
				t.Errorf("decoy fraction %.3f over the cap %.2f", frac, cfg.MaxDecoyFrac)
			}
			if dfrac > cfg.MaxDelayFrac+float64(30*time.Millisecond)/float64(elapsed) {
				t.Errorf("delay fraction %.3f over the cap %.2f", dfrac, cfg.MaxDelayFrac)
			}
			if frac < cfg.MaxDecoyFrac/2 || dfrac < cfg.MaxDelayFrac/4 {
				t.Errorf("caps not reached: machines too quiet for the test")
			}
		}
		if w.padding == 0 || w.delayed == 0 {
			t.Errorf("machines idle: %d decoys, %v delayed", w.padding, w.delayed)
		}
		w.mu.Unlock()
	}
	for _, pair := range [][2]*node{{pr.a, pr.b}, {pr.b, pr.a}} {
		dt := pair[0].peer(pair[1]).daita.Load()
		if on, held := dt.Delaying(); on || held != 0 {
			t.Errorf("delay still on (%v) holding %d", on, held)
		}
		if n := dt.InFlight(); n != 0 {
			t.Errorf("%d packets counted in flight", n)
		}
	}
	if g := runtime.NumGoroutine(); g > g0 {
		t.Errorf("goroutines grew from %d to %d", g0, g)
	}
	if h := heapNow(); h > heap1+4<<20 {
		t.Errorf("heap grew from %d to %d bytes", heap1, h)
	}
}

func heapNow() uint64 {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

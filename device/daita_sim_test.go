package device

import (
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/internal/testmachines"
	"github.com/gotatun/gotatun/maybenot"
	"github.com/gotatun/gotatun/maybenot/sim"
)

// timeline records the events a DAITA peer hands its framework and the
// actions it gets back.
type timeline struct {
	mu     sync.Mutex
	start  time.Time
	events []sim.Event
	counts map[maybenot.Event]int
}

func (tl *timeline) observe(tr daita.Trace) {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	e := sim.Event{Time: tr.Time.Sub(tl.start), Client: true}
	if tr.Action != nil {
		a := *tr.Action
		e.Action, e.Machine = &a, a.Machine
	} else {
		e.Kind, e.Machine = tr.Event.Kind, tr.Event.Machine
		tl.counts[tr.Event.Kind]++
	}
	tl.events = append(tl.events, e)
}

func (tl *timeline) count(k maybenot.Event) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.counts[k]
}

// eventKey orders events and actions of equal time for comparison: the
// timelines are compared instant by instant, each instant's entries as a
// set. (In nearly every run here they also come in the same order; they
// differ where a delay ends exactly at a packet's time: the simulator ends
// the delay first, the test hands the device the packet first.)
func eventKey(e sim.Event) string {
	if a := e.Action; a != nil {
		return fmt.Sprintf("%012d action %v", e.Time.Microseconds(), *a)
	}
	return fmt.Sprintf("%012d %02d %02d %v", e.Time.Microseconds(), e.Kind, e.Machine, e.Kind)
}

func formatEvents(evs []sim.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = eventKey(e)
	}
	slices.Sort(out)
	return out
}

// advanceTo moves the clock to d, firing the timers due before d but
// not those due at d: they fire at the next step, after the packets of
// time d, as the simulator takes queued events before timers of the same
// time.
func advanceTo(c *FakeClock, now, d time.Duration) {
	c.AdvanceBefore(d - now)
}

// runDeviceTrace plays trace through two devices on a fake clock, A (the
// client) running DAITA with cfg, and returns A's timeline up to and
// including the time of the trace's last packet, and A's counters.
func runDeviceTrace(t *testing.T, cfg daita.Config, trace []sim.TracePacket, seed uint64) ([]sim.Event, daita.Stats) {
	t.Helper()
	pr := newPair(t)
	pr.ping(t, "handshake")
	tl := &timeline{start: pr.clock.Now(), counts: map[maybenot.Event]int{}}
	pr.a.d.dsched = daita.NewScheduler(daita.SchedulerOptions{
		Clock:   pr.clock,
		NewRand: func() *maybenot.Rand { return maybenot.NewRand(maybenot.NewSeededSource(seed)) },
		Observe: tl.observe,
	})
	if err := pr.a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: pr.b.pub, UpdateOnly: true, DAITA: &cfg}}}); err != nil {
		t.Fatal(err)
	}
	enableDAITA(t, pr.b, pr.a)
	// B's TUN is drained as packets come: delayed ones come late.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case b := <-pr.b.tun.Outbound():
				pr.b.tun.Recycle(b)
			case <-stop:
				return
			}
		}
	}()
	now := time.Duration(0)
	for i, p := range trace {
		advanceTo(pr.clock, now, p.Time)
		now = p.Time
		pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte(fmt.Sprint("packet ", i)))
		if p.Sent {
			sent := tl.count(maybenot.EventNormalSent)
			pr.a.inject(pkt)
			eventually(t, "NormalSent", func() bool { return tl.count(maybenot.EventNormalSent) == sent+1 })
			// and sent, or held by a delay, before time moves on
			eventually(t, "sent or held", func() bool { return pr.a.peer(pr.b).daita.Load().Unqueued() == 0 })
		} else {
			pkt = ipv4Packet("10.0.0.2", "10.0.0.1", []byte(fmt.Sprint("packet ", i)))
			recv := tl.count(maybenot.EventNormalRecv)
			pr.b.inject(pkt)
			pr.a.expectPacket(pkt)
			eventually(t, "NormalRecv", func() bool { return tl.count(maybenot.EventNormalRecv) == recv+1 })
		}
	}
	pr.clock.Advance(0) // the timers due at the last packet's time
	st := daitaStats(t, pr.a, pr.b)
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(tl.events), func(e sim.Event) bool { return e.Time > now }), st
}

// simTrace runs the simulator on trace as the device sees it: fixed packet
// times, no network delay, cfg's machines and delay queue at the client,
// and returns the client's events and actions up to and including the
// time of the trace's last packet.
func simTrace(t *testing.T, cfg daita.Config, trace []sim.TracePacket, seed uint64) []sim.Event {
	t.Helper()
	var ms []maybenot.Machine
	for _, s := range cfg.Machines {
		m, err := maybenot.ParseMachine(s)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, *m)
	}
	end := trace[len(trace)-1].Time
	// A last packet, later, keeps the simulation going through what is
	// due at end.
	trace = append(slices.Clone(trace), sim.TracePacket{Time: end + time.Second})
	evs, err := sim.Run(ms, nil, trace, sim.Config{
		FixedTraceTimes:       true,
		RecordActions:         true,
		OnlyClientEvents:      true,
		MaxBlockedPackets:     cfg.MaxDelayedPackets,
		MinBlockedCapacity:    cfg.MinDelayCapacity,
		MaxPaddingFracClient:  cfg.MaxDecoyFrac,
		MaxBlockingFracClient: cfg.MaxDelayFrac,
		ClientRand:            maybenot.NewRand(maybenot.NewSeededSource(seed)),
		ServerRand:            maybenot.NewRand(maybenot.NewSeededSource(seed + 1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(evs, func(e sim.Event) bool { return e.Time > end })
}

// mixedTrace is n packets both ways over span, bursty.
func mixedTrace(n int, span time.Duration, seed uint64) []sim.TracePacket {
	r := rand.New(rand.NewPCG(seed, seed))
	out := make([]sim.TracePacket, n)
	var t time.Duration
	for i := range out {
		if r.IntN(4) == 0 {
			t += time.Duration(r.Int64N(int64(4 * span / time.Duration(n))))
		} else {
			t += time.Duration(r.Int64N(int64(time.Millisecond)))
		}
		t = t.Truncate(time.Microsecond)
		out[i] = sim.TracePacket{Time: t, Sent: r.IntN(3) == 0}
	}
	return out
}

// loadTrace reads a trace of maybenot/sim's test data, its times
// multiplied by mul and divided by div.
func loadTrace(t *testing.T, name string, mul, div time.Duration) []sim.TracePacket {
	t.Helper()
	f, err := os.Open("../maybenot/sim/testdata/traces/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr, err := sim.ParseTrace(f)
	if err != nil {
		t.Fatal(err)
	}
	for i := range tr {
		tr[i].Time = (tr[i].Time * mul / div).Truncate(time.Microsecond)
	}
	return tr
}

// testMachine returns the machine of maybenot's synthetic test data whose
// comment contains name.
func testMachine(t *testing.T, name string) string {
	t.Helper()
	ms, err := testmachines.ByComment("../maybenot/testdata/machines-synthetic.txt", name)
	if err != nil {
		t.Fatal(err)
	}
	return ms[0]
}

// holdMachine delays outgoing traffic for d after every normal packet
// sent (extending a delay in progress), with the delay's bypass flag.
func holdMachine(t *testing.T, d time.Duration, bypass bool) string {
	t.Helper()
	var s0, s1 maybenot.State
	s0.Transitions[maybenot.EventNormalSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	s1.Action = &maybenot.Action{Kind: maybenot.ActionBlockOutgoing, Bypass: bypass,
		Timeout: constDist(0), Duration: constDist(float64(d / time.Microsecond))}
	s1.Transitions[maybenot.EventNormalSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	m := maybenot.Machine{States: []maybenot.State{s0, s1}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m.String()
}

// padMachine sends a decoy d after every packet received, with the
// decoy's flags.
func padMachine(t *testing.T, d time.Duration, bypass, replace bool) string {
	t.Helper()
	var s0, s1 maybenot.State
	s0.Transitions[maybenot.EventNormalRecv] = []maybenot.Trans{{To: 1, Probability: 1}}
	s1.Action = &maybenot.Action{Kind: maybenot.ActionSendPadding, Bypass: bypass, Replace: replace,
		Timeout: constDist(float64(d / time.Microsecond))}
	s1.Transitions[maybenot.EventNormalRecv] = []maybenot.Trans{{To: 1, Probability: 1}}
	m := maybenot.Machine{AllowedPaddingPackets: 1000, States: []maybenot.State{s0, s1}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m.String()
}

// TestDAITAMatchesSimulator: on the same trace with the same machines and
// random source, the device hands its framework the same events at the
// same times, and gets the same actions back, as maybenot/sim predicts for
// the client of a tunnel replaying the trace at fixed times
// (FixedTraceTimes, no network delay), up to the trace's last packet. The
// machines include ones whose delays hold packets, with and without
// bypass and replace, and a delay queue small enough to fill.
func TestDAITAMatchesSimulator(t *testing.T) {
	type machineSet struct {
		machines             []string
		maxDelayed, minSpare int                          // 0: the defaults
		traces               map[string][]sim.TracePacket // instead of the common ones
		holds, drops         bool                         // delays hold packets, a full queue drops decoys
	}
	hold := holdMachine(t, 5*time.Millisecond, false)
	holdBypass := holdMachine(t, 5*time.Millisecond, true)
	sets := map[string]machineSet{
		"mullvad":          {machines: benchMachines(t)[:3]},
		"readme":           {machines: []string{padAfterSend}},
		"blocking":         {machines: []string{testMachine(t, "framework.rs test blocking_machine")}, holds: true},
		"timer":            {machines: []string{testMachine(t, "framework.rs test timer_machine")}},
		"counters":         {machines: []string{testMachine(t, "framework.rs test counter_chain_machine"), testMachine(t, "framework.rs test counter_copy_machine")}},
		"signals":          {machines: []string{testMachine(t, "signal_response machine 0"), testMachine(t, "signal_response machine 1")}},
		"break_pad":        {machines: []string{testMachine(t, "break_pad.rs break_pad_client")}},
		"replace_blocking": {machines: []string{testMachine(t, "framework_replace_blocking machine 0")}, holds: true},
		// Delays of 2 µs, every 2 µs: the Tor trace a hundred times
		// faster is enough.
		"max_blocking_frac": {machines: []string{testMachine(t, "test machine_max_blocking_frac")}, holds: true,
			traces: map[string][]sim.TracePacket{"tor/100": loadTrace(t, "tor-circuit-fp-general-0.log", 1, 100)}},
		"tamaraw":          {machines: []string{testMachine(t, "tamaraw")}, holds: true},
		"coverage":         {machines: []string{testMachine(t, "decoder tests) A:"), testMachine(t, "decoder tests) C:")}, holds: true},
		"hold":             {machines: []string{hold}, holds: true},
		"hold+mullvad":     {machines: append([]string{hold}, benchMachines(t)[:3]...), holds: true},
		"hold+pad":         {machines: []string{hold, padMachine(t, 2*time.Millisecond, false, false), padMachine(t, 3*time.Millisecond, false, true)}, holds: true},
		"hold_bypass+pad":  {machines: []string{holdBypass, padMachine(t, 2*time.Millisecond, true, false), padMachine(t, 3*time.Millisecond, true, true), padMachine(t, time.Millisecond, false, true)}, holds: true},
		"hold_small_queue": {machines: []string{hold, padMachine(t, time.Millisecond, false, false)}, maxDelayed: 4, minSpare: 1, holds: true},
		"hold_full_queue":  {machines: []string{hold, padMachine(t, time.Millisecond, false, false)}, maxDelayed: 2, holds: true, drops: true},
	}
	traces := map[string][]sim.TracePacket{
		"BE000x10": loadTrace(t, "BE000.log", 10, 1),
		"tor":      loadTrace(t, "tor-circuit-fp-general-0.log", 1, 1),
		"mixed":    mixedTrace(200, 60*time.Second, 7),
	}
	for mname, set := range sets {
		cfg := daita.DefaultConfig()
		cfg.Machines = set.machines
		if set.maxDelayed > 0 {
			cfg.MaxDelayedPackets, cfg.MinDelayCapacity = set.maxDelayed, set.minSpare
		}
		var delayed, dropped uint64
		all := true // every trace of the set ran
		trs := traces
		if set.traces != nil {
			trs = set.traces
		}
		for tname, tr := range trs {
			ran := false
			t.Run(mname+"/"+tname, func(t *testing.T) {
				ran = true
				// Packets at the same time: the client's first, as the
				// simulator takes them.
				tr = slices.Clone(tr)
				slices.SortStableFunc(tr, func(a, b sim.TracePacket) int {
					if a.Time != b.Time {
						return int(a.Time - b.Time)
					}
					if a.Sent == b.Sent {
						return 0
					}
					if a.Sent {
						return -1
					}
					return 1
				})
				dev, st := runDeviceTrace(t, cfg, tr, 42)
				delayed += st.Delayed
				dropped += st.TxDecoysDropped
				want := simTrace(t, cfg, tr, 42)
				g, w := formatEvents(dev), formatEvents(want)
				if !slices.Equal(g, w) {
					t.Fatalf("device and simulator differ:\n%s", diffLines(g, w))
				}
				if len(g) < 2*len(tr) {
					t.Fatalf("only %d events", len(g))
				}
			})
			all = all && ran
		}
		if !all {
			continue
		}
		if set.holds && delayed == 0 {
			t.Errorf("%s: no packet was delayed", mname)
		}
		if set.drops && dropped == 0 {
			t.Errorf("%s: no decoy was dropped", mname)
		}
	}
}

// diffLines shows where two sorted timelines part.
func diffLines(dev, sim []string) string {
	i := 0
	for i < len(dev) && i < len(sim) && dev[i] == sim[i] {
		i++
	}
	from := max(0, i-5)
	return fmt.Sprintf("device (%d), from line %d:\n%s\nsimulator (%d), from line %d:\n%s",
		len(dev), from, strings.Join(dev[from:min(len(dev), i+15)], "\n"),
		len(sim), from, strings.Join(sim[from:min(len(sim), i+15)], "\n"))
}

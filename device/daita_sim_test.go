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

// timeline records the events a DAITA peer hands its framework.
type timeline struct {
	mu     sync.Mutex
	start  time.Time
	events []sim.Event
	counts map[maybenot.Event]int
}

func (tl *timeline) observe(tr daita.Trace) {
	if tr.Action != nil {
		return
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	tl.events = append(tl.events, sim.Event{Time: tr.Time.Sub(tl.start), Kind: tr.Event.Kind, Machine: tr.Event.Machine, Client: true})
	tl.counts[tr.Event.Kind]++
}

func (tl *timeline) count(k maybenot.Event) int {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return tl.counts[k]
}

// eventKey orders events of equal time for comparison.
func eventKey(e sim.Event) string {
	return fmt.Sprintf("%012d %02d %02d", e.Time.Microseconds(), e.Kind, e.Machine)
}

func formatEvents(evs []sim.Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = eventKey(e)
	}
	slices.Sort(out)
	return out
}

// runDeviceTrace plays trace through two devices on a fake clock, A (the
// client) running machines, and returns A's timeline up to the last
// packet of the trace.
func runDeviceTrace(t *testing.T, machines []string, trace []sim.TracePacket, seed uint64) []sim.Event {
	t.Helper()
	pr := newPair(t)
	pr.ping(t, "handshake")
	// Packets at the same time: the client's first, as the simulator
	// takes them (client before server on ties, no network delay).
	trace = slices.Clone(trace)
	slices.SortStableFunc(trace, func(a, b sim.TracePacket) int {
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
	tl := &timeline{start: pr.clock.Now(), counts: map[maybenot.Event]int{}}
	pr.a.d.dsched = daita.NewScheduler(daita.SchedulerOptions{
		Clock:   daitaClock{pr.clock},
		NewRand: func() *maybenot.Rand { return maybenot.NewRand(maybenot.NewSeededSource(seed)) },
		Observe: tl.observe,
	})
	enableDAITA(t, pr.a, pr.b, machines...)
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
		pr.clock.Advance(p.Time - now)
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
	// Let A's sends settle (TunnelSent follows NormalSent on another
	// goroutine).
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return slices.Clone(tl.events)
}

func simTrace(t *testing.T, machines []string, trace []sim.TracePacket, seed uint64) []sim.Event {
	t.Helper()
	var ms []maybenot.Machine
	for _, s := range machines {
		m, err := maybenot.ParseMachine(s)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, *m)
	}
	evs, err := sim.Run(ms, nil, trace, sim.Config{
		OnlyClientEvents: true,
		ClientRand:       maybenot.NewRand(maybenot.NewSeededSource(seed)),
		ServerRand:       maybenot.NewRand(maybenot.NewSeededSource(seed + 1)),
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
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

func loadTrace(t *testing.T, name string, scale time.Duration) []sim.TracePacket {
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
		tr[i].Time = (tr[i].Time * scale).Truncate(time.Microsecond)
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

// TestDAITAMatchesSimulator: on the same trace with the same machines and
// random source, the device hands its framework the same events at the
// same times as maybenot/sim predicts for the client (with no network
// delay), up to the trace's last packet. Machines whose delays hold
// packets are left out: the simulator then shifts the rest of the trace
// (its model of the server waiting for the client), which a replay of
// fixed packet times cannot follow.

func TestDAITAMatchesSimulator(t *testing.T) {
	machines := map[string][]string{
		"mullvad":   benchMachines(t)[:3],
		"readme":    {padAfterSend},
		"blocking":  {testMachine(t, "framework.rs test blocking_machine")},
		"timer":     {testMachine(t, "framework.rs test timer_machine")},
		"counters":  {testMachine(t, "framework.rs test counter_chain_machine"), testMachine(t, "framework.rs test counter_copy_machine")},
		"signals":   {testMachine(t, "signal_response machine 0"), testMachine(t, "signal_response machine 1")},
		"break_pad": {testMachine(t, "break_pad.rs break_pad_client")},
	}
	traces := map[string][]sim.TracePacket{
		"BE000x10": loadTrace(t, "BE000.log", 10),
		"mixed":    mixedTrace(200, 60*time.Second, 7),
	}
	for mname, ms := range machines {
		for tname, tr := range traces {
			t.Run(mname+"/"+tname, func(t *testing.T) {
				dev := runDeviceTrace(t, ms, tr, 42)
				want := simTrace(t, ms, tr, 42)
				end := tr[len(tr)-1].Time
				want = slices.DeleteFunc(want, func(e sim.Event) bool { return e.Time > end })
				dev = slices.DeleteFunc(dev, func(e sim.Event) bool { return e.Time > end })
				g, w := formatEvents(dev), formatEvents(want)
				if !slices.Equal(g, w) {
					t.Fatalf("device and simulator differ:\ndevice (%d):\n%s\nsim (%d):\n%s", len(g), strings.Join(g, "\n"), len(w), strings.Join(w, "\n"))
				}
				if len(g) < 2*len(tr) {
					t.Fatalf("only %d events", len(g))
				}
			})
		}
	}
}

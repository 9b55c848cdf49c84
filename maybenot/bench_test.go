package maybenot

import (
	"testing"
	"time"
)

// publicMachines returns the real machines of the public set (maybenot
// examples and Mullvad's DAITA machines).
func publicMachines(t testing.TB) []Machine {
	var ms []Machine
	for _, l := range readMachineFile(t, "machines-public.txt") {
		m, err := ParseMachine(l.s)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, *m)
	}
	return ms
}

// packetEvents is a steady mix of the events a tunnel reports per packet.
func packetEvents(n int) [][]TriggerEvent {
	var out [][]TriggerEvent
	for i := 0; i < 64; i++ {
		switch i % 4 {
		case 0:
			out = append(out, []TriggerEvent{{Kind: EventNormalSent}})
		case 1:
			out = append(out, []TriggerEvent{{Kind: EventTunnelSent}})
		case 2:
			out = append(out, []TriggerEvent{{Kind: EventTunnelRecv}, {Kind: EventNormalRecv}})
		default:
			out = append(out, []TriggerEvent{{Kind: EventPaddingSent, Machine: MachineID(i % n)}, {Kind: EventTunnelSent}})
		}
	}
	return out
}

func newBenchFramework(tb testing.TB, ms []Machine) *Framework {
	f, err := NewFramework(ms, 0.5, 0.5, testStart, NewRand(NewSeededSource(1)))
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

func benchTrigger(b *testing.B, ms []Machine) {
	f := newBenchFramework(b, ms)
	evs := packetEvents(len(ms))
	now := testStart
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Microsecond)
		f.TriggerEvents(evs[i%len(evs)], now)
	}
}

// BenchmarkTriggerEventsDAITA runs Mullvad's three DAITA machines of the
// public set, as a DAITA peer would, one batch per packet.
func BenchmarkTriggerEventsDAITA(b *testing.B) {
	ms := publicMachines(b)
	benchTrigger(b, ms[len(ms)-3:])
}

// BenchmarkTriggerEventsAll runs all 19 public machines in one instance.
func BenchmarkTriggerEventsAll(b *testing.B) {
	benchTrigger(b, publicMachines(b))
}

func BenchmarkParseMachine(b *testing.B) {
	s := readMachineFile(b, "machines-public.txt")[18].s
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ParseMachine(s); err != nil {
			b.Fatal(err)
		}
	}
}

func TestTriggerEventsDoesNotAllocate(t *testing.T) {
	for _, ms := range [][]Machine{publicMachines(t), {synthetic(t, 16), synthetic(t, 17), synthetic(t, 2), synthetic(t, 5), synthetic(t, 6)}} {
		f := newBenchFramework(t, ms)
		evs := packetEvents(len(ms))
		now := testStart
		i := 0
		allocs := testing.AllocsPerRun(2000, func() {
			now = now.Add(time.Microsecond)
			f.TriggerEvents(evs[i%len(evs)], now)
			i++
		})
		if allocs != 0 {
			t.Errorf("%d machines: %v allocations per call", len(ms), allocs)
		}
	}
}

package maybenot

import (
	"bytes"
	"slices"
	"testing"
	"time"
)

func addMachineSeeds(f *testing.F) {
	for _, name := range []string{"machines-public.txt", "machines-synthetic.txt", "machines-invalid.txt", "machines-quirks.txt"} {
		for _, l := range readMachineFile(f, name) {
			f.Add(l.s)
		}
	}
}

// FuzzParseMachine: no panic on any string; accepted machines are valid and
// survive a round trip through the string and JSON forms.
func FuzzParseMachine(f *testing.F) {
	addMachineSeeds(f)
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMachine(s)
		if err != nil {
			return
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("accepted an invalid machine: %v", err)
		}
		raw := m.AppendBincode(nil)
		m2, err := ParseMachine(m.String())
		if err != nil {
			t.Fatalf("re-encoded machine rejected: %v", err)
		}
		if !bytes.Equal(m2.AppendBincode(nil), raw) {
			t.Fatal("string round trip changed the machine")
		}
		js, _ := m.MarshalJSON()
		var m3 Machine
		if err := m3.UnmarshalJSON(js); err != nil {
			t.Fatalf("own JSON rejected: %v\n%s", err, js)
		}
		// NaN payloads do not survive JSON, so compare the JSON forms.
		if js3, _ := m3.MarshalJSON(); !bytes.Equal(js3, js) {
			t.Fatalf("JSON round trip changed the machine\n%s\n%s", js, js3)
		}
	})
}

// FuzzUnmarshalBincode works on the inflated layer directly, where the
// fuzzer reaches the structure much faster; allocation is bounded by the
// input size.
func FuzzUnmarshalBincode(f *testing.F) {
	for _, name := range []string{"machines-public.txt", "machines-synthetic.txt"} {
		for _, l := range readMachineFile(f, name) {
			raw, err := inflateMachineString(l.s)
			if err == nil {
				f.Add(raw)
			}
		}
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := UnmarshalBincode(b)
		if err != nil {
			return
		}
		// Re-encoding is canonical, so it is never longer than the input.
		enc := m.AppendBincode(nil)
		if len(enc) > len(b) {
			t.Fatalf("re-encoding grew from %d to %d bytes", len(b), len(enc))
		}
		m2, err := UnmarshalBincode(enc)
		if err != nil || !bytes.Equal(m2.AppendBincode(nil), enc) {
			t.Fatalf("canonical re-encoding does not decode: %v", err)
		}
		_ = m.Validate()
	})
}

// fuzzBytes hands out fuzz input bytes, zeros once exhausted.
type fuzzBytes struct {
	b []byte
}

func (f *fuzzBytes) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzBytes) small(n int) int { return int(f.byte()) % n }

func (f *fuzzBytes) dist() Dist {
	switch f.small(4) {
	case 0:
		v := float64(f.byte())
		return Dist{Type: DistUniform, Param1: v, Param2: v}
	case 1:
		lo := float64(f.byte())
		return Dist{Type: DistUniform, Param1: lo, Param2: lo + float64(f.byte()), Start: float64(f.small(3)), Max: float64(f.small(200))}
	case 2:
		return Dist{Type: DistPoisson, Param1: 1 + float64(f.small(20))}
	default:
		return Dist{Type: DistNormal, Param1: float64(f.byte()), Param2: float64(f.small(30))}
	}
}

func (f *fuzzBytes) optDist() *Dist {
	if f.small(3) == 0 {
		d := f.dist()
		return &d
	}
	return nil
}

// fuzzMachine builds a valid machine from fuzz bytes.
func (f *fuzzBytes) machine() Machine {
	n := 1 + f.small(5)
	m := Machine{
		AllowedPaddingPackets:  uint64(f.small(8)),
		MaxPaddingFrac:         float64(f.small(5)) / 4,
		AllowedBlockedMicrosec: uint64(f.small(4)) * 50,
		MaxBlockingFrac:        float64(f.small(5)) / 4,
		States:                 make([]State, n),
	}
	for i := range m.States {
		s := &m.States[i]
		switch f.small(5) {
		case 0:
		case 1:
			s.Action = &Action{Kind: ActionCancel, Timer: Timer(f.small(3))}
		case 2:
			s.Action = &Action{Kind: ActionSendPadding, Bypass: f.small(2) == 0, Replace: f.small(2) == 0, Timeout: f.dist(), Limit: f.optDist()}
		case 3:
			s.Action = &Action{Kind: ActionBlockOutgoing, Bypass: f.small(2) == 0, Replace: f.small(2) == 0, Timeout: f.dist(), Duration: f.dist(), Limit: f.optDist()}
		case 4:
			s.Action = &Action{Kind: ActionUpdateTimer, Replace: f.small(2) == 0, Duration: f.dist(), Limit: f.optDist()}
		}
		for _, c := range []**Counter{&s.CounterA, &s.CounterB} {
			if f.small(3) == 0 {
				*c = &Counter{Operation: Operation(f.small(3)), Dist: f.optDist(), Copy: f.small(4) == 0}
			}
		}
		for k := 0; k < 1+f.small(4); k++ {
			ev := f.small(EventNum)
			targets := []uint64{uint64(f.small(n)), uint64(f.small(n)), StateEnd, StateSignal}
			var slot []Trans
			left := float32(1)
			for j := 0; j < 1+f.small(3); j++ {
				to := targets[f.small(len(targets))]
				dup := false
				for _, t := range slot {
					dup = dup || t.To == to
				}
				p := float32(1+f.small(10)) / 10
				if dup || p > left {
					continue
				}
				left -= p
				slot = append(slot, Trans{To: to, Probability: p})
			}
			if len(slot) > 0 {
				s.Transitions[ev] = slot
			}
		}
	}
	return m
}

// FuzzFramework runs random valid machines on random event sequences and
// checks the invariants: no panic, at most one action per machine in
// machine order, sampled durations within one day, no action from an ended
// machine, and padding only while below the padding limits (checked
// against counts kept here, the way an integrator sees them).
func FuzzFramework(f *testing.F) {
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20})
	f.Add(bytes.Repeat([]byte{3, 0, 2, 1, 4, 9}, 40))
	f.Add(bytes.Repeat([]byte{255, 7, 128, 3, 64, 12, 33}, 60))
	f.Fuzz(func(t *testing.T, data []byte) {
		fb := &fuzzBytes{b: data}
		ms := make([]Machine, 1+fb.small(3))
		for i := range ms {
			ms[i] = fb.machine()
			if err := ms[i].Validate(); err != nil {
				t.Fatalf("built an invalid machine: %v", err)
			}
		}
		fwPad := float64(fb.small(5)) / 4
		fw, err := NewFramework(ms, fwPad, float64(fb.small(5))/4, testStart, NewRand(NewSeededSource(uint64(fb.byte()))))
		if err != nil {
			t.Fatal(err)
		}
		normal := make([]uint64, len(ms))
		padding := make([]uint64, len(ms))
		var fwNormal, fwPadding uint64
		now := time.Duration(0)
		for step := 0; step < 200 && len(fb.b) > 0; step++ {
			now += time.Duration(fb.small(50)) * time.Microsecond
			batch := make([]TriggerEvent, 1+fb.small(3))
			for i := range batch {
				batch[i] = TriggerEvent{Kind: Event(fb.small(EventNum)), Machine: MachineID(fb.small(len(ms) + 1))}
			}
			var ended []bool
			for m := range ms {
				s, _, _, _ := fw.MachineState(MachineID(m))
				ended = append(ended, s == StateEnd)
			}
			// Counts after the accounting of each event of the batch: an
			// action was decided at one of these points.
			type counts struct {
				normal, padding     []uint64
				fwNormal, fwPadding uint64
			}
			var points []counts
			for _, e := range batch {
				switch e.Kind {
				case EventNormalSent:
					fwNormal++
					for m := range normal {
						normal[m]++
					}
				case EventPaddingSent:
					fwPadding++
					if int(e.Machine) < len(ms) {
						padding[e.Machine]++
					}
				}
				points = append(points, counts{slices.Clone(normal), slices.Clone(padding), fwNormal, fwPadding})
			}
			mayPad := func(mi MachineID, c counts) bool {
				m := &ms[mi]
				p, n := c.padding[mi], c.normal[mi]
				if p < m.AllowedPaddingPackets {
					return true
				}
				if m.MaxPaddingFrac > 0 {
					if p+n == 0 {
						return true
					}
					if float64(p)/float64(p+n) >= m.MaxPaddingFrac {
						return false
					}
				}
				return fwPad == 0 || c.fwPadding+c.fwNormal == 0 || float64(c.fwPadding)/float64(c.fwPadding+c.fwNormal) < fwPad
			}
			actions := fw.TriggerEvents(batch, testStart.Add(now))
			last := MachineID(-1)
			for _, a := range actions {
				if a.Machine <= last || int(a.Machine) >= len(ms) {
					t.Fatalf("actions out of order or bad machine: %v", actions)
				}
				last = a.Machine
				if ended[a.Machine] {
					t.Fatalf("action %v from an ended machine", a)
				}
				if a.Timeout < 0 || a.Timeout > 24*time.Hour || a.Duration < 0 || a.Duration > 24*time.Hour {
					t.Fatalf("duration out of range: %v", a)
				}
				if a.Kind != ActionSendPadding {
					continue
				}
				ok := false
				for _, c := range points {
					ok = ok || mayPad(a.Machine, c)
				}
				if !ok {
					t.Fatalf("padding above the limits: machine %d, counts %+v, machine cap %v, framework cap %v",
						a.Machine, points[len(points)-1], ms[a.Machine].MaxPaddingFrac, fwPad)
				}
			}
			for m := range ms {
				s, _, _, _ := fw.MachineState(MachineID(m))
				if s != StateEnd && s >= uint64(len(ms[m].States)) {
					t.Fatalf("machine %d in state %d", m, s)
				}
			}
		}
		if fw.AllMachinesEnded() && len(fw.TriggerEvents([]TriggerEvent{{Kind: EventNormalSent}}, testStart.Add(now))) != 0 {
			t.Fatal("ended machines produced actions")
		}
	})
}

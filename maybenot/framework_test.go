package maybenot

import (
	"math"
	"testing"
	"time"
)

const us = time.Microsecond

func newFW(t *testing.T, ms []Machine, padFrac, blockFrac float64) *Framework {
	t.Helper()
	f, err := NewFramework(ms, padFrac, blockFrac, testStart, NewRand(NewSeededSource(7)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func ev(k Event) TriggerEvent { return TriggerEvent{Kind: k} }

func evm(k Event, m int) TriggerEvent { return TriggerEvent{Kind: k, Machine: MachineID(m)} }

func at(d time.Duration) time.Time { return testStart.Add(d) }

func trigger(f *Framework, now time.Duration, es ...TriggerEvent) []TriggerAction {
	return append([]TriggerAction(nil), f.TriggerEvents(es, at(now))...)
}

func wantActions(t *testing.T, what string, got []TriggerAction, want ...TriggerAction) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: got %v, want %v", what, got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("%s: got %v, want %v", what, got, want)
		}
	}
}

func pad(m int, timeout time.Duration) TriggerAction {
	return TriggerAction{Kind: ActionSendPadding, Machine: MachineID(m), Timeout: timeout}
}

func TestBlockingMachine(t *testing.T) {
	f := newFW(t, []Machine{synthetic(t, 0)}, 0, 0)
	block := TriggerAction{Kind: ActionBlockOutgoing, Timeout: 1 * us, Duration: 10 * us}
	wantActions(t, "NormalSent", trigger(f, 0, ev(EventNormalSent)), block)
	wantActions(t, "BlockingBegin", trigger(f, 20*us, evm(EventBlockingBegin, 0)))
	for i := 0; i < 10; i++ {
		wantActions(t, "NormalSent again", trigger(f, 21*us, ev(EventNormalSent)), block)
	}
}

func TestTimerMachine(t *testing.T) {
	f := newFW(t, []Machine{synthetic(t, 1)}, 0, 0)
	wantActions(t, "PaddingSent", trigger(f, 0, evm(EventPaddingSent, 0)),
		TriggerAction{Kind: ActionUpdateTimer, Duration: 1000 * us})
	wantActions(t, "TimerEnd", trigger(f, 1000*us, evm(EventTimerEnd, 0)), pad(0, 1*us))
}

func TestCounterMachine(t *testing.T) {
	f := newFW(t, []Machine{synthetic(t, 2)}, 0, 0)
	wantActions(t, "PaddingSent", trigger(f, 0, evm(EventPaddingSent, 0)))
	if s, _, a, _ := f.MachineState(0); s != 1 || a != 1 {
		t.Fatalf("state %d, A %d; want 1, 1", s, a)
	}
	wantActions(t, "NormalSent", trigger(f, 1*us, ev(EventNormalSent)), pad(0, 2*us))
	if s, _, a, b := f.MachineState(0); s != 2 || a != 0 || b != 4 {
		t.Fatalf("state %d, A %d, B %d; want 2, 0, 4", s, a, b)
	}
}

func TestCounterCopyMachine(t *testing.T) {
	f := newFW(t, []Machine{synthetic(t, 3)}, 0, 0)
	check := func(a, b uint64) {
		t.Helper()
		if _, _, ga, gb := f.MachineState(0); ga != a || gb != b {
			t.Fatalf("A %d, B %d; want %d, %d", ga, gb, a, b)
		}
	}
	trigger(f, 0, ev(EventNormalSent))
	check(4, 13)
	trigger(f, 0, evm(EventPaddingSent, 0))
	check(13, 9)
	trigger(f, 0, evm(EventPaddingSent, 0))
	check(22, 9)
}

func TestCounterChainMachine(t *testing.T) {
	f := newFW(t, []Machine{synthetic(t, 4)}, 0, 0)
	trigger(f, 0, ev(EventNormalSent))
	if _, _, a, b := f.MachineState(0); a != 1 || b != 1 {
		t.Fatalf("A %d B %d", a, b)
	}
	got := trigger(f, 0, evm(EventPaddingSent, 0))
	wantActions(t, "PaddingSent", got, TriggerAction{Kind: ActionSendPadding, Timeout: 67 * us, Bypass: true})
	if s, _, a, _ := f.MachineState(0); s != 3 || a != 13 {
		t.Fatalf("state %d A %d; want 3, 13", s, a)
	}
}

func TestCounterTriggeredNoEarlyLimitDecrement(t *testing.T) {
	f := newFW(t, []Machine{synthetic(t, 9)}, 0, 0)
	trigger(f, 0, ev(EventNormalSent))
	for i := 0; i < 2; i++ {
		got := trigger(f, 0, evm(EventPaddingSent, 0))
		wantActions(t, "PaddingSent", got, pad(0, 1*us))
		if s, l, _, _ := f.MachineState(0); s != 1 || l != 2 {
			t.Fatalf("round %d: state %d limit %d; want 1, 2", i, s, l)
		}
	}
}

func TestInfiniteLoopCounter(t *testing.T) {
	f := newFW(t, []Machine{synthetic(t, 10)}, 0, 0)
	trigger(f, 0, ev(EventNormalSent))
	got := trigger(f, 0, ev(EventNormalSent), ev(EventNormalRecv))
	if len(got) != 1 {
		t.Fatalf("got %v, want one action", got)
	}
}

func TestSignalResponse(t *testing.T) {
	f := newFW(t, []Machine{synthetic(t, 5), synthetic(t, 6)}, 0, 0)
	wantActions(t, "NormalSent", trigger(f, 0, ev(EventNormalSent)), pad(0, 2*us))
}

func TestSampledLimit(t *testing.T) {
	f := newFW(t, []Machine{synthetic(t, 7)}, 0, 0)
	wantActions(t, "NormalSent", trigger(f, 0, ev(EventNormalSent)), pad(0, 1*us))
	if _, l, _, _ := f.MachineState(0); l != 4 {
		t.Fatalf("limit %d, want 4", l)
	}
	for i := 0; i < 3; i++ {
		wantActions(t, "PaddingSent", trigger(f, 0, evm(EventPaddingSent, 0)), pad(0, 1*us))
	}
	wantActions(t, "4th PaddingSent", trigger(f, 0, evm(EventPaddingSent, 0)))
	if _, l, _, _ := f.MachineState(0); l != 0 {
		t.Fatalf("limit %d, want 0", l)
	}
}

func TestMachineMaxPaddingFrac(t *testing.T) {
	f := newFW(t, []Machine{synthetic(t, 11)}, 0, 0)
	// 100 actions: one for NormalRecv, then one per PaddingSent while fewer
	// than the 100 allowed packets have been sent.
	wantActions(t, "NormalRecv", trigger(f, 0, ev(EventNormalRecv)), pad(0, 2*us))
	for i := 0; i < 99; i++ {
		wantActions(t, "PaddingSent", trigger(f, 0, evm(EventPaddingSent, 0)), pad(0, 2*us))
	}
	wantActions(t, "100th PaddingSent", trigger(f, 0, evm(EventPaddingSent, 0)))
	for i := 0; i < 100; i++ {
		wantActions(t, "NormalSent under cap", trigger(f, 0, ev(EventNormalSent)))
	}
	wantActions(t, "101st NormalSent", trigger(f, 0, ev(EventNormalSent)), pad(0, 2*us))
}

func TestFrameworkMaxPaddingFrac(t *testing.T) {
	m := synthetic(t, 12)
	f := newFW(t, []Machine{m, m}, 0.5, 0)
	wantActions(t, "NormalRecv", trigger(f, 0, ev(EventNormalRecv)), pad(0, 2*us), pad(1, 2*us))
	for i := 0; i < 99; i++ {
		wantActions(t, "PaddingSent", trigger(f, 0, evm(EventPaddingSent, 0), evm(EventPaddingSent, 1)),
			pad(0, 2*us), pad(1, 2*us))
	}
	wantActions(t, "100th PaddingSent", trigger(f, 0, evm(EventPaddingSent, 0), evm(EventPaddingSent, 1)))
	for i := 0; i < 200; i++ {
		wantActions(t, "NormalSent under cap", trigger(f, 0, ev(EventNormalSent)))
	}
	wantActions(t, "201st NormalSent", trigger(f, 0, ev(EventNormalSent)), pad(0, 2*us), pad(1, 2*us))
}

func testMaxBlockingFrac(t *testing.T, m Machine, fwFrac float64) {
	f := newFW(t, []Machine{m}, 0, fwFrac)
	block := TriggerAction{Kind: ActionBlockOutgoing, Timeout: 2 * us, Duration: 2 * us}
	now := time.Duration(0)
	wantActions(t, "first NormalRecv", trigger(f, now, ev(EventNormalRecv)), block)
	for i := 0; i < 5; i++ {
		wantActions(t, "BlockingBegin", trigger(f, now, evm(EventBlockingBegin, 0)), block)
		now += 2 * us
		got := trigger(f, now, ev(EventBlockingEnd))
		if i < 4 {
			wantActions(t, "BlockingEnd", got, block)
		} else {
			wantActions(t, "BlockingEnd with budget used", got)
		}
	}
	// 10 µs blocked since start at 0; allowed again once 10/now < 0.5.
	for now < 22*us {
		now += 2 * us
		got := trigger(f, now, ev(EventNormalRecv))
		if now < 22*us {
			wantActions(t, "NormalRecv over cap", got)
		} else {
			wantActions(t, "NormalRecv at 22µs", got, block)
		}
	}
}

func TestMachineMaxBlockingFrac(t *testing.T) {
	testMaxBlockingFrac(t, synthetic(t, 13), 0)
	m := synthetic(t, 13)
	m.MaxBlockingFrac = 0
	testMaxBlockingFrac(t, m, 0.5)
}

func TestFrameworkReplaceBlocking(t *testing.T) {
	m0 := synthetic(t, 8)
	// Machine 1 blocks without replace on NormalSent.
	m1 := synthetic(t, 0)
	f := newFW(t, []Machine{m0, m1}, 0, 0)
	block0 := TriggerAction{Kind: ActionBlockOutgoing, Machine: 0, Timeout: 2 * us, Duration: 2 * us, Replace: true}
	wantActions(t, "NormalRecv", trigger(f, 0, ev(EventNormalRecv)), block0)
	trigger(f, 0, evm(EventBlockingBegin, 0))
	trigger(f, 2*us, ev(EventBlockingEnd))
	// 2 µs used, 2/4 >= 0.5: no more blocking for machine 0.
	wantActions(t, "NormalRecv after budget", trigger(f, 4*us, ev(EventNormalRecv)))
	// Machine 1 starts blocking: machine 0 may refresh it (replace).
	trigger(f, 4*us, evm(EventBlockingBegin, 1))
	wantActions(t, "NormalRecv during blocking", trigger(f, 5*us, ev(EventNormalRecv)), block0)
}

func TestSelfTransitionKeepsLimit(t *testing.T) {
	// Entering state 1 samples the limit; PaddingSent loops on state 1 and
	// only decrements it.
	f := newFW(t, []Machine{synthetic(t, 7)}, 0, 0)
	trigger(f, 0, ev(EventNormalSent))
	trigger(f, 0, evm(EventPaddingSent, 0))
	if _, l, _, _ := f.MachineState(0); l != 3 {
		t.Fatalf("limit %d, want 3", l)
	}
}

func TestEndAndUnknownIDs(t *testing.T) {
	m := Machine{States: []State{{}}}
	m.States[0].Transitions[EventNormalSent] = []Trans{{To: StateEnd, Probability: 1}}
	f := newFW(t, []Machine{m}, 0, 0)
	if f.AllMachinesEnded() {
		t.Fatal("ended too early")
	}
	// Unknown machine ids are ignored without harm.
	trigger(f, 0, evm(EventPaddingSent, 5), evm(EventTimerBegin, -1), evm(EventTimerEnd, 99), evm(EventBlockingBegin, 7))
	trigger(f, 0, ev(EventNormalSent))
	if !f.AllMachinesEnded() {
		t.Fatal("machine did not end")
	}
	if s, _, _, _ := f.MachineState(0); s != StateEnd {
		t.Fatalf("state %d", s)
	}
	empty := newFW(t, nil, 0, 0)
	if !empty.AllMachinesEnded() || len(trigger(empty, 0, ev(EventNormalSent))) != 0 {
		t.Fatal("empty framework")
	}
}

func TestNewFrameworkRejects(t *testing.T) {
	for _, c := range []struct{ p, b float64 }{{-0.1, 0}, {1.1, 0}, {math.NaN(), 0}, {0, math.NaN()}, {0, 2}} {
		if _, err := NewFramework(nil, c.p, c.b, testStart, nil); err == nil {
			t.Errorf("accepted fractions %v, %v", c.p, c.b)
		}
	}
	bad := Machine{}
	if _, err := NewFramework([]Machine{bad}, 0, 0, testStart, nil); err == nil {
		t.Error("accepted a machine without states")
	}
}

func TestHugeBlockingAllowance(t *testing.T) {
	// allowed_blocked_microsec = 2^64-1 must not wrap into a negative budget.
	m := synthetic(t, 13)
	m.AllowedBlockedMicrosec = math.MaxUint64
	f := newFW(t, []Machine{m}, 0, 0)
	block := TriggerAction{Kind: ActionBlockOutgoing, Timeout: 2 * us, Duration: 2 * us}
	now := time.Duration(0)
	trigger(f, now, ev(EventNormalRecv))
	for i := 0; i < 50; i++ {
		trigger(f, now, evm(EventBlockingBegin, 0))
		now += 2 * us
		wantActions(t, "BlockingEnd", trigger(f, now, ev(EventBlockingEnd)), block)
	}
}

func TestReproducible(t *testing.T) {
	lines := readMachineFile(t, "machines-public.txt")
	var ms []Machine
	for _, l := range lines {
		m, err := ParseMachine(l.s)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, *m)
	}
	run := func() []TriggerAction {
		f, err := NewFramework(ms, 0.5, 0.5, testStart, NewRand(NewSeededSource(42)))
		if err != nil {
			t.Fatal(err)
		}
		var all []TriggerAction
		for i := 0; i < 500; i++ {
			k := []Event{EventNormalSent, EventNormalRecv, EventTunnelSent, EventTunnelRecv}[i%4]
			all = append(all, f.TriggerEvents([]TriggerEvent{ev(k), evm(EventPaddingSent, i%len(ms))}, at(time.Duration(i)*time.Millisecond))...)
		}
		return all
	}
	a, b := run(), run()
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("runs differ in length: %d vs %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("action %d differs: %v vs %v", i, a[i], b[i])
		}
	}
}

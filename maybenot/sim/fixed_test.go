package sim

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gotatun/gotatun/maybenot"
)

func constDist(d time.Duration) maybenot.Dist {
	us := float64(d / time.Microsecond)
	return maybenot.Dist{Type: maybenot.DistUniform, Param1: us, Param2: us}
}

// onNormalSent returns a machine that takes action when a normal packet
// is sent: once, or after every one with again.
func onNormalSent(t *testing.T, a maybenot.Action, again bool) maybenot.Machine {
	t.Helper()
	var s0, s1 maybenot.State
	s0.Transitions[maybenot.EventNormalSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	s1.Action = &a
	if again {
		s1.Transitions[maybenot.EventNormalSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	}
	m := maybenot.Machine{AllowedPaddingPackets: 100, States: []maybenot.State{s0, s1}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m
}

func block(timeout, duration time.Duration, bypass bool) maybenot.Action {
	return maybenot.Action{Kind: maybenot.ActionBlockOutgoing, Bypass: bypass,
		Timeout: constDist(timeout), Duration: constDist(duration)}
}

func pad(timeout time.Duration, bypass, replace bool) maybenot.Action {
	return maybenot.Action{Kind: maybenot.ActionSendPadding, Bypass: bypass, Replace: replace,
		Timeout: constDist(timeout)}
}

// tinyTrace reads "1ms,s 2ms,r …".
func tinyTrace(t *testing.T, s string) []TracePacket {
	t.Helper()
	var out []TracePacket
	for _, tok := range strings.Fields(s) {
		at, dir, _ := strings.Cut(tok, ",")
		d, err := time.ParseDuration(at)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, TracePacket{Time: d, Sent: dir == "s"})
	}
	return out
}

// timeline prints the client's entries as "time:code", actions with a '!'.
func timeline(events []Event) string {
	var parts []string
	for _, e := range events {
		if !e.Client {
			continue
		}
		var what string
		switch a := e.Action; {
		case a == nil:
			what = e.Kind.Code()
			switch e.Kind {
			case maybenot.EventPaddingSent, maybenot.EventBlockingBegin, maybenot.EventTimerBegin, maybenot.EventTimerEnd:
				what += fmt.Sprint(e.Machine)
			}
		case a.Kind == maybenot.ActionBlockOutgoing:
			what = fmt.Sprintf("!block%d+%v/%v", a.Machine, a.Timeout, a.Duration)
		case a.Kind == maybenot.ActionSendPadding:
			what = fmt.Sprintf("!pad%d+%v", a.Machine, a.Timeout)
		default:
			what = "!" + a.String()
		}
		parts = append(parts, fmt.Sprintf("%v:%s", e.Time, what))
	}
	return strings.Join(parts, " ")
}

func runFixed(t *testing.T, machines []maybenot.Machine, trace string, cfg Config) string {
	t.Helper()
	cfg.FixedTraceTimes, cfg.RecordActions, cfg.OnlyClientEvents = true, true, true
	events, err := Run(machines, nil, tinyTrace(t, trace), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return timeline(events)
}

// A machine that blocks for 5 ms after every normal packet sent: the
// packet at 1 ms is held until the blocking it extended ends at 6 ms, and
// then sent before BlockingEnd; later packets keep their times.
func TestFixedTraceTimesBlocking(t *testing.T) {
	m := []maybenot.Machine{onNormalSent(t, block(0, 5*time.Millisecond, false), true)}
	trace := "0s,s 1ms,s 2ms,r 8ms,s 20ms,r"
	got := runFixed(t, m, trace, Config{})
	want := strings.Join([]string{
		"0s:sn 0s:!block0+0s/5ms 0s:st 0s:bb0",
		"1ms:sn 1ms:!block0+0s/5ms 1ms:bb0",
		"2ms:rt 2ms:rn",
		"6ms:st 6ms:be",
		"8ms:sn 8ms:!block0+0s/5ms 8ms:st 8ms:bb0",
		"13ms:be",
		"20ms:rt 20ms:rn",
	}, " ")
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}

	// The reference model: BlockingEnd comes first, and the 5 ms the
	// packet at 1 ms waited shift the rest of the trace (no network delay,
	// so at once).
	events, err := Run(m, nil, tinyTrace(t, trace), Config{OnlyClientEvents: true})
	if err != nil {
		t.Fatal(err)
	}
	got = timeline(events)
	if !strings.Contains(got, "6ms:be 6ms:st 13ms:sn") || !strings.Contains(got, "25ms:rt") {
		t.Fatalf("reference model: %s", got)
	}
}

// What padding does while blocking holds a packet, by the flags of both
// (Maybenot's table): the blocking starts at 0 for 10 ms, the packet at
// 1 ms waits, the padding comes at 2 ms.
func TestFixedTraceTimesPaddingWhileBlocked(t *testing.T) {
	const head = "0s:sn 0s:!block0+0s/10ms 0s:!pad1+2ms 0s:st 0s:bb0 1ms:sn 2ms:sp1"
	for _, c := range []struct {
		blockBypass, bypass, replace bool
		want                         string
	}{
		// The held packet goes now in the padding's place.
		{true, true, true, "2ms:st 10ms:be"},
		// The padding goes now, past the blocking.
		{true, true, false, "2ms:st 10ms:st 10ms:be"},
		// The held packet stands in for the padding.
		{true, false, true, "10ms:st 10ms:be"},
		{false, true, true, "10ms:st 10ms:be"},
		{false, false, true, "10ms:st 10ms:be"},
		// The padding waits with the packet.
		{true, false, false, "10ms:st 10ms:st 10ms:be"},
		{false, true, false, "10ms:st 10ms:st 10ms:be"},
		{false, false, false, "10ms:st 10ms:st 10ms:be"},
	} {
		name := fmt.Sprintf("block bypass %t, padding bypass %t replace %t", c.blockBypass, c.bypass, c.replace)
		m := []maybenot.Machine{
			onNormalSent(t, block(0, 10*time.Millisecond, c.blockBypass), false),
			onNormalSent(t, pad(2*time.Millisecond, c.bypass, c.replace), false),
		}
		got := runFixed(t, m, "0s,s 1ms,s 20ms,r", Config{})
		want := head + " " + c.want + " 20ms:rt 20ms:rn"
		if got != want {
			t.Errorf("%s:\n got %s\nwant %s", name, got, want)
		}
	}
}

// MaxBlockedPackets and MinBlockedCapacity: a full queue lets a packet
// pass, and a queue left with too little room ends the blocking at once.
func TestFixedTraceTimesLimits(t *testing.T) {
	m := []maybenot.Machine{onNormalSent(t, block(0, 10*time.Millisecond, false), false)}
	const trace = "0s,s 1ms,s 2ms,s 3ms,s 4ms,s 20ms,r"
	const head = "0s:sn 0s:!block0+0s/10ms 0s:st 0s:bb0 1ms:sn 2ms:sn 3ms:sn"
	for _, c := range []struct {
		max, min int
		want     string
	}{
		// Unbounded: all four wait.
		{0, 0, "4ms:sn 10ms:st 10ms:st 10ms:st 10ms:st 10ms:be"},
		// Two places: the packets at 3 and 4 ms pass.
		{2, 0, "3ms:st 4ms:sn 4ms:st 10ms:st 10ms:st 10ms:be"},
		// Four places, at least two free: the third packet held ends it.
		{4, 2, "3ms:st 3ms:st 3ms:st 3ms:be 4ms:sn 4ms:st"},
	} {
		got := runFixed(t, m, trace, Config{MaxBlockedPackets: c.max, MinBlockedCapacity: c.min})
		want := head + " " + c.want + " 20ms:rt 20ms:rn"
		if got != want {
			t.Errorf("max %d, min %d:\n got %s\nwant %s", c.max, c.min, got, want)
		}
	}
}

// A full queue drops padding that would wait.
func TestFixedTraceTimesFullQueueDropsPadding(t *testing.T) {
	m := []maybenot.Machine{
		onNormalSent(t, block(0, 10*time.Millisecond, false), false),
		onNormalSent(t, pad(2*time.Millisecond, false, false), false),
	}
	got := runFixed(t, m, "0s,s 1ms,s 20ms,r", Config{MaxBlockedPackets: 1})
	want := "0s:sn 0s:!block0+0s/10ms 0s:!pad1+2ms 0s:st 0s:bb0 1ms:sn 2ms:sp1 10ms:st 10ms:be 20ms:rt 20ms:rn"
	if got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

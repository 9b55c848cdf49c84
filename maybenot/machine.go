// Package maybenot is a pure Go implementation of the Maybenot framework for
// traffic-analysis defences: probabilistic state machines that decide when
// to send padding packets and when to block outgoing traffic.
//
// It is exactly compatible with the machine strings of the reference
// framework (serialization version "02") and follows its runtime behaviour:
// machines made for the reference framework, including those that VPN relays
// hand out for DAITA, run unchanged. The package knows nothing of WireGuard
// or of any transport; the integrator reports traffic events and applies the
// returned actions.
//
// # Machines
//
// A [Machine] is decoded from its string form with [ParseMachine] and written
// back with [Machine.String] (or [Machine.MarshalText]). Decoding validates
// the machine (see [Machine.Validate]); an error says what was wrong and
// where:
//
//	m, err := maybenot.ParseMachine("02eNpjYEAHjOgCAAA0AAI=")
//
// The compressed form depends on the deflate implementation, so a string
// written here usually differs from the one the reference framework prints
// for the same machine, although both decode to the same bytes. Keep the
// original string where it must be echoed back.
//
// [Machine.MarshalJSON] and [Machine.UnmarshalJSON] use a readable JSON
// layout: event names as keys of "transitions", null for absent values,
// probabilities printed as float32 and non-finite floats as the strings
// "NaN", "+Inf" and "-Inf".
//
// # Runtime
//
// A [Framework] runs a set of machines for one tunnel. The integrator feeds
// it batches of [TriggerEvent] with the current time and applies the
// returned [TriggerAction] values (schedule padding, schedule blocking,
// cancel timers, update the machine's internal timer):
//
//	fw, err := maybenot.NewFramework(machines, 0.5, 0.5, time.Now(), nil)
//	...
//	for _, a := range fw.TriggerEvents([]maybenot.TriggerEvent{{Kind: maybenot.EventNormalSent}}, time.Now()) {
//		// apply a
//	}
//
// The random source is injected (nil means a ChaCha8 generator seeded from
// crypto/rand); with a seeded source a run is reproducible. TriggerEvents
// does not allocate in steady state; the returned slice is reused by the
// next call.
package maybenot

import (
	"math"
)

// Format constants.
const (
	// Version is the serialization version written and accepted ("02").
	Version = 2
	// MaxDecompressedSize bounds the inflated (bincode) form of a machine.
	MaxDecompressedSize = 1 << 20
	// MaxStringLen bounds the length of an encoded machine string accepted
	// by ParseMachine. Incompressible input of MaxDecompressedSize bytes
	// needs about 1.4 MiB of base64.
	MaxStringLen = 2 << 20
	// EventNum is the number of events, and of transition slots per state.
	EventNum = 13
	// StateMax is the largest number of states a machine may have.
	StateMax = 100000
	// StateEnd is the pseudo-state that stops a machine for good.
	StateEnd uint64 = math.MaxUint32
	// StateSignal is the pseudo-state that signals the other machines.
	StateSignal uint64 = math.MaxUint32 - 1
	// MaxSampledTimeout caps sampled action timeouts (microseconds).
	MaxSampledTimeout = 86_400_000_000.0
	// MaxSampledBlockDuration caps sampled blocking durations (microseconds).
	MaxSampledBlockDuration = 86_400_000_000.0
	// MaxSampledTimerDuration caps sampled timer durations (microseconds).
	MaxSampledTimerDuration = 86_400_000_000.0
	// DistMinProbability is the smallest non-zero probability accepted by
	// Binomial and Geometric distributions.
	DistMinProbability = 1e-9
)

// noLimit is the state limit used when an action has no limit distribution.
const noLimit uint64 = math.MaxUint64

// Machine is a Maybenot state machine. Fields are in serialization order.
type Machine struct {
	// AllowedPaddingPackets is the number of padding packets the machine may
	// always send before any fraction limit applies.
	AllowedPaddingPackets uint64
	// MaxPaddingFrac caps the machine's fraction of padding packets; 0 means
	// no cap.
	MaxPaddingFrac float64
	// AllowedBlockedMicrosec is the blocking time (µs) the machine may always
	// cause before any fraction limit applies.
	AllowedBlockedMicrosec uint64
	// MaxBlockingFrac caps the machine's fraction of time spent blocking; 0
	// means no cap.
	MaxBlockingFrac float64
	// States holds the states; state 0 is the start state.
	States []State
}

// State is one state of a machine.
type State struct {
	// Action is taken on (re-)entry to the state; nil means none.
	Action *Action
	// CounterA and CounterB update the machine's counters on entry; nil
	// means no update.
	CounterA, CounterB *Counter
	// Transitions holds one slot per Event. A nil slot is absent: that event
	// never moves the machine out of this state. A non-nil slot lists the
	// candidate next states (a non-nil empty slot is present but fails
	// validation).
	Transitions [EventNum][]Trans
}

// Trans is one candidate transition: a target state (an index into
// Machine.States, StateEnd or StateSignal) and its probability.
type Trans struct {
	To          uint64
	Probability float32
}

// ActionKind identifies an action; the values are the serialized variant
// indices.
type ActionKind uint8

// Action kinds.
const (
	ActionCancel        ActionKind = 0
	ActionSendPadding   ActionKind = 1
	ActionBlockOutgoing ActionKind = 2
	ActionUpdateTimer   ActionKind = 3
)

var actionKindNames = [...]string{"Cancel", "SendPadding", "BlockOutgoing", "UpdateTimer"}

func (k ActionKind) String() string {
	if int(k) < len(actionKindNames) {
		return actionKindNames[k]
	}
	return "ActionKind(" + itoa(uint64(k)) + ")"
}

// Action is the action of a state. Which fields matter depends on Kind:
//
//	Cancel:        Timer
//	SendPadding:   Bypass, Replace, Timeout, Limit
//	BlockOutgoing: Bypass, Replace, Timeout, Duration, Limit
//	UpdateTimer:   Replace, Duration, Limit
type Action struct {
	Kind     ActionKind
	Timer    Timer
	Bypass   bool
	Replace  bool
	Timeout  Dist
	Duration Dist
	// Limit, if set, bounds how many times the action may happen while the
	// machine stays in the state; when it is used up LimitReached is raised.
	Limit *Dist
}

// Timer names the timer(s) a Cancel action stops.
type Timer uint8

// Timers; the values are the serialized variant indices.
const (
	TimerAction   Timer = 0
	TimerInternal Timer = 1
	TimerAll      Timer = 2
)

var timerNames = [...]string{"Action", "Internal", "All"}

func (t Timer) String() string {
	if int(t) < len(timerNames) {
		return timerNames[t]
	}
	return "Timer(" + itoa(uint64(t)) + ")"
}

// Operation is a counter update operation.
type Operation uint8

// Counter operations; the values are the serialized variant indices.
const (
	OpIncrement Operation = 0
	OpDecrement Operation = 1
	OpSet       Operation = 2
)

var operationNames = [...]string{"Increment", "Decrement", "Set"}

func (o Operation) String() string {
	if int(o) < len(operationNames) {
		return operationNames[o]
	}
	return "Operation(" + itoa(uint64(o)) + ")"
}

// Counter is a counter update applied on entry to a state.
type Counter struct {
	Operation Operation
	// Dist gives the amount (truncated to an integer); nil means 1.
	Dist *Dist
	// Copy, if set, uses the other counter's value from before this state's
	// updates as the amount, overriding Dist.
	Copy bool
}

// Event is a Maybenot event. Its value is the index of its transition slot;
// the number and order of events are part of the wire format.
type Event uint8

// Events.
const (
	EventNormalRecv    Event = 0
	EventPaddingRecv   Event = 1
	EventTunnelRecv    Event = 2
	EventNormalSent    Event = 3
	EventPaddingSent   Event = 4
	EventTunnelSent    Event = 5
	EventBlockingBegin Event = 6
	EventBlockingEnd   Event = 7
	EventLimitReached  Event = 8
	EventCounterZero   Event = 9
	EventTimerBegin    Event = 10
	EventTimerEnd      Event = 11
	EventSignal        Event = 12
)

var eventNames = [EventNum]string{
	"NormalRecv", "PaddingRecv", "TunnelRecv", "NormalSent", "PaddingSent",
	"TunnelSent", "BlockingBegin", "BlockingEnd", "LimitReached",
	"CounterZero", "TimerBegin", "TimerEnd", "Signal",
}

var eventCodes = [EventNum]string{
	"rn", "rp", "rt", "sn", "sp", "st", "bb", "be", "", "", "tb", "te", "",
}

func (e Event) String() string {
	if int(e) < EventNum {
		return eventNames[e]
	}
	return "Event(" + itoa(uint64(e)) + ")"
}

// Code returns the two-letter code used in simulator traces ("sn", "rp",
// "bb", …), or "" for the framework-internal events.
func (e Event) Code() string {
	if int(e) < EventNum {
		return eventCodes[e]
	}
	return ""
}

// ParseEvent returns the event with the given name (as printed by String).
func ParseEvent(name string) (Event, bool) {
	for i, n := range eventNames {
		if n == name {
			return Event(i), true
		}
	}
	return 0, false
}

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}

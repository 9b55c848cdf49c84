package maybenot

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// MachineID identifies a machine of a Framework: its index in the machine
// list.
type MachineID int

// TriggerEvent is an event reported to the framework. Machine names the
// machine for PaddingSent, BlockingBegin, TimerBegin and TimerEnd and is
// ignored otherwise. LimitReached, CounterZero and Signal are internal and
// ignored when reported.
type TriggerEvent struct {
	Kind    Event
	Machine MachineID
}

// TriggerAction is an action for the integrator. At most one is returned
// per machine per TriggerEvents call.
//
//	Cancel:        stop the machine's Timer (action, internal or both);
//	               cancelling never produces TimerEnd.
//	SendPadding:   (re)arm the machine's action timer with Timeout; on
//	               expiry send padding (Bypass, Replace) and report
//	               PaddingSent{Machine}.
//	BlockOutgoing: (re)arm the action timer with Timeout; on expiry block
//	               outgoing traffic for Duration (Bypass, Replace) and report
//	               BlockingBegin{Machine}.
//	UpdateTimer:   set the machine's internal timer to now+Duration (with
//	               Replace) or to the later of its current expiry and
//	               now+Duration; report TimerBegin{Machine} when it changed
//	               and TimerEnd{Machine} on expiry.
//
// Durations are whole microseconds.
type TriggerAction struct {
	Kind     ActionKind
	Machine  MachineID
	Timer    Timer
	Timeout  time.Duration
	Duration time.Duration
	Bypass   bool
	Replace  bool
}

func (a TriggerAction) String() string {
	switch a.Kind {
	case ActionCancel:
		return fmt.Sprintf("Cancel{machine %d, timer %s}", a.Machine, a.Timer)
	case ActionSendPadding:
		return fmt.Sprintf("SendPadding{machine %d, timeout %v, bypass %t, replace %t}", a.Machine, a.Timeout, a.Bypass, a.Replace)
	case ActionBlockOutgoing:
		return fmt.Sprintf("BlockOutgoing{machine %d, timeout %v, duration %v, bypass %t, replace %t}", a.Machine, a.Timeout, a.Duration, a.Bypass, a.Replace)
	case ActionUpdateTimer:
		return fmt.Sprintf("UpdateTimer{machine %d, duration %v, replace %t}", a.Machine, a.Duration, a.Replace)
	}
	return fmt.Sprintf("TriggerAction{kind %d}", a.Kind)
}

// Errors from NewFramework.
var (
	ErrPaddingFrac  = errors.New("max_padding_frac must be in [0, 1]")
	ErrBlockingFrac = errors.New("max_blocking_frac must be in [0, 1]")
)

// stateEndRuntime marks a machine that entered STATE_END.
const stateEndRuntime = StateEnd

type signalKind uint8

const (
	signalNone signalKind = iota
	signalAllExcept
	signalAll
)

type runtime struct {
	state       uint64
	limit       uint64
	paddingSent uint64
	normalSent  uint64
	blocked     time.Duration
	allowed     time.Duration // allowed_blocked_microsec, saturated
	counterA    uint64
	counterB    uint64
	slot        TriggerAction
	slotSet     bool
}

// Framework is an instance of the Maybenot framework running a set of
// machines, typically one per tunnel. It is not safe for concurrent use.
type Framework struct {
	machines []Machine
	rt       []runtime
	rng      *Rand

	maxPaddingFrac  float64
	maxBlockingFrac float64

	now   time.Time
	start time.Time

	normalSent  uint64
	paddingSent uint64
	blocked     time.Duration

	blockingActive bool
	blockingStart  time.Time

	signal       signalKind
	signalExcept int

	zeroedA, zeroedB bool

	out []TriggerAction
}

// NewFramework creates an instance for machines (validated here; they must
// not be modified afterwards, but may be shared between instances), with
// framework-wide padding and blocking fraction caps (0 = none), the
// instance start time and a random source (nil selects a secure one).
func NewFramework(machines []Machine, maxPaddingFrac, maxBlockingFrac float64, now time.Time, rng *Rand) (*Framework, error) {
	if !(maxPaddingFrac >= 0 && maxPaddingFrac <= 1) {
		return nil, fmt.Errorf("%w: got %v", ErrPaddingFrac, maxPaddingFrac)
	}
	if !(maxBlockingFrac >= 0 && maxBlockingFrac <= 1) {
		return nil, fmt.Errorf("%w: got %v", ErrBlockingFrac, maxBlockingFrac)
	}
	for i := range machines {
		if err := machines[i].Validate(); err != nil {
			return nil, fmt.Errorf("machine %d: %w", i, err)
		}
	}
	if rng == nil {
		rng = NewRand(nil)
	}
	f := &Framework{
		machines:        machines,
		rt:              make([]runtime, len(machines)),
		rng:             rng,
		maxPaddingFrac:  maxPaddingFrac,
		maxBlockingFrac: maxBlockingFrac,
		now:             now,
		start:           now,
		out:             make([]TriggerAction, 0, len(machines)),
	}
	for i := range machines {
		r := &f.rt[i]
		r.allowed = microsToDuration(machines[i].AllowedBlockedMicrosec)
		if a := machines[i].States[0].Action; a != nil {
			r.limit = f.sampleLimit(a)
		}
	}
	return f, nil
}

// microsToDuration converts microseconds to a Duration, saturating at the
// largest Duration.
func microsToDuration(us uint64) time.Duration {
	if us > uint64(math.MaxInt64/int64(time.Microsecond)) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(us) * time.Microsecond
}

// NumMachines returns the number of machines.
func (f *Framework) NumMachines() int { return len(f.machines) }

// AllMachinesEnded reports whether every machine has entered STATE_END
// (true for an instance without machines).
func (f *Framework) AllMachinesEnded() bool {
	for i := range f.rt {
		if f.rt[i].state != stateEndRuntime {
			return false
		}
	}
	return true
}

// MachineState returns machine m's current state index (StateEnd once it
// has ended), its remaining state limit and its counters; for tests and
// diagnostics.
func (f *Framework) MachineState(m MachineID) (state, limit, counterA, counterB uint64) {
	r := &f.rt[m]
	return r.state, r.limit, r.counterA, r.counterB
}

// TriggerEvents processes a batch of events that happened at now (which
// should not decrease between calls) and returns the resulting actions in
// machine order, at most one per machine; a later event of the batch may
// overwrite the action of an earlier one. The returned slice is valid until
// the next call. It does not allocate.
func (f *Framework) TriggerEvents(events []TriggerEvent, now time.Time) []TriggerAction {
	for i := range f.rt {
		f.rt[i].slotSet = false
	}
	f.zeroedA, f.zeroedB = false, false
	f.now = now

	n := len(f.machines)
	for _, e := range events {
		switch e.Kind {
		case EventNormalRecv, EventPaddingRecv, EventTunnelRecv, EventTunnelSent:
			for m := 0; m < n; m++ {
				f.transition(m, e.Kind)
			}
		case EventNormalSent:
			f.normalSent = satInc(f.normalSent)
			for m := 0; m < n; m++ {
				f.rt[m].normalSent = satInc(f.rt[m].normalSent)
				f.transition(m, EventNormalSent)
			}
		case EventPaddingSent:
			f.paddingSent = satInc(f.paddingSent)
			if m := int(e.Machine); m >= 0 && m < n {
				f.rt[m].paddingSent = satInc(f.rt[m].paddingSent)
				if !f.transition(m, EventPaddingSent) && f.rt[m].state != stateEndRuntime {
					f.decrementLimit(m)
				}
			}
		case EventBlockingBegin:
			if !f.blockingActive {
				f.blockingActive = true
				f.blockingStart = now
			}
			for m := 0; m < n; m++ {
				if !f.transition(m, EventBlockingBegin) && m == int(e.Machine) && f.rt[m].state != stateEndRuntime {
					f.decrementLimit(m)
				}
			}
		case EventBlockingEnd:
			if f.blockingActive {
				d := now.Sub(f.blockingStart)
				if d < 0 {
					d = 0
				}
				f.blocked = satAddDur(f.blocked, d)
				for m := 0; m < n; m++ {
					f.rt[m].blocked = satAddDur(f.rt[m].blocked, d)
				}
				f.blockingActive = false
			}
			for m := 0; m < n; m++ {
				f.transition(m, EventBlockingEnd)
			}
		case EventTimerBegin:
			if m := int(e.Machine); m >= 0 && m < n {
				if !f.transition(m, EventTimerBegin) && f.rt[m].state != stateEndRuntime {
					f.decrementLimit(m)
				}
			}
		case EventTimerEnd:
			if m := int(e.Machine); m >= 0 && m < n {
				f.transition(m, EventTimerEnd)
			}
		}
	}

	f.deliverSignals()

	f.out = f.out[:0]
	for i := range f.rt {
		if f.rt[i].slotSet {
			f.out = append(f.out, f.rt[i].slot)
		}
	}
	return f.out
}

func (f *Framework) deliverSignals() {
	kind := f.signal
	if kind == signalNone {
		return
	}
	except := -1
	if kind == signalAllExcept {
		except = f.signalExcept
	}
	f.signal = signalNone
	for m := range f.machines {
		if m != except {
			f.transition(m, EventSignal)
		}
	}
	// A signal raised in the round above is consumed here: it reaches the
	// excluded machine (if any); with "all" it is dropped. A signal raised
	// while the excluded machine processes it waits for the next call.
	raised := f.signal != signalNone
	f.signal = signalNone
	if raised && except >= 0 {
		f.transition(except, EventSignal)
	}
}

func satInc(v uint64) uint64 {
	if v == math.MaxUint64 {
		return v
	}
	return v + 1
}

func satAddDur(a, b time.Duration) time.Duration {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// transition moves machine m on event ev and reports whether its state
// changed (entering STATE_END counts as a change; a STATE_SIGNAL transition
// does not).
func (f *Framework) transition(m int, ev Event) bool {
	r := &f.rt[m]
	if r.state == stateEndRuntime {
		return false
	}
	mach := &f.machines[m]
	slot := mach.States[r.state].Transitions[ev]
	if slot == nil {
		return false
	}
	x := f.rng.Float32()
	var acc float32
	next := uint64(0)
	found := false
	for _, t := range slot {
		acc += t.Probability
		if x < acc {
			next, found = t.To, true
			break
		}
	}
	if !found {
		return false
	}
	switch next {
	case StateEnd:
		r.state = stateEndRuntime
		return true
	case StateSignal:
		if f.signal == signalNone {
			f.signal = signalAllExcept
			f.signalExcept = m
		} else {
			f.signal = signalAll
		}
		return false
	}
	old := r.state
	if next != old {
		r.state = next
		if a := mach.States[next].Action; a != nil {
			r.limit = f.sampleLimit(a)
		} else {
			r.limit = noLimit
		}
	}
	below := f.belowActionLimits(m)
	allow, changedByCounter := f.updateCounters(m)
	if allow && below {
		f.schedule(m, next)
	}
	return old != r.state || changedByCounter
}

func (f *Framework) decrementLimit(m int) {
	r := &f.rt[m]
	if r.limit > 0 {
		r.limit--
	}
	a := f.machines[m].States[r.state].Action
	if a != nil && r.limit == 0 && a.Kind != ActionCancel && a.Limit != nil {
		r.slotSet = false
		f.transition(m, EventLimitReached)
	}
}

func (f *Framework) sampleLimit(a *Action) uint64 {
	if a.Kind == ActionCancel || a.Limit == nil {
		return noLimit
	}
	return roundToU64(a.Limit.Sample(f.rng))
}

// belowActionLimits reports whether the action of machine m's current state
// may be scheduled.
func (f *Framework) belowActionLimits(m int) bool {
	r := &f.rt[m]
	mach := &f.machines[m]
	a := mach.States[r.state].Action
	if a == nil {
		return false
	}
	switch a.Kind {
	case ActionCancel:
		return true
	case ActionUpdateTimer:
		return r.limit > 0
	case ActionSendPadding:
		return f.belowPaddingLimits(r, mach)
	case ActionBlockOutgoing:
		return f.belowBlockingLimits(r, mach, a)
	}
	return false
}

func (f *Framework) belowPaddingLimits(r *runtime, mach *Machine) bool {
	if r.paddingSent < mach.AllowedPaddingPackets {
		return r.limit > 0
	}
	if mach.MaxPaddingFrac > 0 {
		total := satAdd(r.normalSent, r.paddingSent)
		if total == 0 {
			return true
		}
		if float64(r.paddingSent)/float64(total) >= mach.MaxPaddingFrac {
			return false
		}
	}
	if f.maxPaddingFrac > 0 {
		total := satAdd(f.paddingSent, f.normalSent)
		if total == 0 {
			return true
		}
		if float64(f.paddingSent)/float64(total) >= f.maxPaddingFrac {
			return false
		}
	}
	return r.limit > 0
}

func (f *Framework) belowBlockingLimits(r *runtime, mach *Machine, a *Action) bool {
	if a.Replace && f.blockingActive {
		return r.limit > 0
	}
	mb, gb := r.blocked, f.blocked
	if f.blockingActive {
		d := f.now.Sub(f.blockingStart)
		if d < 0 {
			d = 0
		}
		mb = satAddDur(mb, d)
		gb = satAddDur(gb, d)
	}
	if mb < r.allowed {
		return r.limit > 0
	}
	elapsed := float64(f.now.Sub(f.start))
	if mach.MaxBlockingFrac > 0 && float64(mb)/elapsed >= mach.MaxBlockingFrac {
		return false
	}
	if f.maxBlockingFrac > 0 && float64(gb)/elapsed >= f.maxBlockingFrac {
		return false
	}
	return r.limit > 0
}

func satAdd(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

// updateCounters applies the counter updates of machine m's current state.
// It returns whether the state's action may still be scheduled and whether
// a CounterZero transition changed the state.
func (f *Framework) updateCounters(m int) (allow, changed bool) {
	r := &f.rt[m]
	s := &f.machines[m].States[r.state]
	oldA, oldB := r.counterA, r.counterB
	zeroed := false
	if c := s.CounterA; c != nil {
		amount := oldB
		if !c.Copy {
			amount = f.counterAmount(c)
		}
		r.counterA = applyCounter(r.counterA, c.Operation, amount)
		if oldA != 0 && r.counterA == 0 && !f.zeroedA {
			zeroed = true
			f.zeroedA = true
		}
	}
	if c := s.CounterB; c != nil {
		amount := oldA
		if !c.Copy {
			amount = f.counterAmount(c)
		}
		r.counterB = applyCounter(r.counterB, c.Operation, amount)
		if oldB != 0 && r.counterB == 0 && !f.zeroedB {
			zeroed = true
			f.zeroedB = true
		}
	}
	if zeroed {
		changed := f.transition(m, EventCounterZero)
		return !r.slotSet, changed
	}
	return true, false
}

func (f *Framework) counterAmount(c *Counter) uint64 {
	if c.Dist == nil {
		return 1
	}
	return truncToU64(c.Dist.Sample(f.rng))
}

func applyCounter(v uint64, op Operation, amount uint64) uint64 {
	switch op {
	case OpIncrement:
		return satAdd(v, amount)
	case OpDecrement:
		if amount > v {
			return 0
		}
		return v - amount
	default:
		return amount
	}
}

// schedule fills machine m's action slot from the action of state s.
func (f *Framework) schedule(m int, s uint64) {
	a := f.machines[m].States[s].Action
	if a == nil {
		return
	}
	r := &f.rt[m]
	act := TriggerAction{Kind: a.Kind, Machine: MachineID(m)}
	switch a.Kind {
	case ActionCancel:
		act.Timer = a.Timer
	case ActionSendPadding:
		act.Timeout = sampleMicros(&a.Timeout, f.rng, MaxSampledTimeout)
		act.Bypass, act.Replace = a.Bypass, a.Replace
	case ActionBlockOutgoing:
		act.Timeout = sampleMicros(&a.Timeout, f.rng, MaxSampledTimeout)
		act.Duration = sampleMicros(&a.Duration, f.rng, MaxSampledBlockDuration)
		act.Bypass, act.Replace = a.Bypass, a.Replace
	case ActionUpdateTimer:
		act.Duration = sampleMicros(&a.Duration, f.rng, MaxSampledTimerDuration)
		act.Replace = a.Replace
	default:
		return
	}
	r.slot = act
	r.slotSet = true
}

// sampleMicros samples d, caps it at max microseconds, rounds to whole
// microseconds and returns the Duration.
func sampleMicros(d *Dist, rng *Rand, max float64) time.Duration {
	us := roundToU64(math.Min(d.Sample(rng), max))
	return time.Duration(us) * time.Microsecond
}

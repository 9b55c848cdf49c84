package maybenot

import (
	"errors"
	"fmt"
)

// ErrInvalidMachine is wrapped by every validation error.
var ErrInvalidMachine = errors.New("invalid machine")

// ValidationError says which part of a machine failed validation.
type ValidationError struct {
	// State is the index of the offending state, or -1 for machine fields.
	State int
	// Field names the offending field, e.g. "max_padding_frac",
	// "transitions[NormalSent][1]" or "action.timeout".
	Field string
	// Reason says what is wrong.
	Reason string
}

func (e *ValidationError) Error() string {
	if e.State < 0 {
		return fmt.Sprintf("invalid machine: %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("invalid machine: state %d: %s: %s", e.State, e.Field, e.Reason)
}

// Unwrap makes errors.Is(err, ErrInvalidMachine) true.
func (e *ValidationError) Unwrap() error { return ErrInvalidMachine }

func machineErr(field, format string, args ...any) error {
	return &ValidationError{State: -1, Field: field, Reason: fmt.Sprintf(format, args...)}
}

// Validate checks the machine exactly as the reference framework does:
// fractions within [0, 1] (NaN passes, as in the reference), 1 to StateMax
// states, and every state valid. Transition probabilities are summed in
// float32 in slot order, as the reference does; summing in float64 would
// reject many real machines.
func (m *Machine) Validate() error {
	if m.MaxPaddingFrac < 0 || m.MaxPaddingFrac > 1 {
		return machineErr("max_padding_frac", "%v is outside [0, 1]", m.MaxPaddingFrac)
	}
	if m.MaxBlockingFrac < 0 || m.MaxBlockingFrac > 1 {
		return machineErr("max_blocking_frac", "%v is outside [0, 1]", m.MaxBlockingFrac)
	}
	n := len(m.States)
	if n == 0 {
		return machineErr("states", "a machine needs at least one state")
	}
	if n > StateMax {
		return machineErr("states", "%d states, at most %d allowed", n, StateMax)
	}
	for i := range m.States {
		if err := m.States[i].validate(uint64(n)); err != nil {
			var ve *ValidationError
			if errors.As(err, &ve) {
				ve.State = i
				return ve
			}
			return err
		}
	}
	return nil
}

func stateErr(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

func (s *State) validate(n uint64) error {
	for ev, slot := range s.Transitions {
		if slot == nil {
			continue
		}
		var sum float32
		for j, t := range slot {
			field := fmt.Sprintf("transitions[%s][%d]", Event(ev), j)
			if t.To >= n && t.To != StateEnd && t.To != StateSignal {
				return stateErr(field, "target state %d does not exist (machine has %d states)", t.To, n)
			}
			for _, u := range slot[:j] {
				if u.To == t.To {
					return stateErr(field, "duplicate target state %d", t.To)
				}
			}
			if t.Probability <= 0 || t.Probability > 1 {
				return stateErr(field, "probability %v is not in (0, 1]", t.Probability)
			}
			sum += t.Probability
		}
		if sum <= 0 || sum > 1 {
			return stateErr(fmt.Sprintf("transitions[%s]", Event(ev)),
				"probabilities sum to %v (float32), must be in (0, 1]", sum)
		}
	}
	if a := s.Action; a != nil {
		if err := a.validate(); err != nil {
			return err
		}
	}
	for i, c := range [2]*Counter{s.CounterA, s.CounterB} {
		if c == nil {
			continue
		}
		if c.Operation > OpSet {
			return stateErr(counterField[i], "unknown operation %d", c.Operation)
		}
		if c.Dist == nil {
			continue
		}
		if err := c.Dist.Validate(); err != nil {
			return stateErr(counterField[i]+".dist", "%v", err)
		}
	}
	return nil
}

var counterField = [2]string{"counter_a", "counter_b"}

func (a *Action) validate() error {
	switch a.Kind {
	case ActionCancel:
		if a.Timer > TimerAll {
			return stateErr("action.timer", "unknown timer %d", a.Timer)
		}
		return nil
	case ActionSendPadding:
		if err := a.Timeout.Validate(); err != nil {
			return stateErr("action.timeout", "%v", err)
		}
	case ActionBlockOutgoing:
		if err := a.Timeout.Validate(); err != nil {
			return stateErr("action.timeout", "%v", err)
		}
		if err := a.Duration.Validate(); err != nil {
			return stateErr("action.duration", "%v", err)
		}
	case ActionUpdateTimer:
		if err := a.Duration.Validate(); err != nil {
			return stateErr("action.duration", "%v", err)
		}
	default:
		return stateErr("action", "unknown action kind %d", a.Kind)
	}
	if a.Limit != nil {
		if err := a.Limit.Validate(); err != nil {
			return stateErr("action.limit", "%v", err)
		}
	}
	return nil
}

package maybenot

//lint:file-ignore ST1005 messages start with Maybenot's names of types and fields (Uniform, Cancel.timer).

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// MarshalJSON writes the machine in the readable JSON layout: fields in
// serialization order with snake_case names, null for absent values,
// transitions keyed by event name (present slots only) with "pseudo": "END"
// or "SIGNAL" on pseudo-state targets, probabilities printed as the shortest
// decimal that converts back to the same float32, and non-finite floats as
// the strings "NaN", "+Inf" and "-Inf". Separators are ", " and ": ".
func (m *Machine) MarshalJSON() ([]byte, error) {
	var b []byte
	b = append(b, `{"allowed_padding_packets": `...)
	b = strconv.AppendUint(b, m.AllowedPaddingPackets, 10)
	b = append(b, `, "max_padding_frac": `...)
	b = appendJSONFloat(b, m.MaxPaddingFrac, 64)
	b = append(b, `, "allowed_blocked_microsec": `...)
	b = strconv.AppendUint(b, m.AllowedBlockedMicrosec, 10)
	b = append(b, `, "max_blocking_frac": `...)
	b = appendJSONFloat(b, m.MaxBlockingFrac, 64)
	b = append(b, `, "states": [`...)
	for i := range m.States {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = m.States[i].appendJSON(b)
	}
	b = append(b, "]}"...)
	return b, nil
}

func (s *State) appendJSON(b []byte) []byte {
	b = append(b, `{"action": `...)
	if a := s.Action; a == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"kind": "`...)
		b = append(b, a.Kind.String()...)
		b = append(b, '"')
		switch a.Kind {
		case ActionCancel:
			b = append(b, `, "timer": "`...)
			b = append(b, a.Timer.String()...)
			b = append(b, '"')
		case ActionSendPadding, ActionBlockOutgoing:
			b = append(b, `, "bypass": `...)
			b = strconv.AppendBool(b, a.Bypass)
		}
		if a.Kind != ActionCancel {
			b = append(b, `, "replace": `...)
			b = strconv.AppendBool(b, a.Replace)
			if a.Kind != ActionUpdateTimer {
				b = append(b, `, "timeout": `...)
				b = a.Timeout.appendJSON(b)
			}
			if a.Kind != ActionSendPadding {
				b = append(b, `, "duration": `...)
				b = a.Duration.appendJSON(b)
			}
			b = append(b, `, "limit": `...)
			b = appendOptDistJSON(b, a.Limit)
		}
		b = append(b, '}')
	}
	for i, c := range [2]*Counter{s.CounterA, s.CounterB} {
		b = append(b, `, "`...)
		b = append(b, counterField[i]...)
		b = append(b, `": `...)
		if c == nil {
			b = append(b, "null"...)
			continue
		}
		b = append(b, `{"operation": "`...)
		b = append(b, c.Operation.String()...)
		b = append(b, `", "dist": `...)
		b = appendOptDistJSON(b, c.Dist)
		b = append(b, `, "copy": `...)
		b = strconv.AppendBool(b, c.Copy)
		b = append(b, '}')
	}
	b = append(b, `, "transitions": {`...)
	first := true
	for ev, slot := range s.Transitions {
		if slot == nil {
			continue
		}
		if !first {
			b = append(b, ", "...)
		}
		first = false
		b = append(b, '"')
		b = append(b, Event(ev).String()...)
		b = append(b, `": [`...)
		for j, t := range slot {
			if j > 0 {
				b = append(b, ", "...)
			}
			b = append(b, `{"to": `...)
			b = strconv.AppendUint(b, t.To, 10)
			b = append(b, `, "p": `...)
			b = appendJSONFloat(b, float64(t.Probability), 32)
			switch t.To {
			case StateEnd:
				b = append(b, `, "pseudo": "END"`...)
			case StateSignal:
				b = append(b, `, "pseudo": "SIGNAL"`...)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	return append(b, "}}"...)
}

func appendOptDistJSON(b []byte, d *Dist) []byte {
	if d == nil {
		return append(b, "null"...)
	}
	return d.appendJSON(b)
}

func (d *Dist) appendJSON(b []byte) []byte {
	b = append(b, `{"type": "`...)
	b = append(b, d.Type.String()...)
	b = append(b, '"')
	if d.Type == DistBinomial {
		b = append(b, `, "trials": `...)
		b = strconv.AppendUint(b, d.Trials, 10)
	}
	if int(d.Type) < distTypeCount {
		for i, name := range distParamNames[d.Type] {
			b = append(b, `, "`...)
			b = append(b, name...)
			b = append(b, `": `...)
			b = appendJSONFloat(b, d.param(i), 64)
		}
	}
	b = append(b, `, "start": `...)
	b = appendJSONFloat(b, d.Start, 64)
	b = append(b, `, "max": `...)
	b = appendJSONFloat(b, d.Max, 64)
	return append(b, '}')
}

// appendJSONFloat prints f as the shortest decimal that round-trips at the
// given bit size, in the style of Python's repr: fixed notation with at
// least one fractional digit ("20000.0") for decimal exponents from -4 to
// 15, scientific notation ("1e+16", "1.5e-05") outside.
func appendJSONFloat(b []byte, f float64, bits int) []byte {
	switch {
	case math.IsNaN(f):
		return append(b, `"NaN"`...)
	case math.IsInf(f, 1):
		return append(b, `"+Inf"`...)
	case math.IsInf(f, -1):
		return append(b, `"-Inf"`...)
	}
	// Shortest digits and decimal exponent.
	e := strconv.FormatFloat(f, 'e', -1, bits) // e.g. "-1.2345e+04"
	neg := e[0] == '-'
	if neg {
		e = e[1:]
		b = append(b, '-')
	}
	mant, expStr, _ := strings.Cut(e, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.Replace(mant, ".", "", 1)
	decpt := exp + 1 // position of the decimal point after the first digit
	if decpt > -4 && decpt <= 16 {
		switch {
		case decpt <= 0:
			b = append(b, "0."...)
			b = append(b, strings.Repeat("0", -decpt)...)
			b = append(b, digits...)
		case decpt >= len(digits):
			b = append(b, digits...)
			b = append(b, strings.Repeat("0", decpt-len(digits))...)
			b = append(b, ".0"...)
		default:
			b = append(b, digits[:decpt]...)
			b = append(b, '.')
			b = append(b, digits[decpt:]...)
		}
		return b
	}
	b = append(b, digits[0])
	if len(digits) > 1 {
		b = append(b, '.')
		b = append(b, digits[1:]...)
	}
	b = append(b, 'e')
	if exp < 0 {
		b = append(b, '-')
		exp = -exp
	} else {
		b = append(b, '+')
	}
	if exp < 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, int64(exp), 10)
}

// ---------------------------------------------------------------------------
// JSON decoding

// jsonFloat accepts a JSON number or one of "NaN", "+Inf", "-Inf".
type jsonFloat float64

func (f *jsonFloat) UnmarshalJSON(b []byte) error {
	v, err := parseJSONFloat(b, 64)
	*f = jsonFloat(v)
	return err
}

type jsonFloat32 float32

func (f *jsonFloat32) UnmarshalJSON(b []byte) error {
	v, err := parseJSONFloat(b, 32)
	*f = jsonFloat32(v)
	return err
}

func parseJSONFloat(b []byte, bits int) (float64, error) {
	s := string(bytes.TrimSpace(b))
	switch s {
	case `"NaN"`:
		return math.NaN(), nil
	case `"+Inf"`, `"Inf"`:
		return math.Inf(1), nil
	case `"-Inf"`:
		return math.Inf(-1), nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return 0, fmt.Errorf("want a number or \"NaN\"/\"+Inf\"/\"-Inf\", got %s", s)
	}
	v, err := strconv.ParseFloat(n.String(), bits)
	if err != nil {
		return 0, fmt.Errorf("bad number %s", s)
	}
	return v, nil
}

type jsonMachine struct {
	AllowedPaddingPackets  *uint64      `json:"allowed_padding_packets"`
	MaxPaddingFrac         *jsonFloat   `json:"max_padding_frac"`
	AllowedBlockedMicrosec *uint64      `json:"allowed_blocked_microsec"`
	MaxBlockingFrac        *jsonFloat   `json:"max_blocking_frac"`
	States                 []*jsonState `json:"states"`
}

type jsonState struct {
	Action      json.RawMessage        `json:"action"`
	CounterA    json.RawMessage        `json:"counter_a"`
	CounterB    json.RawMessage        `json:"counter_b"`
	Transitions map[string][]jsonTrans `json:"transitions"`
}

type jsonTrans struct {
	To     *uint64      `json:"to"`
	P      *jsonFloat32 `json:"p"`
	Pseudo *string      `json:"pseudo"`
}

type jsonAction struct {
	Kind     *string         `json:"kind"`
	Timer    *string         `json:"timer"`
	Bypass   *bool           `json:"bypass"`
	Replace  *bool           `json:"replace"`
	Timeout  json.RawMessage `json:"timeout"`
	Duration json.RawMessage `json:"duration"`
	Limit    json.RawMessage `json:"limit"`
}

type jsonCounter struct {
	Operation *string         `json:"operation"`
	Dist      json.RawMessage `json:"dist"`
	Copy      *bool           `json:"copy"`
}

func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data after JSON value")
	}
	return nil
}

func isNull(b json.RawMessage) bool {
	return len(b) == 0 || string(bytes.TrimSpace(b)) == "null"
}

// UnmarshalJSON reads the layout written by MarshalJSON. Every field must be
// present (null where absent) and no unknown field is accepted. The machine
// is not validated; call Validate.
func (m *Machine) UnmarshalJSON(b []byte) error {
	var jm jsonMachine
	if err := strictUnmarshal(b, &jm); err != nil {
		return fmt.Errorf("machine: %w", err)
	}
	switch {
	case jm.AllowedPaddingPackets == nil:
		return errors.New("machine: missing allowed_padding_packets")
	case jm.MaxPaddingFrac == nil:
		return errors.New("machine: missing max_padding_frac")
	case jm.AllowedBlockedMicrosec == nil:
		return errors.New("machine: missing allowed_blocked_microsec")
	case jm.MaxBlockingFrac == nil:
		return errors.New("machine: missing max_blocking_frac")
	case jm.States == nil:
		return errors.New("machine: missing states")
	}
	out := Machine{
		AllowedPaddingPackets:  *jm.AllowedPaddingPackets,
		MaxPaddingFrac:         float64(*jm.MaxPaddingFrac),
		AllowedBlockedMicrosec: *jm.AllowedBlockedMicrosec,
		MaxBlockingFrac:        float64(*jm.MaxBlockingFrac),
		States:                 make([]State, len(jm.States)),
	}
	for i, js := range jm.States {
		if js == nil {
			return fmt.Errorf("state %d: null state", i)
		}
		if err := js.decode(&out.States[i]); err != nil {
			return fmt.Errorf("state %d: %w", i, err)
		}
	}
	*m = out
	return nil
}

func (js *jsonState) decode(s *State) error {
	if js.Action == nil || js.CounterA == nil || js.CounterB == nil {
		return errors.New("need action, counter_a and counter_b (null where absent)")
	}
	var err error
	if !isNull(js.Action) {
		if s.Action, err = decodeJSONAction(js.Action); err != nil {
			return fmt.Errorf("action: %w", err)
		}
	}
	if s.CounterA, err = decodeJSONCounter(js.CounterA); err != nil {
		return fmt.Errorf("counter_a: %w", err)
	}
	if s.CounterB, err = decodeJSONCounter(js.CounterB); err != nil {
		return fmt.Errorf("counter_b: %w", err)
	}
	if js.Transitions == nil {
		return errors.New("missing transitions")
	}
	for name, list := range js.Transitions {
		ev, ok := ParseEvent(name)
		if !ok {
			return fmt.Errorf("transitions: unknown event %q", name)
		}
		slot := make([]Trans, len(list))
		for j, t := range list {
			if t.To == nil || t.P == nil {
				return fmt.Errorf("transitions[%s][%d]: need \"to\" and \"p\"", name, j)
			}
			slot[j] = Trans{To: *t.To, Probability: float32(*t.P)}
			if t.Pseudo != nil {
				want := map[string]uint64{"END": StateEnd, "SIGNAL": StateSignal}[*t.Pseudo]
				if want == 0 || want != *t.To {
					return fmt.Errorf("transitions[%s][%d]: pseudo %q does not match target %d", name, j, *t.Pseudo, *t.To)
				}
			}
		}
		s.Transitions[ev] = slot
	}
	return nil
}

func decodeJSONAction(b []byte) (*Action, error) {
	var ja jsonAction
	if err := strictUnmarshal(b, &ja); err != nil {
		return nil, err
	}
	if ja.Kind == nil {
		return nil, errors.New("missing kind")
	}
	a := new(Action)
	kind := -1
	for i, n := range actionKindNames {
		if n == *ja.Kind {
			kind = i
		}
	}
	if kind < 0 {
		return nil, fmt.Errorf("unknown kind %q", *ja.Kind)
	}
	a.Kind = ActionKind(kind)
	has := func(v bool, name string, want bool) error {
		if v != want {
			if want {
				return fmt.Errorf("%s: missing %s", a.Kind, name)
			}
			return fmt.Errorf("%s: unexpected field %s", a.Kind, name)
		}
		return nil
	}
	k := a.Kind
	for _, c := range []struct {
		present bool
		name    string
		want    bool
	}{
		{ja.Timer != nil, "timer", k == ActionCancel},
		{ja.Bypass != nil, "bypass", k == ActionSendPadding || k == ActionBlockOutgoing},
		{ja.Replace != nil, "replace", k != ActionCancel},
		{ja.Timeout != nil, "timeout", k == ActionSendPadding || k == ActionBlockOutgoing},
		{ja.Duration != nil, "duration", k == ActionBlockOutgoing || k == ActionUpdateTimer},
		{ja.Limit != nil, "limit", k != ActionCancel},
	} {
		if err := has(c.present, c.name, c.want); err != nil {
			return nil, err
		}
	}
	if ja.Timer != nil {
		t := -1
		for i, n := range timerNames {
			if n == *ja.Timer {
				t = i
			}
		}
		if t < 0 {
			return nil, fmt.Errorf("unknown timer %q", *ja.Timer)
		}
		a.Timer = Timer(t)
	}
	if ja.Bypass != nil {
		a.Bypass = *ja.Bypass
	}
	if ja.Replace != nil {
		a.Replace = *ja.Replace
	}
	var err error
	if ja.Timeout != nil {
		if err = decodeJSONDist(ja.Timeout, &a.Timeout); err != nil {
			return nil, fmt.Errorf("timeout: %w", err)
		}
	}
	if ja.Duration != nil {
		if err = decodeJSONDist(ja.Duration, &a.Duration); err != nil {
			return nil, fmt.Errorf("duration: %w", err)
		}
	}
	if !isNull(ja.Limit) {
		a.Limit = new(Dist)
		if err = decodeJSONDist(ja.Limit, a.Limit); err != nil {
			return nil, fmt.Errorf("limit: %w", err)
		}
	}
	return a, nil
}

func decodeJSONCounter(b json.RawMessage) (*Counter, error) {
	if isNull(b) {
		return nil, nil
	}
	var jc jsonCounter
	if err := strictUnmarshal(b, &jc); err != nil {
		return nil, err
	}
	if jc.Operation == nil || jc.Copy == nil || jc.Dist == nil {
		return nil, errors.New("need operation, dist and copy")
	}
	op := -1
	for i, n := range operationNames {
		if n == *jc.Operation {
			op = i
		}
	}
	if op < 0 {
		return nil, fmt.Errorf("unknown operation %q", *jc.Operation)
	}
	c := &Counter{Operation: Operation(op), Copy: *jc.Copy}
	if !isNull(jc.Dist) {
		c.Dist = new(Dist)
		if err := decodeJSONDist(jc.Dist, c.Dist); err != nil {
			return nil, fmt.Errorf("dist: %w", err)
		}
	}
	return c, nil
}

func decodeJSONDist(b json.RawMessage, d *Dist) error {
	if isNull(b) {
		return errors.New("must not be null")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return err
	}
	var typ string
	if err := json.Unmarshal(fields["type"], &typ); err != nil {
		return errors.New("missing or bad type")
	}
	t, ok := ParseDistType(typ)
	if !ok {
		return fmt.Errorf("unknown type %q", typ)
	}
	*d = Dist{Type: t}
	want := map[string]bool{"type": true, "start": true, "max": true}
	if t == DistBinomial {
		want["trials"] = true
		if err := json.Unmarshal(fields["trials"], &d.Trials); err != nil {
			return errors.New("Binomial: missing or bad trials")
		}
	}
	for i, name := range distParamNames[t] {
		want[name] = true
		raw, ok := fields[name]
		if !ok {
			return fmt.Errorf("%s: missing %s", t, name)
		}
		v, err := parseJSONFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("%s: %s: %w", t, name, err)
		}
		d.setParam(i, v)
	}
	for name := range fields {
		if !want[name] {
			return fmt.Errorf("%s: unexpected field %q", t, name)
		}
	}
	for _, f := range []struct {
		name string
		dst  *float64
	}{{"start", &d.Start}, {"max", &d.Max}} {
		raw, ok := fields[f.name]
		if !ok {
			return fmt.Errorf("missing %s", f.name)
		}
		v, err := parseJSONFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("%s: %w", f.name, err)
		}
		*f.dst = v
	}
	return nil
}

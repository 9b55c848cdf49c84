package maybenot

//lint:file-ignore ST1005 messages start with Maybenot's names of types and fields (Uniform, Cancel.timer).

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
)

// Decoding errors. Errors from ParseMachine wrap exactly one of these (or
// ErrInvalidMachine for a machine that decodes but fails validation).
var (
	ErrStringTooShort  = errors.New("string too short")
	ErrStringTooLong   = errors.New("string too long")
	ErrNotASCII        = errors.New("not ascii")
	ErrVersionMismatch = errors.New("version mismatch")
	ErrBase64          = errors.New("base64 decoding failed")
	ErrZlib            = errors.New("zlib decoding failed")
	ErrBincode         = errors.New("bincode decoding failed")
)

var strictBase64 = base64.StdEncoding.Strict()

// ParseMachine decodes and validates a machine string (version "02"). The
// input is untrusted: its size is bounded before and after inflation and no
// allocation exceeds a small multiple of the input size.
func ParseMachine(s string) (*Machine, error) {
	m, err := DecodeMachine(s)
	if err != nil {
		return nil, err
	}
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeMachine decodes a machine string without validating the machine.
func DecodeMachine(s string) (*Machine, error) {
	raw, err := inflateMachineString(s)
	if err != nil {
		return nil, err
	}
	return UnmarshalBincode(raw)
}

// inflateMachineString checks the text envelope and returns the inflated
// bincode bytes.
func inflateMachineString(s string) ([]byte, error) {
	if len(s) < 3 {
		return nil, ErrStringTooShort
	}
	if len(s) > MaxStringLen {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrStringTooLong, len(s), MaxStringLen)
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return nil, fmt.Errorf("%w: byte %d", ErrNotASCII, i)
		}
	}
	if s[:2] != "02" {
		return nil, fmt.Errorf("%w: got %q, want \"02\"", ErrVersionMismatch, s[:2])
	}
	b64 := s[2:]
	// Go's decoder skips '\r' and '\n'; the reference rejects them.
	if i := strings.IndexAny(b64, "\r\n"); i >= 0 {
		return nil, fmt.Errorf("%w: line break at offset %d", ErrBase64, i+2)
	}
	compressed, err := strictBase64.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBase64, err)
	}
	zr, err := zlib.NewReader(bytes.NewReader(compressed))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrZlib, err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, MaxDecompressedSize+1))
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrZlib, err)
	}
	if len(raw) > MaxDecompressedSize {
		return nil, fmt.Errorf("%w: inflates to more than %d bytes", ErrZlib, MaxDecompressedSize)
	}
	return raw, nil
}

// String returns the machine string: "02" followed by the base64 of the
// zlib-compressed (level 9) bincode form.
func (m *Machine) String() string {
	raw := m.AppendBincode(nil)
	var buf bytes.Buffer
	zw, err := zlib.NewWriterLevel(&buf, zlib.BestCompression)
	if err != nil {
		// Only an invalid level makes NewWriterLevel fail.
		return ""
	}
	_, _ = zw.Write(raw) // writes to a bytes.Buffer do not fail
	_ = zw.Close()
	out := make([]byte, 2+base64.StdEncoding.EncodedLen(buf.Len()))
	out[0], out[1] = '0', '2'
	base64.StdEncoding.Encode(out[2:], buf.Bytes())
	return string(out)
}

// MarshalText implements encoding.TextMarshaler with the machine string.
func (m *Machine) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler with ParseMachine.
func (m *Machine) UnmarshalText(b []byte) error {
	p, err := ParseMachine(string(b))
	if err != nil {
		return err
	}
	*m = *p
	return nil
}

// ---------------------------------------------------------------------------
// bincode (1.x DefaultOptions: little-endian, varint integers, trailing
// bytes rejected)

// Minimum encoded sizes, used to bound allocations from untrusted counts.
const (
	minStateSize = 1 + 2 + EventNum // no action, no counters, absent slots
	minTransSize = 1 + 4            // one-byte varint target, f32
)

// UnmarshalBincode decodes the inflated bincode form of a machine (without
// validating it). Every byte must be used.
func UnmarshalBincode(b []byte) (*Machine, error) {
	d := decoder{b: b}
	m, err := d.machine()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBincode, err)
	}
	if d.off != len(d.b) {
		return nil, fmt.Errorf("%w: %d trailing bytes after the machine", ErrBincode, len(d.b)-d.off)
	}
	return m, nil
}

type decoder struct {
	b   []byte
	off int
}

var errEOF = errors.New("unexpected end of input")

func (d *decoder) remaining() int { return len(d.b) - d.off }

func (d *decoder) byte() (byte, error) {
	if d.off >= len(d.b) {
		return 0, errEOF
	}
	c := d.b[d.off]
	d.off++
	return c, nil
}

func (d *decoder) fixed(n int) ([]byte, error) {
	if d.remaining() < n {
		return nil, errEOF
	}
	p := d.b[d.off : d.off+n]
	d.off += n
	return p, nil
}

// varint reads an unsigned varint that must fit in max.
func (d *decoder) varint(max uint64) (uint64, error) {
	at := d.off
	tag, err := d.byte()
	if err != nil {
		return 0, err
	}
	var v uint64
	switch {
	case tag < 251:
		v = uint64(tag)
	case tag == 251:
		p, err := d.fixed(2)
		if err != nil {
			return 0, err
		}
		v = uint64(binary.LittleEndian.Uint16(p))
	case tag == 252:
		p, err := d.fixed(4)
		if err != nil {
			return 0, err
		}
		v = uint64(binary.LittleEndian.Uint32(p))
	case tag == 253:
		p, err := d.fixed(8)
		if err != nil {
			return 0, err
		}
		v = binary.LittleEndian.Uint64(p)
	case tag == 254:
		return 0, fmt.Errorf("offset %d: 128-bit varint (tag 0xfe) not allowed", at)
	default:
		return 0, fmt.Errorf("offset %d: reserved varint tag 0xff", at)
	}
	if v > max {
		return 0, fmt.Errorf("offset %d: value %d too large for its type", at, v)
	}
	return v, nil
}

func (d *decoder) u64() (uint64, error) { return d.varint(math.MaxUint64) }

func (d *decoder) f64() (float64, error) {
	p, err := d.fixed(8)
	if err != nil {
		return 0, err
	}
	return math.Float64frombits(binary.LittleEndian.Uint64(p)), nil
}

func (d *decoder) f32() (float32, error) {
	p, err := d.fixed(4)
	if err != nil {
		return 0, err
	}
	return math.Float32frombits(binary.LittleEndian.Uint32(p)), nil
}

func (d *decoder) bool() (bool, error) {
	at := d.off
	c, err := d.byte()
	if err != nil {
		return false, err
	}
	switch c {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, fmt.Errorf("offset %d: invalid bool byte %d", at, c)
}

// option reads an Option tag.
func (d *decoder) option() (bool, error) {
	at := d.off
	c, err := d.byte()
	if err != nil {
		return false, err
	}
	switch c {
	case 0:
		return false, nil
	case 1:
		return true, nil
	}
	return false, fmt.Errorf("offset %d: invalid Option tag %d", at, c)
}

// variant reads an enum variant index that must be below n.
func (d *decoder) variant(what string, n uint64) (uint64, error) {
	at := d.off
	v, err := d.varint(math.MaxUint32)
	if err != nil {
		return 0, err
	}
	if v >= n {
		return 0, fmt.Errorf("offset %d: %s variant index %d out of range (0..%d)", at, what, v, n-1)
	}
	return v, nil
}

// length reads a Vec length, bounded by the remaining input.
func (d *decoder) length(minElem int) (int, error) {
	at := d.off
	n, err := d.u64()
	if err != nil {
		return 0, err
	}
	if n > uint64(d.remaining()/minElem) {
		return 0, fmt.Errorf("offset %d: length %d exceeds the remaining input", at, n)
	}
	return int(n), nil
}

func (d *decoder) machine() (*Machine, error) {
	m := new(Machine)
	var err error
	if m.AllowedPaddingPackets, err = d.u64(); err != nil {
		return nil, fmt.Errorf("allowed_padding_packets: %w", err)
	}
	if m.MaxPaddingFrac, err = d.f64(); err != nil {
		return nil, fmt.Errorf("max_padding_frac: %w", err)
	}
	if m.AllowedBlockedMicrosec, err = d.u64(); err != nil {
		return nil, fmt.Errorf("allowed_blocked_microsec: %w", err)
	}
	if m.MaxBlockingFrac, err = d.f64(); err != nil {
		return nil, fmt.Errorf("max_blocking_frac: %w", err)
	}
	n, err := d.length(minStateSize)
	if err != nil {
		return nil, fmt.Errorf("states: %w", err)
	}
	m.States = make([]State, n)
	for i := range m.States {
		if err := d.state(&m.States[i]); err != nil {
			return nil, fmt.Errorf("state %d: %w", i, err)
		}
	}
	return m, nil
}

func (d *decoder) state(s *State) error {
	ok, err := d.option()
	if err != nil {
		return fmt.Errorf("action: %w", err)
	}
	if ok {
		if s.Action, err = d.action(); err != nil {
			return fmt.Errorf("action: %w", err)
		}
	}
	if s.CounterA, err = d.counter(); err != nil {
		return fmt.Errorf("counter_a: %w", err)
	}
	if s.CounterB, err = d.counter(); err != nil {
		return fmt.Errorf("counter_b: %w", err)
	}
	for ev := range s.Transitions {
		ok, err := d.option()
		if err != nil {
			return fmt.Errorf("transitions[%s]: %w", Event(ev), err)
		}
		if !ok {
			continue
		}
		n, err := d.length(minTransSize)
		if err != nil {
			return fmt.Errorf("transitions[%s]: %w", Event(ev), err)
		}
		slot := make([]Trans, n)
		for j := range slot {
			if slot[j].To, err = d.u64(); err != nil {
				return fmt.Errorf("transitions[%s][%d]: %w", Event(ev), j, err)
			}
			if slot[j].Probability, err = d.f32(); err != nil {
				return fmt.Errorf("transitions[%s][%d]: %w", Event(ev), j, err)
			}
		}
		s.Transitions[ev] = slot
	}
	return nil
}

func (d *decoder) action() (*Action, error) {
	k, err := d.variant("Action", 4)
	if err != nil {
		return nil, err
	}
	a := &Action{Kind: ActionKind(k)}
	switch a.Kind {
	case ActionCancel:
		t, err := d.variant("Timer", 3)
		if err != nil {
			return nil, fmt.Errorf("Cancel.timer: %w", err)
		}
		a.Timer = Timer(t)
		return a, nil
	case ActionSendPadding, ActionBlockOutgoing:
		if a.Bypass, err = d.bool(); err != nil {
			return nil, fmt.Errorf("%s.bypass: %w", a.Kind, err)
		}
	}
	if a.Replace, err = d.bool(); err != nil {
		return nil, fmt.Errorf("%s.replace: %w", a.Kind, err)
	}
	if a.Kind != ActionUpdateTimer {
		if err := d.dist(&a.Timeout); err != nil {
			return nil, fmt.Errorf("%s.timeout: %w", a.Kind, err)
		}
	}
	if a.Kind != ActionSendPadding {
		if err := d.dist(&a.Duration); err != nil {
			return nil, fmt.Errorf("%s.duration: %w", a.Kind, err)
		}
	}
	if a.Limit, err = d.optDist(); err != nil {
		return nil, fmt.Errorf("%s.limit: %w", a.Kind, err)
	}
	return a, nil
}

func (d *decoder) counter() (*Counter, error) {
	ok, err := d.option()
	if err != nil || !ok {
		return nil, err
	}
	op, err := d.variant("Operation", 3)
	if err != nil {
		return nil, fmt.Errorf("operation: %w", err)
	}
	c := &Counter{Operation: Operation(op)}
	if c.Dist, err = d.optDist(); err != nil {
		return nil, fmt.Errorf("dist: %w", err)
	}
	if c.Copy, err = d.bool(); err != nil {
		return nil, fmt.Errorf("copy: %w", err)
	}
	return c, nil
}

func (d *decoder) optDist() (*Dist, error) {
	ok, err := d.option()
	if err != nil || !ok {
		return nil, err
	}
	dist := new(Dist)
	if err := d.dist(dist); err != nil {
		return nil, err
	}
	return dist, nil
}

func (d *decoder) dist(dist *Dist) error {
	t, err := d.variant("DistType", distTypeCount)
	if err != nil {
		return err
	}
	dist.Type = DistType(t)
	if dist.Type == DistBinomial {
		if dist.Trials, err = d.u64(); err != nil {
			return fmt.Errorf("Binomial.trials: %w", err)
		}
	}
	for i := 0; i < dist.Type.numParams(); i++ {
		v, err := d.f64()
		if err != nil {
			return fmt.Errorf("%s.%s: %w", dist.Type, distParamNames[t][i], err)
		}
		dist.setParam(i, v)
	}
	if dist.Start, err = d.f64(); err != nil {
		return fmt.Errorf("start: %w", err)
	}
	if dist.Max, err = d.f64(); err != nil {
		return fmt.Errorf("max: %w", err)
	}
	return nil
}

// AppendBincode appends the bincode form of the machine (canonical varints)
// to b.
func (m *Machine) AppendBincode(b []byte) []byte {
	b = appendVarint(b, m.AllowedPaddingPackets)
	b = appendF64(b, m.MaxPaddingFrac)
	b = appendVarint(b, m.AllowedBlockedMicrosec)
	b = appendF64(b, m.MaxBlockingFrac)
	b = appendVarint(b, uint64(len(m.States)))
	for i := range m.States {
		s := &m.States[i]
		if a := s.Action; a == nil {
			b = append(b, 0)
		} else {
			b = append(b, 1)
			b = appendVarint(b, uint64(a.Kind))
			switch a.Kind {
			case ActionCancel:
				b = appendVarint(b, uint64(a.Timer))
			case ActionSendPadding:
				b = appendBool(b, a.Bypass)
				b = appendBool(b, a.Replace)
				b = appendDist(b, &a.Timeout)
				b = appendOptDist(b, a.Limit)
			case ActionBlockOutgoing:
				b = appendBool(b, a.Bypass)
				b = appendBool(b, a.Replace)
				b = appendDist(b, &a.Timeout)
				b = appendDist(b, &a.Duration)
				b = appendOptDist(b, a.Limit)
			case ActionUpdateTimer:
				b = appendBool(b, a.Replace)
				b = appendDist(b, &a.Duration)
				b = appendOptDist(b, a.Limit)
			}
		}
		for _, c := range [2]*Counter{s.CounterA, s.CounterB} {
			if c == nil {
				b = append(b, 0)
				continue
			}
			b = append(b, 1)
			b = appendVarint(b, uint64(c.Operation))
			b = appendOptDist(b, c.Dist)
			b = appendBool(b, c.Copy)
		}
		for _, slot := range s.Transitions {
			if slot == nil {
				b = append(b, 0)
				continue
			}
			b = append(b, 1)
			b = appendVarint(b, uint64(len(slot)))
			for _, t := range slot {
				b = appendVarint(b, t.To)
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(t.Probability))
			}
		}
	}
	return b
}

func appendVarint(b []byte, v uint64) []byte {
	switch {
	case v < 251:
		return append(b, byte(v))
	case v <= math.MaxUint16:
		return binary.LittleEndian.AppendUint16(append(b, 251), uint16(v))
	case v <= math.MaxUint32:
		return binary.LittleEndian.AppendUint32(append(b, 252), uint32(v))
	}
	return binary.LittleEndian.AppendUint64(append(b, 253), v)
}

func appendF64(b []byte, f float64) []byte {
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(f))
}

func appendBool(b []byte, v bool) []byte {
	if v {
		return append(b, 1)
	}
	return append(b, 0)
}

func appendOptDist(b []byte, d *Dist) []byte {
	if d == nil {
		return append(b, 0)
	}
	return appendDist(append(b, 1), d)
}

func appendDist(b []byte, d *Dist) []byte {
	b = appendVarint(b, uint64(d.Type))
	if d.Type == DistBinomial {
		b = appendVarint(b, d.Trials)
	}
	for i := 0; i < d.Type.numParams(); i++ {
		b = appendF64(b, d.param(i))
	}
	b = appendF64(b, d.Start)
	return appendF64(b, d.Max)
}

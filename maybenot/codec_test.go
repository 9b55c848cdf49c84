package maybenot

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// testLine is one machine string of a .txt test file with the comment that
// precedes it.
type testLine struct {
	comment string
	s       string
}

func readMachineFile(t testing.TB, name string) []testLine {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []testLine
	var comment string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case strings.HasPrefix(line, "#"):
			comment = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		case line == "":
		default:
			out = append(out, testLine{comment: comment, s: line})
			comment = ""
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

type expectedMachine struct {
	Index      int             `json:"index"`
	String     string          `json:"string"`
	BincodeHex string          `json:"bincode_hex"`
	Valid      bool            `json:"valid"`
	Machine    json.RawMessage `json:"machine"`
}

func readExpected(t *testing.T, name string) []expectedMachine {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	var out []expectedMachine
	for _, line := range bytes.Split(bytes.TrimSpace(data), []byte("\n")) {
		var e expectedMachine
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestDecodeKnownMachines(t *testing.T) {
	for _, set := range []struct {
		name string
		want int
	}{{"machines-public", 19}, {"machines-synthetic", 18}} {
		lines := readMachineFile(t, set.name+".txt")
		exp := readExpected(t, set.name+".json")
		if len(lines) != set.want || len(exp) != set.want {
			t.Fatalf("%s: %d strings, %d expected decodings, want %d", set.name, len(lines), len(exp), set.want)
		}
		passed := 0
		for i, l := range lines {
			e := exp[i]
			if e.String != l.s || e.Index != i {
				t.Fatalf("%s[%d]: .txt and .json disagree", set.name, i)
			}
			m, err := ParseMachine(l.s)
			if err != nil {
				t.Errorf("%s[%d] (%s): %v", set.name, i, l.comment, err)
				continue
			}
			ok := true
			// The readable JSON must match the expected layout byte for byte.
			got, _ := m.MarshalJSON()
			if !bytes.Equal(got, e.Machine) {
				t.Errorf("%s[%d]: JSON mismatch\n got %s\nwant %s", set.name, i, got, e.Machine)
				ok = false
			}
			// Re-encoding gives the same inflated bytes.
			raw, err := inflateMachineString(l.s)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(raw) != e.BincodeHex {
				t.Errorf("%s[%d]: inflated bytes differ from bincode_hex", set.name, i)
				ok = false
			}
			if enc := m.AppendBincode(nil); !bytes.Equal(enc, raw) {
				t.Errorf("%s[%d]: re-encoded bincode differs\n got %x\nwant %x", set.name, i, enc, raw)
				ok = false
			}
			// Our own string decodes to the same machine.
			m2, err := ParseMachine(m.String())
			if err != nil || !reflect.DeepEqual(m, m2) {
				t.Errorf("%s[%d]: string round trip failed: %v", set.name, i, err)
				ok = false
			}
			// The JSON decodes back to the same bincode bytes.
			var m3 Machine
			if err := m3.UnmarshalJSON(e.Machine); err != nil {
				t.Errorf("%s[%d]: UnmarshalJSON: %v", set.name, i, err)
				ok = false
			} else if !bytes.Equal(m3.AppendBincode(nil), raw) {
				t.Errorf("%s[%d]: JSON -> bincode differs", set.name, i)
				ok = false
			}
			if ok {
				passed++
			}
		}
		t.Logf("%s: %d/%d machines decode, match JSON and re-encode", set.name, passed, len(lines))
	}
}

// invalidReason maps the comment of a machines-invalid.txt entry to the
// error class the string must be rejected with, and a fragment the message
// must contain.
func invalidReason(comment string) (string, error) {
	c := strings.ToLower(comment)
	switch {
	case strings.HasPrefix(c, "string shorter"):
		return "", ErrStringTooShort
	case strings.HasPrefix(c, "non-ascii"):
		return "", ErrNotASCII
	case strings.Contains(c, "version prefix"):
		return "", ErrVersionMismatch
	case strings.Contains(c, "zlib") || strings.Contains(c, "deflate") || strings.Contains(c, "adler"):
		return "", ErrZlib
	case strings.Contains(c, "base64"):
		return "", ErrBase64
	case strings.HasPrefix(c, "bincode:") || strings.HasPrefix(c, "legacy"):
		return "", ErrBincode
	case strings.HasPrefix(c, "validate:"):
		for _, f := range []struct{ in, want string }{
			{"sendpadding.timeout", "action.timeout"},
			{"blockoutgoing.duration", "action.duration"},
			{"updatetimer.limit", "action.limit"},
			{"counter a dist", "counter_a.dist"},
			{"max_padding_frac", "max_padding_frac"},
			{"max_blocking_frac", "max_blocking_frac"},
			{"zero states", "states"},
			{"transition", "transitions[NormalSent]"},
			{"duplicate", "duplicate"},
			{"probabilit", "transitions[NormalSent]"},
		} {
			if strings.Contains(c, f.in) {
				return f.want, ErrInvalidMachine
			}
		}
		return "", ErrInvalidMachine
	}
	return "", nil
}

func TestRejectInvalidMachines(t *testing.T) {
	lines := readMachineFile(t, "machines-invalid.txt")
	if len(lines) != 62 {
		t.Fatalf("%d invalid strings, want 62", len(lines))
	}
	rejected := 0
	for i, l := range lines {
		frag, want := invalidReason(l.comment)
		if want == nil {
			t.Fatalf("[%d] no expectation for comment %q", i, l.comment)
		}
		_, err := ParseMachine(l.s)
		switch {
		case err == nil:
			t.Errorf("[%d] %s: accepted", i, l.comment)
		case !errors.Is(err, want):
			t.Errorf("[%d] %s: got %v, want %v", i, l.comment, err, want)
		case !strings.Contains(err.Error(), frag):
			t.Errorf("[%d] %s: error %q does not mention %q", i, l.comment, err, frag)
		default:
			rejected++
		}
	}
	t.Logf("%d/%d invalid strings rejected for the stated reason", rejected, len(lines))
}

func TestQuirks(t *testing.T) {
	lines := readMachineFile(t, "machines-quirks.txt")
	if len(lines) != 9 {
		t.Fatalf("%d quirk strings, want 9", len(lines))
	}
	for i, l := range lines {
		accepted := strings.HasPrefix(l.comment, "ACCEPTED")
		if !accepted && !strings.HasPrefix(l.comment, "REJECTED") {
			t.Fatalf("[%d] comment %q has no verdict", i, l.comment)
		}
		// Deliberate deviation (spec Q12): a zlib stream without its
		// Adler-32 trailer is rejected. The reference accepts it only as a
		// side effect of a single read() call; no encoder produces such
		// strings.
		if strings.Contains(l.comment, "without its 4-byte Adler-32") {
			accepted = false
		}
		m, err := ParseMachine(l.s)
		if accepted && err != nil {
			t.Errorf("[%d] %s: rejected: %v", i, l.comment, err)
		}
		if !accepted && err == nil {
			t.Errorf("[%d] %s: accepted", i, l.comment)
		}
		if strings.Contains(l.comment, "NaN max_padding_frac") && err == nil {
			// A NaN cap must behave like no cap at runtime.
			fw, err := NewFramework([]Machine{*m}, 0, 0, testStart, NewRand(NewSeededSource(1)))
			if err != nil {
				t.Fatal(err)
			}
			_ = fw
		}
	}
}

func TestDecodeErrorsNameTheField(t *testing.T) {
	// Truncated bincode: the error names the state and slot.
	m := &Machine{States: []State{{Action: &Action{Kind: ActionSendPadding}}}}
	m.States[0].Transitions[EventNormalSent] = []Trans{{To: 0, Probability: 1}}
	raw := m.AppendBincode(nil)
	_, err := UnmarshalBincode(raw[:len(raw)-11])
	if err == nil || !strings.Contains(err.Error(), "state 0: transitions[NormalSent]") {
		t.Fatalf("got %v", err)
	}
	// Hostile length prefix: rejected without allocating.
	hostile := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xfd, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f}
	if _, err := UnmarshalBincode(hostile); err == nil || !strings.Contains(err.Error(), "exceeds the remaining input") {
		t.Fatalf("got %v", err)
	}
	// Non-canonical varints are accepted.
	m2, err := UnmarshalBincode(append([]byte{0xfb, 5, 0}, raw[1:]...))
	if err != nil || m2.AllowedPaddingPackets != 5 {
		t.Fatalf("non-canonical varint: %v", err)
	}
	// Validation errors carry the state index and field.
	m.States[0].Transitions[EventNormalSent][0].Probability = 0
	err = m.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) || ve.State != 0 || ve.Field != "transitions[NormalSent][0]" {
		t.Fatalf("got %#v", err)
	}
}

func TestStringLimits(t *testing.T) {
	if _, err := ParseMachine("02" + strings.Repeat("A", MaxStringLen)); !errors.Is(err, ErrStringTooLong) {
		t.Fatalf("got %v", err)
	}
	if _, err := ParseMachine("02eNpjYEAHjOgC\nAAA0AAI="); !errors.Is(err, ErrBase64) {
		t.Fatalf("line break: got %v", err)
	}
	// A zlib bomb: 2 MiB of zeros compresses to a few KiB.
	big := make([]byte, 2<<20)
	m := &Machine{}
	_ = m
	s := compressForTest(t, big)
	if _, err := ParseMachine(s); !errors.Is(err, ErrZlib) {
		t.Fatalf("bomb: got %v", err)
	}
}

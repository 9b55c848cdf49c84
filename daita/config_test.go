package daita

import (
	"errors"
	"math"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	ok := DefaultConfig()
	ok.Machines = []string{"02eNpjYEAHjOgCAAA0AAI="}
	ok.MaxDecoyFrac, ok.MaxDelayFrac = 1, 0
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []Config{
		{MaxDelayedPackets: 0},
		{MaxDelayedPackets: MaxDelayedPacketsLimit + 1},
		{MaxDelayedPackets: 1, MinDelayCapacity: -1},
		{MaxDelayedPackets: 1, MaxDecoyFrac: math.NaN()},
		{MaxDelayedPackets: 1, MaxDecoyFrac: 1.01},
		{MaxDelayedPackets: 1, MaxDelayFrac: -1e-9},
		{MaxDelayedPackets: 1, Machines: []string{"02eNpjYEAHjOgCAAA0AAI"}},
		{MaxDelayedPackets: 1, Machines: make([]string, MaxMachines+1)},
	} {
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%+v: got %v", c, err)
		}
	}
}

func TestDecoyFormat(t *testing.T) {
	b := make([]byte, 1420)
	for i := range b {
		b[i] = 0xAA
	}
	FillDecoy(b)
	if b[0] != 0xFF || b[1] != 0 || b[2] != 0x05 || b[3] != 0x8c {
		t.Fatalf("header % x", b[:4])
	}
	for _, c := range b[4:] {
		if c != 0 {
			t.Fatal("filler not zero")
		}
	}
	if d, m := IsDecoy(b); !d || m {
		t.Fatal("own decoy not recognised")
	}
	for _, tc := range []struct {
		p           []byte
		decoy, malf bool
	}{
		{[]byte{0xFF, 0, 0}, false, false},
		{[]byte{0xFF, 0, 0, 4}, true, false},
		{[]byte{0xFF, 9, 0, 5}, true, true},
		{[]byte{0x45, 0, 0, 4}, false, false},
		{nil, false, false},
	} {
		if d, m := IsDecoy(tc.p); d != tc.decoy || m != tc.malf {
			t.Errorf("% x: decoy %v malformed %v", tc.p, d, m)
		}
	}
}

// FuzzIsDecoy: any payload is classified without a panic, and only a
// payload of 4 or more bytes starting with 0xFF is a decoy.
func FuzzIsDecoy(f *testing.F) {
	f.Add([]byte{0xFF, 0, 0, 4})
	f.Add([]byte{0xFF, 0, 0xFF, 0xFF, 1})
	f.Add([]byte{0x45, 0, 0, 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, m := IsDecoy(b)
		if d != (len(b) >= DecoyHeaderLen && b[0] == DecoyMarker) || m && !d {
			t.Fatalf("% x: decoy %v, malformed %v", b, d, m)
		}
	})
}

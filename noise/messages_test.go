package noise

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestMessageType(t *testing.T) {
	for _, tc := range []struct {
		b    []byte
		typ  uint32
		okay bool
	}{
		{nil, 0, false},
		{[]byte{1, 0, 0}, 0, false},
		{[]byte{1, 0, 0, 0}, 1, true},
		{[]byte{4, 0, 0, 0, 9, 9}, 4, true},
		{[]byte{200, 0, 0, 0}, 200, true},
		{[]byte{1, 1, 0, 0}, 0, false},
		{[]byte{1, 0, 0, 1}, 0, false},
	} {
		typ, ok := MessageType(tc.b)
		if typ != tc.typ || ok != tc.okay {
			t.Errorf("MessageType(%x) = %d, %v; want %d, %v", tc.b, typ, ok, tc.typ, tc.okay)
		}
	}
}

type wireMessage interface {
	Unmarshal([]byte) error
	MarshalTo([]byte) []byte
}

func TestMessageRoundTripAndStrictness(t *testing.T) {
	for _, tc := range []struct {
		name string
		typ  byte
		size int
		new  func() wireMessage
	}{
		{"initiation", MessageInitiationType, MessageInitiationSize, func() wireMessage { return new(MessageInitiation) }},
		{"response", MessageResponseType, MessageResponseSize, func() wireMessage { return new(MessageResponse) }},
		{"cookie reply", MessageCookieReplyType, MessageCookieReplySize, func() wireMessage { return new(MessageCookieReply) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := make([]byte, tc.size)
			testRand(tc.typ).Read(b)
			b[0], b[1], b[2], b[3] = tc.typ, 0, 0, 0
			m := tc.new()
			if err := m.Unmarshal(b); err != nil {
				t.Fatal(err)
			}
			out := m.MarshalTo(make([]byte, tc.size+10))
			if !bytes.Equal(out, b) {
				t.Fatalf("round trip:\n got %x\nwant %x", out, b)
			}

			bad := func(mut func([]byte) []byte, wantText string) {
				t.Helper()
				c := mut(append([]byte(nil), b...))
				err := tc.new().Unmarshal(c)
				if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), wantText) {
					t.Errorf("got %v, want ErrMalformed mentioning %q", err, wantText)
				}
			}
			bad(func(c []byte) []byte { return c[:len(c)-1] }, "bytes")
			bad(func(c []byte) []byte { return append(c, 0) }, "bytes")
			bad(func(c []byte) []byte { return nil }, "bytes")
			bad(func(c []byte) []byte { c[0] = 9; return c }, "type")
			bad(func(c []byte) []byte { c[0] = MessageTransportType; return c }, "type")
			for i := 1; i < 4; i++ {
				bad(func(c []byte) []byte { c[i] = 1; return c }, "reserved")
			}
		})
	}
}

func TestMessageLayout(t *testing.T) {
	m := MessageInitiation{Sender: 0x04030201}
	m.Ephemeral[0], m.Static[0], m.Timestamp[0], m.MAC1[0], m.MAC2[0] = 0xe1, 0x51, 0x71, 0x31, 0x32
	b := m.MarshalTo(make([]byte, MessageInitiationSize))
	for off, want := range map[int]byte{0: 1, 4: 1, 5: 2, 7: 4, 8: 0xe1, 40: 0x51, 88: 0x71, 116: 0x31, 132: 0x32} {
		if b[off] != want {
			t.Errorf("initiation byte %d = %#x, want %#x", off, b[off], want)
		}
	}
	r := MessageResponse{Sender: 7, Receiver: 9}
	r.Ephemeral[0], r.Empty[0], r.MAC1[0], r.MAC2[0] = 0xe1, 0xee, 0x31, 0x32
	b = r.MarshalTo(make([]byte, MessageResponseSize))
	for off, want := range map[int]byte{0: 2, 4: 7, 8: 9, 12: 0xe1, 44: 0xee, 60: 0x31, 76: 0x32} {
		if b[off] != want {
			t.Errorf("response byte %d = %#x, want %#x", off, b[off], want)
		}
	}
	c := MessageCookieReply{Receiver: 5}
	c.Nonce[0], c.Cookie[0] = 0xaa, 0xcc
	b = c.MarshalTo(make([]byte, MessageCookieReplySize))
	for off, want := range map[int]byte{0: 3, 4: 5, 8: 0xaa, 32: 0xcc} {
		if b[off] != want {
			t.Errorf("cookie reply byte %d = %#x, want %#x", off, b[off], want)
		}
	}
}

func TestParseTransportHeader(t *testing.T) {
	b := make([]byte, 40)
	b[0] = 4
	b[4], b[8], b[15] = 0x11, 0x22, 0x80
	recv, ctr, err := ParseTransportHeader(b)
	if err != nil || recv != 0x11 || ctr != 0x8000000000000022 {
		t.Fatalf("got %#x %#x %v", recv, ctr, err)
	}
	if _, _, err := ParseTransportHeader(b[:31]); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short: %v", err)
	}
	if _, _, err := ParseTransportHeader(b[:32]); err != nil {
		t.Fatalf("keepalive-sized: %v", err)
	}
	b[0] = 1
	if _, _, err := ParseTransportHeader(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("wrong type: %v", err)
	}
	b[0], b[3] = 4, 1
	if _, _, err := ParseTransportHeader(b); !errors.Is(err, ErrMalformed) {
		t.Fatalf("reserved: %v", err)
	}
}

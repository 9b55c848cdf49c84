package noise

import (
	"bytes"
	"errors"
	"net/netip"
	"sync"
	"testing"
)

// fuzzFixture is a pair of peers with one handshake in flight, built once
// per process. Fuzz inputs run one at a time within a process.
type fuzzFixture struct {
	a, b     *side
	initWire []byte // a valid initiation from a to b (MACs filled)
	respWire []byte // b's valid response to it
	cookie   []byte // a valid cookie reply to initWire
	checker  *CookieChecker
	gen      *CookieGenerator
	src      netip.AddrPort
}

var (
	fixtureOnce sync.Once
	fixture     *fuzzFixture
)

const fuzzInitSeed = 77

func getFixture(t testing.TB) *fuzzFixture {
	fixtureOnce.Do(func() {
		r := testRand(70)
		f := &fuzzFixture{src: netip.MustParseAddrPort("192.0.2.9:4444")}
		f.a, f.b = newPair(t, r, PresharedKey{3}, PresharedKey{3})
		f.checker = NewCookieChecker(f.b.id.PublicKey(), testRand(71))
		f.gen = NewCookieGenerator(f.b.id.PublicKey())

		init := f.resetInitiator(t)
		f.initWire = init.MarshalTo(make([]byte, MessageInitiationSize))
		f.gen.AddMACs(f.initWire, epoch)
		if _, err := ConsumeInitiation(f.b.id, &init, f.b.lookup(f.a), epoch); err != nil {
			t.Fatal(err)
		}
		resp, err := f.b.h.CreateResponse(epoch, 2, testRand(72))
		if err != nil {
			t.Fatal(err)
		}
		f.respWire = resp.MarshalTo(make([]byte, MessageResponseSize))
		NewCookieGenerator(f.a.id.PublicKey()).AddMACs(f.respWire, epoch)
		reply, err := f.checker.CreateReply(f.initWire, 1, f.src, epoch)
		if err != nil {
			t.Fatal(err)
		}
		f.cookie = reply.MarshalTo(make([]byte, MessageCookieReplySize))
		// Forget the accepted initiation so that the seed is accepted again.
		f.b.h.mu.Lock()
		f.b.h.lastTimestamp = Timestamp{}
		f.b.h.lastInitiation = epoch.Add(-HandshakeInitiationRate)
		f.b.h.mu.Unlock()
		fixture = f
	})
	if fixture == nil {
		t.Fatal("fixture setup failed")
	}
	return fixture
}

// resetInitiator puts a's handshake back to the same pending initiation
// (same ephemeral key, same timestamp, index 1).
func (f *fuzzFixture) resetInitiator(t testing.TB) MessageInitiation {
	m, err := f.a.h.CreateInitiation(epoch, 1, testRand(fuzzInitSeed))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func FuzzMessageInitiation(f *testing.F) {
	fx := getFixture(f)
	f.Add(fx.initWire)
	f.Add(fx.respWire)
	f.Add(make([]byte, MessageInitiationSize))
	f.Add([]byte{1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		fx.checker.CheckMAC1(data)
		fx.checker.CheckMAC2(data, fx.src, epoch)
		var m MessageInitiation
		if err := m.Unmarshal(data); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal error not ErrMalformed: %v", err)
			}
			return
		}
		if out := m.MarshalTo(make([]byte, MessageInitiationSize)); !bytes.Equal(out, data) {
			t.Fatalf("round trip differs")
		}
		h, err := ConsumeInitiation(fx.b.id, &m, fx.b.lookup(fx.a), epoch)
		if err != nil {
			return
		}
		if h != fx.b.h {
			t.Fatal("wrong handshake returned")
		}
		// Only a's genuine message can be accepted (the sender index and
		// the MACs are not covered by the handshake's encryption); allow
		// it again.
		if !bytes.Equal(data[8:116], fx.initWire[8:116]) {
			t.Fatalf("forged initiation accepted: %x", data)
		}
		if _, err := h.CreateResponse(epoch, 9, testRand(1)); err != nil {
			t.Fatal(err)
		}
		h.mu.Lock()
		h.lastTimestamp = Timestamp{}
		h.lastInitiation = epoch.Add(-HandshakeInitiationRate)
		h.mu.Unlock()
	})
}

func FuzzMessageResponse(f *testing.F) {
	fx := getFixture(f)
	f.Add(fx.respWire)
	f.Add(fx.initWire)
	f.Add(make([]byte, MessageResponseSize))
	f.Add([]byte{2, 0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m MessageResponse
		if err := m.Unmarshal(data); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal error not ErrMalformed: %v", err)
			}
			return
		}
		if out := m.MarshalTo(make([]byte, MessageResponseSize)); !bytes.Equal(out, data) {
			t.Fatalf("round trip differs")
		}
		if err := fx.a.h.ConsumeResponse(&m, epoch); err != nil {
			return
		}
		// The indices and MACs are not covered by the handshake's
		// encryption; ConsumeResponse checked the receiver index.
		if !bytes.Equal(data[12:60], fx.respWire[12:60]) || m.Receiver != 1 {
			t.Fatalf("forged response accepted: %x", data)
		}
		if _, err := fx.a.h.BeginSession(epoch); err != nil {
			t.Fatal(err)
		}
		fx.resetInitiator(t)
	})
}

func FuzzCookieReply(f *testing.F) {
	fx := getFixture(f)
	f.Add(fx.cookie)
	f.Add(make([]byte, MessageCookieReplySize))
	f.Add([]byte{3, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m MessageCookieReply
		if err := m.Unmarshal(data); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Unmarshal error not ErrMalformed: %v", err)
			}
			return
		}
		if out := m.MarshalTo(make([]byte, MessageCookieReplySize)); !bytes.Equal(out, data) {
			t.Fatalf("round trip differs")
		}
		msg := append([]byte(nil), fx.initWire...)
		fx.gen.AddMACs(msg, epoch)
		if err := fx.gen.ConsumeReply(&m, epoch); err != nil {
			return
		}
		if !bytes.Equal(data[8:], fx.cookie[8:]) {
			t.Fatalf("forged cookie reply accepted: %x", data)
		}
		fx.gen.AddMACs(msg, epoch)
		if !fx.checker.CheckMAC2(msg, fx.src, epoch) {
			t.Fatal("cookie from an accepted reply gives a refused mac2")
		}
	})
}

func FuzzTransport(f *testing.F) {
	a, b := testKeypairs()
	for i, p := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{0x45}, 100)} {
		f.Add(a.SealTransport(make([]byte, 200), p, uint64(i)))
	}
	f.Add(a.SealTransport(make([]byte, 200), []byte("limit"), RejectAfterMessages))
	f.Add([]byte{4, 0, 0, 0})
	f.Add(make([]byte, 32))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _, hdrErr := ParseTransportHeader(data)
		msg := append([]byte(nil), data...)
		pt, ctr, err := b.OpenTransport(nil, msg)
		if !bytes.Equal(msg, data) {
			t.Fatal("out-of-place OpenTransport modified the message")
		}
		inPlace := append([]byte(nil), data...)
		var pt2 []byte
		var err2 error
		if len(inPlace) >= MessageTransportHeaderSize {
			pt2, _, err2 = b.OpenTransport(inPlace[16:16], inPlace)
		} else {
			_, _, err2 = b.OpenTransport(nil, inPlace)
		}
		if (err == nil) != (err2 == nil) || !bytes.Equal(pt, pt2) {
			t.Fatalf("in-place and out-of-place disagree: %v / %v", err, err2)
		}
		if err != nil {
			return
		}
		if hdrErr != nil {
			t.Fatalf("OpenTransport accepted a message ParseTransportHeader refuses: %v", hdrErr)
		}
		// Authentic messages are exactly what the peer would seal.
		again := a.SealTransport(make([]byte, len(pt)+MessageTransportOverhead), pt, ctr)
		if !bytes.Equal(again, data) {
			t.Fatalf("accepted a message the peer did not produce: %x", data)
		}
		b.AcceptCounter(ctr)
	})
}

func FuzzReplayFilter(f *testing.F) {
	f.Add([]byte{0, 1, 0, 2, 0, 0, 3, 5, 0})
	f.Add(bytes.Repeat([]byte{0, 0xff, 0xff, 4, 1, 0, 2, 9, 9}, 20))
	f.Add(bytes.Repeat([]byte{5, 1, 0, 4, 2, 0, 7, 0, 0}, 10))
	f.Fuzz(func(t *testing.T, data []byte) {
		var filt ReplayFilter
		var n naiveReplay
		var max uint64
		for len(data) >= 3 {
			c := replayStep(max, data[0], uint16(data[1])|uint16(data[2])<<8)
			data = data[3:]
			want := n.accept(c)
			if got := filt.Accept(c); got != want {
				t.Fatalf("Accept(%d) = %v, reference %v (max %d)", c, got, want, n.max)
			}
			max = n.max
		}
	})
}

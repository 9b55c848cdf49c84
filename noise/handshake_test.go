package noise

import (
	"bytes"
	"errors"
	"io"
	mrand "math/rand/v2"
	"sync"
	"testing"
	"time"
)

// testRand returns a deterministic random source.
func testRand(seed byte) io.Reader {
	var s [32]byte
	s[0] = seed
	return mrand.NewChaCha8(s)
}

var epoch = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

type side struct {
	id *Identity
	h  *Handshake // handshake with the other side
}

func mustKey(t testing.TB, r io.Reader) PrivateKey {
	t.Helper()
	k, err := GeneratePrivateKey(r)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// newPair builds two sides that know each other, with the given preshared
// keys (which should match for a handshake to succeed).
func newPair(t testing.TB, r io.Reader, pskA, pskB PresharedKey) (a, b *side) {
	t.Helper()
	a = &side{id: NewIdentity(mustKey(t, r))}
	b = &side{id: NewIdentity(mustKey(t, r))}
	var err error
	if a.h, err = NewHandshake(a.id, b.id.PublicKey(), pskA); err != nil {
		t.Fatal(err)
	}
	if b.h, err = NewHandshake(b.id, a.id.PublicKey(), pskB); err != nil {
		t.Fatal(err)
	}
	return a, b
}

func (s *side) lookup(other *side) func(PublicKey) *Handshake {
	return func(pk PublicKey) *Handshake {
		if pk == other.id.PublicKey() {
			return s.h
		}
		return nil
	}
}

// handshake runs a full handshake from init to resp through wire bytes and
// returns the keypairs of the initiator and responder.
func handshake(t testing.TB, r io.Reader, init, resp *side, now time.Time, iIdx, rIdx uint32) (ki, kr *Keypair) {
	t.Helper()
	msg, err := init.h.CreateInitiation(now, iIdx, r)
	if err != nil {
		t.Fatalf("CreateInitiation: %v", err)
	}
	var buf [MessageInitiationSize]byte
	var got MessageInitiation
	if err := got.Unmarshal(msg.MarshalTo(buf[:])); err != nil {
		t.Fatalf("Unmarshal initiation: %v", err)
	}
	h, err := ConsumeInitiation(resp.id, &got, resp.lookup(init), now)
	if err != nil {
		t.Fatalf("ConsumeInitiation: %v", err)
	}
	if h != resp.h {
		t.Fatalf("ConsumeInitiation returned the wrong handshake")
	}
	rmsg, err := resp.h.CreateResponse(now, rIdx, r)
	if err != nil {
		t.Fatalf("CreateResponse: %v", err)
	}
	if rmsg.Receiver != iIdx || rmsg.Sender != rIdx {
		t.Fatalf("response indices: sender %d receiver %d, want %d %d", rmsg.Sender, rmsg.Receiver, rIdx, iIdx)
	}
	var rbuf [MessageResponseSize]byte
	var rgot MessageResponse
	if err := rgot.Unmarshal(rmsg.MarshalTo(rbuf[:])); err != nil {
		t.Fatalf("Unmarshal response: %v", err)
	}
	if err := init.h.ConsumeResponse(&rgot, now); err != nil {
		t.Fatalf("ConsumeResponse: %v", err)
	}
	ki, err = init.h.BeginSession(now)
	if err != nil {
		t.Fatalf("initiator BeginSession: %v", err)
	}
	kr, err = resp.h.BeginSession(now)
	if err != nil {
		t.Fatalf("responder BeginSession: %v", err)
	}
	return ki, kr
}

// exchange sends a message each way and checks it arrives intact.
func exchange(t *testing.T, ki, kr *Keypair) {
	t.Helper()
	for i, pair := range [][2]*Keypair{{ki, kr}, {kr, ki}, {ki, kr}} {
		from, to := pair[0], pair[1]
		payload := bytes.Repeat([]byte{byte(i + 1)}, 100+i)
		buf := make([]byte, 2048)
		copy(buf[MessageTransportHeaderSize:], payload)
		ctr, ok := from.NextCounter()
		if !ok {
			t.Fatal("NextCounter refused")
		}
		msg := from.SealTransport(buf, buf[MessageTransportHeaderSize:MessageTransportHeaderSize+len(payload)], ctr)
		if len(msg) != len(payload)+MessageTransportOverhead {
			t.Fatalf("sealed length %d", len(msg))
		}
		recv, gotCtr, err := ParseTransportHeader(msg)
		if err != nil || recv != to.LocalIndex || gotCtr != ctr {
			t.Fatalf("header: receiver %d counter %d err %v; want %d %d", recv, gotCtr, err, to.LocalIndex, ctr)
		}
		pt, c, err := to.OpenTransport(msg[MessageTransportHeaderSize:MessageTransportHeaderSize], msg)
		if err != nil {
			t.Fatalf("message %d: OpenTransport: %v", i, err)
		}
		if c != ctr || !bytes.Equal(pt, payload) {
			t.Fatalf("message %d: got counter %d payload %x", i, c, pt)
		}
		if !to.AcceptCounter(c) {
			t.Fatalf("message %d: counter %d refused", i, c)
		}
		if to.AcceptCounter(c) {
			t.Fatalf("message %d: counter %d accepted twice", i, c)
		}
	}
}

func TestHandshakeBothDirections(t *testing.T) {
	for _, tc := range []struct {
		name string
		psk  PresharedKey
	}{
		{"no psk", PresharedKey{}},
		{"psk", PresharedKey{1, 2, 3, 4, 5, 6, 7, 8, 9}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testRand(1)
			a, b := newPair(t, r, tc.psk, tc.psk)
			ki, kr := handshake(t, r, a, b, epoch, 11, 22)
			if !ki.IsInitiator || kr.IsInitiator {
				t.Fatal("IsInitiator flags wrong")
			}
			if ki.LocalIndex != 11 || ki.RemoteIndex != 22 || kr.LocalIndex != 22 || kr.RemoteIndex != 11 {
				t.Fatalf("indices: %d/%d %d/%d", ki.LocalIndex, ki.RemoteIndex, kr.LocalIndex, kr.RemoteIndex)
			}
			if !ki.Created.Equal(epoch) {
				t.Fatalf("Created = %v", ki.Created)
			}
			exchange(t, ki, kr)

			// And the other way round, later.
			later := epoch.Add(time.Second)
			ki2, kr2 := handshake(t, r, b, a, later, 33, 44)
			exchange(t, ki2, kr2)

			// Keys of different sessions differ.
			buf := make([]byte, 64)
			msg := ki2.SealTransport(buf, []byte("x"), 0)
			if _, _, err := kr.OpenTransport(nil, withReceiver(msg, kr.LocalIndex)); !errors.Is(err, ErrDecrypt) {
				t.Fatalf("old session opened a new session's message: %v", err)
			}
		})
	}
}

// withReceiver returns a copy of msg with its receiver index replaced.
func withReceiver(msg []byte, idx uint32) []byte {
	c := append([]byte(nil), msg...)
	c[4], c[5], c[6], c[7] = byte(idx), byte(idx>>8), byte(idx>>16), byte(idx>>24)
	return c
}

func TestHandshakePSKMismatch(t *testing.T) {
	r := testRand(2)
	a, b := newPair(t, r, PresharedKey{1}, PresharedKey{2})
	msg, err := a.h.CreateInitiation(epoch, 1, r)
	if err != nil {
		t.Fatal(err)
	}
	// The initiation does not depend on the PSK...
	if _, err := ConsumeInitiation(b.id, &msg, b.lookup(a), epoch); err != nil {
		t.Fatalf("ConsumeInitiation: %v", err)
	}
	resp, err := b.h.CreateResponse(epoch, 2, r)
	if err != nil {
		t.Fatal(err)
	}
	// ...but the response does.
	if err := a.h.ConsumeResponse(&resp, epoch); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("ConsumeResponse with mismatched PSK: %v, want ErrDecrypt", err)
	}
	if _, err := a.h.BeginSession(epoch); !errors.Is(err, ErrState) {
		t.Fatalf("BeginSession after failed response: %v", err)
	}
	// One side without a PSK also fails.
	a.h.SetPresharedKey(PresharedKey{})
	if err := a.h.ConsumeResponse(&resp, epoch); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("ConsumeResponse with PSK on one side only: %v", err)
	}
	// Fixing the PSK makes the same response acceptable: the failures
	// changed nothing.
	a.h.SetPresharedKey(PresharedKey{2})
	if err := a.h.ConsumeResponse(&resp, epoch); err != nil {
		t.Fatalf("ConsumeResponse after fixing PSK: %v", err)
	}
	ki, err := a.h.BeginSession(epoch)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := b.h.BeginSession(epoch)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, ki, kr)
}

func TestHandshakeWrongPeerKey(t *testing.T) {
	r := testRand(3)
	a, b := newPair(t, r, PresharedKey{}, PresharedKey{})
	c := &side{id: NewIdentity(mustKey(t, r))}

	// a sends to b, but b thinks a is somebody else: unknown peer.
	msg, err := a.h.CreateInitiation(epoch, 1, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsumeInitiation(b.id, &msg, b.lookup(c), epoch); !errors.Is(err, ErrUnknownPeer) {
		t.Fatalf("unknown peer: %v", err)
	}
	// c receives a's message meant for b: cannot decrypt.
	if _, err := ConsumeInitiation(c.id, &msg, func(PublicKey) *Handshake { return b.h }, epoch); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("initiation to the wrong identity: %v", err)
	}
	// A lookup that returns the handshake of a different key than the one
	// the initiation carries is refused.
	hc, err := NewHandshake(c.id, b.id.PublicKey(), PresharedKey{})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := hc.CreateInitiation(epoch, 5, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsumeInitiation(b.id, &forged, func(PublicKey) *Handshake { return b.h }, epoch); !errors.Is(err, ErrState) {
		t.Fatalf("lookup returning another peer's handshake: %v", err)
	}
	// A response from the wrong responder fails too.
	if _, err := ConsumeInitiation(b.id, &msg, b.lookup(a), epoch); err != nil {
		t.Fatal(err)
	}
	hcb, err := NewHandshake(c.id, a.id.PublicKey(), PresharedKey{})
	if err != nil {
		t.Fatal(err)
	}
	// Let c consume a fresh initiation addressed to it so it can respond.
	ha2, err := NewHandshake(a.id, c.id.PublicKey(), PresharedKey{})
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ha2.CreateInitiation(epoch, 7, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsumeInitiation(c.id, &m2, func(PublicKey) *Handshake { return hcb }, epoch); err != nil {
		t.Fatal(err)
	}
	wrongResp, err := hcb.CreateResponse(epoch, 8, r)
	if err != nil {
		t.Fatal(err)
	}
	wrongResp.Receiver = 1
	if err := a.h.ConsumeResponse(&wrongResp, epoch); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("response from the wrong responder: %v", err)
	}
}

func TestNewHandshakeRejectsBadKeys(t *testing.T) {
	id := NewIdentity(mustKey(t, testRand(4)))
	lowOrder := []PublicKey{
		{},  // zero
		{1}, // u = 1, order 4
		{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00}, // order 8
	}
	for _, pk := range lowOrder {
		if _, err := NewHandshake(id, pk, PresharedKey{}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("NewHandshake(%x): %v, want ErrInvalidKey", pk[:4], err)
		}
	}
	if _, err := NewHandshake(id, id.PublicKey(), PresharedKey{}); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("NewHandshake with our own key: %v", err)
	}
}

// snapshot copies the mutable state of h for comparison.
type hsSnapshot struct {
	state           handshakeState
	hash, chainKey  [32]byte
	localEphemeral  PrivateKey
	remoteEphemeral PublicKey
	localIndex      uint32
	remoteIndex     uint32
	lastTimestamp   Timestamp
	lastInitiation  time.Time
}

func snapshot(h *Handshake) hsSnapshot {
	h.mu.Lock()
	defer h.mu.Unlock()
	return hsSnapshot{h.state, h.hash, h.chainKey, h.localEphemeral, h.remoteEphemeral, h.localIndex, h.remoteIndex, h.lastTimestamp, h.lastInitiation}
}

func TestInitiationReplayAndFlood(t *testing.T) {
	r := testRand(5)
	a, b := newPair(t, r, PresharedKey{}, PresharedKey{})
	t0 := epoch

	init1, err := a.h.CreateInitiation(t0, 1, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsumeInitiation(b.id, &init1, b.lookup(a), t0); err != nil {
		t.Fatal(err)
	}
	before := snapshot(b.h)

	// Same message again, long after: replayed timestamp.
	if _, err := ConsumeInitiation(b.id, &init1, b.lookup(a), t0.Add(time.Minute)); !errors.Is(err, ErrReplayedTimestamp) {
		t.Fatalf("replay: %v", err)
	}
	if snapshot(b.h) != before {
		t.Fatal("replayed initiation changed the handshake")
	}

	// An older initiation (created before init1) is a replay too.
	hOld, err := NewHandshake(a.id, b.id.PublicKey(), PresharedKey{})
	if err != nil {
		t.Fatal(err)
	}
	old, err := hOld.CreateInitiation(t0.Add(-time.Second), 9, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsumeInitiation(b.id, &old, b.lookup(a), t0.Add(time.Minute)); !errors.Is(err, ErrReplayedTimestamp) {
		t.Fatalf("older timestamp: %v", err)
	}

	// A newer initiation arriving 19 ms after the last accepted one: flood.
	init2, err := a.h.CreateInitiation(t0.Add(time.Second), 2, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsumeInitiation(b.id, &init2, b.lookup(a), t0.Add(19*time.Millisecond)); !errors.Is(err, ErrFlood) {
		t.Fatalf("flood: %v", err)
	}
	if snapshot(b.h) != before {
		t.Fatal("flooding initiation changed the handshake")
	}

	// Corrupted message: decryption fails, nothing changes.
	bad := init2
	bad.Timestamp[3] ^= 1
	if _, err := ConsumeInitiation(b.id, &bad, b.lookup(a), t0.Add(time.Second)); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("corrupted timestamp: %v", err)
	}
	bad = init2
	bad.Static[0] ^= 1
	if _, err := ConsumeInitiation(b.id, &bad, b.lookup(a), t0.Add(time.Second)); !errors.Is(err, ErrDecrypt) {
		t.Fatalf("corrupted static: %v", err)
	}
	if snapshot(b.h) != before {
		t.Fatal("corrupted initiation changed the handshake")
	}

	// Exactly HandshakeInitiationRate later it is accepted.
	if _, err := ConsumeInitiation(b.id, &init2, b.lookup(a), t0.Add(HandshakeInitiationRate)); err != nil {
		t.Fatalf("initiation after the rate limit: %v", err)
	}
	if s := snapshot(b.h); s.remoteIndex != 2 || s.lastInitiation != t0.Add(HandshakeInitiationRate) {
		t.Fatalf("accepted initiation not recorded: %+v", s)
	}
	resp, err := b.h.CreateResponse(t0, 3, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.h.ConsumeResponse(&resp, t0); err != nil {
		t.Fatal(err)
	}
}

func TestRejectedInitiationKeepsPendingHandshake(t *testing.T) {
	// b has consumed init1; a replay of it must not disturb the response
	// that completes that handshake.
	r := testRand(6)
	a, b := newPair(t, r, PresharedKey{}, PresharedKey{})
	init1, err := a.h.CreateInitiation(epoch, 1, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsumeInitiation(b.id, &init1, b.lookup(a), epoch); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := ConsumeInitiation(b.id, &init1, b.lookup(a), epoch.Add(time.Duration(i+1)*time.Second)); err == nil {
			t.Fatal("replay accepted")
		}
	}
	resp, err := b.h.CreateResponse(epoch, 2, r)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.h.ConsumeResponse(&resp, epoch); err != nil {
		t.Fatal(err)
	}
	ki, _ := a.h.BeginSession(epoch)
	kr, err := b.h.BeginSession(epoch)
	if err != nil {
		t.Fatal(err)
	}
	exchange(t, ki, kr)
}

func TestHandshakeStateErrors(t *testing.T) {
	r := testRand(7)
	a, b := newPair(t, r, PresharedKey{}, PresharedKey{})
	if _, err := b.h.CreateResponse(epoch, 1, r); !errors.Is(err, ErrState) {
		t.Fatalf("CreateResponse without initiation: %v", err)
	}
	var resp MessageResponse
	if err := a.h.ConsumeResponse(&resp, epoch); !errors.Is(err, ErrState) {
		t.Fatalf("ConsumeResponse without initiation: %v", err)
	}
	if _, err := a.h.BeginSession(epoch); !errors.Is(err, ErrState) {
		t.Fatalf("BeginSession without handshake: %v", err)
	}

	init, err := a.h.CreateInitiation(epoch, 10, r)
	if err != nil {
		t.Fatal(err)
	}
	if a.h.LocalIndex() != 10 {
		t.Fatalf("LocalIndex = %d", a.h.LocalIndex())
	}
	if _, err := ConsumeInitiation(b.id, &init, b.lookup(a), epoch); err != nil {
		t.Fatal(err)
	}
	if _, err := b.h.BeginSession(epoch); !errors.Is(err, ErrState) {
		t.Fatalf("BeginSession before CreateResponse: %v", err)
	}
	resp, err = b.h.CreateResponse(epoch, 20, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.h.CreateResponse(epoch, 21, r); !errors.Is(err, ErrState) {
		t.Fatalf("second CreateResponse: %v", err)
	}
	if b.h.LocalIndex() != 20 {
		t.Fatalf("responder LocalIndex = %d", b.h.LocalIndex())
	}

	wrong := resp
	wrong.Receiver = 11
	if err := a.h.ConsumeResponse(&wrong, epoch); !errors.Is(err, ErrState) {
		t.Fatalf("ConsumeResponse for another index: %v", err)
	}
	if err := a.h.ConsumeResponse(&resp, epoch); err != nil {
		t.Fatal(err)
	}
	if err := a.h.ConsumeResponse(&resp, epoch); !errors.Is(err, ErrState) {
		t.Fatalf("second ConsumeResponse: %v", err)
	}
	ki, err := a.h.BeginSession(epoch)
	if err != nil {
		t.Fatal(err)
	}
	if a.h.LocalIndex() != 0 || ki.LocalIndex != 10 {
		t.Fatalf("index not moved to the keypair: handshake %d keypair %d", a.h.LocalIndex(), ki.LocalIndex)
	}
	s := snapshot(a.h)
	if s.state != stateZeroed || s.hash != ([32]byte{}) || s.chainKey != ([32]byte{}) || s.localEphemeral != (PrivateKey{}) {
		t.Fatalf("secrets not zeroed after BeginSession: %+v", s)
	}
	if _, err := a.h.BeginSession(epoch); !errors.Is(err, ErrState) {
		t.Fatalf("second BeginSession: %v", err)
	}
}

func TestHandshakeClear(t *testing.T) {
	r := testRand(8)
	a, b := newPair(t, r, PresharedKey{}, PresharedKey{})
	init, err := a.h.CreateInitiation(epoch, 1, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsumeInitiation(b.id, &init, b.lookup(a), epoch); err != nil {
		t.Fatal(err)
	}
	resp, err := b.h.CreateResponse(epoch, 2, r)
	if err != nil {
		t.Fatal(err)
	}
	a.h.Clear()
	if err := a.h.ConsumeResponse(&resp, epoch); !errors.Is(err, ErrState) {
		t.Fatalf("ConsumeResponse after Clear: %v", err)
	}
	b.h.Clear()
	s := snapshot(b.h)
	if s.state != stateZeroed || s.localIndex != 0 || s.hash != ([32]byte{}) || s.localEphemeral != (PrivateKey{}) {
		t.Fatalf("Clear left state: %+v", s)
	}
	// Replay protection survives Clear.
	if _, err := ConsumeInitiation(b.id, &init, b.lookup(a), epoch.Add(time.Minute)); !errors.Is(err, ErrReplayedTimestamp) {
		t.Fatalf("replay after Clear: %v", err)
	}
}

func TestSetIdentity(t *testing.T) {
	r := testRand(9)
	a, b := newPair(t, r, PresharedKey{}, PresharedKey{})
	// b changes its key; a learns the new public key.
	b2 := &side{id: NewIdentity(mustKey(t, r))}
	if err := b.h.SetIdentity(b2.id); err != nil {
		t.Fatal(err)
	}
	b2.h = b.h
	ha, err := NewHandshake(a.id, b2.id.PublicKey(), PresharedKey{})
	if err != nil {
		t.Fatal(err)
	}
	a.h = ha
	ki, kr := handshake(t, r, a, b2, epoch, 1, 2)
	exchange(t, ki, kr)
	// The old identity no longer matches the handshake.
	init, err := NewHandshake(a.id, b.id.PublicKey(), PresharedKey{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := init.CreateInitiation(epoch.Add(time.Second), 3, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsumeInitiation(b.id, &m, b2.lookup(a), epoch.Add(time.Second)); !errors.Is(err, ErrState) {
		t.Fatalf("initiation to the old identity: %v", err)
	}
	// Switching to an identity equal to the peer fails and disables the
	// handshake until fixed.
	if err := b2.h.SetIdentity(a.id); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("SetIdentity to the peer's key: %v", err)
	}
	if _, err := b2.h.CreateInitiation(epoch, 4, r); !errors.Is(err, ErrInvalidKey) {
		t.Fatalf("CreateInitiation on a disabled handshake: %v", err)
	}
}

func TestCreateInitiationRandError(t *testing.T) {
	r := testRand(10)
	a, _ := newPair(t, r, PresharedKey{}, PresharedKey{})
	if _, err := a.h.CreateInitiation(epoch, 1, r); err != nil {
		t.Fatal(err)
	}
	before := snapshot(a.h)
	if _, err := a.h.CreateInitiation(epoch, 2, bytes.NewReader(nil)); err == nil {
		t.Fatal("CreateInitiation with a failing random source succeeded")
	}
	if snapshot(a.h) != before {
		t.Fatal("failed CreateInitiation changed the handshake")
	}
}

func TestHandshakeConcurrent(t *testing.T) {
	// Initiations created and consumed for the same peer at the same time,
	// as the device may do; run with -race.
	a, b := newPair(t, testRand(11), PresharedKey{}, PresharedKey{})
	var wg sync.WaitGroup
	msgs := make(chan MessageInitiation, 64)
	wg.Add(3)
	go func() {
		defer wg.Done()
		defer close(msgs)
		r := testRand(12)
		for i := 0; i < 50; i++ {
			m, err := a.h.CreateInitiation(epoch.Add(time.Duration(i)*time.Second), uint32(i+1), r)
			if err != nil {
				t.Error(err)
				return
			}
			msgs <- m
		}
	}()
	go func() {
		defer wg.Done()
		r := testRand(13)
		for i := 0; i < 50; i++ {
			if _, err := b.h.CreateInitiation(epoch, uint32(1000+i), r); err != nil {
				t.Error(err)
				return
			}
			_ = b.h.LocalIndex()
		}
	}()
	go func() {
		defer wg.Done()
		r := testRand(14)
		i := 0
		for m := range msgs {
			now := epoch.Add(time.Duration(i) * time.Second)
			i++
			if _, err := ConsumeInitiation(b.id, &m, b.lookup(a), now); err != nil {
				t.Error(err)
				continue
			}
			// The concurrent CreateInitiation may have replaced the state.
			if _, err := b.h.CreateResponse(now, uint32(i), r); err != nil && !errors.Is(err, ErrState) {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
}

func TestTAI64N(t *testing.T) {
	t0 := time.Unix(0, 0)
	ts := TAI64N(t0)
	want := Timestamp{0x40, 0, 0, 0, 0, 0, 0, 0x0a, 0, 0, 0, 0}
	if ts != want {
		t.Fatalf("TAI64N(epoch) = %x, want %x", ts, want)
	}
	// Nanoseconds are rounded down to a multiple of 2^24.
	ts = TAI64N(time.Unix(1, (1<<24)+5))
	want = Timestamp{0x40, 0, 0, 0, 0, 0, 0, 0x0b, 0, 0, 0, 0}
	want[8], want[9], want[10], want[11] = 0x01, 0, 0, 0
	if ts != want {
		t.Fatalf("TAI64N(1s+2^24+5ns) = %x, want %x", ts, want)
	}
	if TAI64N(time.Unix(1, 1000)) != TAI64N(time.Unix(1, 2000)) {
		t.Fatal("timestamps within one whitening step differ")
	}
	a, b := TAI64N(epoch), TAI64N(epoch.Add(20*time.Millisecond))
	if !b.After(a) || a.After(b) || a.After(a) {
		t.Fatal("After ordering wrong")
	}
	if !TAI64N(epoch.Add(time.Second)).After(TAI64N(epoch.Add(999 * time.Millisecond))) {
		t.Fatal("second boundary ordering wrong")
	}
}

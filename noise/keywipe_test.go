package noise

import "testing"

// TestResponderKeepsNoEphemeral checks that the responder drops both
// ephemeral keys once the response is made (it never needs them again),
// and that the session still works.
func TestResponderKeepsNoEphemeral(t *testing.T) {
	r := testRand(21)
	a, b := newPair(t, r, PresharedKey{}, PresharedKey{})
	msg, err := a.h.CreateInitiation(epoch, 1, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ConsumeInitiation(b.id, &msg, b.lookup(a), epoch); err != nil {
		t.Fatal(err)
	}
	resp, err := b.h.CreateResponse(epoch, 2, r)
	if err != nil {
		t.Fatal(err)
	}
	if s := snapshot(b.h); !s.localEphemeral.IsZero() || !s.remoteEphemeral.IsZero() {
		t.Fatal("after its response the responder still holds an ephemeral key")
	}
	if err := a.h.ConsumeResponse(&resp, epoch); err != nil {
		t.Fatal(err)
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

// TestWipe checks that Handshake.Wipe zeroes the static secrets as well
// as the ephemeral state, and Identity.Wipe the private key.
func TestWipe(t *testing.T) {
	r := testRand(22)
	psk := PresharedKey{1, 2, 3}
	a, b := newPair(t, r, psk, psk)
	handshake(t, r, a, b, epoch, 1, 2)
	if _, err := a.h.CreateInitiation(epoch, 3, r); err != nil {
		t.Fatal(err)
	}
	a.h.Wipe()
	s := snapshot(a.h)
	if a.h.ss != ([KeySize]byte{}) || !a.h.psk.IsZero() || s.hash != ([32]byte{}) || s.chainKey != ([32]byte{}) || !s.localEphemeral.IsZero() {
		t.Fatal("Handshake.Wipe left a secret behind")
	}
	a.id.Wipe()
	if !a.id.private.IsZero() {
		t.Fatal("Identity.Wipe left the private key")
	}
}

package noise

// Wiping is best effort in Go: it overwrites the copy of a secret that the
// object holds, but the runtime may have left others behind (a goroutine
// stack that grew was copied, and freed memory is not cleared), and an
// AEAD keeps its own copy of its key until it is garbage collected.

// Wipe zeroes every secret the handshake holds: the ephemeral state, the
// static shared secret and the preshared key. For a peer that is gone: the
// handshake fails from now on, until SetIdentity and SetPresharedKey.
func (h *Handshake) Wipe() {
	h.mu.Lock()
	h.clear()
	setZero(h.ss[:])
	setZero(h.psk[:])
	h.mu.Unlock()
}

// Wipe zeroes the identity's private key, for a device that has stopped:
// nothing may use the identity afterwards.
func (id *Identity) Wipe() {
	setZero(id.private[:])
}

package noise

import (
	"sync"
	"sync/atomic"
)

// Keypairs holds a peer's sessions: the current keypair (used to send), the
// previous one (still accepted on receipt while the peer switches over) and
// the next one (a responder's fresh keypair, which it may not send on until
// the initiator has used it). Current and Next are lock-free; the other
// methods take a mutex.
type Keypairs struct {
	current atomic.Pointer[Keypair]
	next    atomic.Pointer[Keypair]

	mu       sync.Mutex // serialises changes; guards previous
	previous *Keypair
}

// Current returns the keypair to send with, or nil.
func (s *Keypairs) Current() *Keypair { return s.current.Load() }

// Next returns the responder keypair waiting for its first received
// packet, or nil.
func (s *Keypairs) Next() *Keypair { return s.next.Load() }

// Previous returns the keypair replaced by the current one, or nil.
func (s *Keypairs) Previous() *Keypair {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.previous
}

// Install adds a keypair fresh from a handshake, following WireGuard's
// rotation rules, and returns the keypairs it dropped so the caller can
// release their indices (and zero them).
//
// An initiator's keypair becomes current at once. The old current becomes
// previous, unless a next keypair is waiting: the peer may already be using
// that one, so it becomes previous instead and the old current is dropped.
//
// A responder's keypair becomes next: it may not be used to send until a
// packet arrives on it (see Received). The old next and the previous are
// dropped.
func (s *Keypairs) Install(k *Keypair) (evicted []*Keypair) {
	if k == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	current, next, previous := s.current.Load(), s.next.Load(), s.previous
	if k.IsInitiator {
		if next != nil {
			s.next.Store(nil)
			s.previous = next
			evicted = appendKeypair(evicted, current)
		} else {
			s.previous = current
		}
		evicted = appendKeypair(evicted, previous)
		s.current.Store(k)
	} else {
		s.next.Store(k)
		s.previous = nil
		evicted = appendKeypair(evicted, next)
		evicted = appendKeypair(evicted, previous)
	}
	return evicted
}

// Received is called when a packet authenticates on k. If k is the next
// keypair it becomes current, the old current becomes previous and the old
// previous is dropped (returned in evicted).
func (s *Keypairs) Received(k *Keypair) (rotated bool, evicted []*Keypair) {
	if k == nil || s.next.Load() != k {
		return false, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.next.Load() != k {
		return false, nil
	}
	evicted = appendKeypair(evicted, s.previous)
	s.previous = s.current.Load()
	s.current.Store(k)
	s.next.Store(nil)
	return true, evicted
}

// Clear removes every keypair and returns them.
func (s *Keypairs) Clear() []*Keypair {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []*Keypair
	out = appendKeypair(out, s.previous)
	out = appendKeypair(out, s.current.Swap(nil))
	out = appendKeypair(out, s.next.Swap(nil))
	s.previous = nil
	return out
}

func appendKeypair(list []*Keypair, k *Keypair) []*Keypair {
	if k == nil {
		return list
	}
	return append(list, k)
}

// PaddedLen returns the length a plaintext of n bytes is padded to before
// encryption: n rounded up to a multiple of 16, but not beyond mtu, and
// never less than n. An mtu of zero or less means no limit.
func PaddedLen(n, mtu int) int {
	const multiple = 16
	if n <= 0 {
		return 0
	}
	p := (n + multiple - 1) &^ (multiple - 1)
	if mtu > 0 && p > mtu {
		p = mtu
	}
	if p < n {
		p = n
	}
	return p
}

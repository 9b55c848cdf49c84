package device

import (
	"net/netip"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

// A responder counts the response it sent as a handshake attempt: with data
// for the initiator before the session is confirmed, it waits Rekey-Timeout
// before starting a competing handshake.
func TestResponseCountsAsHandshakeAttempt(t *testing.T) {
	nw := transport.NewNetwork()
	clock := NewFakeClock(testEpoch)
	a := newNode(t, nw, "192.0.2.1", 51820, clock, 1)
	b := newNode(t, nw, "192.0.2.2", 51820, clock, 2)
	a.addPeer(b, true, "10.0.0.2/32")
	b.addPeer(a, true, "10.0.0.1/32")
	// A's transport messages never reach B, so B's session stays
	// unconfirmed.
	nw.Filter = func(from, to netip.AddrPort, pkt []byte) int {
		if from == a.addr && kindOf(pkt) != "init" {
			return 0
		}
		return 1
	}
	a.inject(ipv4Packet("10.0.0.1", "10.0.0.2", []byte("start")))
	pb := b.peer(a)
	eventually(t, "B's unconfirmed session", func() bool { return pb.keypairs.Next() != nil })
	b.inject(ipv4Packet("10.0.0.2", "10.0.0.1", []byte("before confirmation")))
	eventually(t, "B staging its packet", func() bool { return pb.stagedLen() == 1 })
	settle()
	if n := b.d.stats.initiationsSent.Load(); n != 0 {
		t.Fatalf("responder sent %d initiations right after its response", n)
	}
	clock.Advance(noise.RekeyTimeout)
	b.inject(ipv4Packet("10.0.0.2", "10.0.0.1", []byte("after Rekey-Timeout")))
	eventually(t, "B's own initiation after Rekey-Timeout", func() bool { return b.d.stats.initiationsSent.Load() == 1 })
}

// Rekey-After-Messages applies to the responder's keypair too.
func TestRekeyAfterMessagesResponder(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	pb := b.peer(a)
	old := pb.keypairs.Current()
	if old == nil || old.IsInitiator {
		t.Fatal("B has no responder keypair")
	}
	tr.advance(t, pr.clock, noise.RekeyTimeout, a, b)
	setSendCounter(t, old, noise.RekeyAfterMessages)
	pkt := ipv4Packet("10.0.0.2", "10.0.0.1", []byte("many"))
	b.inject(pkt)
	a.expectPacket(pkt)
	eventually(t, "responder rekey", func() bool { return b.d.stats.initiationsSent.Load() == 1 })
	eventually(t, "new session", func() bool { return pb.keypairs.Current() != old })
}

// Receiving postpones the persistent keepalive as sending does.
func TestPersistentKeepaliveRearmedByReceiving(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	ka := 25 * time.Second
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: b.pub, UpdateOnly: true, PersistentKeepalive: &ka}}}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "immediate keepalive", func() bool { return tr.count(a, b, "keepalive") == 1 })
	tr.advance(t, pr.clock, 20*time.Second, a, b)
	pkt := ipv4Packet("10.0.0.2", "10.0.0.1", []byte("from B"))
	b.inject(pkt)
	a.expectPacket(pkt)
	tr.quiesce(t, a, b)
	if got, want := due(a.peer(b), timerPersistent), pr.clock.Now().Add(ka); !got.Equal(want) {
		t.Fatalf("persistent keepalive due %v after receiving, want %v", got.Sub(testEpoch), want.Sub(testEpoch))
	}
}

// Erasing the keys 3 × Reject-After-Time after the last session also drops
// the packets waiting for a new one.
func TestZeroKeysDropsStaged(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	pa := a.peer(b)
	tr.advance(t, pr.clock, noise.KeepaliveTimeout+time.Second, a, b) // A's passive keepalive
	tr.setDrop(a, b, true)
	tr.setDrop(b, a, true)
	zero := due(pa, timerZeroKeys)
	tr.advance(t, pr.clock, zero.Sub(pr.clock.Now())-time.Second, a, b)
	a.inject(ipv4Packet("10.0.0.1", "10.0.0.2", []byte("waiting")))
	eventually(t, "staging", func() bool { return pa.stagedLen() == 1 })
	tr.advance(t, pr.clock, time.Second, a, b)
	if pa.keypairs.Current() != nil {
		t.Fatal("keys not erased")
	}
	if n := pa.stagedLen(); n != 0 {
		t.Fatalf("%d staged packets kept after erasing the keys", n)
	}
}

// Giving up a handshake after Rekey-Attempt-Time cancels a pending passive
// keepalive.
func TestGiveUpCancelsPassiveKeepalive(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	pa := a.peer(b)
	// A's passive keepalive confirms B's session and quiets B's timers.
	tr.advance(t, pr.clock, noise.KeepaliveTimeout+time.Second, a, b)
	tr.setDrop(a, b, true)
	// Data nobody answers starts a handshake after Keepalive-Timeout +
	// Rekey-Timeout; its retries go unanswered.
	a.inject(ipv4Packet("10.0.0.1", "10.0.0.2", []byte("hello?")))
	tr.advance(t, pr.clock, noise.KeepaliveTimeout+noise.RekeyTimeout+maxJitter, a, b)
	inits := a.d.stats.initiationsSent.Load()
	if inits == 0 {
		t.Fatal("no handshake started")
	}
	start := pr.clock.Now()
	// Up to the retransmission that will give up.
	for {
		d := due(pa, timerRetransmit)
		if d.IsZero() {
			t.Fatal("gave up too early")
		}
		pa.timers.mu.Lock()
		first := pa.timers.firstAttempt
		pa.timers.mu.Unlock()
		if d.Sub(first) >= noise.RekeyAttemptTime {
			break
		}
		tr.advance(t, pr.clock, d.Sub(pr.clock.Now()), a, b)
		if pr.clock.Now().Sub(start) > 2*noise.RekeyAttemptTime {
			t.Fatal("never gave up")
		}
	}
	// Data from B (whose path works) makes A owe a keepalive.
	pkt := ipv4Packet("10.0.0.2", "10.0.0.1", []byte("from B"))
	b.inject(pkt)
	a.expectPacket(pkt)
	tr.quiesce(t, a, b)
	if due(pa, timerSendKeepalive).IsZero() {
		t.Fatal("no passive keepalive pending")
	}
	keepalives := tr.count(a, b, "keepalive")
	tr.advance(t, pr.clock, due(pa, timerRetransmit).Sub(pr.clock.Now()), a, b)
	if !due(pa, timerRetransmit).IsZero() {
		t.Fatal("did not give up")
	}
	if !due(pa, timerSendKeepalive).IsZero() {
		t.Fatal("passive keepalive still pending after giving up")
	}
	tr.advance(t, pr.clock, noise.KeepaliveTimeout, a, b)
	if n := tr.count(a, b, "keepalive"); n != keepalives {
		t.Fatalf("%d keepalives sent after giving up", n-keepalives)
	}
}

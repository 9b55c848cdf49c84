package device

import (
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
)

// An IPv4-mapped IPv6 address is an IPv6 address for cryptokey routing:
// a peer owning 10.0.0.2/32 may not send from ::ffff:10.0.0.2, and
// packets to ::ffff:10.0.0.2 do not go to it.
func TestIPv4MappedIPv6Routing(t *testing.T) {
	pr := newPair(t)
	var other noise.PublicKey
	other[0] = 9
	// A third peer owns all of IPv6 at A (no endpoint: it never answers).
	if err := pr.a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: other, AllowedIPs: prefixes("::/0")}}}); err != nil {
		t.Fatal(err)
	}
	pr.ping(t, "session")

	// Inbound: B sends from ::ffff:10.0.0.2 (to A's fd00::1, routed to A
	// by B's own table); A's source check must refuse it.
	before := pr.a.d.stats.disallowedSrc.Load()
	pr.b.inject(ipv6Packet("::ffff:10.0.0.2", "fd00::1", []byte("mapped source")))
	pr.a.expectNoPacket(100 * time.Millisecond)
	eventually(t, "source check to count the packet", func() bool { return pr.a.d.stats.disallowedSrc.Load() == before+1 })

	// Outbound: A sends to ::ffff:10.0.0.2; it goes to the owner of ::/0,
	// not to B.
	pr.a.inject(ipv6Packet("fd00::1", "::ffff:10.0.0.2", []byte("mapped destination")))
	pr.b.expectNoPacket(100 * time.Millisecond)
	if got := pr.a.d.peer(other).stagedLen(); got != 1 {
		t.Fatalf("%d packets staged for the IPv6 owner, want 1", got)
	}

	// A configured ::ffff:0:0/96 does match.
	if err := pr.a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: pr.b.pub, AllowedIPs: prefixes("::ffff:0:0/96")}}}); err != nil {
		t.Fatal(err)
	}
	p6 := ipv6Packet("::ffff:10.0.0.2", "fd00::1", []byte("mapped prefix configured"))
	pr.b.inject(p6)
	pr.a.expectPacket(p6)
}

package device

import (
	"crypto/rand"
	"net/netip"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

func TestPresharedKey(t *testing.T) {
	pr := newPair(t)
	psk := noise.PresharedKey{9, 8, 7}
	for _, n := range []*node{pr.a, pr.b} {
		other := pr.b
		if n == pr.b {
			other = pr.a
		}
		if err := n.d.Apply(Config{Peers: []PeerConfig{{PublicKey: other.pub, PresharedKey: &psk}}}); err != nil {
			t.Fatal(err)
		}
	}
	pr.ping(t, "psk")

	// Mismatched keys: no session.
	nw := transport.NewNetwork()
	clock := NewFakeClock(testEpoch)
	a := newNode(t, nw, "192.0.2.1", 51820, clock, 1)
	b := newNode(t, nw, "192.0.2.2", 51820, clock, 2)
	a.addPeer(b, true, "10.0.0.2/32")
	b.addPeer(a, false, "10.0.0.1/32")
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: b.pub, PresharedKey: &psk}}}); err != nil {
		t.Fatal(err)
	}
	a.inject(ipv4Packet("10.0.0.1", "10.0.0.2", []byte("x")))
	b.expectNoPacket(200 * time.Millisecond)
	if a.peer(b).keypairs.Current() != nil {
		t.Fatal("session with mismatched preshared keys")
	}
}

func TestHandshakeFromEitherSide(t *testing.T) {
	nw := transport.NewNetwork()
	clock := NewFakeClock(testEpoch)
	a := newNode(t, nw, "192.0.2.1", 51820, clock, 1)
	b := newNode(t, nw, "192.0.2.2", 51820, clock, 2)
	a.addPeer(b, true, "10.0.0.2/32")
	b.addPeer(a, true, "10.0.0.1/32")
	// B starts.
	pkt := ipv4Packet("10.0.0.2", "10.0.0.1", []byte("from b"))
	b.inject(pkt)
	a.expectPacket(pkt)
	if !b.peer(a).keypairs.Current().IsInitiator {
		t.Fatal("B should have initiated")
	}
	pkt = ipv4Packet("10.0.0.1", "10.0.0.2", []byte("from a"))
	a.inject(pkt)
	b.expectPacket(pkt)
}

func TestRoaming(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	// A moves to another port: B follows after A's next packet.
	if err := a.d.Apply(Config{ListenPort: ptr(uint16(40001))}); err != nil {
		t.Fatal(err)
	}
	a.addr = netip.AddrPortFrom(a.addr.Addr(), 40001)
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("from the new port"))
	a.inject(pkt)
	b.expectPacket(pkt)
	if got := b.d.endpointOf(a.pub); got != a.addr {
		t.Fatalf("endpoint %v, want %v", got, a.addr)
	}
	pkt = ipv4Packet("10.0.0.2", "10.0.0.1", []byte("reply to the new port"))
	b.inject(pkt)
	a.expectPacket(pkt)

	// Unauthenticated packets from elsewhere do not move the endpoint:
	// a transport packet with a live index but a bad tag, and a cookie
	// reply.
	evil := pr.nw.NewBind(netip.MustParseAddr("203.0.113.66"))
	if _, _, err := evil.Open(666); err != nil {
		t.Fatal(err)
	}
	defer evil.Close()
	kp := b.peer(a).keypairs.Current()
	forged := make([]byte, 64)
	forged[0] = noise.MessageTransportType
	forged[4], forged[5], forged[6], forged[7] = byte(kp.LocalIndex), byte(kp.LocalIndex>>8), byte(kp.LocalIndex>>16), byte(kp.LocalIndex>>24)
	forged[8] = 200
	cookie := make([]byte, noise.MessageCookieReplySize)
	cookie[0] = noise.MessageCookieReplyType
	copy(cookie[4:8], forged[4:8])
	rand.Read(cookie[8:])
	if err := evil.Send([][]byte{forged, cookie}, transport.Endpoint{Dst: b.addr}); err != nil {
		t.Fatal(err)
	}
	tr.quiesce(t, a, b)
	if b.d.stats.decryptFailed.Load() == 0 {
		t.Fatal("forged packet not seen")
	}
	if got := b.d.endpointOf(a.pub); got != a.addr {
		t.Fatalf("endpoint moved to %v by unauthenticated packets", got)
	}
	// Handshake messages that verify move it too: A's initiation from yet
	// another port.
	if err := a.d.Apply(Config{ListenPort: ptr(uint16(40002))}); err != nil {
		t.Fatal(err)
	}
	a.addr = netip.AddrPortFrom(a.addr.Addr(), 40002)
	tr.advance(t, pr.clock, noise.RekeyTimeout, a, b)
	a.peer(b).initiate(false)
	tr.quiesce(t, a, b)
	if got := b.d.endpointOf(a.pub); got != a.addr {
		t.Fatalf("endpoint %v after initiation, want %v", got, a.addr)
	}
}

// trio is B in the middle with peers A (10.0.0.0/16 but not 10.0.5.0/24)
// and C (10.0.5.0/24, nested inside A's prefix).
func TestAllowedIPsSourceFilter(t *testing.T) {
	nw := transport.NewNetwork()
	clock := NewFakeClock(testEpoch)
	a := newNode(t, nw, "192.0.2.1", 51820, clock, 1)
	b := newNode(t, nw, "192.0.2.2", 51820, clock, 2)
	c := newNode(t, nw, "192.0.2.3", 51820, clock, 3)
	b.addPeer(a, true, "10.0.0.0/16", "fd00:a::/48")
	b.addPeer(c, true, "10.0.5.0/24", "fd00:a:5::/64")
	a.addPeer(b, true, "10.9.0.0/16", "fd00:b::/48")
	c.addPeer(b, true, "10.9.0.0/16", "fd00:b::/48")

	// Legitimate sources get through.
	p := ipv4Packet("10.0.1.1", "10.9.0.1", []byte("a ok"))
	a.inject(p)
	b.expectPacket(p)
	p = ipv4Packet("10.0.5.7", "10.9.0.1", []byte("c ok"))
	c.inject(p)
	b.expectPacket(p)
	p = ipv6Packet("fd00:a:5::7", "fd00:b::1", []byte("c ok v6"))
	c.inject(p)
	b.expectPacket(p)

	// A may not use C's nested prefix, nor addresses of nobody.
	drops := b.d.stats.disallowedSrc.Load()
	for _, bad := range [][]byte{
		ipv4Packet("10.0.5.7", "10.9.0.1", []byte("a spoofs c")),
		ipv4Packet("10.1.0.1", "10.9.0.1", []byte("a spoofs nobody")),
		ipv6Packet("fd00:a:5::1", "fd00:b::1", []byte("a spoofs c v6")),
	} {
		a.inject(bad)
	}
	// C may not use A's part of the outer prefix.
	c.inject(ipv4Packet("10.0.6.1", "10.9.0.1", []byte("c spoofs a")))
	eventually(t, "spoofed packets dropped", func() bool { return b.d.stats.disallowedSrc.Load() == drops+4 })
	p = ipv4Packet("10.0.6.1", "10.9.0.1", []byte("a ok again"))
	a.inject(p)
	b.expectPacket(p) // and nothing spoofed came before it

	// Outbound routing picks the longest prefix.
	p = ipv4Packet("10.9.0.1", "10.0.5.9", []byte("to c"))
	b.inject(p)
	c.expectPacket(p)
	p = ipv4Packet("10.9.0.1", "10.0.4.9", []byte("to a"))
	b.inject(p)
	a.expectPacket(p)
}

func TestTrailingPaddingTrimmed(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "warmup")
	// 29-byte packet: padded to 32 on the wire, trimmed back on receipt.
	p := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("x"))
	pr.a.inject(p)
	pr.b.expectPacket(p)
	// A packet whose header claims more than was sent is dropped.
	bad := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("short"))
	bad[3] += 40
	pr.a.inject(bad)
	eventually(t, "bad inner length dropped", func() bool { return pr.b.d.stats.badInner.Load() == 1 })
}

func TestCookieWhenUnderLoad(t *testing.T) {
	pr := newPair(t)
	pr.b.d.forceUnderLoad.Store(true)
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("through the cookie"))
	pr.a.inject(pkt)
	eventually(t, "cookie reply", func() bool { return pr.a.d.stats.cookiesReceived.Load() == 1 })
	if pr.b.peer(pr.a).keypairs.Next() != nil {
		t.Fatal("B processed an initiation without mac2 under load")
	}
	if got := pr.b.d.endpointOf(pr.a.pub); got.IsValid() {
		t.Fatal("endpoint learned from an initiation that was not processed")
	}
	// The retransmission carries mac2 and is accepted.
	pr.clock.Advance(noise.RekeyTimeout + maxJitter)
	pr.b.expectPacket(pkt)
	if pr.b.d.stats.cookiesSent.Load() != 1 {
		t.Fatalf("%d cookies sent", pr.b.d.stats.cookiesSent.Load())
	}
}

// floodInitiation returns a garbage initiation with a valid mac1 for to.
func floodInitiation(to noise.PublicKey, gen *noise.CookieGenerator, now time.Time) []byte {
	m := make([]byte, noise.MessageInitiationSize)
	rand.Read(m)
	m[0], m[1], m[2], m[3] = noise.MessageInitiationType, 0, 0, 0
	gen.AddMACs(m, now)
	return m
}

func TestHandshakeFloodCookiesAndRateLimit(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	// Forget the session so A needs a new handshake.
	a.peer(b).zeroKeys()
	b.peer(a).zeroKeys()
	tr.advance(t, pr.clock, noise.RekeyTimeout, a, b)

	const sources = 20
	var floods []transport.Bind
	var gens []*noise.CookieGenerator
	for i := range sources {
		fb := pr.nw.NewBind(netip.MustParseAddr("198.51.100.1"))
		if _, _, err := fb.Open(uint16(2000 + i)); err != nil {
			t.Fatal(err)
		}
		defer fb.Close()
		floods = append(floods, fb)
		gens = append(gens, noise.NewCookieGenerator(b.pub))
	}
	flood := func(per int) {
		for i, fb := range floods {
			msgs := make([][]byte, per)
			for j := range msgs {
				msgs[j] = floodInitiation(b.pub, gens[i], pr.clock.Now())
			}
			if err := fb.Send(msgs, transport.Endpoint{Dst: b.addr}); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The flood fills B's handshake queue; A's initiation queued behind it
	// is answered with a cookie reply.
	flood(30)
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("made it"))
	a.inject(pkt)
	eventually(t, "A gets a cookie", func() bool { return a.d.stats.cookiesReceived.Load() == 1 })
	if b.d.stats.cookiesSent.Load() < 2 {
		t.Fatal("flood not answered with cookies")
	}
	// Still under load, A's retransmission with mac2 completes.
	read := b.d.stats.rxDatagrams.Load()
	flood(30)
	pr.clock.Advance(noise.RekeyTimeout + maxJitter)
	b.expectPacket(pkt)
	// Once B has read the flood, a second refills the flooding address's
	// share of cookie replies.
	eventually(t, "B reads the flood", func() bool { return b.d.stats.rxDatagrams.Load() >= read+sources*30 })
	pr.clock.Advance(time.Second)

	// Sources that do get a cookie are rate limited per IP.
	fb := floods[0]
	fns, err := reopen(fb, 2000)
	if err != nil {
		t.Fatal(err)
	}
	gen := noise.NewCookieGenerator(b.pub)
	b.d.forceUnderLoad.Store(true)
	defer b.d.forceUnderLoad.Store(false)
	if err := fb.Send([][]byte{floodInitiation(b.pub, gen, pr.clock.Now())}, transport.Endpoint{Dst: b.addr}); err != nil {
		t.Fatal(err)
	}
	if !takeCookie(t, fns[0], gen, pr.clock.Now()) {
		t.Fatal("no cookie reply for the flooder")
	}
	limited := b.d.stats.rateLimited.Load()
	msgs := make([][]byte, 50)
	for i := range msgs {
		msgs[i] = floodInitiation(b.pub, gen, pr.clock.Now())
	}
	if err := fb.Send(msgs, transport.Endpoint{Dst: b.addr}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "rate limiting", func() bool { return b.d.stats.rateLimited.Load() >= limited+30 })
	// A, from another IP, still gets through.
	tr.advance(t, pr.clock, noise.RekeyTimeout, a, b)
	old := a.peer(b).keypairs.Current()
	a.peer(b).initiate(false)
	eventually(t, "A's new session", func() bool { return a.peer(b).keypairs.Current() != old })
}

// reopen closes and re-opens a memory bind to read its replies.
func reopen(b transport.Bind, port uint16) ([]transport.ReceiveFunc, error) {
	b.Close()
	fns, _, err := b.Open(port)
	return fns, err
}

// takeCookie reads datagrams until a cookie reply that gen accepts.
func takeCookie(t *testing.T, fn transport.ReceiveFunc, gen *noise.CookieGenerator, now time.Time) bool {
	t.Helper()
	done := make(chan bool, 1)
	go func() {
		bufs := [][]byte{make([]byte, 2048)}
		sizes := []int{0}
		eps := []transport.Endpoint{{}}
		for {
			n, err := fn(bufs, sizes, eps)
			if err != nil {
				done <- false
				return
			}
			if n == 1 && sizes[0] == noise.MessageCookieReplySize {
				var r noise.MessageCookieReply
				if r.Unmarshal(bufs[0][:sizes[0]]) == nil && gen.ConsumeReply(&r, now) == nil {
					done <- true
					return
				}
			}
		}
	}()
	select {
	case ok := <-done:
		return ok
	case <-time.After(waitTimeout):
		return false
	}
}

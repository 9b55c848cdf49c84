package device

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

// FuzzReceive feeds arbitrary datagrams into the receive path of a device
// with a live session, then checks the tunnel still works both ways.
func FuzzReceive(f *testing.F) {
	nw := transport.NewNetwork()
	var mu sync.Mutex
	var seen [][]byte
	nw.Filter = func(from, to netip.AddrPort, pkt []byte) int {
		mu.Lock()
		seen = append(seen, append([]byte(nil), pkt...))
		mu.Unlock()
		return 1
	}
	clock := NewFakeClock(testEpoch)
	a := newNode(f, nw, "192.0.2.1", 51820, clock, 1)
	b := newNode(f, nw, "192.0.2.2", 51820, clock, 2)
	a.addPeer(b, true, "10.0.0.2/32", "fd00::2/128")
	b.addPeer(a, false, "10.0.0.1/32", "fd00::1/128")
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("seed"))
	a.inject(pkt)
	b.expectPacket(pkt)
	pkt = ipv4Packet("10.0.0.2", "10.0.0.1", []byte("seed back"))
	b.inject(pkt)
	a.expectPacket(pkt)
	// A cookie reply too, but not the initiation it answers: B never
	// consumed that one, so replaying it would be a valid first use that
	// may legitimately move B's endpoint for A.
	mu.Lock()
	seeds := seen
	seen = nil
	mu.Unlock()
	b.d.forceUnderLoad.Store(true)
	clock.Advance(noise.RekeyTimeout)
	a.peer(b).initiate(false)
	eventually(f, "cookie", func() bool { return a.d.stats.cookiesReceived.Load() == 1 })
	b.d.forceUnderLoad.Store(false)

	mu.Lock()
	for _, s := range seen {
		if len(s) > 0 && s[0] == noise.MessageCookieReplyType {
			seeds = append(seeds, s)
		}
	}
	nw.Filter = nil
	mu.Unlock()
	for _, s := range seeds {
		f.Add(s)
	}
	f.Add([]byte{})
	f.Add([]byte{4, 0, 0, 0})
	f.Add(make([]byte, noise.MessageInitiationSize))
	f.Add(bytes.Repeat([]byte{0xff}, 3000))

	// Feed B's own receive path, as a second receive goroutine would.
	r := b.d.newReceiver()
	src := transport.Endpoint{Dst: netip.MustParseAddrPort("203.0.113.5:4444")}
	var round int
	f.Fuzz(func(t *testing.T, data []byte) {
		r.sizes[0] = copy(r.bufs[0], data)
		r.eps[0] = src
		r.handle(1)
		round++
		check := func(from, to *node, p []byte) {
			from.tun.Inject(p)
			select {
			case got := <-to.tun.Outbound():
				if !bytes.Equal(got, p) {
					t.Fatalf("tunnel broken: got %x want %x", got, p)
				}
			case <-time.After(waitTimeout):
				t.Fatal("tunnel broken after fuzz input")
			}
		}
		tag := []byte{byte(round), byte(round >> 8), byte(round >> 16)}
		check(a, b, ipv4Packet("10.0.0.1", "10.0.0.2", tag))
		check(b, a, ipv6Packet("fd00::2", "fd00::1", tag))
		if ep := b.d.endpointOf(a.pub); ep != a.addr {
			t.Fatalf("unauthenticated input moved the endpoint to %v", ep)
		}
	})
}

package device

import (
	"bytes"
	"fmt"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

// pair is two devices A (10.0.0.1, fd00::1) and B (10.0.0.2, fd00::2) on
// a memory network; A knows B's endpoint, B learns A's from the handshake.
type pair struct {
	nw    *transport.Network
	clock *FakeClock
	a, b  *node
}

func newPair(t *testing.T) *pair {
	t.Helper()
	nw := transport.NewNetwork()
	clock := NewFakeClock(testEpoch)
	a := newNode(t, nw, "192.0.2.1", 51820, clock, 1)
	b := newNode(t, nw, "192.0.2.2", 51820, clock, 2)
	a.addPeer(b, true, "10.0.0.2/32", "fd00::2/128")
	b.addPeer(a, false, "10.0.0.1/32", "fd00::1/128")
	return &pair{nw: nw, clock: clock, a: a, b: b}
}

// ping sends a packet each way and checks both arrive intact.
func (pr *pair) ping(t *testing.T, tag string) {
	t.Helper()
	ab := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("a to b "+tag))
	pr.a.inject(ab)
	pr.b.expectPacket(ab)
	ba := ipv4Packet("10.0.0.2", "10.0.0.1", []byte("b to a "+tag))
	pr.b.inject(ba)
	pr.a.expectPacket(ba)
}

func TestHandshakeAndData(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "first")

	// IPv6 both ways, several sizes including ones that need padding.
	for _, n := range []int{0, 1, 15, 16, 17, 100, 1000, 1372} {
		payload := bytes.Repeat([]byte{byte(n)}, n)
		p6 := ipv6Packet("fd00::1", "fd00::2", payload)
		pr.a.inject(p6)
		pr.b.expectPacket(p6)
		p6 = ipv6Packet("fd00::2", "fd00::1", payload)
		pr.b.inject(p6)
		pr.a.expectPacket(p6)
	}
	sa, sb := pr.a.peer(pr.b), pr.b.peer(pr.a)
	if sa.lastHandshake.Load() == 0 || sb.lastHandshake.Load() == 0 {
		t.Fatal("last handshake time not recorded")
	}
	st, _ := pr.a.d.PeerState(pr.b.pub)
	if st.TxBytes == 0 || st.RxBytes == 0 || !st.LastHandshake.Equal(testEpoch) {
		t.Fatalf("peer state counters: %+v", st)
	}
	if got := pr.b.d.endpointOf(pr.a.pub); got != pr.a.addr {
		t.Fatalf("B learned endpoint %v, want %v", got, pr.a.addr)
	}
}

// Both directions at once: A encrypts and decrypts on the goroutines that
// read (no workers), B on its worker pool (see testWorkers).
func TestManyPacketsInOrder(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "warmup")
	const n = 2000
	for _, dir := range []struct {
		from *node
		src  string
		dst  string
	}{{pr.a, "10.0.0.1", "10.0.0.2"}, {pr.b, "10.0.0.2", "10.0.0.1"}} {
		go func() {
			for i := range n {
				dir.from.tun.Inject(ipv4Packet(dir.src, dir.dst, []byte(fmt.Sprintf("packet %06d", i))))
			}
		}()
	}
	for i := range n {
		pr.b.expectPacket(ipv4Packet("10.0.0.1", "10.0.0.2", []byte(fmt.Sprintf("packet %06d", i))))
		pr.a.expectPacket(ipv4Packet("10.0.0.2", "10.0.0.1", []byte(fmt.Sprintf("packet %06d", i))))
	}
}

func TestGoroutinesDoNotLeak(t *testing.T) {
	before := runtime.NumGoroutine()
	func() {
		pr := newPair(t)
		pr.ping(t, "x")
		pr.a.d.Close()
		pr.b.d.Close()
	}()
	checkGoroutines(t, before)
}

func TestGoroutinesDoNotLeakRealClock(t *testing.T) {
	before := runtime.NumGoroutine()
	nw := transport.NewNetwork()
	a := newNode(t, nw, "192.0.2.1", 1000, nil, 1)
	b := newNode(t, nw, "192.0.2.2", 1000, nil, 2)
	a.addPeer(b, true, "10.0.0.2/32")
	b.addPeer(a, true, "10.0.0.1/32")
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("hi"))
	a.inject(pkt)
	b.expectPacket(pkt)
	a.d.Close()
	b.d.Close()
	checkGoroutines(t, before)
}

var _ = noise.RekeyAfterTime
var _ = netip.Addr{}
var _ = time.Second

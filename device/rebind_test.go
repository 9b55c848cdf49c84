package device

import (
	"net/netip"
	"testing"

	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// squatBind is a memory Bind whose port is taken by another socket the
// moment it is released: the race that makes a close-then-open port change
// lose the old port.
type squatBind struct {
	transport.Bind
	t    *testing.T
	nw   *transport.Network
	addr netip.Addr
	port uint16
}

func (b *squatBind) Open(port uint16) ([]transport.ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.Open(port)
	if err == nil {
		b.port = actual
	}
	return fns, actual, err
}

func (b *squatBind) Close() error {
	err := b.Bind.Close()
	if b.port != 0 {
		s := b.nw.NewBind(b.addr)
		if _, _, err := s.Open(b.port); err == nil {
			b.t.Cleanup(func() { s.Close() })
		}
		b.port = 0
	}
	return err
}

func (b *squatBind) Rebind(port uint16) ([]transport.ReceiveFunc, uint16, error) {
	fns, actual, err := b.Bind.(transport.Rebinder).Rebind(port)
	if err == nil {
		b.port = actual
	}
	return fns, actual, err
}

// A listen-port change to a port in use fails and changes nothing: same
// port, same socket, traffic still flowing. A change to a free port works.
func TestListenPortChangeAtomic(t *testing.T) {
	nw := transport.NewNetwork()
	clock := NewFakeClock(testEpoch)
	addr := netip.MustParseAddr("192.0.2.1")
	priv := mustKey(t, 1)
	tn := tun.NewMemory("wg-test", 1420, 1024)
	d, err := New(Options{TUN: tn, Bind: &squatBind{Bind: nw.NewBind(addr), t: t, nw: nw, addr: addr}, Rand: seededRand(1), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	port := uint16(51820)
	if err := d.Apply(Config{PrivateKey: &priv, ListenPort: &port}); err != nil {
		t.Fatal(err)
	}
	a := &node{t: t, d: d, tun: tn, priv: priv, pub: priv.PublicKey(), addr: netip.AddrPortFrom(addr, port), clock: clock}
	b := newNode(t, nw, "192.0.2.2", 51820, clock, 2)
	a.addPeer(b, true, "10.0.0.2/32")
	b.addPeer(a, true, "10.0.0.1/32")
	pr := &pair{nw: nw, clock: clock, a: a, b: b}
	pr.ping(t, "before")

	taken := nw.NewBind(addr)
	if _, _, err := taken.Open(51821); err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := uint16(51821)
	if err := d.Apply(Config{ListenPort: &busy}); err == nil {
		t.Fatal("moving to a port in use succeeded")
	}
	if got := d.LocalPort(); got != 51820 {
		t.Fatalf("failed change left port %d, want 51820", got)
	}
	if got := d.State().ListenPort; got != 51820 {
		t.Fatalf("state says port %d", got)
	}
	pr.ping(t, "after failed change")

	free := uint16(51822)
	if err := d.Apply(Config{ListenPort: &free}); err != nil {
		t.Fatal(err)
	}
	if got := d.LocalPort(); got != 51822 {
		t.Fatalf("port %d after change, want 51822", got)
	}
	// B learns the new port from A's next packet.
	ab := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("from the new port"))
	a.inject(ab)
	b.expectPacket(ab)
	pr.ping(t, "after change")
}

package device

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

func TestSuspendResume(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "before")
	a, b := pr.a, pr.b
	pa := a.peer(b)
	inits := a.d.stats.initiationsSent.Load()
	port := a.d.LocalPort()

	if err := a.d.Suspend(); err != nil {
		t.Fatal(err)
	}
	if err := a.d.Suspend(); err != nil {
		t.Fatalf("second Suspend: %v", err)
	}
	if !a.d.Suspended() {
		t.Fatal("Suspended() is false after Suspend")
	}
	if pa.keypairs.Current() != nil {
		t.Fatal("session kept across Suspend")
	}
	pa.timers.mu.Lock()
	stopped := pa.timers.stopped
	pa.timers.mu.Unlock()
	if !stopped {
		t.Fatal("peer timers still running while suspended")
	}
	// Configuration stays.
	st := a.d.State()
	if st.PrivateKey != a.priv || len(st.Peers) != 1 || st.Peers[0].PublicKey != b.pub || st.ListenPort != port {
		t.Fatalf("state changed by Suspend: %+v", st)
	}

	// Nothing leaves or arrives while suspended, and the clock running on
	// past every timer starts nothing.
	// Both packets are read before the clock moves: one B read after its
	// session expired would wait in B's queue for the next handshake.
	aRead, bSent := a.d.stats.tunPackets.Load(), b.peer(a).txBytes.Load()
	a.inject(ipv4Packet("10.0.0.1", "10.0.0.2", []byte("asleep")))
	b.inject(ipv4Packet("10.0.0.2", "10.0.0.1", []byte("to a sleeper")))
	eventually(t, "A reads its packet", func() bool { return a.d.stats.tunPackets.Load() > aRead })
	eventually(t, "B sends its packet", func() bool { return b.peer(a).txBytes.Load() > bSent })
	pr.clock.Advance(3 * noise.RejectAfterTime)
	b.expectNoPacket(50 * time.Millisecond)
	a.expectNoPacket(50 * time.Millisecond)
	if got := a.d.stats.initiationsSent.Load(); got != inits {
		t.Fatalf("%d handshake initiations sent while suspended", got-inits)
	}

	// A peer added while suspended waits for Resume too.
	c, err := noise.GeneratePrivateKey(seededRand(9))
	if err != nil {
		t.Fatal(err)
	}
	ka := 25 * time.Second
	cep := netip.MustParseAddrPort("192.0.2.9:51820")
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: c.PublicKey(), Endpoint: &cep, PersistentKeepalive: &ka}}}); err != nil {
		t.Fatal(err)
	}
	if got := a.d.stats.initiationsSent.Load(); got != inits {
		t.Fatal("a peer added while suspended started a handshake")
	}

	if err := a.d.Resume(); err != nil {
		t.Fatal(err)
	}
	if err := a.d.Resume(); err != nil {
		t.Fatalf("second Resume: %v", err)
	}
	if a.d.Suspended() || a.d.LocalPort() != port {
		t.Fatalf("after Resume: suspended %v, port %d (want %d)", a.d.Suspended(), a.d.LocalPort(), port)
	}
	// The keepalive peer starts its handshake at once; the first packet
	// for B starts a fresh one.
	eventually(t, "keepalive peer handshake", func() bool { return a.d.stats.initiationsSent.Load() == inits+1 })
	pr.ping(t, "after")
	if got := a.d.stats.initiationsSent.Load(); got != inits+2 {
		t.Fatalf("%d initiations after Resume, want 2", got-inits)
	}
	if pa.keypairs.Current() == nil {
		t.Fatal("no session after Resume")
	}
}

func TestSuspendedApplyListenPort(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "before")
	if err := pr.a.d.Suspend(); err != nil {
		t.Fatal(err)
	}
	port := uint16(51999)
	if err := pr.a.d.Apply(Config{ListenPort: &port}); err != nil {
		t.Fatal(err)
	}
	// A later handshake timestamp than the first, as B insists on.
	pr.clock.Advance(time.Second)
	if err := pr.a.d.Resume(); err != nil {
		t.Fatal(err)
	}
	if got := pr.a.d.LocalPort(); got != port {
		t.Fatalf("listening on %d after Resume, want %d", got, port)
	}
	pr.ping(t, "after")
	want := netip.AddrPortFrom(pr.a.addr.Addr(), port)
	if got := pr.b.d.endpointOf(pr.a.pub); got != want {
		t.Fatalf("B has endpoint %v for A, want %v", got, want)
	}
}

func TestNetworkChanged(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "before")
	pa := pr.a.peer(pr.b)
	kp := pa.keypairs.Current()
	inits := pr.a.d.stats.initiationsSent.Load()
	port := pr.a.d.LocalPort()
	if err := pr.a.d.NetworkChanged(); err != nil {
		t.Fatal(err)
	}
	if pr.a.d.LocalPort() != port {
		t.Fatalf("port moved from %d to %d", port, pr.a.d.LocalPort())
	}
	pr.ping(t, "after")
	if pa.keypairs.Current() != kp || pr.a.d.stats.initiationsSent.Load() != inits {
		t.Fatal("NetworkChanged restarted the session")
	}
	// On a suspended device it waits for Resume.
	if err := pr.a.d.Suspend(); err != nil {
		t.Fatal(err)
	}
	if err := pr.a.d.NetworkChanged(); err != nil {
		t.Fatal(err)
	}
	if !pr.a.d.Suspended() {
		t.Fatal("NetworkChanged woke a suspended device")
	}
	pr.a.d.Close()
	for name, fn := range map[string]func() error{"Suspend": pr.a.d.Suspend, "Resume": pr.a.d.Resume, "NetworkChanged": pr.a.d.NetworkChanged} {
		if err := fn(); err != ErrClosed {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}

// udpNode is a device on real loopback UDP sockets with a memory TUN.
type udpNode struct {
	*node
}

func newUDPNode(t *testing.T, seed uint64) *udpNode {
	t.Helper()
	priv, err := noise.GeneratePrivateKey(seededRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	tn := tun.NewMemory("wg-test", 1420, 1024)
	bind := transport.NewDefaultBind()
	d, err := New(Options{TUN: tn, Bind: bind, Workers: testWorkers(seed)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if err := d.Apply(Config{PrivateKey: &priv}); err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, d: d, tun: tn, bind: bind, priv: priv, pub: priv.PublicKey()}
	n.addr = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), d.LocalPort())
	return &udpNode{n}
}

// portFree reports whether the UDP port can be bound on loopback.
func portFree(port uint16) bool {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: int(port)})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func TestSuspendResumeSockets(t *testing.T) {
	a, b := newUDPNode(t, 21), newUDPNode(t, 22)
	a.addPeer(b.node, true, "10.0.0.2/32")
	b.addPeer(a.node, false, "10.0.0.1/32")
	pr := &pair{a: a.node, b: b.node}
	pr.ping(t, "before")

	port := a.d.LocalPort()
	if portFree(port) {
		t.Fatalf("port %d free while the device listens", port)
	}
	if err := a.d.Suspend(); err != nil {
		t.Fatal(err)
	}
	if !portFree(port) {
		t.Fatalf("port %d still bound while suspended", port)
	}
	b.inject(ipv4Packet("10.0.0.2", "10.0.0.1", []byte("to a sleeper")))
	a.expectNoPacket(50 * time.Millisecond)
	inits := a.d.stats.initiationsSent.Load()
	if err := a.d.Resume(); err != nil {
		t.Fatal(err)
	}
	if a.d.LocalPort() != port || portFree(port) {
		t.Fatalf("not listening on %d again after Resume (port %d)", port, a.d.LocalPort())
	}
	pr.ping(t, "after resume")
	if a.d.stats.initiationsSent.Load() != inits+1 {
		t.Fatal("Resume did not lead to a fresh handshake")
	}

	if err := a.d.NetworkChanged(); err != nil {
		t.Fatal(err)
	}
	if a.d.LocalPort() != port || portFree(port) {
		t.Fatalf("not listening on %d after NetworkChanged", port)
	}
	pr.ping(t, "after network change")
}

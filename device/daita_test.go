package device

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/daita"
	"github.com/gotatun/gotatun/maybenot"
	"github.com/gotatun/gotatun/noise"
)

// Machines for tests, built here so their behaviour is plain.
var (
	// noopMachine never acts.
	noopMachine = "02eNpjYEAHjOgCAAA0AAI="
	// padAfterSend sends one decoy 20 ms after the first normal packet.
	padAfterSend = "02eNp1ibEJAEAIA5Nf7B3N0v1cSESwEL0m5A6YvBqSgP7WeXfM5UoBW7ICYg=="
)

func constDist(us float64) maybenot.Dist {
	return maybenot.Dist{Type: maybenot.DistUniform, Param1: us, Param2: us}
}

// delayMachine delays outgoing traffic for dur, starting when the first
// normal packet is sent, once.
func delayMachine(t testing.TB, dur time.Duration, bypass bool) string {
	t.Helper()
	var s0, s1 maybenot.State
	s0.Transitions[maybenot.EventNormalSent] = []maybenot.Trans{{To: 1, Probability: 1}}
	s1.Action = &maybenot.Action{Kind: maybenot.ActionBlockOutgoing, Bypass: bypass,
		Timeout: constDist(0), Duration: constDist(float64(dur / time.Microsecond))}
	m := maybenot.Machine{States: []maybenot.State{s0, s1}}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	return m.String()
}

// wire records the sizes of the transport data messages on the network.
type wire struct {
	mu    sync.Mutex
	sizes map[netip.AddrPort][]int // by sender
}

func watchWire(pr *pair) *wire {
	w := &wire{sizes: map[netip.AddrPort][]int{}}
	pr.nw.Filter = func(from, to netip.AddrPort, pkt []byte) int {
		if len(pkt) >= 4 && binary.LittleEndian.Uint32(pkt) == noise.MessageTransportType {
			w.mu.Lock()
			w.sizes[from] = append(w.sizes[from], len(pkt))
			w.mu.Unlock()
		}
		return 1
	}
	return w
}

// data returns the sizes of the non-keepalive data messages from.
func (w *wire) data(from netip.AddrPort) []int {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []int
	for _, n := range w.sizes[from] {
		if n != noise.MessageTransportOverhead {
			out = append(out, n)
		}
	}
	return out
}

func enableDAITA(t testing.TB, n, other *node, machines ...string) {
	t.Helper()
	cfg := daita.DefaultConfig()
	cfg.Machines = machines
	if err := n.d.Apply(Config{Peers: []PeerConfig{{PublicKey: other.pub, UpdateOnly: true, DAITA: &cfg}}}); err != nil {
		t.Fatal(err)
	}
}

func daitaStats(t testing.TB, n, other *node) daita.Stats {
	t.Helper()
	s, ok := n.d.PeerState(other.pub)
	if !ok || s.DAITAStats == nil {
		t.Fatal("no DAITA state")
	}
	return *s.DAITAStats
}

func TestDAITAConstantSize(t *testing.T) {
	pr := newPair(t)
	w := watchWire(pr)
	pr.ping(t, "before")
	enableDAITA(t, pr.a, pr.b)
	enableDAITA(t, pr.b, pr.a)
	var padA, padB uint64
	for _, n := range []int{0, 1, 100, 1000, 1372} {
		payload := bytes.Repeat([]byte{byte(n)}, n)
		ab := ipv4Packet("10.0.0.1", "10.0.0.2", payload)
		pr.a.inject(ab)
		pr.b.expectPacket(ab)
		padA += uint64(1420 - len(ab))
		ba := ipv6Packet("fd00::2", "fd00::1", payload)
		pr.b.inject(ba)
		pr.a.expectPacket(ba)
		padB += uint64(1420 - len(ba))
	}
	want := 1420 + noise.MessageTransportOverhead
	for _, n := range []*node{pr.a, pr.b} {
		sizes := w.data(n.addr)
		if len(sizes) < 6 {
			t.Fatalf("%v sent %d data messages", n.addr, len(sizes))
		}
		for _, s := range sizes[2:] { // the first went before DAITA
			if s != want {
				t.Fatalf("%v sent a %d-byte data message, want %d: %v", n.addr, s, want, sizes)
			}
		}
	}
	sa, sb := daitaStats(t, pr.a, pr.b), daitaStats(t, pr.b, pr.a)
	if sa.TxPaddingBytes != padA || sb.TxPaddingBytes != padB {
		t.Fatalf("tx padding %d, %d; want %d, %d", sa.TxPaddingBytes, sb.TxPaddingBytes, padA, padB)
	}
	// The receiver counts what plain WireGuard's pad-to-16 would not add.
	if sb.RxPaddingBytes == 0 || sb.RxPaddingBytes > padA || sa.RxPaddingBytes == 0 || sa.RxPaddingBytes > padB {
		t.Fatalf("rx padding %d, %d for tx %d, %d", sb.RxPaddingBytes, sa.RxPaddingBytes, padA, padB)
	}
	if sa.TxDecoyBytes != 0 || sa.RxDecoyBytes != 0 {
		t.Fatalf("decoys without a machine: %+v", sa)
	}
	if p := pr.a.peer(pr.b).daita.Load(); p.InFlight() != 0 {
		t.Fatalf("%d packets still in flight", p.InFlight())
	}

	// Off again: plain sizes, sessions kept.
	kp := pr.a.peer(pr.b).keypairs.Current()
	if err := pr.a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: pr.b.pub, DisableDAITA: true}}}); err != nil {
		t.Fatal(err)
	}
	if s, _ := pr.a.d.PeerState(pr.b.pub); s.DAITA != nil {
		t.Fatal("DAITA still on")
	}
	before := len(w.data(pr.a.addr))
	p := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("x"))
	pr.a.inject(p)
	pr.b.expectPacket(p)
	if s := w.data(pr.a.addr); s[before] != 32+noise.MessageTransportOverhead {
		t.Fatalf("after DAITA off: %d bytes", s[before])
	}
	if pr.a.peer(pr.b).keypairs.Current() != kp {
		t.Fatal("session lost when DAITA was turned off")
	}
}

func TestDAITADecoys(t *testing.T) {
	pr := newPair(t)
	w := watchWire(pr)
	pr.ping(t, "before")
	enableDAITA(t, pr.a, pr.b, padAfterSend, noopMachine)
	enableDAITA(t, pr.b, pr.a)
	p := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("go"))
	pr.a.inject(p)
	pr.b.expectPacket(p)
	n0 := len(w.data(pr.a.addr))
	pr.clock.Advance(19 * time.Millisecond)
	if n := len(w.data(pr.a.addr)); n != n0 {
		t.Fatalf("decoy before its time: %d messages, want %d", n, n0)
	}
	pr.clock.Advance(time.Millisecond)
	eventually(t, "decoy received", func() bool { return daitaStats(t, pr.b, pr.a).RxDecoyBytes == 1420 })
	sizes := w.data(pr.a.addr)
	if len(sizes) != n0+1 || sizes[n0] != 1420+noise.MessageTransportOverhead {
		t.Fatalf("want one decoy of %d bytes: %v", 1420+noise.MessageTransportOverhead, sizes)
	}
	if s := daitaStats(t, pr.a, pr.b); s.TxDecoyBytes != 1420 {
		t.Fatalf("tx decoy bytes %d", s.TxDecoyBytes)
	}
	pr.b.expectNoPacket(50 * time.Millisecond)
	// The machine is done: no more decoys, however long we wait.
	pr.clock.Advance(time.Minute)
	if n := len(w.data(pr.a.addr)); n != n0+1 {
		t.Fatalf("%d messages after a minute, want %d", n, n0+1)
	}
}

func TestDAITADecoyWithoutSessionDropped(t *testing.T) {
	pr := newPair(t)
	w := watchWire(pr)
	enableDAITA(t, pr.a, pr.b, padAfterSend)
	// No session yet: the packet waits for the handshake; the decoy due
	// before the handshake completes would have no session.
	dt := pr.a.peer(pr.b).daita.Load()
	dt.NormalSent(1, 0) // as if a packet had been routed
	dt.NormalDropped(1)
	pr.clock.Advance(20 * time.Millisecond)
	if s := dt.Stats(); s.TxDecoyBytes != 0 {
		t.Fatalf("decoy counted without a session: %+v", s)
	}
	if n := len(w.data(pr.a.addr)); n != 0 {
		t.Fatalf("%d data messages without a session", n)
	}
	if pr.a.d.stats.initiationsSent.Load() != 0 {
		t.Fatal("a decoy started a handshake")
	}
}

func TestDAITADelay(t *testing.T) {
	pr := newPair(t)
	w := watchWire(pr)
	pr.ping(t, "before")
	enableDAITA(t, pr.a, pr.b, delayMachine(t, 50*time.Millisecond, false))
	first := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("first"))
	pr.a.inject(first)
	pr.b.expectPacket(first)
	pr.clock.Advance(0) // the delay starts
	dt := pr.a.peer(pr.b).daita.Load()
	if on, _ := dt.Delaying(); !on {
		t.Fatal("no delay")
	}
	n0 := len(w.data(pr.a.addr))
	var held [][]byte
	for i := range 5 {
		p := ipv4Packet("10.0.0.1", "10.0.0.2", []byte{byte(i)})
		held = append(held, p)
		pr.a.inject(p)
	}
	eventually(t, "packets held", func() bool { _, n := dt.Delaying(); return n == 5 })
	if n := len(w.data(pr.a.addr)); n != n0 {
		t.Fatalf("sent during the delay: %d", n-n0)
	}
	pr.b.expectNoPacket(20 * time.Millisecond)
	pr.clock.Advance(50 * time.Millisecond)
	for _, p := range held {
		pr.b.expectPacket(p) // in order
	}
	if on, n := dt.Delaying(); on || n != 0 {
		t.Fatalf("delay still on (%v) holding %d", on, n)
	}
	if dt.InFlight() != 0 {
		t.Fatalf("%d in flight", dt.InFlight())
	}
	if s := dt.Stats(); s.Delayed != 5 {
		t.Fatalf("delayed %d", s.Delayed)
	}
}

func TestDAITADelayEndsWhenQueueFills(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "before")
	cfg := daita.DefaultConfig()
	cfg.Machines = []string{delayMachine(t, time.Hour, false)}
	cfg.MaxDelayedPackets, cfg.MinDelayCapacity = 4, 2
	if err := pr.a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: pr.b.pub, DAITA: &cfg}}}); err != nil {
		t.Fatal(err)
	}
	first := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("first"))
	pr.a.inject(first)
	pr.b.expectPacket(first)
	pr.clock.Advance(0)
	// The third packet leaves 1 free place (< 2): the delay ends early and
	// all three go, in order, long before the hour is up.
	for i := range 3 {
		pr.a.inject(ipv4Packet("10.0.0.1", "10.0.0.2", []byte{byte(i)}))
	}
	for i := range 3 {
		pr.b.expectPacket(ipv4Packet("10.0.0.1", "10.0.0.2", []byte{byte(i)}))
	}
}

func TestDAITARemovePeerFlushesQueue(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "before")
	enableDAITA(t, pr.a, pr.b, delayMachine(t, time.Hour, false))
	pr.a.inject(ipv4Packet("10.0.0.1", "10.0.0.2", []byte("first")))
	pr.b.expectPacket(ipv4Packet("10.0.0.1", "10.0.0.2", []byte("first")))
	pr.clock.Advance(0)
	held := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("held"))
	pr.a.inject(held)
	dt := pr.a.peer(pr.b).daita.Load()
	eventually(t, "packet held", func() bool { _, n := dt.Delaying(); return n == 1 })
	if err := pr.a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: pr.b.pub, Remove: true}}}); err != nil {
		t.Fatal(err)
	}
	pr.b.expectPacket(held)
	if pr.a.d.dsched.Peers() != 0 {
		t.Fatal("DAITA peer left running")
	}
}

func TestDAITAMalformedDecoys(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "before")
	enableDAITA(t, pr.b, pr.a)
	p := pr.a.peer(pr.b)
	send := func(payload []byte) {
		kp := p.keypairs.Current()
		c, _ := kp.NextCounter()
		buf := make([]byte, 16+len(payload)+16)
		copy(buf[16:], payload)
		msg := kp.SealTransport(buf, buf[16:16+len(payload)], c)
		ep, _ := p.getEndpoint()
		if err := pr.a.d.send([][]byte{msg}, ep); err != nil {
			t.Fatal(err)
		}
	}
	send([]byte{0xFF, 0, 0})                // too short to be a decoy: bad inner packet
	send([]byte{0xFF, 0, 0x10, 0, 0, 0, 0}) // length 4096 > 7: malformed decoy
	send([]byte{0xFF, 7, 0, 4})             // a decoy with its reserved byte set
	eventually(t, "decoys counted", func() bool {
		s := daitaStats(t, pr.b, pr.a)
		return s.RxDecoyBytes == 11 && s.RxMalformedDecoys == 1
	})
	eventually(t, "short one dropped", func() bool { return pr.b.d.stats.badInner.Load() == 1 })
	pr.b.expectNoPacket(20 * time.Millisecond)
	pr.ping(t, "after")
}

func TestDAITAConfigRefused(t *testing.T) {
	pr := newPair(t)
	bad := []daita.Config{
		{MaxDelayedPackets: 0},
		{MaxDelayedPackets: 10, MaxDecoyFrac: 1.5},
		{MaxDelayedPackets: 10, MaxDelayFrac: -0.1},
		{MaxDelayedPackets: 10, MinDelayCapacity: -1},
		{MaxDelayedPackets: 10, Machines: []string{"02notamachine"}},
	}
	for _, cfg := range bad {
		err := pr.a.d.Apply(Config{Peers: []PeerConfig{
			{PublicKey: pr.b.pub, AllowedIPs: prefixes("10.9.9.9/32")},
			{PublicKey: pr.b.pub, DAITA: &cfg},
		}})
		if err == nil {
			t.Fatalf("%+v accepted", cfg)
		}
		s, _ := pr.a.d.PeerState(pr.b.pub)
		if s.DAITA != nil || len(s.AllowedIPs) != 2 {
			t.Fatalf("%+v: partly applied: %+v", cfg, s)
		}
	}
}

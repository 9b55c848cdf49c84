package device

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

func due(p *Peer, k timerKind) time.Time {
	p.timers.mu.Lock()
	defer p.timers.mu.Unlock()
	return p.timers.due[k]
}

// traffic counts datagrams on a memory network by direction and kind, and
// can drop a direction.
type traffic struct {
	mu        sync.Mutex
	counts    map[string]int
	delivered map[netip.Addr]int
	drop      map[[2]netip.AddrPort]bool
}

func watch(nw *transport.Network) *traffic {
	tr := &traffic{counts: map[string]int{}, delivered: map[netip.Addr]int{}, drop: map[[2]netip.AddrPort]bool{}}
	nw.Filter = tr.filter
	return tr
}

func kindOf(pkt []byte) string {
	if len(pkt) < 4 {
		return "short"
	}
	switch binary.LittleEndian.Uint32(pkt) {
	case noise.MessageInitiationType:
		return "init"
	case noise.MessageResponseType:
		return "resp"
	case noise.MessageCookieReplyType:
		return "cookie"
	case noise.MessageTransportType:
		if len(pkt) == noise.MessageKeepaliveSize {
			return "keepalive"
		}
		return "data"
	}
	return "other"
}

func (tr *traffic) filter(from, to netip.AddrPort, pkt []byte) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.counts[from.String()+">"+to.String()+" "+kindOf(pkt)]++
	if tr.drop[[2]netip.AddrPort{from, to}] {
		return 0
	}
	tr.delivered[to.Addr()]++
	return 1
}

// quiet reports whether n has received everything sent to it and has no
// work in progress.
func (tr *traffic) quiet(n *node) bool {
	if n.d == nil {
		return true
	}
	tr.mu.Lock()
	delivered := tr.delivered[n.addr.Addr()]
	tr.mu.Unlock()
	return n.d.stats.rxDatagrams.Load() == uint64(delivered) && n.d.pending.Load() == 0 && n.d.stats.tunPackets.Load() == n.injected.Load()
}

// quiesce waits until every node is quiet twice in a row.
func (tr *traffic) quiesce(t testing.TB, nodes ...*node) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	streak := 0
	for streak < 2 {
		all := true
		for _, n := range nodes {
			if !tr.quiet(n) {
				all = false
			}
		}
		if all {
			streak++
		} else {
			streak = 0
		}
		if time.Now().After(deadline) {
			t.Fatal("devices did not go quiet")
		}
		time.Sleep(time.Millisecond)
	}
}

// advance moves the clock by d one timer at a time, letting the devices
// finish what each timer set off before the next fires, as they would
// in real time.
func (tr *traffic) advance(t testing.TB, c *FakeClock, d time.Duration, nodes ...*node) {
	t.Helper()
	end := c.Now().Add(d)
	tr.quiesce(t, nodes...)
	for {
		next, ok := c.NextDeadline()
		if !ok || next.After(end) {
			break
		}
		c.Advance(next.Sub(c.Now()))
		tr.quiesce(t, nodes...)
	}
	c.Advance(end.Sub(c.Now()))
	tr.quiesce(t, nodes...)
}

func (tr *traffic) count(from, to *node, kind string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.counts[from.addr.String()+">"+to.addr.String()+" "+kind]
}

func (tr *traffic) setDrop(from, to *node, drop bool) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.drop[[2]netip.AddrPort{from.addr, to.addr}] = drop
}

// settle gives in-flight packets of the memory network time to be
// processed, for checks that something did not happen.
func settle() { time.Sleep(50 * time.Millisecond) }

func TestRetransmitAndGiveUp(t *testing.T) {
	nw := transport.NewNetwork()
	tr := watch(nw)
	clock := NewFakeClock(testEpoch)
	a := newNode(t, nw, "192.0.2.1", 51820, clock, 1)
	// B exists only as a key: nothing listens at its endpoint.
	// B exists only as a key and a socket that never answers.
	b := &node{pub: mustKey(t, 9).PublicKey(), addr: netip.MustParseAddrPort("192.0.2.99:51820")}
	sink := nw.NewBind(b.addr.Addr())
	if _, _, err := sink.Open(b.addr.Port()); err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	a.addPeer(b, true, "10.0.0.0/24")
	p := a.peer(b)

	for range 3 {
		a.inject(ipv4Packet("10.0.0.1", "10.0.0.2", []byte("staged")))
	}
	eventually(t, "first initiation", func() bool { return a.d.stats.initiationsSent.Load() == 1 })
	eventually(t, "staging", func() bool { return p.stagedLen() == 3 })

	start := clock.Now()
	sent := 1
	for {
		d := due(p, timerRetransmit)
		if d.IsZero() {
			break
		}
		since := d.Sub(clock.Now())
		if since < noise.RekeyTimeout || since > noise.RekeyTimeout+maxJitter {
			t.Fatalf("retransmit armed %v ahead, want Rekey-Timeout plus up to %v", since, maxJitter)
		}
		clock.Advance(since - time.Millisecond)
		if got := a.d.stats.initiationsSent.Load(); got != uint64(sent) {
			t.Fatalf("initiation sent early: %d, want %d", got, sent)
		}
		clock.Advance(time.Millisecond)
		if clock.Now().Sub(start) < noise.RekeyAttemptTime {
			sent++
		}
		if got := a.d.stats.initiationsSent.Load(); got != uint64(sent) {
			t.Fatalf("at %v: %d initiations sent, want %d", clock.Now().Sub(start), got, sent)
		}
	}
	elapsed := clock.Now().Sub(start)
	if elapsed < noise.RekeyAttemptTime || elapsed > noise.RekeyAttemptTime+noise.RekeyTimeout+maxJitter {
		t.Fatalf("gave up after %v", elapsed)
	}
	// 90 s of attempts every 5 s (plus jitter): 18 initiations.
	if sent < 17 || sent > 18 {
		t.Fatalf("%d initiations before giving up", sent)
	}
	if p.stagedLen() != 0 {
		t.Fatal("staged packets kept after giving up")
	}
	if z := due(p, timerZeroKeys); z.IsZero() {
		t.Fatal("key erasure not scheduled after giving up")
	}
	if n := tr.count(a, b, "init"); n != sent {
		t.Fatalf("network saw %d initiations, want %d", n, sent)
	}
	// New data restarts the attempts.
	a.inject(ipv4Packet("10.0.0.1", "10.0.0.2", []byte("again")))
	eventually(t, "new initiation", func() bool { return a.d.stats.initiationsSent.Load() == uint64(sent+1) })
}

func mustKey(t testing.TB, seed uint64) noise.PrivateKey {
	k, err := noise.GeneratePrivateKey(seededRand(seed))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestInitiationRateLimitedByRekeyTimeout(t *testing.T) {
	nw := transport.NewNetwork()
	clock := NewFakeClock(testEpoch)
	a := newNode(t, nw, "192.0.2.1", 51820, clock, 1)
	b := &node{pub: mustKey(t, 9).PublicKey(), addr: netip.MustParseAddrPort("192.0.2.99:51820")}
	a.addPeer(b, true, "10.0.0.0/24")
	p := a.peer(b)
	a.inject(ipv4Packet("10.0.0.1", "10.0.0.2", []byte("1")))
	eventually(t, "first initiation", func() bool { return a.d.stats.initiationsSent.Load() == 1 })
	clock.Advance(time.Second)
	p.initiate(false)
	p.initiate(false)
	if got := a.d.stats.initiationsSent.Load(); got != 1 {
		t.Fatalf("%d initiations within Rekey-Timeout", got)
	}
	clock.Advance(noise.RekeyTimeout - time.Second)
	p.initiate(false)
	if got := a.d.stats.initiationsSent.Load(); got < 2 {
		t.Fatalf("no initiation after Rekey-Timeout")
	}
}

// established returns a pair that completed a handshake (A initiated) and
// exchanged one packet each way, with traffic watched.
func established(t *testing.T) (*pair, *traffic) {
	t.Helper()
	nw := transport.NewNetwork()
	tr := watch(nw)
	clock := NewFakeClock(testEpoch)
	a := newNode(t, nw, "192.0.2.1", 51820, clock, 1)
	b := newNode(t, nw, "192.0.2.2", 51820, clock, 2)
	a.addPeer(b, true, "10.0.0.2/32", "fd00::2/128")
	b.addPeer(a, false, "10.0.0.1/32", "fd00::1/128")
	pr := &pair{nw: nw, clock: clock, a: a, b: b}
	pr.ping(t, "setup")
	return pr, tr
}

func TestPassiveKeepalive(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	pa, pb := a.peer(b), b.peer(a)
	// B answered A's data with data, so only A owes a keepalive (it
	// received B's packet and sent nothing since).
	if !due(pb, timerSendKeepalive).IsZero() {
		t.Fatal("B has a keepalive pending though it sent data after receiving")
	}
	d := due(pa, timerSendKeepalive)
	if want := pr.clock.Now().Add(noise.KeepaliveTimeout); !d.Equal(want) {
		t.Fatalf("A keepalive due %v, want %v", d, want)
	}
	tr.advance(t, pr.clock, noise.KeepaliveTimeout-time.Millisecond, a, b)
	if n := tr.count(a, b, "keepalive"); n != 0 {
		t.Fatalf("keepalive sent early (%d)", n)
	}
	tr.advance(t, pr.clock, time.Millisecond, a, b)
	eventually(t, "A's keepalive", func() bool { return tr.count(a, b, "keepalive") == 1 })
	eventually(t, "B receiving it", func() bool { return pb.rxBytes.Load() > 0 && due(pb, timerNewHandshake).IsZero() })
	// No keepalive answers a keepalive.
	if !due(pb, timerSendKeepalive).IsZero() {
		t.Fatal("B wants to answer a keepalive with a keepalive")
	}
	tr.advance(t, pr.clock, 2*noise.KeepaliveTimeout, a, b)
	if n := tr.count(b, a, "keepalive"); n != 0 {
		t.Fatalf("B answered a keepalive (%d)", n)
	}
	if n := tr.count(a, b, "keepalive"); n != 1 {
		t.Fatalf("A sent %d keepalives, want 1", n)
	}
}

func TestKeepaliveSuppressedBySending(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	tr.advance(t, pr.clock, 5*time.Second, a, b)
	// A sends data within Keepalive-Timeout: its pending keepalive is off.
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("reply"))
	a.inject(pkt)
	b.expectPacket(pkt)
	if !due(a.peer(b), timerSendKeepalive).IsZero() {
		t.Fatal("keepalive still pending after sending data")
	}
	tr.advance(t, pr.clock, 6*time.Second, a, b)
	if n := tr.count(a, b, "keepalive"); n != 0 {
		t.Fatalf("A sent %d keepalives although it sent data", n)
	}
	// B got data and sent nothing: it owes one, due 10 s after receipt.
	tr.advance(t, pr.clock, 4*time.Second, a, b)
	eventually(t, "B's keepalive", func() bool { return tr.count(b, a, "keepalive") == 1 })
}

func TestPersistentKeepalive(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	tr.quiesce(t, a, b)
	ka := 25 * time.Second
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: b.pub, UpdateOnly: true, PersistentKeepalive: &ka}}}); err != nil {
		t.Fatal(err)
	}
	// Turning it on sends one at once.
	eventually(t, "immediate keepalive", func() bool { return tr.count(a, b, "keepalive") == 1 })
	for i := 2; i <= 3; i++ {
		tr.advance(t, pr.clock, ka-time.Second, a, b)
		if n := tr.count(a, b, "keepalive"); n != i-1 {
			t.Fatalf("keepalive before the interval passed (%d)", n)
		}
		tr.advance(t, pr.clock, time.Second, a, b)
		if n := tr.count(a, b, "keepalive"); n != i {
			t.Fatalf("%d keepalives after %d intervals", n, i-1)
		}
	}
	// Sending data postpones it: the tunnel is not idle.
	tr.advance(t, pr.clock, 20*time.Second, a, b)
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("data"))
	a.inject(pkt)
	b.expectPacket(pkt)
	tr.quiesce(t, a, b)
	if got, want := due(a.peer(b), timerPersistent), pr.clock.Now().Add(ka); !got.Equal(want) {
		t.Fatalf("persistent keepalive due %v, want %v", got, want)
	}
	// So does receiving: B's passive keepalive for the data arrives
	// Keepalive-Timeout later.
	tr.advance(t, pr.clock, noise.KeepaliveTimeout, a, b)
	if n := tr.count(b, a, "keepalive"); n != 1 {
		t.Fatalf("B sent %d passive keepalives, want 1", n)
	}
	if got, want := due(a.peer(b), timerPersistent), pr.clock.Now().Add(ka); !got.Equal(want) {
		t.Fatalf("persistent keepalive due %v after receiving, want %v", got, want)
	}
	tr.advance(t, pr.clock, ka-time.Second, a, b)
	if n := tr.count(a, b, "keepalive"); n != 3 {
		t.Fatalf("keepalive although a packet went by %v ago (%d)", ka-time.Second, n)
	}
	tr.advance(t, pr.clock, time.Second, a, b)
	if n := tr.count(a, b, "keepalive"); n != 4 {
		t.Fatalf("%d keepalives, want 4", n)
	}
	// Off again: no more.
	zero := time.Duration(0)
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: b.pub, PersistentKeepalive: &zero}}}); err != nil {
		t.Fatal(err)
	}
	if !due(a.peer(b), timerPersistent).IsZero() {
		t.Fatal("persistent keepalive still armed")
	}
	tr.advance(t, pr.clock, 3*ka, a, b)
	if n := tr.count(a, b, "keepalive"); n != 4 {
		t.Fatalf("keepalives continue after turning them off (%d)", n)
	}
}

func TestNewHandshakeWhenNoReply(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	tr.advance(t, pr.clock, time.Minute, a, b)
	inits := a.d.stats.initiationsSent.Load()
	tr.setDrop(b, a, true)
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("anyone?"))
	a.inject(pkt)
	b.expectPacket(pkt)
	d := due(a.peer(b), timerNewHandshake)
	since := d.Sub(pr.clock.Now())
	if since < noise.KeepaliveTimeout+noise.RekeyTimeout || since > noise.KeepaliveTimeout+noise.RekeyTimeout+maxJitter {
		t.Fatalf("new-handshake timer armed %v ahead", since)
	}
	tr.advance(t, pr.clock, since-time.Millisecond, a, b)
	if a.d.stats.initiationsSent.Load() != inits {
		t.Fatal("handshake started early")
	}
	tr.advance(t, pr.clock, time.Millisecond, a, b)
	eventually(t, "handshake", func() bool { return a.d.stats.initiationsSent.Load() == inits+1 })
}

func TestRekeyAfterTime(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	pa := a.peer(b)
	old := pa.keypairs.Current()
	if !old.IsInitiator {
		t.Fatal("A should be the initiator")
	}
	tr.advance(t, pr.clock, noise.RekeyAfterTime-time.Second, a, b)
	inits := a.d.stats.initiationsSent.Load()
	// B, the responder, never rekeys on sending.
	binits := b.d.stats.initiationsSent.Load()
	pkt := ipv4Packet("10.0.0.2", "10.0.0.1", []byte("b"))
	b.inject(pkt)
	a.expectPacket(pkt)
	pkt = ipv4Packet("10.0.0.1", "10.0.0.2", []byte("a"))
	a.inject(pkt)
	b.expectPacket(pkt)
	tr.quiesce(t, a, b)
	if a.d.stats.initiationsSent.Load() != inits {
		t.Fatal("A rekeyed before Rekey-After-Time")
	}
	tr.advance(t, pr.clock, time.Second, a, b)
	pkt = ipv4Packet("10.0.0.1", "10.0.0.2", []byte("old keys still fine"))
	a.inject(pkt)
	b.expectPacket(pkt)
	eventually(t, "rekey", func() bool { return pa.keypairs.Current() != old })
	if a.d.stats.initiationsSent.Load() != inits+1 {
		t.Fatalf("A sent %d initiations", a.d.stats.initiationsSent.Load()-inits)
	}
	pr.ping(t, "new keys")
	if b.d.stats.initiationsSent.Load() != binits {
		t.Fatal("the responder started a handshake on sending")
	}
	if pa.keypairs.Previous() != old {
		t.Fatal("old keypair is not kept as previous")
	}
}

func TestRekeyOnReceiveNearReject(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	pa := a.peer(b)
	old := pa.keypairs.Current()
	// Keep B sending so only the receive rule can fire at A: A sends
	// nothing after Rekey-After-Time.
	tr.advance(t, pr.clock, lastMinuteRekey, a, b)
	inits := a.d.stats.initiationsSent.Load()
	pkt := ipv4Packet("10.0.0.2", "10.0.0.1", []byte("at the limit"))
	b.inject(pkt)
	a.expectPacket(pkt)
	tr.quiesce(t, a, b)
	if a.d.stats.initiationsSent.Load() != inits {
		t.Fatal("handshake before Reject-After-Time - Keepalive-Timeout - Rekey-Timeout")
	}
	tr.advance(t, pr.clock, time.Second, a, b)
	pkt = ipv4Packet("10.0.0.2", "10.0.0.1", []byte("past it"))
	b.inject(pkt)
	a.expectPacket(pkt)
	eventually(t, "last-minute handshake", func() bool { return pa.keypairs.Current() != old })
	if got := a.d.stats.initiationsSent.Load(); got != inits+1 {
		t.Fatalf("%d initiations", got-inits)
	}
}

func TestRejectAfterTime(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	pa, pb := a.peer(b), b.peer(a)
	old := pa.keypairs.Current()
	oldB := pb.keypairs.Current()
	tr.advance(t, pr.clock, noise.RejectAfterTime, a, b)
	dataBefore := tr.count(a, b, "data")
	// The old keypair may not send any more: the packet waits for a new
	// handshake and is then delivered on fresh keys.
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("after reject"))
	a.inject(pkt)
	b.expectPacket(pkt)
	if pa.keypairs.Current() == old {
		t.Fatal("sent on a keypair older than Reject-After-Time")
	}
	if got := tr.count(a, b, "data"); got != dataBefore+1 {
		t.Fatalf("%d data packets for one", got-dataBefore)
	}
	// And a packet sealed with a rejected keypair is dropped on receipt.
	msg := make([]byte, 64+noise.MessageTransportOverhead)
	pl := ipv4Packet("10.0.0.1", "10.0.0.2", make([]byte, 36))
	copy(msg[16:], pl)
	c, _ := old.NextCounter()
	sealed := old.SealTransport(msg, msg[16:16+len(pl)], c)
	if sealed == nil {
		t.Fatal("old keypair wiped too early")
	}
	_ = oldB
	drops := b.d.stats.decryptFailed.Load()
	if err := a.bind.Send([][]byte{sealed}, transport.Endpoint{Dst: b.addr}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "drop of stale packet", func() bool {
		return b.d.stats.decryptFailed.Load() > drops || b.d.stats.unknownIndex.Load() > 0
	})
	b.expectNoPacket(50 * time.Millisecond)
}

func TestZeroKeysAfterThreeRejectAfterTime(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	pa := a.peer(b)
	z := due(pa, timerZeroKeys)
	if want := testEpoch.Add(3 * noise.RejectAfterTime); !z.Equal(want) {
		t.Fatalf("zero keys due %v, want %v", z, want)
	}
	tr.advance(t, pr.clock, 3*noise.RejectAfterTime-time.Second, a, b)
	if pa.keypairs.Current() == nil {
		t.Fatal("keys erased early")
	}
	tr.advance(t, pr.clock, time.Second, a, b)
	if pa.keypairs.Current() != nil || pa.keypairs.Previous() != nil || pa.keypairs.Next() != nil {
		t.Fatal("keys not erased")
	}
	eventually(t, "B erasing too", func() bool { return b.peer(a).keypairs.Current() == nil })
	if n := a.d.indices.len(); n != 0 {
		t.Fatalf("%d indices still live at A", n)
	}
	// The tunnel comes back with a new handshake.
	pr.ping(t, "after erasure")
}

func TestStagedPacketsFlushedInOrder(t *testing.T) {
	nw := transport.NewNetwork()
	tr := watch(nw)
	clock := NewFakeClock(testEpoch)
	a := newNode(t, nw, "192.0.2.1", 51820, clock, 1)
	b := newNode(t, nw, "192.0.2.2", 51820, clock, 2)
	a.addPeer(b, true, "10.0.0.2/32")
	b.addPeer(a, false, "10.0.0.1/32")
	tr.setDrop(a, b, true) // hold the handshake back
	var pkts [][]byte
	for i := range maxStaged + 10 {
		pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte{byte(i), byte(i >> 8)})
		pkts = append(pkts, pkt)
		a.inject(pkt)
	}
	pa := a.peer(b)
	eventually(t, "staging", func() bool { return a.d.stats.stagedDropped.Load() == 10 })
	if n := pa.stagedLen(); n != maxStaged {
		t.Fatalf("%d staged, want %d", n, maxStaged)
	}
	tr.setDrop(a, b, false)
	clock.Advance(noise.RekeyTimeout + maxJitter) // retransmission
	// The oldest 10 were dropped; the rest arrive in order.
	for _, pkt := range pkts[10:] {
		b.expectPacket(pkt)
	}
	if pa.stagedLen() != 0 {
		t.Fatal("staged packets left")
	}
}

func TestRekeyAfterMessages(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	pa := a.peer(b)
	old := pa.keypairs.Current()
	// Past Rekey-Timeout, so a new initiation is not rate limited.
	tr.advance(t, pr.clock, noise.RekeyTimeout, a, b)
	setSendCounter(t, old, noise.RekeyAfterMessages)
	inits := a.d.stats.initiationsSent.Load()
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("many"))
	a.inject(pkt)
	b.expectPacket(pkt)
	eventually(t, "rekey", func() bool { return pa.keypairs.Current() != old })
	if a.d.stats.initiationsSent.Load() != inits+1 {
		t.Fatal("no handshake after Rekey-After-Messages")
	}
}

func TestRejectAfterMessages(t *testing.T) {
	pr, tr := established(t)
	a, b := pr.a, pr.b
	pa := a.peer(b)
	old := pa.keypairs.Current()
	tr.advance(t, pr.clock, noise.RekeyTimeout, a, b)
	setSendCounter(t, old, noise.RejectAfterMessages-1)
	data := tr.count(a, b, "data")
	p1 := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("last counter"))
	a.inject(p1)
	b.expectPacket(p1)
	// The keypair is exhausted: the next packet needs a new session.
	p2 := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("new session"))
	a.inject(p2)
	b.expectPacket(p2)
	if pa.keypairs.Current() == old {
		t.Fatal("still on the exhausted keypair")
	}
	if old.SendCounter() != noise.RejectAfterMessages {
		t.Fatalf("send counter %d went past the limit", old.SendCounter())
	}
	if got := tr.count(a, b, "data"); got != data+2 {
		t.Fatalf("%d data packets for 2", got-data)
	}
}

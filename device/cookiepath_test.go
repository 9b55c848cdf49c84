package device

import (
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotatun/gotatun/device/ratelimit"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// receiveOne runs msg from src through a fresh receiver of d, as one read.
func receiveOne(d *Device, msg []byte, src netip.AddrPort) {
	r := d.newReceiver()
	defer r.release()
	copy(r.bufs[0], msg)
	r.sizes[0] = len(msg)
	r.eps[0] = transport.Endpoint{Dst: src}
	r.handle(1)
}

func TestCookiePathUnderLoad(t *testing.T) {
	pr := newPair(t)
	b := pr.b
	flood := pr.nw.NewBind(netip.MustParseAddr("198.51.100.7"))
	fns, port, err := flood.Open(4000)
	if err != nil {
		t.Fatal(err)
	}
	defer flood.Close()
	src := netip.AddrPortFrom(netip.MustParseAddr("198.51.100.7"), port)
	gen := noise.NewCookieGenerator(b.pub)

	// Not under load: a mac1-valid initiation is queued.
	before := b.d.Stats()
	receiveOne(b.d, floodInitiation(b.pub, gen, pr.clock.Now()), src)
	after := b.d.Stats()
	if after.HandshakesQueued != before.HandshakesQueued+1 || after.CookiesSent != before.CookiesSent {
		t.Fatalf("not under load: queued %d→%d, cookies %d→%d", before.HandshakesQueued, after.HandshakesQueued, before.CookiesSent, after.CookiesSent)
	}

	b.d.forceUnderLoad.Store(true)
	// Under load, without mac2: a cookie reply from the receive path, and
	// nothing queued.
	before = after
	receiveOne(b.d, floodInitiation(b.pub, gen, pr.clock.Now()), src)
	after = b.d.Stats()
	if after.HandshakesQueued != before.HandshakesQueued {
		t.Fatal("an initiation without mac2 was queued under load")
	}
	if after.CookiesSent != before.CookiesSent+1 {
		t.Fatalf("cookies sent %d→%d, want one more", before.CookiesSent, after.CookiesSent)
	}
	if !takeCookie(t, fns[0], gen, pr.clock.Now()) {
		t.Fatal("the cookie reply did not reach the source")
	}

	// With a valid mac2 (gen holds the cookie now): queued and processed
	// (the garbage fails to decrypt, so processing shows as a bad handshake).
	before = after
	receiveOne(b.d, floodInitiation(b.pub, gen, pr.clock.Now()), src)
	after = b.d.Stats()
	if after.HandshakesQueued != before.HandshakesQueued+1 || after.CookiesSent != before.CookiesSent {
		t.Fatalf("mac2-valid initiation: queued %d→%d, cookies %d→%d", before.HandshakesQueued, after.HandshakesQueued, before.CookiesSent, after.CookiesSent)
	}
	eventually(t, "the queued initiation processed", func() bool { return b.d.Stats().BadHandshake > before.BadHandshake })

	// A bad mac1 is dropped before the queue, with no reply.
	before = b.d.Stats()
	m := floodInitiation(b.pub, gen, pr.clock.Now())
	m[noise.MessageInitiationSize-2*16] ^= 1
	receiveOne(b.d, m, src)
	after = b.d.Stats()
	if after.BadMAC != before.BadMAC+1 || after.HandshakesQueued != before.HandshakesQueued || after.CookiesSent != before.CookiesSent {
		t.Fatalf("bad mac1: badMAC %d→%d, queued %d→%d, cookies %d→%d", before.BadMAC, after.BadMAC,
			before.HandshakesQueued, after.HandshakesQueued, before.CookiesSent, after.CookiesSent)
	}
}

func TestReplyBudget(t *testing.T) {
	var b replyBudget
	now := time.Unix(1700000000, 0)
	n := 0
	for b.take(now) {
		n++
		if n > 10*cookieReplyBurst {
			t.Fatal("the budget never runs out")
		}
	}
	if n != cookieReplyBurst {
		t.Fatalf("burst of %d replies, want %d", n, cookieReplyBurst)
	}
	now = now.Add(10 * time.Millisecond)
	n = 0
	for b.take(now) {
		n++
	}
	if want := cookieReplyRate / 100; n != want {
		t.Fatalf("%d replies after 10 ms, want %d", n, want)
	}
}

// TestHandshakeUnderSaturatingFlood floods a device from 64 sources with
// mac1-valid initiations as fast as it reads them, far faster than its
// handshake worker can process them, and checks that a legitimate peer
// still completes a handshake. The flood waits for the device to read each
// batch, so the memory network never drops the peer's datagrams: what is
// tested is the device, not the luck of a full socket.
func TestHandshakeUnderSaturatingFlood(t *testing.T) {
	pr := newPair(t)
	a, b := pr.a, pr.b
	const sources = 64
	var binds []transport.Bind
	for i := range sources {
		fb := pr.nw.NewBind(netip.AddrFrom4([4]byte{198, 51, 100, byte(i + 1)}))
		if _, _, err := fb.Open(5000); err != nil {
			t.Fatal(err)
		}
		defer fb.Close()
		binds = append(binds, fb)
	}
	gen := noise.NewCookieGenerator(b.pub)
	msgs := make([][]byte, 64)
	for i := range msgs {
		msgs[i] = floodInitiation(b.pub, gen, pr.clock.Now())
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			for _, fb := range binds {
				read := b.d.stats.rxDatagrams.Load()
				fb.Send(msgs, transport.Endpoint{Dst: b.addr})
				for !stop.Load() && b.d.stats.rxDatagrams.Load() < read+uint64(len(msgs)) {
					time.Sleep(50 * time.Microsecond)
				}
			}
		}
	}()
	defer func() {
		stop.Store(true)
		wg.Wait()
	}()
	eventually(t, "the flood answered with cookies", func() bool { return b.d.Stats().CookiesSent > 0 })

	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("through the flood"))
	deadline := time.Now().Add(60 * time.Second)
	for a.peer(b).keypairs.Current() == nil {
		if time.Now().After(deadline) {
			st := b.d.Stats()
			t.Fatalf("no handshake under the flood: cookies sent %d, dropped %d, queued %d, queue drops %d, A got %d cookies",
				st.CookiesSent, st.CookiesDropped, st.HandshakesQueued, st.HandshakeDropped, a.d.Stats().CookiesReceived)
		}
		a.inject(pkt)
		time.Sleep(20 * time.Millisecond)
		pr.clock.Advance(time.Second)
	}
	b.expectPacket(pkt)
}

// discardBind is a Bind whose sends go nowhere, without allocating.
type discardBind struct {
	mu     sync.Mutex
	closed chan struct{}
	sent   atomic.Uint64
}

func (b *discardBind) Open(uint16) ([]transport.ReceiveFunc, uint16, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = make(chan struct{})
	c := b.closed
	return []transport.ReceiveFunc{func([][]byte, []int, []transport.Endpoint) (int, error) {
		<-c
		return 0, transport.ErrClosed
	}}, 51820, nil
}

func (b *discardBind) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed != nil {
		close(b.closed)
		b.closed = nil
	}
	return nil
}

func (b *discardBind) SetMark(uint32) error { return nil }
func (b *discardBind) BatchSize() int       { return 128 }
func (b *discardBind) Send(bufs [][]byte, _ transport.Endpoint) error {
	b.sent.Add(uint64(len(bufs)))
	return nil
}

func (b *discardBind) SendTo(bufs [][]byte, _ []transport.Endpoint) error {
	b.sent.Add(uint64(len(bufs)))
	return nil
}

// TestCookieRepliesPerSource checks that under load a source gets no more
// cookie replies than the per-source limit allows, that this leaves
// replies for other sources, and that a limited source is answered again
// once its bucket refills.
func TestCookieRepliesPerSource(t *testing.T) {
	clock := NewFakeClock(testEpoch)
	d, err := New(Options{TUN: tun.NewMemory("wg-cookies", 1420, 16), Bind: &discardBind{}, Rand: seededRand(7), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	priv, _ := noise.GeneratePrivateKey(seededRand(8))
	if err := d.Apply(Config{PrivateKey: &priv}); err != nil {
		t.Fatal(err)
	}
	d.forceUnderLoad.Store(true)
	gen := noise.NewCookieGenerator(priv.PublicKey())
	flooder := netip.MustParseAddrPort("198.51.100.1:1000")
	sent := func(src netip.AddrPort, n int) uint64 {
		t.Helper()
		before := d.Stats().CookiesSent
		for range n {
			receiveOne(d, floodInitiation(priv.PublicKey(), gen, clock.Now()), src)
		}
		return d.Stats().CookiesSent - before
	}
	if got := sent(flooder, 100); got != ratelimit.Burst {
		t.Fatalf("a source sending 100 initiations at once got %d replies, want %d", got, ratelimit.Burst)
	}
	// Another port of the same address is the same source.
	if got := sent(netip.AddrPortFrom(flooder.Addr(), 2000), 10); got != 0 {
		t.Fatalf("another port of the flooding address got %d replies, want 0", got)
	}
	if got := sent(netip.MustParseAddrPort("203.0.113.9:51820"), 1); got != 1 {
		t.Fatalf("a new source got %d replies, want 1", got)
	}
	clock.Advance(time.Second)
	if got := sent(flooder, 100); got != ratelimit.Burst {
		t.Fatalf("after a second the flooder got %d replies, want %d", got, ratelimit.Burst)
	}
	if st := d.Stats(); st.CookiesDropped != 100-ratelimit.Burst+10+100-ratelimit.Burst {
		t.Fatalf("%d cookies dropped, want %d", st.CookiesDropped, 100-ratelimit.Burst+10+100-ratelimit.Burst)
	}
}

// floodReceiver returns a device under load on a fake clock and a receiver
// of it holding a read of 128 mac1-valid initiations without mac2, from
// 128 sources. Advancing the clock a second refills every reply limit.
func floodReceiver(tb testing.TB) (*Device, *receiver, *discardBind, *FakeClock) {
	bind := &discardBind{}
	clock := NewFakeClock(testEpoch)
	d, err := New(Options{TUN: tun.NewMemory("wg-bench", 1420, 16), Bind: bind, Rand: seededRand(7), Clock: clock})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { d.Close() })
	priv, _ := noise.GeneratePrivateKey(seededRand(8))
	if err := d.Apply(Config{PrivateKey: &priv}); err != nil {
		tb.Fatal(err)
	}
	d.forceUnderLoad.Store(true)
	r := d.newReceiver()
	tb.Cleanup(r.release)
	gen := noise.NewCookieGenerator(priv.PublicKey())
	for i := range r.bufs {
		m := floodInitiation(priv.PublicKey(), gen, clock.Now())
		copy(r.bufs[i], m)
		r.sizes[i] = len(m)
		r.eps[i] = transport.Endpoint{Dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), uint16(1024+i))}
	}
	return d, r, bind, clock
}

// BenchmarkCookieReplyBatch measures the receive path answering a read of
// 128 initiations with 128 cookie replies (mac1 and mac2 checks, the
// replies, one batched send); ns/op divided by 128 is the cost of a reply.
func BenchmarkCookieReplyBatch(b *testing.B) {
	_, r, bind, clock := floodReceiver(b)
	n := len(r.bufs)
	b.ReportAllocs()
	for b.Loop() {
		clock.Advance(time.Second) // measure the replies, not the limits
		r.handle(n)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/reply")
	if bind.sent.Load() == 0 {
		b.Fatal("no cookie replies sent")
	}
}

func TestCookieReplyNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	_, r, bind, clock := floodReceiver(t)
	n := len(r.bufs)
	allocs := testing.AllocsPerRun(20, func() {
		clock.Advance(time.Second)
		r.handle(n)
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per read of %d cookie replies, want 0", allocs, n)
	}
	if got := bind.sent.Load(); got < uint64(20*n) {
		t.Fatalf("%d cookie replies sent, want at least %d", got, 20*n)
	}
}

// TestUnderLoadLogged checks that going under load is logged once per
// spell of load and at most once a minute, with the flood counters.
func TestUnderLoadLogged(t *testing.T) {
	var logs syncBuffer
	d, err := New(Options{TUN: tun.NewMemory("wg-load", 1420, 16), Bind: &discardBind{},
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	logged := func() int { return strings.Count(string(logs.Bytes()), "under load") }
	at := func(d time.Duration) time.Time { return testEpoch.Add(d) }

	d.markUnderLoad(at(0))
	if logged() != 1 || !strings.Contains(string(logs.Bytes()), "cookies_dropped=0") {
		t.Fatalf("going under load: %q", string(logs.Bytes()))
	}
	if !d.underLoad(at(500*time.Millisecond)) || d.underLoad(at(underLoadFor)) {
		t.Fatal("under load for the wrong time")
	}
	d.markUnderLoad(at(100 * time.Millisecond)) // the same spell
	d.markUnderLoad(at(5 * time.Second))        // a new spell within the minute
	if logged() != 1 {
		t.Fatalf("%d logs, want 1: %q", logged(), string(logs.Bytes()))
	}
	d.markUnderLoad(at(5*time.Second + underLoadLogEvery))
	if logged() != 2 {
		t.Fatalf("%d logs after a minute, want 2: %q", logged(), string(logs.Bytes()))
	}
}

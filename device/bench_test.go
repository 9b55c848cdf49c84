package device

import (
	"bytes"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// The doubles below allocate nothing per packet, so that allocation
// counts of the data path are the device's own.

// pipeBind is one end of a zero-allocation in-memory UDP link.
type pipeBind struct {
	addr netip.AddrPort
	peer *pipeBind
	pool *sync.Pool

	mu   sync.Mutex
	q    chan *pipeDatagram
	done chan struct{}
}

type pipeDatagram struct {
	b [2048]byte
	n int
}

func newPipe(a, b netip.AddrPort) (*pipeBind, *pipeBind) {
	pool := &sync.Pool{New: func() any { return new(pipeDatagram) }}
	x := &pipeBind{addr: a, pool: pool}
	y := &pipeBind{addr: b, pool: pool}
	x.peer, y.peer = y, x
	return x, y
}

func (p *pipeBind) Open(port uint16) ([]transport.ReceiveFunc, uint16, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.q != nil {
		return nil, 0, fmt.Errorf("already open")
	}
	q := make(chan *pipeDatagram, 4096)
	done := make(chan struct{})
	p.q, p.done = q, done
	from := p.peer.addr
	recv := func(bufs [][]byte, sizes []int, eps []transport.Endpoint) (int, error) {
		var d *pipeDatagram
		select {
		case d = <-q:
		case <-done:
			return 0, transport.ErrClosed
		}
		n := 0
		for {
			sizes[n] = copy(bufs[n], d.b[:d.n])
			eps[n] = transport.Endpoint{Dst: from}
			p.pool.Put(d)
			n++
			if n == len(bufs) {
				return n, nil
			}
			select {
			case d = <-q:
			default:
				return n, nil
			}
		}
	}
	return []transport.ReceiveFunc{recv}, p.addr.Port(), nil
}

func (p *pipeBind) Close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.q != nil {
		close(p.done)
		p.q, p.done = nil, nil
	}
	return nil
}

func (p *pipeBind) SetMark(uint32) error { return nil }
func (p *pipeBind) BatchSize() int       { return 128 }

func (p *pipeBind) Send(bufs [][]byte, ep transport.Endpoint) error {
	dst := p.peer
	dst.mu.Lock()
	q, done := dst.q, dst.done
	dst.mu.Unlock()
	if q == nil {
		return nil
	}
	for _, b := range bufs {
		d := p.pool.Get().(*pipeDatagram)
		d.n = copy(d.b[:], b)
		select {
		case q <- d:
		case <-done:
			return nil
		}
	}
	return nil
}

// sinkTUN reads packets from a channel and counts (and checks) what is
// written to it.
type sinkTUN struct {
	in        chan []byte
	want      []byte
	written   atomic.Int64
	bad       atomic.Int64
	target    atomic.Int64
	reached   chan struct{}
	events    chan tun.Event
	closed    chan struct{}
	closeOnce sync.Once
}

func newSinkTUN() *sinkTUN {
	return &sinkTUN{
		in:      make(chan []byte, 1024),
		reached: make(chan struct{}, 1),
		events:  make(chan tun.Event),
		closed:  make(chan struct{}),
	}
}

func (s *sinkTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var pkt []byte
	select {
	case pkt = <-s.in:
	case <-s.closed:
		return 0, tun.ErrClosed
	}
	n := 0
	for {
		sizes[n] = copy(bufs[n][offset:], pkt)
		n++
		if n == len(bufs) {
			return n, nil
		}
		select {
		case pkt = <-s.in:
		default:
			return n, nil
		}
	}
}

func (s *sinkTUN) Write(bufs [][]byte, offset int) (int, error) {
	for _, b := range bufs {
		if s.want != nil && !bytes.Equal(b[offset:], s.want) {
			s.bad.Add(1)
		}
		if s.written.Add(1) == s.target.Load() {
			s.reached <- struct{}{}
		}
	}
	return len(bufs), nil
}

func (s *sinkTUN) MTU() (int, error)        { return 1420, nil }
func (s *sinkTUN) Name() (string, error)    { return "sink", nil }
func (s *sinkTUN) Events() <-chan tun.Event { return s.events }
func (s *sinkTUN) BatchSize() int           { return 128 }
func (s *sinkTUN) Close() error {
	s.closeOnce.Do(func() { close(s.closed); close(s.events) })
	return nil
}

// dataPath is two devices joined by a pipe, with a session up.
type dataPath struct {
	a, b     *Device
	ta, tb   *sinkTUN
	pkt      []byte
	expected int64
}

func newDataPath(tb testing.TB, payload int) *dataPath {
	tb.Helper()
	return newDataPathCapture(tb, payload, nil)
}

// newDataPathCapture is newDataPath with A capturing its packets to c.
func newDataPathCapture(tb testing.TB, payload int, c Capture) *dataPath {
	tb.Helper()
	addrA := netip.MustParseAddrPort("192.0.2.1:51820")
	addrB := netip.MustParseAddrPort("192.0.2.2:51820")
	ba, bb := newPipe(addrA, addrB)
	dp := &dataPath{ta: newSinkTUN(), tb: newSinkTUN()}
	dp.pkt = ipv4Packet("10.0.0.1", "10.0.0.2", bytes.Repeat([]byte{0xab}, payload))
	var err error
	ka, kb := mustKey(tb, 1), mustKey(tb, 2)
	if dp.a, err = New(Options{TUN: dp.ta, Bind: ba, Capture: c}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dp.a.Close() })
	if dp.b, err = New(Options{TUN: dp.tb, Bind: bb}); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { dp.b.Close() })
	port := uint16(51820)
	if err := dp.a.Apply(Config{PrivateKey: &ka, ListenPort: &port, Peers: []PeerConfig{{PublicKey: kb.PublicKey(), Endpoint: &addrB, AllowedIPs: prefixes("10.0.0.2/32")}}}); err != nil {
		tb.Fatal(err)
	}
	if err := dp.b.Apply(Config{PrivateKey: &kb, ListenPort: &port, Peers: []PeerConfig{{PublicKey: ka.PublicKey(), AllowedIPs: prefixes("10.0.0.1/32")}}}); err != nil {
		tb.Fatal(err)
	}
	dp.tb.want = dp.pkt
	dp.send(1) // handshake
	return dp
}

// send pushes n packets from A and waits until B has written them all.
func (dp *dataPath) send(n int) {
	dp.expected += int64(n)
	dp.tb.target.Store(dp.expected)
	for range n {
		dp.ta.in <- dp.pkt
	}
	select {
	case <-dp.tb.reached:
	case <-time.After(30 * time.Second):
		panic(fmt.Sprintf("data path stalled: %d of %d packets arrived", dp.tb.written.Load(), dp.expected))
	}
}

// BenchmarkDataPath1420 measures one full-size packet through both devices:
// TUN read, routing, encryption, UDP, decryption, checks, TUN write.
func BenchmarkDataPath1420(b *testing.B) {
	newDataPath(b, 1420-28).bench(b)
}

// bench sends b.N packets through the data path, timed.
func (dp *dataPath) bench(b *testing.B) {
	b.SetBytes(int64(len(dp.pkt)))
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(b.N-done, 4096)
		dp.send(n)
		done += n
	}
	b.StopTimer()
	if bad := dp.tb.bad.Load(); bad != 0 {
		b.Fatalf("%d packets arrived altered", bad)
	}
}

func BenchmarkDataPathSmall(b *testing.B) {
	newDataPath(b, 64).bench(b)
}

func TestDataPathAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	newDataPath(t, 1000).checkAllocs(t)
}

// checkAllocs fails if packets through dp allocate.
func (dp *dataPath) checkAllocs(t *testing.T) {
	t.Helper()
	dp.send(5000) // warm the pools
	allocs := testing.AllocsPerRun(20, func() { dp.send(256) })
	perPacket := allocs / 256
	t.Logf("%.3f allocations per packet", perPacket)
	if perPacket > 0.05 {
		t.Fatalf("data path allocates: %.3f allocations per packet", perPacket)
	}
	if bad := dp.tb.bad.Load(); bad != 0 {
		t.Fatalf("%d packets arrived altered", bad)
	}
}

// idlePeers measures the heap and goroutines that n configured, idle
// peers cost.
func idlePeers(tb testing.TB, n int) (heapPerPeer, goroutinesPerPeer float64) {
	tb.Helper()
	return idlePeersWith(tb, n, nil, nil)
}

// idlePeersWith is idlePeers with each peer's configuration changed by
// peer and the device checked by check once they are added (either may be
// nil).
func idlePeersWith(tb testing.TB, n int, peer func(*PeerConfig), check func(*Device)) (heapPerPeer, goroutinesPerPeer float64) {
	tb.Helper()
	nw := transport.NewNetwork()
	d, err := New(Options{TUN: tun.NewMemory("idle", 1420, 16), Bind: nw.NewBind(netip.MustParseAddr("192.0.2.1"))})
	if err != nil {
		tb.Fatal(err)
	}
	defer d.Close()
	priv := mustKey(tb, 1)
	if err := d.Apply(Config{PrivateKey: &priv}); err != nil {
		tb.Fatal(err)
	}
	cfg := Config{Peers: make([]PeerConfig, n)}
	r := seededRand(99)
	for i := range cfg.Peers {
		k, err := noise.GeneratePrivateKey(r)
		if err != nil {
			tb.Fatal(err)
		}
		ep := netip.AddrPortFrom(netip.AddrFrom4([4]byte{198, 18, byte(i >> 8), byte(i)}), 51820)
		cfg.Peers[i] = PeerConfig{
			PublicKey:  k.PublicKey(),
			Endpoint:   &ep,
			AllowedIPs: []netip.Prefix{netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 100, byte(i >> 8), byte(i)}), 32)},
		}
		if peer != nil {
			peer(&cfg.Peers[i])
		}
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC() // also empties the pools' victim caches
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	if err := d.Apply(cfg); err != nil {
		tb.Fatal(err)
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	g1 := runtime.NumGoroutine()
	if check != nil {
		check(d)
	}
	runtime.KeepAlive(cfg)
	return float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n), float64(g1-g0) / float64(n)
}

func TestIdlePeersAreCheap(t *testing.T) {
	heap, gor := idlePeers(t, 2000)
	t.Logf("%.0f heap bytes and %.4f goroutines per idle peer", heap, gor)
	if heap > 4096 {
		t.Fatalf("%.0f bytes per idle peer, want at most 4096", heap)
	}
	if gor != 0 {
		t.Fatalf("goroutines grow with peers: %.4f per peer", gor)
	}
}

func BenchmarkIdlePeers10k(b *testing.B) {
	for range b.N {
		heap, gor := idlePeers(b, 10000)
		b.ReportMetric(heap, "heapB/peer")
		b.ReportMetric(gor, "goroutines/peer")
	}
}

package netstack_test

import (
	"crypto/rand"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/internal/impair"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
	"github.com/gotatun/gotatun/tun/netstack"
)

// scaledClock runs factor times faster than real time, so that the
// protocol's rekey, reject and keepalive timers come round within a short
// test.
type scaledClock struct {
	start  time.Time
	factor time.Duration
}

func (c scaledClock) Now() time.Time {
	return c.start.Add(time.Since(c.start) * c.factor)
}

func (c scaledClock) AfterFunc(d time.Duration, f func()) device.Timer {
	return scaledTimer{time.AfterFunc(d/c.factor, f), c.factor}
}

type scaledTimer struct {
	t      *time.Timer
	factor time.Duration
}

func (t scaledTimer) Stop() bool                 { return t.t.Stop() }
func (t scaledTimer) Reset(d time.Duration) bool { return t.t.Reset(d / t.factor) }

// mtuStack is a netstack TUN whose MTU, as the device sees it, can be
// changed while it runs.
type mtuStack struct {
	*netstack.Stack
	mtu    atomic.Int32
	events chan tun.Event
	once   sync.Once
}

func newMTUStack(st *netstack.Stack) *mtuStack {
	m := &mtuStack{Stack: st, events: make(chan tun.Event, 4)}
	m.mtu.Store(1420)
	m.events <- tun.EventUp
	return m
}

func (m *mtuStack) MTU() (int, error)        { return int(m.mtu.Load()), nil }
func (m *mtuStack) Events() <-chan tun.Event { return m.events }
func (m *mtuStack) setMTU(mtu int) {
	m.mtu.Store(int32(mtu))
	select {
	case m.events <- tun.EventMTUUpdate:
	default:
	}
}
func (m *mtuStack) Close() error {
	err := m.Stack.Close()
	m.once.Do(func() { close(m.events) })
	return err
}

// soakDuration is how long TestSoak runs: GOTATUN_SOAK (a Go duration) or
// two minutes, as CI runs it.
func soakDuration(t *testing.T) time.Duration {
	s := os.Getenv("GOTATUN_SOAK")
	if s == "" {
		return 2 * time.Minute
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		t.Fatalf("GOTATUN_SOAK=%q: want a positive Go duration such as 30m", s)
	}
	return d
}

// stallWindow is the longest a direction of the soak may go without
// delivering a byte. The worst legitimate gap follows a peer remove/add:
// the server has lost the session, so the client hears nothing until its
// keepalive and rekey timeouts (15 s of protocol time, under 2 s of real
// time) start a handshake, a lost initiation costs another rekey timeout
// (0.6 s), and TCP, whose retransmission timer doubled through the gap,
// resends at most about one gap after the tunnel is back: some 5 s in
// all, a few times that under the race detector on a loaded machine. 30 s
// is several times the worst of those and still spans fewer than three
// remove/adds, so a transfer that stops for good fails the soak within
// its two minutes.
const stallWindow = 30 * time.Second

// progress tracks when a byte counter last grew.
type progress struct {
	n       int64
	at      time.Time
	longest time.Duration // longest time without growth so far
}

// update records the counter's value at now and returns how long it has
// not grown.
func (p *progress) update(n int64, now time.Time) time.Duration {
	if n != p.n {
		p.n, p.at = n, now
	}
	idle := now.Sub(p.at)
	p.longest = max(p.longest, idle)
	return idle
}

// streamByte is byte i of the checksummed stream seeded with seed: both
// ends generate it, so the receiver checks every byte.
type stream struct{ r *mrand.Rand }

func newStream(seed uint64) *stream { return &stream{mrand.New(mrand.NewPCG(seed, ^seed))} }

func (s *stream) fill(b []byte) {
	for i := range b {
		b[i] = byte(s.r.Uint32())
	}
}

// sample is one reading of the process during the soak.
type sample struct {
	at         time.Duration
	goroutines int
	heap, rss  uint64
}

func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(f[1], 10, 64)
	return pages * uint64(os.Getpagesize())
}

// slope is the least-squares slope of ys against xs (seconds), per minute.
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den * 60
}

// TestSoak runs a TCP connection with a checksummed stream each way between
// two devices on real loopback UDP through an impairment relay (loss,
// duplication, reordering, jitter), with the protocol clock eight times
// faster than real time (a rekey every 15 s), the client roaming, the
// server removing and re-adding the client's peer, and the MTU changing.
// No byte may arrive corrupted; goroutines, heap and RSS are sampled and
// their slopes logged. Each direction must deliver data in every
// stallWindow, and the client must see a new handshake after each
// remove/add. GOTATUN_SOAK sets the duration (default 2m).
func TestSoak(t *testing.T) {
	dur := soakDuration(t)
	goroutinesBefore := runtime.NumGoroutine()
	clock := scaledClock{start: time.Now(), factor: 8}

	cst, sst := newStackPair(t)
	ctun, stun := newMTUStack(cst), newMTUStack(sst)
	cdev, err := device.New(device.Options{TUN: ctun, Bind: transport.NewStdBind(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer cdev.Close()
	sdev, err := device.New(device.Options{TUN: stun, Bind: transport.NewStdBind(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	defer sdev.Close()
	cpriv, _ := noise.GeneratePrivateKey(rand.Reader)
	spriv, _ := noise.GeneratePrivateKey(rand.Reader)
	var zero uint16
	serverPeer := device.PeerConfig{PublicKey: cpriv.PublicKey(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.7.0.1/32")}}
	if err := sdev.Apply(device.Config{PrivateKey: &spriv, ListenPort: &zero, Peers: []device.PeerConfig{serverPeer}}); err != nil {
		t.Fatal(err)
	}
	target := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), sdev.LocalPort())
	im := impair.Impairment{Loss: 0.005, Duplicate: 0.005, Reorder: 0.005, Jitter: time.Millisecond}
	relay, err := impair.New(target, im, im, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer relay.Close()
	ep := relay.Addr()
	if err := cdev.Apply(device.Config{PrivateKey: &cpriv, ListenPort: &zero, Peers: []device.PeerConfig{{
		PublicKey: spriv.PublicKey(), Endpoint: &ep, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.7.0.0/24")},
	}}}); err != nil {
		t.Fatal(err)
	}

	cc, sc := connectTCP(t, cst, sst)

	var (
		stop                atomic.Bool
		up, down, corrupted atomic.Int64
		wg                  sync.WaitGroup
		errMu               sync.Mutex
		firstErr            error
	)
	fail := func(what string, err error) {
		if stop.Load() {
			return
		}
		errMu.Lock()
		if firstErr == nil {
			firstErr = fmt.Errorf("%s: %w", what, err)
		}
		errMu.Unlock()
	}
	writer := func(c net.Conn, seed uint64, what string) {
		defer wg.Done()
		s := newStream(seed)
		buf := make([]byte, 32<<10)
		for !stop.Load() {
			s.fill(buf)
			if _, err := c.Write(buf); err != nil {
				fail(what, err)
				return
			}
		}
	}
	reader := func(c net.Conn, seed uint64, n *atomic.Int64, what string) {
		defer wg.Done()
		s := newStream(seed)
		buf := make([]byte, 32<<10)
		want := make([]byte, len(buf))
		for {
			k, err := c.Read(buf)
			s.fill(want[:k])
			bad := 0
			for i := 0; i < k; i++ {
				if buf[i] != want[i] {
					bad++
				}
			}
			corrupted.Add(int64(bad))
			n.Add(int64(k))
			if err != nil {
				if err != io.EOF {
					fail(what, err)
				}
				return
			}
		}
	}
	wg.Add(4)
	go writer(cc, 1, "client write")
	go writer(sc, 2, "server write")
	go reader(sc, 1, &up, "server read")
	go reader(cc, 2, &down, "client read")

	var samples []sample
	var ms runtime.MemStats
	start := time.Now()
	mtus := []int{1420, 1500, 2000, 1420}
	var roams, churns, mtuChanges int
	handshakes := map[time.Time]bool{}
	upProgress, downProgress := progress{at: start}, progress{at: start}
	stalled := false
	for tick := 1; time.Since(start) < dur; tick++ {
		time.Sleep(time.Second)
		if ps, ok := cdev.PeerState(spriv.PublicKey()); ok && !ps.LastHandshake.IsZero() {
			handshakes[ps.LastHandshake] = true
		}
		now := time.Now()
		upIdle, downIdle := upProgress.update(up.Load(), now), downProgress.update(down.Load(), now)
		if upIdle > stallWindow || downIdle > stallWindow {
			cps, _ := cdev.PeerState(spriv.PublicKey())
			sps, _ := sdev.PeerState(cpriv.PublicKey())
			t.Errorf("transfer stalled at %v: nothing client to server for %v, nothing back for %v (%d up, %d back)\n"+
				"client peer: endpoint %v, last handshake %v, rx %d, tx %d; device %+v\n"+
				"server peer: endpoint %v, last handshake %v, rx %d, tx %d; device %+v\n"+
				"client TCP: %s\nserver TCP: %s\nrelay %+v",
				now.Sub(start).Round(time.Second), upIdle.Round(time.Second), downIdle.Round(time.Second), up.Load(), down.Load(),
				cps.Endpoint, cps.LastHandshake, cps.RxBytes, cps.TxBytes, cdev.Stats(),
				sps.Endpoint, sps.LastHandshake, sps.RxBytes, sps.TxBytes, sdev.Stats(),
				netstack.TCPSenders(cst), netstack.TCPSenders(sst), relay.Stats())
			stalled = true
			break
		}
		switch {
		case tick%7 == 0:
			if err := relay.Rebind(); err != nil {
				t.Fatal(err)
			}
			roams++
		case tick%11 == 0:
			if err := sdev.Apply(device.Config{Peers: []device.PeerConfig{{PublicKey: cpriv.PublicKey(), Remove: true}}}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			if err := sdev.Apply(device.Config{Peers: []device.PeerConfig{serverPeer}}); err != nil {
				t.Fatal(err)
			}
			churns++
		case tick%5 == 0:
			m := mtus[mtuChanges%len(mtus)]
			ctun.setMTU(m)
			stun.setMTU(m)
			mtuChanges++
		}
		if tick%2 == 0 {
			runtime.ReadMemStats(&ms)
			samples = append(samples, sample{time.Since(start), runtime.NumGoroutine(), ms.HeapInuse, rss()})
		}
	}
	stop.Store(true)
	cc.Close()
	sc.Close()
	wg.Wait()

	t.Logf("%v: %d bytes client to server, %d back, %d corrupted; %d roams, %d peer remove/add, %d MTU changes, %d handshakes seen; longest without progress: %v up, %v back; relay %+v",
		time.Since(start).Round(time.Second), up.Load(), down.Load(), corrupted.Load(), roams, churns, mtuChanges, len(handshakes),
		upProgress.longest.Round(time.Second), downProgress.longest.Round(time.Second), relay.Stats())
	if firstErr != nil {
		t.Errorf("transfer broke: %v", firstErr)
	}
	if c := corrupted.Load(); c != 0 {
		t.Errorf("%d corrupted bytes", c)
	}
	if up.Load() == 0 || down.Load() == 0 {
		t.Errorf("no transfer: %d up, %d down", up.Load(), down.Load())
	}
	// Each remove/add costs the client its session, and data flows
	// again only after a new handshake: the first one plus one per
	// remove/add, less one in case a sample missed one.
	if !stalled && len(handshakes) < churns {
		t.Errorf("%d handshakes seen for %d peer remove/adds: the sessions were not renewed", len(handshakes), churns)
	}
	// Slopes over the second half, after warm-up.
	var xs, gs, hs, rs []float64
	for _, s := range samples[len(samples)/2:] {
		xs = append(xs, s.at.Seconds())
		gs = append(gs, float64(s.goroutines))
		hs = append(hs, float64(s.heap)/(1<<20))
		rs = append(rs, float64(s.rss)/(1<<20))
	}
	if len(samples) > 0 {
		last := samples[len(samples)-1]
		t.Logf("last sample: %d goroutines, heap %.1f MiB, RSS %.1f MiB; slopes over the second half: %.2f goroutines/min, heap %.3f MiB/min, RSS %.3f MiB/min",
			last.goroutines, float64(last.heap)/(1<<20), float64(last.rss)/(1<<20), slope(xs, gs), slope(xs, hs), slope(xs, rs))
	}

	cdev.Close()
	sdev.Close()
	relay.Close()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutinesBefore {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", goroutinesBefore, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

package multihop

import (
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/tun"
)

// twoClients is two multihop clients facing each other with no relays:
// each exit device's peer is the other's exit device at the other's
// entry-tunnel address, reached through the entry devices, whose UDP is
// itself a pair of pipes joined by a shuttle. Every part allocates
// nothing per packet, so allocation counts are the composition's.
type twoClients struct {
	a, b       *Client
	aTUN, bTUN *countTUN
	stop       chan struct{}
	done       chan struct{}
}

// countTUN is an exit TUN that allocates nothing: Read hands out the
// packets sent on in, Write reports how many packets it took.
type countTUN struct {
	in      chan []byte
	written chan int
	events  chan tun.Event
	closed  chan struct{}
	once    sync.Once
}

func newCountTUN() *countTUN {
	return &countTUN{in: make(chan []byte, 1024), written: make(chan int, 1024), events: make(chan tun.Event), closed: make(chan struct{})}
}

func (c *countTUN) Read(bufs [][]byte, sizes []int, offset int) (int, error) {
	var pkt []byte
	select {
	case pkt = <-c.in:
	case <-c.closed:
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
		case pkt = <-c.in:
		default:
			return n, nil
		}
	}
}

func (c *countTUN) Write(bufs [][]byte, offset int) (int, error) {
	select {
	case c.written <- len(bufs):
		return len(bufs), nil
	case <-c.closed:
		return 0, tun.ErrClosed
	}
}

func (c *countTUN) MTU() (int, error)        { return ExitMTU(0), nil }
func (c *countTUN) Name() (string, error)    { return "count", nil }
func (c *countTUN) Events() <-chan tun.Event { return c.events }
func (c *countTUN) BatchSize() int           { return batchCap }
func (c *countTUN) Close() error {
	c.once.Do(func() { close(c.closed); close(c.events) })
	return nil
}

func newTwoClients(tb testing.TB) *twoClients {
	tb.Helper()
	pub := [2]netip.Addr{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")}
	inTunnel := [2]netip.Addr{netip.MustParseAddr("10.64.0.1"), netip.MustParseAddr("10.64.0.2")}
	inner := [2]string{"10.65.0.1/32", "10.65.0.2/32"}
	var links [2]*Pipe
	for i := range links {
		p, err := NewPipe(PipeConfig{Addrs: []netip.Addr{pub[i]}, MTU: 1500, Rand: newRand(byte(10 + i))})
		if err != nil {
			tb.Fatal(err)
		}
		links[i] = p
	}
	w := &twoClients{stop: make(chan struct{}), done: make(chan struct{})}
	var keys [2]noise.PrivateKey
	var clients [2]*Client
	var tuns [2]*countTUN
	for i := range clients {
		keys[i] = key(tb, byte(20+i))
		tuns[i] = newCountTUN()
		c, err := New(Config{
			Entry: device.Options{Bind: links[i].Bind(), Rand: newRand(byte(30 + i))},
			Exit:  device.Options{TUN: tuns[i], Rand: newRand(byte(40 + i))},
			Addrs: []netip.Addr{inTunnel[i]},
		})
		if err != nil {
			tb.Fatal(err)
		}
		clients[i] = c
		tb.Cleanup(func() { c.Close() })
	}
	for i, c := range clients {
		o := 1 - i
		applyTB(tb, c.Entry, keys[i], 50000, keys[o].PublicKey(), netip.AddrPortFrom(pub[o], 50000), inTunnel[o].String()+"/32")
		applyTB(tb, c.Exit, keys[i], 51820, keys[o].PublicKey(), netip.AddrPortFrom(inTunnel[o], 51820), inner[o])
	}
	go w.shuttle(links)
	tb.Cleanup(func() { close(w.stop); links[0].Close(); links[1].Close(); <-w.done })
	w.a, w.b, w.aTUN, w.bTUN = clients[0], clients[1], tuns[0], tuns[1]
	return w
}

// shuttle moves the outer packets between the two links' TUN sides.
func (w *twoClients) shuttle(links [2]*Pipe) {
	defer close(w.done)
	fin := make(chan struct{}, 2)
	for i := range links {
		go func(from, to *Pipe) {
			defer func() { fin <- struct{}{} }()
			bufs, sizes := make([][]byte, batchCap), make([]int, batchCap)
			out := make([][]byte, batchCap)
			for j := range bufs {
				bufs[j] = make([]byte, 2048)
			}
			for {
				n, err := from.TUN().Read(bufs, sizes, 0)
				if err != nil {
					return
				}
				for j := range n {
					out[j] = bufs[j][:sizes[j]]
				}
				if _, err := to.TUN().Write(out[:n], 0); err != nil {
					return
				}
			}
		}(links[i], links[1-i])
	}
	<-fin
	<-fin
}

func applyTB(tb testing.TB, d *device.Device, priv noise.PrivateKey, port uint16, peer noise.PublicKey, ep netip.AddrPort, allowed string) {
	tb.Helper()
	err := d.Apply(device.Config{PrivateKey: &priv, ListenPort: &port, Peers: []device.PeerConfig{{
		PublicKey: peer, Endpoint: &ep, AllowedIPs: []netip.Prefix{netip.MustParsePrefix(allowed)},
	}}})
	if err != nil {
		tb.Fatal(err)
	}
}

// BenchmarkTwoHops sends 1300-byte packets from one multihop client's
// exit TUN to the other's: through two exit devices, two entry devices
// and four pipes. One op is one packet.
func BenchmarkTwoHops(b *testing.B) {
	burst := twoHopsBursts(b)
	b.SetBytes(1300)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += 64 {
		burst(min(64, b.N-done))
	}
}

// TestTwoHopsAllocs checks that the whole composition allocates nothing
// per packet once warm (allowing for the odd timer or pool refill).
func TestTwoHopsAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	burst := twoHopsBursts(t)
	const packets = 64 * 100
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range packets / 64 {
		burst(64)
	}
	runtime.ReadMemStats(&after)
	n := after.Mallocs - before.Mallocs
	t.Logf("%d allocations for %d packets", n, packets)
	if n > packets/10 {
		t.Fatalf("%d allocations for %d packets", n, packets)
	}
}

// twoHopsBursts returns a function that sends n packets through a warm
// twoClients and waits for all of them.
func twoHopsBursts(tb testing.TB) func(n int) {
	w := newTwoClients(tb)
	pkt := udpPacket(tb, netip.MustParseAddr("10.65.0.1"), netip.MustParseAddr("10.65.0.2"), make([]byte, 1300-28))
	timeout := time.NewTimer(time.Hour)
	burst := func(n int) {
		timeout.Reset(10 * time.Second)
		for range n {
			w.aTUN.in <- pkt
		}
		for got := 0; got < n; {
			select {
			case k := <-w.bTUN.written:
				got += k
			case <-timeout.C:
				tb.Fatal("packet lost")
			}
		}
	}
	burst(1) // handshakes
	for range 50 {
		burst(64)
	}
	return burst
}

package device

import (
	"bytes"
	"encoding/binary"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"os"
	"reflect"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// testEpoch is where fake clocks start.
var testEpoch = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

// seededRand is a deterministic random source for tests.
func seededRand(seed uint64) io.Reader {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return rand.NewChaCha8(s)
}

type node struct {
	t   testing.TB
	d   *Device
	tun *tun.Memory
	// injected counts packets given to the TUN device.
	injected atomic.Uint64
	bind     transport.Bind
	priv     noise.PrivateKey
	pub      noise.PublicKey
	addr     netip.AddrPort // where it listens in the memory network
	clock    *FakeClock
}

// testWorkers alternates between the two pipelines by seed: crypto on
// worker goroutines, and crypto by the goroutine that read the batch.
func testWorkers(seed uint64) int {
	if seed%2 == 0 {
		return 2
	}
	return -1
}

// newNode starts a device on the memory network at addr:port with a fresh
// key. clock may be nil for the real clock.
func newNode(t testing.TB, nw *transport.Network, addr string, port uint16, clock *FakeClock, seed uint64) *node {
	t.Helper()
	return newNodeTUN(t, nw, addr, port, clock, seed, nil)
}

// newNodeTUN is newNode with the device's TUN made by wrap from the
// node's memory TUN (nil: the memory TUN itself).
func newNodeTUN(t testing.TB, nw *transport.Network, addr string, port uint16, clock *FakeClock, seed uint64, wrap func(*tun.Memory) tun.Device) *node {
	t.Helper()
	return newNodeWith(t, nw, addr, port, clock, seed, wrap, nil)
}

// newNodeOpts is newNode with the device's options changed by mod.
func newNodeOpts(t testing.TB, nw *transport.Network, addr string, port uint16, clock *FakeClock, seed uint64, mod func(*Options)) *node {
	t.Helper()
	return newNodeWith(t, nw, addr, port, clock, seed, nil, mod)
}

func newNodeWith(t testing.TB, nw *transport.Network, addr string, port uint16, clock *FakeClock, seed uint64, wrap func(*tun.Memory) tun.Device, mod func(*Options)) *node {
	t.Helper()
	r := seededRand(seed)
	priv, err := noise.GeneratePrivateKey(r)
	if err != nil {
		t.Fatal(err)
	}
	tn := tun.NewMemory("wg-test", 1420, 1024)
	a := netip.MustParseAddr(addr)
	b := nw.NewBind(a)
	opts := Options{TUN: tn, Bind: b, Rand: r, Workers: testWorkers(seed)}
	if wrap != nil {
		opts.TUN = wrap(tn)
	}
	if os.Getenv("DEVICE_TEST_LOG") != "" {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("dev", addr)
	}
	if clock != nil {
		opts.Clock = clock
	}
	if mod != nil {
		mod(&opts)
	}
	d, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	n := &node{t: t, d: d, tun: tn, bind: b, priv: priv, pub: priv.PublicKey(), clock: clock}
	cfg := Config{PrivateKey: &priv, ListenPort: &port}
	if err := d.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	n.addr = netip.AddrPortFrom(a, d.LocalPort())
	return n
}

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

// addPeer configures other as a peer of n with the given allowed IPs;
// withEndpoint sets other's address as the endpoint.
func (n *node) addPeer(other *node, withEndpoint bool, allowed ...string) {
	n.t.Helper()
	pc := PeerConfig{PublicKey: other.pub, AllowedIPs: prefixes(allowed...)}
	if withEndpoint {
		ep := other.addr
		pc.Endpoint = &ep
	}
	if err := n.d.Apply(Config{Peers: []PeerConfig{pc}}); err != nil {
		n.t.Fatal(err)
	}
}

// ipv4Packet builds a UDP/IPv4 packet with the given payload.
func ipv4Packet(src, dst string, payload []byte) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	total := 20 + 8 + len(payload)
	p := make([]byte, total)
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(total))
	p[8] = 64
	p[9] = 17
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[20:], 1234)
	binary.BigEndian.PutUint16(p[22:], 5678)
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

// ipv6Packet builds a UDP/IPv6 packet with the given payload.
func ipv6Packet(src, dst string, payload []byte) []byte {
	s, d := netip.MustParseAddr(src).As16(), netip.MustParseAddr(dst).As16()
	plen := 8 + len(payload)
	p := make([]byte, 40+plen)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(plen))
	p[6] = 17
	p[7] = 64
	copy(p[8:24], s[:])
	copy(p[24:40], d[:])
	binary.BigEndian.PutUint16(p[40:], 1234)
	binary.BigEndian.PutUint16(p[42:], 5678)
	binary.BigEndian.PutUint16(p[44:], uint16(plen))
	copy(p[48:], payload)
	return p
}

const waitTimeout = 10 * time.Second

// expectPacket waits for the next packet n writes to its TUN and checks it
// equals want byte for byte.
func (n *node) expectPacket(want []byte) {
	n.t.Helper()
	select {
	case got := <-n.tun.Outbound():
		if !bytes.Equal(got, want) {
			n.t.Fatalf("packet mismatch:\n got %x\nwant %x", got, want)
		}
		n.tun.Recycle(got)
	case <-time.After(waitTimeout):
		n.t.Fatalf("no packet arrived within %v", waitTimeout)
	}
}

// expectNoPacket checks that nothing reaches n's TUN within a short time.
func (n *node) expectNoPacket(within time.Duration) {
	n.t.Helper()
	select {
	case got := <-n.tun.Outbound():
		n.t.Fatalf("unexpected packet %x", got)
	case <-time.After(within):
	}
}

func (n *node) inject(pkt []byte) {
	n.t.Helper()
	n.injected.Add(1)
	if err := n.tun.Inject(pkt); err != nil {
		n.t.Fatal(err)
	}
}

// eventually polls cond until it holds or the test times out.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (n *node) peer(other *node) *Peer {
	n.t.Helper()
	p := n.d.peer(other.pub)
	if p == nil {
		n.t.Fatalf("peer %s not configured", other.pub)
	}
	return p
}

// checkGoroutines fails if the number of goroutines does not return to
// before within a few seconds.
func checkGoroutines(t testing.TB, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		n := runtime.NumGoroutine()
		if n <= before {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines leaked:\n%s", n-before, buf)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// setSendCounter moves a keypair's send counter, to reach the message
// limits without sending 2^60 packets.
func setSendCounter(t testing.TB, kp *noise.Keypair, v uint64) {
	t.Helper()
	f := reflect.ValueOf(kp).Elem().FieldByName("sendCounter")
	if !f.IsValid() || f.Type() != reflect.TypeFor[atomic.Uint64]() {
		t.Fatal("noise.Keypair has no sendCounter atomic.Uint64 field")
	}
	(*atomic.Uint64)(unsafe.Pointer(f.UnsafeAddr())).Store(v)
}

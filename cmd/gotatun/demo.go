package main

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// demoOptions are the flags of `gotatun demo`.
type demoOptions struct {
	bytes   int64         // payload bytes to push each way
	size    int           // IP packet size
	window  int           // packets in flight per direction
	timeout time.Duration // give up after this long
	mtu     int
	verbose bool
}

func runDemo(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o demoOptions
	var mb float64
	fs.Float64Var(&mb, "mb", 512, "megabytes of IP traffic to push each way")
	fs.IntVar(&o.size, "size", 1420, "size of each IP packet in bytes (64 to MTU)")
	fs.IntVar(&o.window, "window", 1024, "packets in flight per direction")
	fs.IntVar(&o.mtu, "mtu", 1420, "tunnel MTU")
	fs.DurationVar(&o.timeout, "timeout", 2*time.Minute, "fail if the transfer takes longer")
	fs.BoolVar(&o.verbose, "v", false, "log the devices' debug messages")
	usage := func(w io.Writer) {
		fs.SetOutput(w)
		fmt.Fprintf(w, "Usage: gotatun demo [flags]\n\n"+
			"Starts two WireGuard devices in this process, joined by real UDP sockets on\n"+
			"127.0.0.1 and by in-memory TUNs, performs the handshake, pushes IPv4/UDP\n"+
			"packets each way at once, checks every byte, and prints the handshake time,\n"+
			"throughput and per-peer counters. Needs no privileges. Exit status 0 only\n"+
			"if every packet arrived intact.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	// The flag package prints parse errors itself; usage is printed here,
	// once, to stdout when asked for and to stderr after an error.
	fs.Usage = func() {}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			usage(stdout)
			return 0
		}
		usage(stderr)
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "gotatun demo: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	o.bytes = int64(mb * (1 << 20))
	switch {
	case o.mtu < 576 || o.mtu > 65535-noise.MessageTransportOverhead-48:
		fmt.Fprintf(stderr, "gotatun demo: -mtu %d out of range 576..65000\n", o.mtu)
		return 2
	case o.size < demoHeaderLen+8 || o.size > o.mtu:
		fmt.Fprintf(stderr, "gotatun demo: -size %d out of range %d..%d (the MTU)\n", o.size, demoHeaderLen+8, o.mtu)
		return 2
	case o.bytes <= 0:
		fmt.Fprintln(stderr, "gotatun demo: -mb must be positive")
		return 2
	case o.window < 1:
		fmt.Fprintln(stderr, "gotatun demo: -window must be at least 1")
		return 2
	}
	if err := demo(o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "gotatun demo: FAILED: %v\n", err)
		return 1
	}
	return 0
}

// demoNode is one side of the demo: a device, its in-memory TUN, and its
// tunnel address.
type demoNode struct {
	name string
	dev  *device.Device
	tun  *tun.Memory
	addr netip.Addr
	key  noise.PrivateKey
	port uint16
}

func demo(o demoOptions, stdout, stderr io.Writer) error {
	level := slog.LevelError
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	a, err := newDemoNode("alice", netip.MustParseAddr("10.99.0.1"), o.mtu, log)
	if err != nil {
		return err
	}
	defer a.dev.Close()
	b, err := newDemoNode("bob", netip.MustParseAddr("10.99.0.2"), o.mtu, log)
	if err != nil {
		return err
	}
	defer b.dev.Close()
	if err := peerUp(a, b); err != nil {
		return err
	}
	if err := peerUp(b, a); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "alice %s  udp 127.0.0.1:%d  tunnel %s\n", a.key.PublicKey(), a.port, a.addr)
	fmt.Fprintf(stdout, "bob   %s  udp 127.0.0.1:%d  tunnel %s\n", b.key.PublicKey(), b.port, b.addr)

	// The first packet triggers the handshake; time until it arrives.
	start := time.Now()
	probe := buildDemoPacket(make([]byte, 64), a.addr, b.addr, 1<<63, 64)
	if err := a.tun.Inject(probe); err != nil {
		return err
	}
	select {
	case p := <-b.tun.Outbound():
		b.tun.Recycle(p)
	case <-time.After(10 * time.Second):
		return errors.New("no handshake within 10s")
	}
	hsTime := time.Since(start)
	fmt.Fprintf(stdout, "handshake complete, first packet delivered in %v\n", hsTime.Round(time.Microsecond))

	count := (o.bytes + int64(o.size) - 1) / int64(o.size)
	fmt.Fprintf(stdout, "pushing %d packets of %d bytes (%.1f MiB) each way at once…\n",
		count, o.size, float64(count*int64(o.size))/(1<<20))
	ab := newDemoFlow("alice → bob", a, b, count, o)
	ba := newDemoFlow("bob → alice", b, a, count, o)
	var wg sync.WaitGroup
	deadline := time.Now().Add(o.timeout)
	for _, f := range []*demoFlow{ab, ba} {
		wg.Add(2)
		go func() { defer wg.Done(); f.send(deadline) }()
		go func() { defer wg.Done(); f.receive(deadline) }()
	}
	wg.Wait()

	ok := true
	for _, f := range []*demoFlow{ab, ba} {
		secs := f.elapsed.Seconds()
		fmt.Fprintf(stdout, "%-12s %d/%d packets intact, %.1f MiB in %.2fs = %.0f Mbit/s (retransmitted %d, corrupt %d, duplicate %d)\n",
			f.name, f.got.Load(), count, float64(f.bytes.Load())/(1<<20), secs,
			float64(f.bytes.Load())*8/secs/1e6, f.resent.Load(), f.corrupt.Load(), f.dups.Load())
		if f.err != nil {
			fmt.Fprintf(stdout, "%-12s error: %v\n", f.name, f.err)
			ok = false
		}
		if f.got.Load() != count || f.corrupt.Load() != 0 {
			ok = false
		}
	}
	for _, n := range []*demoNode{a, b} {
		for _, p := range n.dev.State().Peers {
			hs := "never"
			if !p.LastHandshake.IsZero() {
				hs = p.LastHandshake.Format(time.RFC3339Nano)
			}
			fmt.Fprintf(stdout, "%s's peer %s: endpoint %s, rx %d bytes, tx %d bytes, last handshake %s\n",
				n.name, p.PublicKey.String()[:8]+"…", p.Endpoint, p.RxBytes, p.TxBytes, hs)
		}
	}
	if !ok {
		return errors.New("not every packet arrived intact")
	}
	fmt.Fprintln(stdout, "OK: every byte arrived intact")
	return nil
}

func newDemoNode(name string, addr netip.Addr, mtu int, log *slog.Logger) (*demoNode, error) {
	key, err := noise.GeneratePrivateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	t := tun.NewMemory(name, mtu, 4096)
	dev, err := device.New(device.Options{
		TUN:    t,
		Bind:   transport.NewDefaultBind(),
		Logger: log.With("dev", name),
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	port := uint16(0)
	if err := dev.Apply(device.Config{PrivateKey: &key, ListenPort: &port}); err != nil {
		dev.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &demoNode{name: name, dev: dev, tun: t, addr: addr, key: key, port: dev.State().ListenPort}, nil
}

// peerUp configures remote as a peer of n, reachable on loopback.
func peerUp(n, remote *demoNode) error {
	ep := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), remote.port)
	return n.dev.Apply(device.Config{Peers: []device.PeerConfig{{
		PublicKey:  remote.key.PublicKey(),
		Endpoint:   &ep,
		AllowedIPs: []netip.Prefix{netip.PrefixFrom(remote.addr, 32)},
	}}})
}

// demoFlow pushes numbered packets from one node to the other. Loopback UDP
// may drop datagrams when its buffers fill, so the sender keeps a bounded
// window in flight and resends what has not arrived after a pause; the
// receiver checks every byte of every packet.
type demoFlow struct {
	name     string
	from, to *demoNode
	count    int64
	o        demoOptions

	received []atomic.Bool // by sequence number
	got      atomic.Int64  // distinct packets received intact
	bytes    atomic.Int64
	resent   atomic.Int64
	corrupt  atomic.Int64
	dups     atomic.Int64
	elapsed  time.Duration
	err      error
	done     chan struct{}
}

func newDemoFlow(name string, from, to *demoNode, count int64, o demoOptions) *demoFlow {
	return &demoFlow{name: name, from: from, to: to, count: count, o: o,
		received: make([]atomic.Bool, count), done: make(chan struct{})}
}

func (f *demoFlow) send(deadline time.Time) {
	buf := make([]byte, f.o.size)
	start := time.Now()
	next := int64(0) // next new sequence number
	low := int64(0)  // every sequence below low has arrived
	lastProgress := time.Now()
	for {
		for low < f.count && f.received[low].Load() {
			low++
		}
		if low == f.count {
			break
		}
		if time.Now().After(deadline) {
			f.err = fmt.Errorf("timed out with %d of %d packets delivered", f.got.Load(), f.count)
			break
		}
		if next < f.count && next-low < int64(f.o.window) {
			pkt := buildDemoPacket(buf, f.from.addr, f.to.addr, uint64(next), f.o.size)
			if err := f.from.tun.Inject(pkt); err != nil {
				f.err = err
				break
			}
			next++
			lastProgress = time.Now()
			continue
		}
		// Window full or everything sent: wait for arrivals, resend the
		// missing ones if nothing moves for a while.
		select {
		case <-f.done:
		case <-time.After(time.Millisecond):
		}
		if time.Since(lastProgress) > 200*time.Millisecond {
			for s := low; s < next; s++ {
				if !f.received[s].Load() {
					pkt := buildDemoPacket(buf, f.from.addr, f.to.addr, uint64(s), f.o.size)
					if err := f.from.tun.Inject(pkt); err != nil {
						f.err = err
						return
					}
					f.resent.Add(1)
				}
			}
			lastProgress = time.Now()
		}
	}
	f.elapsed = time.Since(start)
}

func (f *demoFlow) receive(deadline time.Time) {
	want := make([]byte, f.o.size)
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for f.got.Load() < f.count {
		var p []byte
		select {
		case p = <-f.to.tun.Outbound():
		case <-timer.C:
			return
		}
		seq, ok := checkDemoPacket(p, want, f.from.addr, f.to.addr)
		switch {
		case !ok:
			// Not ours: the probe, or a corrupted packet.
			if !(len(p) >= demoHeaderLen && binary.BigEndian.Uint64(p[28:]) == 1<<63) {
				f.corrupt.Add(1)
			}
		case seq >= uint64(f.count):
			f.corrupt.Add(1)
		case f.received[seq].Swap(true):
			f.dups.Add(1)
		default:
			f.got.Add(1)
			f.bytes.Add(int64(len(p)))
			select {
			case f.done <- struct{}{}:
			default:
			}
		}
		f.to.tun.Recycle(p)
	}
}

// demoHeaderLen is the IPv4 and UDP headers plus the sequence number.
const demoHeaderLen = 20 + 8 + 8

// buildDemoPacket writes an IPv4/UDP packet of size bytes carrying seq and a
// payload derived from it into buf.
func buildDemoPacket(buf []byte, src, dst netip.Addr, seq uint64, size int) []byte {
	p := buf[:size]
	clear(p[:28])
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(size))
	p[8] = 64
	p[9] = 17 // UDP
	s4, d4 := src.As4(), dst.As4()
	copy(p[12:16], s4[:])
	copy(p[16:20], d4[:])
	binary.BigEndian.PutUint16(p[10:], ipv4HeaderChecksum(p[:20]))
	binary.BigEndian.PutUint16(p[20:], 40000)
	binary.BigEndian.PutUint16(p[22:], 40001)
	binary.BigEndian.PutUint16(p[24:], uint16(size-20))
	binary.BigEndian.PutUint64(p[28:], seq)
	fillDemoPayload(p[demoHeaderLen:], seq)
	return p
}

func fillDemoPayload(b []byte, seq uint64) {
	x := seq*0x9E3779B97F4A7C15 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x)
	}
}

// checkDemoPacket verifies every byte of p against what buildDemoPacket
// would have produced for its sequence number.
func checkDemoPacket(p, scratch []byte, src, dst netip.Addr) (uint64, bool) {
	if len(p) != len(scratch) {
		return 0, false
	}
	seq := binary.BigEndian.Uint64(p[28:])
	want := buildDemoPacket(scratch, src, dst, seq, len(scratch))
	for i := range p {
		if p[i] != want[i] {
			return seq, false
		}
	}
	return seq, true
}

func ipv4HeaderChecksum(h []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(h); i += 2 {
		sum += uint32(h[i])<<8 | uint32(h[i+1])
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

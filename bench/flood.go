//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/gotatun/gotatun/internal/netns"
	"github.com/gotatun/gotatun/noise"
)

// The handshake flood: a generator in namespace A sends initiations with a
// valid mac1 for the server's public key (and no mac2) from many addresses
// and ports at a fixed rate, while a legitimate client in A makes its first
// handshake with the server in B and then moves TCP through the tunnel.
const (
	groupFlood = "Handshake flood (mac1-valid initiations from many sources)"
	// floodAddrBase is the first extra source address on A's veth.
	floodAddrBase = "10.101.0.100"
	// floodBatch is the most initiations per sendmmsg.
	floodBatch = 64
	// floodPool is how many distinct initiations the generator cycles through.
	floodPool = 4096
)

func floodMetricDefs(p plan) []metricDef {
	return []metricDef{
		{ID: "flood_tcp", Short: "TCP under handshake flood", Name: fmt.Sprintf("Legitimate TCP, 1 stream, A→B, under a flood of %d mac1-valid initiations/s at the server", p.FloodRate),
			Unit: "Mbit/s", Higher: true, Group: groupFlood, Target: &target{Kind: "ratio_min", Value: 1, Text: "≥ 1.0× wireguard-go"}},
		{ID: "flood_tcp_base", Short: "Same TCP, no flood", Name: "The same TCP test without the flood (reference)", Unit: "Mbit/s", Higher: true, Group: groupFlood},
		{ID: "flood_first_hs", Short: "First handshake under flood", Name: fmt.Sprintf("Time to the legitimate client's first handshake under the flood (capped at %d s)", p.FloodHSCapSecs),
			Unit: "s", Group: groupFlood, Digits: 1},
		{ID: "flood_cpu", Short: "Server CPU under flood", Name: "Server daemon CPU under the flood (utime+stime per second)", Unit: "CPU s/s", Group: groupFlood, Digits: 2},
		{ID: "flood_rss", Short: "Server peak RSS under flood", Name: "Server daemon peak RSS (VmHWM) after the flood", Unit: "MiB", Group: groupFlood, Digits: 1},
		{ID: "flood_sent", Short: "Flood rate achieved", Name: "Initiations per second the generator achieved", Unit: "1/s", Higher: true, Group: groupFlood},
	}
}

// floodGen sends mac1-valid initiations from sockets in one namespace.
type floodGen struct {
	conns []*net.UDPConn
	pool  [][]byte
	rate  int
	sent  atomic.Uint64
	stop  chan struct{}
	wg    sync.WaitGroup
	start time.Time
	end   time.Time
}

// newFloodGen opens ports sockets on each of addrs in ns, connected to
// target, and prepares initiations for the server key pub.
func newFloodGen(ns string, addrs []netip.Addr, ports int, target netip.AddrPort, pub noise.PublicKey, rate int) (*floodGen, error) {
	g := &floodGen{rate: rate, stop: make(chan struct{})}
	err := netns.Do(ns, func() error {
		for _, a := range addrs {
			for range ports {
				c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)), net.UDPAddrFromAddrPort(target))
				if err != nil {
					return fmt.Errorf("flood socket on %v: %w", a, err)
				}
				g.conns = append(g.conns, c)
			}
		}
		return nil
	})
	if err != nil {
		g.close()
		return nil, err
	}
	gen := noise.NewCookieGenerator(pub)
	now := time.Now()
	for range floodPool {
		m := make([]byte, noise.MessageInitiationSize)
		if _, err := rand.Read(m); err != nil {
			g.close()
			return nil, err
		}
		m[0], m[1], m[2], m[3] = noise.MessageInitiationType, 0, 0, 0
		gen.AddMACs(m, now) // mac1 valid; no cookie, so mac2 is zero
		g.pool = append(g.pool, m)
	}
	return g, nil
}

// run sends at the fixed rate until stopped, in batches, round-robin over
// the sockets.
func (g *floodGen) run() {
	g.wg.Add(1)
	g.start = time.Now()
	go func() {
		defer g.wg.Done()
		pcs := make([]*ipv4.PacketConn, len(g.conns))
		for i, c := range g.conns {
			pcs[i] = ipv4.NewPacketConn(c)
		}
		msgs := make([]ipv4.Message, floodBatch)
		var next, sock int
		for {
			select {
			case <-g.stop:
				return
			default:
			}
			due := int64(time.Since(g.start).Seconds()*float64(g.rate)) - int64(g.sent.Load())
			if due <= 0 {
				time.Sleep(200 * time.Microsecond)
				continue
			}
			n := int(min(due, floodBatch))
			for i := range n {
				msgs[i].Buffers = g.pool[next : next+1]
				next = (next + 1) % len(g.pool)
			}
			k, err := pcs[sock].WriteBatch(msgs[:n], 0)
			sock = (sock + 1) % len(pcs)
			if err != nil && k <= 0 {
				// A full socket buffer or a refused port: count what was
				// sent and go on with the next socket.
				continue
			}
			g.sent.Add(uint64(k))
		}
	}()
}

// halt stops sending and returns the achieved rate.
func (g *floodGen) halt() float64 {
	select {
	case <-g.stop:
	default:
		close(g.stop)
	}
	g.wg.Wait()
	if g.end.IsZero() {
		g.end = time.Now()
	}
	secs := g.end.Sub(g.start).Seconds()
	if secs <= 0 {
		return 0
	}
	return float64(g.sent.Load()) / secs
}

func (g *floodGen) close() {
	for _, c := range g.conns {
		c.Close()
	}
	g.conns = nil
}

// floodAddrs returns the n extra source addresses of the generator.
func floodAddrs(n int) []netip.Addr {
	a := netip.MustParseAddr(floodAddrBase)
	out := make([]netip.Addr, 0, n)
	for range n {
		out = append(out, a)
		a = a.Next()
	}
	return out
}

// addFloodAddrs puts the generator's source addresses on A's veth.
func addFloodAddrs(ctx context.Context, t *topology, addrs []netip.Addr) error {
	for _, a := range addrs {
		if _, err := runCmd(ctx, "ip", "-n", t.nsA, "addr", "add", a.String()+"/24", "dev", t.vethA); err != nil {
			return fmt.Errorf("flood source address: %w", err)
		}
	}
	return nil
}

// measureFlood runs one round of the flood test for one implementation:
// the reference TCP test on a fresh tunnel, then a fresh server under the
// flood with a client whose first handshake happens during it.
func (nb *netBench) measureFlood(ctx context.Context, im *impl, round int) error {
	who := im.name
	p := nb.plan

	// Reference: the same TCP test, no flood.
	tun, err := startTunnel(ctx, nb.topo, im, round, nb.work)
	if err != nil {
		return err
	}
	r, err := nb.iperf(ctx, iperfSpec{dst: tunnelB, streams: 1, seconds: p.FloodTCPSeconds})
	tun.stop()
	if err != nil {
		return fmt.Errorf("%s flood reference TCP: %w", who, err)
	}
	nb.res.add("flood_tcp_base", who, mbps(r))
	nb.logf("  %s TCP without flood %8.0f Mbit/s", who, mbps(r))

	fl, err := startFloodPair(ctx, nb.topo, im, round, nb.work)
	if err != nil {
		return err
	}
	defer fl.stop()
	target := netip.AddrPortFrom(netip.MustParseAddr(underlayB), listenPort)
	gen, err := newFloodGen(nb.topo.nsA, floodAddrs(p.FloodSources), p.FloodPorts, target, fl.serverPub, p.FloodRate)
	if err != nil {
		return err
	}
	defer gen.close()
	cpu0, err := fl.server.cpuTicks()
	if err != nil {
		return err
	}
	gen.run()
	defer gen.halt()
	t0 := time.Now()
	// Let the flood reach its steady state before the client appears.
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(2 * time.Second):
	}
	hs, err := fl.connectClient(ctx, time.Duration(p.FloodHSCapSecs)*time.Second)
	if err != nil {
		return fmt.Errorf("%s under flood: %w", who, err)
	}
	var tcp float64
	if hs < 0 {
		nb.logf("  %s no handshake within %d s under the flood", who, p.FloodHSCapSecs)
		hs = float64(p.FloodHSCapSecs)
	} else {
		r, err := nb.iperf(ctx, iperfSpec{dst: tunnelB, streams: 1, seconds: p.FloodTCPSeconds})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			nb.logf("  %s TCP under flood failed: %v", who, err)
		} else {
			tcp = mbps(r)
		}
	}
	cpu1, err := fl.server.cpuTicks()
	if err != nil {
		return fmt.Errorf("%s server under flood: %w", who, fl.aliveErr(err))
	}
	elapsed := time.Since(t0).Seconds()
	sent := gen.halt()
	rss, err := fl.server.peakRSS()
	if err != nil {
		return fmt.Errorf("%s server under flood: %w", who, fl.aliveErr(err))
	}
	cpu := float64(cpu1-cpu0) / clockTicksPerSecond / elapsed
	nb.res.add("flood_tcp", who, tcp)
	nb.res.add("flood_first_hs", who, hs)
	nb.res.add("flood_cpu", who, cpu)
	nb.res.add("flood_rss", who, float64(rss)/(1<<20))
	nb.res.add("flood_sent", who, sent)
	nb.logf("  %s under flood (%.0f initiations/s sent): first handshake %.1f s, TCP %.0f Mbit/s, server CPU %.2f s/s, peak RSS %.1f MiB",
		who, sent, hs, tcp, cpu, float64(rss)/(1<<20))
	return nil
}

// floodPair is a server daemon in B, configured, and a client daemon in A
// without its peer until connectClient.
type floodPair struct {
	server, client *proc
	ifS, ifC       string
	nsA, nsB       string
	serverPub      noise.PublicKey
	clientPub      noise.PublicKey
}

func startFloodPair(ctx context.Context, t *topology, im *impl, round int, work string) (fp *floodPair, err error) {
	fp = &floodPair{ifS: t.tunName(im.tag, round+50, 'f'), ifC: t.tunName(im.tag, round+50, 'c')}
	defer func() {
		if err != nil {
			fp.stop()
		}
	}()
	var clientKey noise.PublicKey
	fp.client, clientKey, err = startDaemon(ctx, t.nsA, im.bin, fp.ifC, work)
	if err != nil {
		return fp, err
	}
	fp.clientPub = clientKey
	fp.server, fp.serverPub, err = startDaemon(ctx, t.nsB, im.bin, fp.ifS, work)
	if err != nil {
		return fp, err
	}
	if err := configure(ctx, t.nsB, fp.ifS, "listen-port", strconv.Itoa(listenPort),
		"peer", fp.clientPub.String(), "allowed-ips", tunnelA+"/32"); err != nil {
		return fp, err
	}
	if err := configure(ctx, t.nsA, fp.ifC, "listen-port", strconv.Itoa(listenPort)); err != nil {
		return fp, err
	}
	if err := ifUp(ctx, t.nsB, fp.ifS, tunnelB+"/24", tunnelMTU); err != nil {
		return fp, err
	}
	if err := ifUp(ctx, t.nsA, fp.ifC, tunnelA+"/24", tunnelMTU); err != nil {
		return fp, err
	}
	fp.nsA, fp.nsB = t.nsA, t.nsB
	return fp, nil
}

// connectClient gives the client its peer and sends traffic until the
// first handshake completes; it returns the seconds that took, or -1 if
// limit passed first.
func (fp *floodPair) connectClient(ctx context.Context, limit time.Duration) (float64, error) {
	start := time.Now()
	if err := configure(ctx, fp.nsA, fp.ifC, "peer", fp.serverPub.String(), "allowed-ips", tunnelB+"/32",
		"endpoint", underlayB+":"+strconv.Itoa(listenPort)); err != nil {
		return 0, err
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { // traffic that makes the client initiate, and retry
		for pctx.Err() == nil {
			_, _ = nsExec(pctx, fp.nsA, "ping", "-n", "-c", "1", "-W", "1", tunnelB)
		}
	}()
	for time.Since(start) < limit {
		out, err := nsExec(ctx, fp.nsA, "wg", "show", fp.ifC, "latest-handshakes")
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			return 0, fp.aliveErr(err)
		}
		if latestHandshake(out) > 0 {
			return time.Since(start).Seconds(), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return -1, nil
}

// latestHandshake parses `wg show IF latest-handshakes` (public key and
// unix seconds per line) and returns the latest time, 0 if none.
func latestHandshake(out []byte) int64 {
	var latest int64
	for line := range strings.Lines(string(out)) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		if v, err := strconv.ParseInt(f[1], 10, 64); err == nil && v > latest {
			latest = v
		}
	}
	return latest
}

// aliveErr names a dead daemon if one died, else returns err.
func (fp *floodPair) aliveErr(err error) error {
	for _, p := range []*proc{fp.server, fp.client} {
		if p != nil && p.exited() {
			return fmt.Errorf("%w: daemon exited (%v):\n%s", err, p.err, p.out.String())
		}
	}
	return err
}

func (fp *floodPair) stop() {
	for _, p := range []*proc{fp.client, fp.server} {
		if p != nil {
			p.stop()
		}
	}
	for _, f := range []string{fp.ifS, fp.ifC} {
		_ = os.Remove(filepath.Join(socketDir, f+".sock")) // normally removed by the daemon
	}
}

// runFloodRounds adds the generator's addresses and runs the flood rounds,
// the implementations interleaved.
func runFloodRounds(ctx context.Context, nb *netBench, impls []*impl) error {
	if err := addFloodAddrs(ctx, nb.topo, floodAddrs(nb.plan.FloodSources)); err != nil {
		return err
	}
	for round := 1; round <= nb.plan.Rounds; round++ {
		for _, im := range impls {
			nb.logf("round %d of %d: handshake flood, %s", round, nb.plan.Rounds, im.name)
			if err := nb.measureFlood(ctx, im, round); err != nil {
				return err
			}
		}
	}
	return nil
}

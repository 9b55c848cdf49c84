//go:build linux

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/gotatun/gotatun/noise"
)

// The multihop network: a client namespace C, an entry relay E and an
// exit relay X in a row, joined by two veth pairs. The relays are gotatun
// daemons in every variant, so the variants differ only on the client.
// E forwards; X routes the entry tunnel's addresses and C's underlay back
// through E, so single-hop tunnels from C to X work too.
const (
	mhUnderCE      = "10.111.0." // C .1, E .2
	mhUnderEX      = "10.112.0." // E .1, X .2
	mhEntryTunnel  = "10.113.0." // entry tunnel: relay .1, client .2
	mhExitTunnel   = "10.114.0." // exit tunnel: relay .1, client .2
	mhEntryMTU     = 1420
	mhExitMTU      = mhEntryMTU - 80
	groupMultihop  = "Multihop (client → entry relay → exit relay; relays are gotatun)"
	mhVariantSolo  = "single"
	mhVariantTwice = "multihop"
)

func multihopMetricDefs() []metricDef {
	return []metricDef{
		{ID: "mh_tcp1", Short: "Multihop TCP, 1 stream", Name: "Multihop TCP, 1 stream, client → exit relay (gotatun: one daemon with --entry; wireguard-go: two interfaces joined by kernel routing)",
			Unit: "Mbit/s", Higher: true, Group: groupMultihop, Target: &target{Kind: "ratio_min", Value: 1.5, Text: "≥ 1.5× wireguard-go"}},
		{ID: "mh_cpu_per_gb", Short: "Multihop client CPU s per GB", Name: "CPU time of the client's daemons per GB moved through both hops",
			Unit: "CPU s/GB", Group: groupMultihop, Target: &target{Kind: "ratio_max", Value: 0.6, Text: "≤ 0.6× wireguard-go"}, Digits: 2},
		{ID: "mh_single_tcp1", Short: "Single-hop TCP, same path", Name: "Single-hop TCP, 1 stream, client → exit relay over the same path",
			Unit: "Mbit/s", Higher: true, Group: groupMultihop},
		{ID: "mh_over_single", Short: "Multihop / single-hop TCP", Name: "Multihop TCP throughput as a fraction of the same implementation's single hop",
			Unit: "×", Higher: true, Group: groupMultihop, Target: &target{Kind: "abs_min", Value: 0.6, Text: "gotatun ≥ 0.6× its single hop"}, Digits: 2},
	}
}

// mhNet is one instance of the multihop network.
type mhNet struct {
	top        *topology // nsA = client, nsB = exit relay, for iperf3
	nsE        string
	veths      []string
	relays     []*proc
	relayNames []string
	clientKey  noise.PrivateKey
	keyFile    string
	entryPub   noise.PublicKey
	exitPub    noise.PublicKey
}

func newMHNet() *mhNet {
	t := newTopology()
	return &mhNet{
		top: &topology{id: t.id,
			nsA: fmt.Sprintf("%s%d-%s-c", nsPrefix, os.Getpid(), t.id),
			nsB: fmt.Sprintf("%s%d-%s-x", nsPrefix, os.Getpid(), t.id)},
		nsE:   fmt.Sprintf("%s%d-%s-e", nsPrefix, os.Getpid(), t.id),
		veths: []string{"gm" + t.id + "c", "gm" + t.id + "e", "gm" + t.id + "f", "gm" + t.id + "x"},
	}
}

// setup builds the namespaces and starts both relays.
func (m *mhNet) setup(ctx context.Context, gt *impl, work string) error {
	c, e, x := m.top.nsA, m.nsE, m.top.nsB
	v := m.veths
	steps := [][]string{
		{"netns", "add", c}, {"netns", "add", e}, {"netns", "add", x},
		{"link", "add", v[0], "netns", c, "type", "veth", "peer", "name", v[1], "netns", e},
		{"link", "add", v[2], "netns", e, "type", "veth", "peer", "name", v[3], "netns", x},
		{"-n", c, "addr", "add", mhUnderCE + "1/24", "dev", v[0]},
		{"-n", e, "addr", "add", mhUnderCE + "2/24", "dev", v[1]},
		{"-n", e, "addr", "add", mhUnderEX + "1/24", "dev", v[2]},
		{"-n", x, "addr", "add", mhUnderEX + "2/24", "dev", v[3]},
	}
	for i, ns := range []string{c, e, e, x} {
		steps = append(steps, []string{"-n", ns, "link", "set", v[i], "up"}, []string{"-n", ns, "link", "set", "lo", "up"})
	}
	steps = append(steps,
		[]string{"-n", c, "route", "add", mhUnderEX + "0/24", "via", mhUnderCE + "2"},
		[]string{"-n", x, "route", "add", mhUnderCE + "0/24", "via", mhUnderEX + "1"},
		[]string{"-n", x, "route", "add", mhEntryTunnel + "0/24", "via", mhUnderEX + "1"},
	)
	for _, s := range steps {
		if _, err := runCmd(ctx, "ip", s...); err != nil {
			return fmt.Errorf("creating the multihop network: %w", err)
		}
	}
	if _, err := nsExec(ctx, e, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
		return err
	}
	var err error
	if m.clientKey, err = noise.GeneratePrivateKey(rand.Reader); err != nil {
		return err
	}
	m.keyFile = filepath.Join(work, "mh-client.key")
	if err := os.WriteFile(m.keyFile, []byte(m.clientKey.Base64()+"\n"), 0o600); err != nil {
		return err
	}
	for _, r := range []struct {
		ns, tunnel string
		pub        *noise.PublicKey
	}{{e, mhEntryTunnel, &m.entryPub}, {x, mhExitTunnel, &m.exitPub}} {
		name := fmt.Sprintf("gm%sr%d", m.top.id, len(m.relays))
		p, pub, err := startDaemon(ctx, r.ns, gt.bin, name, work)
		if err != nil {
			return err
		}
		m.relays, m.relayNames, *r.pub = append(m.relays, p), append(m.relayNames, name), pub
		if err := configure(ctx, r.ns, name, "listen-port", strconv.Itoa(listenPort),
			"peer", m.clientKey.PublicKey().String(), "allowed-ips", r.tunnel+"2/32"); err != nil {
			return err
		}
		if err := ifUp(ctx, r.ns, name, r.tunnel+"1/24", mhEntryMTU); err != nil {
			return err
		}
	}
	return nil
}

// startDaemon starts bin -f [args...] name in ns with a new private key,
// and returns the process and the public key.
func startDaemon(ctx context.Context, ns, bin, name, work string, args ...string) (*proc, noise.PublicKey, error) {
	priv, err := noise.GeneratePrivateKey(rand.Reader)
	if err != nil {
		return nil, noise.PublicKey{}, err
	}
	_ = os.Remove(filepath.Join(socketDir, name+".sock")) // stale socket of a dead run, usually absent
	p, err := startProc(ns, bin, append(append([]string{"-f"}, args...), name)...)
	if err != nil {
		return nil, noise.PublicKey{}, err
	}
	if err := waitSocket(ctx, p, name); err != nil {
		p.stop()
		return nil, noise.PublicKey{}, err
	}
	key := filepath.Join(work, name+".key")
	if err := os.WriteFile(key, []byte(priv.Base64()+"\n"), 0o600); err != nil {
		p.stop()
		return nil, noise.PublicKey{}, err
	}
	if err := configure(ctx, ns, name, "private-key", key); err != nil {
		p.stop()
		return nil, noise.PublicKey{}, err
	}
	return p, priv.PublicKey(), nil
}

// configure runs wg set name args... in ns.
func configure(ctx context.Context, ns, name string, args ...string) error {
	if _, err := nsExec(ctx, ns, "wg", append([]string{"set", name}, args...)...); err != nil {
		return fmt.Errorf("configuring %s: %w", name, err)
	}
	return nil
}

// ifUp gives an interface an address (none if empty) and an MTU and
// brings it up.
func ifUp(ctx context.Context, ns, name, addr string, mtu int) error {
	if addr != "" {
		if _, err := runCmd(ctx, "ip", "-n", ns, "addr", "add", addr, "dev", name); err != nil {
			return err
		}
	}
	_, err := runCmd(ctx, "ip", "-n", ns, "link", "set", name, "mtu", strconv.Itoa(mtu), "up")
	return err
}

func (m *mhNet) teardown() {
	for _, p := range m.relays {
		p.stop()
	}
	for _, n := range m.relayNames {
		_ = os.Remove(filepath.Join(socketDir, n+".sock")) // normally removed by the daemon
	}
	m.top.teardown()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = runCmd(ctx, "ip", "netns", "del", m.nsE) // absent is fine
}

// client is the client side of one variant: its daemons and their names.
type client struct {
	procs []*proc
	names []string
}

func (cl *client) stop() {
	for _, p := range cl.procs {
		p.stop()
	}
	for _, n := range cl.names {
		_ = os.Remove(filepath.Join(socketDir, n+".sock"))
	}
}

func (cl *client) cpuTicks() (uint64, error) {
	var sum uint64
	for _, p := range cl.procs {
		v, err := p.cpuTicks()
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// startClient starts the client side of a variant: a single hop to the
// exit relay, or both hops: gotatun with --entry, or two wireguard-go
// interfaces with the exit relay's address routed into the entry one.
func (m *mhNet) startClient(ctx context.Context, im *impl, variant string, round int) (cl *client, err error) {
	c := m.top.nsA
	cl = &client{}
	defer func() {
		if err != nil {
			cl.stop()
		}
	}()
	base := fmt.Sprintf("gm%s%c%c%d", m.top.id, im.tag, variant[0], round%100)
	exitName, entryName := base+"x", base+"e"
	start := func(name string, args ...string) error {
		cl.names = append(cl.names, name)
		_ = os.Remove(filepath.Join(socketDir, name+".sock"))
		p, err := startProc(c, im.bin, append(append([]string{"-f"}, args...), name)...)
		if err != nil {
			return err
		}
		cl.procs = append(cl.procs, p)
		return waitSocket(ctx, p, name)
	}
	exitPeer := []string{"private-key", m.keyFile, "peer", m.exitPub.String(),
		"endpoint", mhUnderEX + "2:" + strconv.Itoa(listenPort), "allowed-ips", mhExitTunnel + "1/32"}
	entryPeer := []string{"private-key", m.keyFile, "peer", m.entryPub.String(),
		"endpoint", mhUnderCE + "2:" + strconv.Itoa(listenPort), "allowed-ips", mhUnderEX + "2/32"}
	exitMTU := mhExitMTU
	switch {
	case variant == mhVariantSolo:
		exitMTU = mhEntryMTU
		if err := start(exitName); err != nil {
			return cl, err
		}
	case im.name == nameGotatun:
		cl.names = append(cl.names, entryName)
		if err := start(exitName, "--entry", entryName, "--entry-address", mhEntryTunnel+"2"); err != nil {
			return cl, err
		}
		if err := configure(ctx, c, entryName, entryPeer...); err != nil {
			return cl, err
		}
	default:
		if err := start(entryName); err != nil {
			return cl, err
		}
		if err := start(exitName); err != nil {
			return cl, err
		}
		if err := configure(ctx, c, entryName, entryPeer...); err != nil {
			return cl, err
		}
		if err := ifUp(ctx, c, entryName, mhEntryTunnel+"2/32", mhEntryMTU); err != nil {
			return cl, err
		}
		if _, err := runCmd(ctx, "ip", "-n", c, "route", "add", mhUnderEX+"2/32", "dev", entryName); err != nil {
			return cl, err
		}
	}
	if err := configure(ctx, c, exitName, exitPeer...); err != nil {
		return cl, err
	}
	if err := ifUp(ctx, c, exitName, mhExitTunnel+"2/24", exitMTU); err != nil {
		return cl, err
	}
	if err := waitPing(ctx, c, mhExitTunnel+"1", 15*time.Second); err != nil {
		out := ""
		for _, p := range cl.procs {
			out += p.out.String()
		}
		return cl, fmt.Errorf("%s %s: no traffic to the exit relay: %w\n%s", im.name, variant, err, out)
	}
	return cl, nil
}

// relayTicks returns the CPU ticks of each relay daemon so far (0 for
// one that cannot be read).
func (m *mhNet) relayTicks() []uint64 {
	t := make([]uint64, len(m.relays))
	for i, p := range m.relays {
		t[i], _ = p.cpuTicks()
	}
	return t
}

// relayCPU describes the relays' CPU time per GB since before, for the
// log: the relays are gotatun in every variant, so it shows what each
// client variant costs them.
func (m *mhNet) relayCPU(before []uint64, bytes float64) string {
	if bytes <= 0 {
		return ""
	}
	out := ""
	for i, after := range m.relayTicks() {
		if after < before[i] {
			return ""
		}
		out += fmt.Sprintf(", %s relay %.2f s/GB", [...]string{"entry", "exit"}[min(i, 1)], float64(after-before[i])/clockTicksPerSecond/(bytes/1e9))
	}
	return out
}

// measureMultihop runs the multihop comparison in interleaved rounds.
func measureMultihop(ctx context.Context, p plan, gt, wg *impl, work string, logf func(string, ...any), res samples) (err error) {
	m := newMHNet()
	defer m.teardown()
	if err := m.setup(ctx, gt, work); err != nil {
		return err
	}
	nb := &netBench{plan: p, topo: m.top, work: work, logf: logf, res: samples{}}
	defer func() {
		if nb.server != nil {
			nb.server.stop()
		}
	}()
	for round := 1; round <= p.Rounds; round++ {
		tput := map[string]float64{}
		for _, im := range []*impl{wg, gt} {
			for _, variant := range []string{mhVariantTwice, mhVariantSolo} {
				cl, err := m.startClient(ctx, im, variant, round)
				if err != nil {
					return err
				}
				before, err := cl.cpuTicks()
				relaysBefore := m.relayTicks()
				if err == nil {
					var r iperfResult
					r, err = nb.iperf(ctx, iperfSpec{dst: mhExitTunnel + "1", streams: 1, seconds: p.TCPSeconds})
					if err == nil {
						var after uint64
						after, err = cl.cpuTicks()
						tput[im.name+variant] = mbps(r)
						logf("  multihop round %d: %s %s: %.0f Mbit/s%s", round, im.name, variant, mbps(r), m.relayCPU(relaysBefore, r.Bytes))
						if variant == mhVariantTwice && err == nil {
							if r.Bytes <= 0 {
								err = errors.New("no bytes moved")
							} else {
								perGB := float64(after-before) / clockTicksPerSecond / (r.Bytes / 1e9)
								res.add("mh_cpu_per_gb", im.name, perGB)
								logf("  multihop round %d: %s client CPU %.2f s/GB", round, im.name, perGB)
							}
						}
					}
				}
				cl.stop()
				if err != nil {
					return fmt.Errorf("multihop %s %s: %w", im.name, variant, err)
				}
			}
			res.add("mh_tcp1", im.name, tput[im.name+mhVariantTwice])
			res.add("mh_single_tcp1", im.name, tput[im.name+mhVariantSolo])
			if s := tput[im.name+mhVariantSolo]; s > 0 {
				res.add("mh_over_single", im.name, tput[im.name+mhVariantTwice]/s)
			}
		}
	}
	return nil
}

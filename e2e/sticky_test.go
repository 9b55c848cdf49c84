//go:build linux

package e2e

import (
	"net/netip"
	"strconv"
	"testing"
	"time"
)

// TestStickySource gives b's link a second address and points a at it:
// b's replies leave from the address a sent to, so a keeps that endpoint
// (replies from b's first address would move a there). Then the second
// address goes away: b's next send picks a valid source, a follows b back
// to its first address, and traffic flows both ways again. b, whose
// source address is under test, is gotatun: the pinned wireguard-go
// answers from its link's first address instead.
func TestStickySource(t *testing.T) {
	need(t)
	for _, impls := range [][2]string{{gotatun, gotatun}, {wireguardGo, gotatun}} {
		t.Run(impls[0]+"-"+impls[1], func(t *testing.T) {
			p := newPair(t, pairOpts{implA: impls[0], implB: impls[1], initiator: 'a'})
			ping(t, p.na, innerB4, 3)
			second := netip.MustParseAddr("192.168.77.3")
			p.nb.run("ip", "addr", "add", second.String()+"/24", "dev", p.link.nameB)
			to := netip.AddrPortFrom(second, portB)
			p.a.wg("set", p.a.name, "peer", p.b.pub.String(), "endpoint", to.String())
			ping(t, p.na, innerB4, 3)
			transfer(t, p.nb, p.na, innerA4, switchSize/4, nil)
			ping(t, p.nb, innerA4, 3)
			if got := p.a.peer(p.b.pub).endpoint; got != to.String() {
				t.Fatalf("b's replies did not leave from %s: a's endpoint for b is %s", second, got)
			}

			p.nb.run("ip", "addr", "del", second.String()+"/24", "dev", p.link.nameB)
			ping(t, p.nb, innerA4, 3)
			waitEndpoint(t, p.a, p.b, netip.AddrPortFrom(p.link.v4B, portB).String())
			ping(t, p.na, innerB4, 3)
			transfer(t, p.na, p.nb, innerB4, switchSize/4, nil)
		})
	}
}

// loopPair is two interfaces in one namespace talking over loopback. The
// tunnel carries packets to addresses behind the other side that are not
// local anywhere, so they cross the tunnel and are dropped at its far
// end; the transfer counters show what crossed.
type loopPair struct {
	ns   *netns
	a, b *iface
}

// Prefixes behind a and behind b.
const (
	behindA = "10.210.0.0/24"
	behindB = "10.211.0.0/24"
)

func newLoopPair(t *testing.T, implA, implB string, endpointB netip.AddrPort) *loopPair {
	t.Helper()
	lp := &loopPair{ns: newNetns(t)}
	lp.a = startIface(t, lp.ns, implA)
	lp.b = startIface(t, lp.ns, implB)
	lp.a.conf("setconf", lp.a.confText(portA, peerConf{pub: lp.b.pub, allowedIPs: []string{behindB}, endpoint: endpointB}))
	lp.b.conf("setconf", lp.b.confText(portB, peerConf{pub: lp.a.pub, allowedIPs: []string{behindA}}))
	for _, s := range []struct {
		i      *iface
		prefix string
	}{{lp.a, behindB}, {lp.b, behindA}} {
		lp.ns.run("ip", "link", "set", s.i.name, "up")
		lp.ns.run("ip", "route", "add", s.prefix, "dev", s.i.name)
	}
	return lp
}

// crosses sends pings from one side's tunnel to the other and checks they
// were received there, by the receiver's counters.
func (lp *loopPair) crosses(t *testing.T, from, to *iface, dst string) {
	t.Helper()
	before := to.peer(from.pub).rx
	deadline := time.Now().Add(10 * time.Second)
	for {
		// No replies come (dst is nowhere): -W bounds the wait.
		lp.ns.try("ping", "-n", "-q", "-c", "2", "-i", "0.05", "-W", "0.2", dst)
		if to.peer(from.pub).rx > before {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing from %s (%s) reached %s (%s)", from.name, from.impl, to.name, to.impl)
		}
	}
}

// TestStickySourceLoopback runs a session over 127.0.0.1, then removes
// 127.0.0.1 from lo while another loopback address stays: once a is
// pointed at that address, both directions work again, b's stale source
// address notwithstanding.
func TestStickySourceLoopback(t *testing.T) {
	need(t)
	for _, impls := range eitherEnd {
		t.Run(impls[0]+"-"+impls[1], func(t *testing.T) {
			lp := newLoopPair(t, impls[0], impls[1], netip.MustParseAddrPort("127.0.0.1:"+strconv.Itoa(portB)))
			lp.crosses(t, lp.a, lp.b, "10.211.0.9")
			lp.crosses(t, lp.b, lp.a, "10.210.0.9")
			if got, want := lp.b.peer(lp.a.pub).endpoint, "127.0.0.1:"+strconv.Itoa(portA); got != want {
				t.Fatalf("b's endpoint for a is %s, want %s", got, want)
			}

			other := netip.MustParseAddr("10.98.0.1")
			lp.ns.run("ip", "addr", "add", other.String()+"/32", "dev", "lo")
			lp.ns.run("ip", "addr", "del", "127.0.0.1/8", "dev", "lo")
			lp.a.wg("set", lp.a.name, "peer", lp.b.pub.String(), "endpoint", netip.AddrPortFrom(other, portB).String())
			lp.crosses(t, lp.a, lp.b, "10.211.0.9")
			waitEndpoint(t, lp.b, lp.a, netip.AddrPortFrom(other, portA).String())
			lp.crosses(t, lp.b, lp.a, "10.210.0.9")
			lp.crosses(t, lp.a, lp.b, "10.211.0.9")
		})
	}
}

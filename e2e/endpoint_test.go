//go:build linux

package e2e

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

// eitherEnd lists the pairs of implementations for behaviours both ends
// share: gotatun against itself and against wireguard-go on either side.
var eitherEnd = [][2]string{{gotatun, gotatun}, {gotatun, wireguardGo}, {wireguardGo, gotatun}}

// switchSize is the size of the transfers that carry a change midway.
const switchSize = 64 << 20

// waitEndpoint waits until i reports endpoint want for peer, and fails the
// test after a while.
func waitEndpoint(t *testing.T, i *iface, peer *iface, want string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		got := i.peer(peer.pub).endpoint
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s (%s): endpoint for its peer is %s, want %s", i.name, i.impl, got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pingUntil pings addr from n, once a second, until cond holds, and fails
// the test if it does not within a while; what says what it waits for.
func pingUntil(t *testing.T, n *netns, addr netip.Addr, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("[%s] pinging %s: still not %s", n.name, addr, what)
		}
		n.try("ping", "-n", "-q", "-c", "1", "-W", "1", addr.String())
	}
}

// TestEndpointFamilySwitch switches a's endpoint for b between b's IPv4
// and IPv6 address, on the one port b listens on for both, in the middle
// of TCP traffic both ways, which keeps flowing. While packets cross each
// side may roam back to where the other's last packet came from, as
// WireGuard does; once a sends first after the switch, b follows a to the
// other family and both keep talking there.
func TestEndpointFamilySwitch(t *testing.T) {
	need(t)
	for _, impls := range eitherEnd {
		t.Run(impls[0]+"-"+impls[1], func(t *testing.T) {
			p := newPair(t, pairOpts{implA: impls[0], implB: impls[1], initiator: 'a'})
			ping(t, p.na, innerB4, 3)
			for _, s := range []struct{ to, from netip.AddrPort }{
				{netip.AddrPortFrom(p.link.v6B, portB), netip.AddrPortFrom(p.link.v6A, portA)},
				{netip.AddrPortFrom(p.link.v4B, portB), netip.AddrPortFrom(p.link.v4A, portA)},
			} {
				set := func() { p.a.wg("set", p.a.name, "peer", p.b.pub.String(), "endpoint", s.to.String()) }
				tcpDuring(t, p.na, p.nb, innerB4, 3*time.Second, set)
				set()
				pingUntil(t, p.na, innerB6, func() bool { return p.b.peer(p.a.pub).endpoint == s.from.String() },
					"b's endpoint for a is "+s.from.String())
				if got := p.a.peer(p.b.pub).endpoint; got != s.to.String() {
					t.Fatalf("a's endpoint for b is %s, want %s", got, s.to)
				}
				transfer(t, p.nb, p.na, innerA6, switchSize/4, nil)
				ping(t, p.nb, innerA4, 3)
			}
		})
	}
}

// TestListenPortChange changes the listen port of either side while a
// session is up and traffic leaves that side: the other side learns the
// new port from the next authenticated packet and traffic continues both
// ways.
func TestListenPortChange(t *testing.T) {
	need(t)
	for _, impls := range eitherEnd {
		for _, side := range []byte{'a', 'b'} {
			t.Run(impls[0]+"-"+impls[1]+"/"+string(side)+"-moves", func(t *testing.T) {
				p := newPair(t, pairOpts{implA: impls[0], implB: impls[1], initiator: 'a'})
				ping(t, p.na, innerB4, 3)
				mover, other := p.a, p.b
				moverNS, otherNS := p.na, p.nb
				otherAddr, moverOuter := innerB4, p.link.v4A
				if side == 'b' {
					mover, other = p.b, p.a
					moverNS, otherNS = p.nb, p.na
					otherAddr, moverOuter = innerA4, p.link.v4B
				}
				newPort := 52000 + int(seq.Add(1))%1000
				tcpDuring(t, moverNS, otherNS, otherAddr, 3*time.Second, func() {
					mover.wg("set", mover.name, "listen-port", strconv.Itoa(newPort))
				})
				if got := strings.TrimSpace(mover.wg("show", mover.name, "listen-port")); got != strconv.Itoa(newPort) {
					t.Fatalf("%s listens on %s, want %d", mover.name, got, newPort)
				}
				waitEndpoint(t, other, mover, netip.AddrPortFrom(moverOuter, uint16(newPort)).String())
				transfer(t, otherNS, moverNS, innerAddrOf(p, mover), switchSize/4, nil)
				ping(t, otherNS, innerAddrOf(p, mover), 3)
				ping(t, moverNS, otherAddr, 3)
			})
		}
	}
}

// innerAddrOf returns the inner IPv4 address of i, one side of p.
func innerAddrOf(p *pair, i *iface) netip.Addr {
	if i == p.a {
		return innerA4
	}
	return innerB4
}

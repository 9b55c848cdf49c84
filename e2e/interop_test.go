//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Inner (tunnel) addresses of side a and side b.
var (
	innerA4 = netip.MustParseAddr("10.200.0.1")
	innerB4 = netip.MustParseAddr("10.200.0.2")
	innerA6 = netip.MustParseAddr("fd00:c8::1")
	innerB6 = netip.MustParseAddr("fd00:c8::2")
)

const (
	portA = 51820
	portB = 51821
	// transferSize is the size of the big TCP transfers.
	transferSize = 200 << 20
)

// pair is two namespaces joined by a veth, each with a WireGuard
// interface, the two peers of each other.
type pair struct {
	na, nb *netns
	link   *veth
	a, b   *iface
}

type pairOpts struct {
	implA, implB string
	// initiator is 'a' or 'b': only that side knows the other's endpoint,
	// so only it can start the handshake.
	initiator byte
	// outer6 puts the tunnel's UDP on IPv6.
	outer6 bool
	mtu    int
}

func newPair(t *testing.T, o pairOpts) *pair {
	t.Helper()
	if o.mtu == 0 {
		o.mtu = 1420
	}
	p := &pair{na: newNetns(t), nb: newNetns(t)}
	p.link = connect(t, p.na, p.nb, 77)
	p.a = startIface(t, p.na, o.implA)
	p.b = startIface(t, p.nb, o.implB)
	epA := netip.AddrPortFrom(p.link.v4A, portA)
	epB := netip.AddrPortFrom(p.link.v4B, portB)
	if o.outer6 {
		epA = netip.AddrPortFrom(p.link.v6A, portA)
		epB = netip.AddrPortFrom(p.link.v6B, portB)
	}
	peerB := peerConf{pub: p.b.pub, allowedIPs: []string{innerB4.String() + "/32", innerB6.String() + "/128"}}
	peerA := peerConf{pub: p.a.pub, allowedIPs: []string{innerA4.String() + "/32", innerA6.String() + "/128"}}
	switch o.initiator {
	case 'a':
		peerB.endpoint = epB
	case 'b':
		peerA.endpoint = epA
	default:
		peerB.endpoint, peerA.endpoint = epB, epA
	}
	p.a.conf("setconf", p.a.confText(portA, peerB))
	p.b.conf("setconf", p.b.confText(portB, peerA))
	p.a.up(o.mtu, innerA4.String()+"/24", innerA6.String()+"/64")
	p.b.up(o.mtu, innerB4.String()+"/24", innerB6.String()+"/64")
	return p
}

// handshake pings from the initiator, then checks that both sides report
// a handshake within the last moments.
func (p *pair) handshake(t *testing.T, initiator byte) {
	t.Helper()
	before := time.Now().Add(-time.Second).Unix()
	if initiator == 'b' {
		ping(t, p.nb, innerA4, 3)
	} else {
		ping(t, p.na, innerB4, 3)
	}
	after := time.Now().Add(time.Second).Unix()
	for _, s := range []struct {
		i    *iface
		peer *iface
	}{{p.a, p.b}, {p.b, p.a}} {
		hs := s.i.peer(s.peer.pub).lastHandshake
		if hs < before || hs > after {
			t.Fatalf("%s (%s): latest handshake %d, want within [%d, %d]", s.i.name, s.i.impl, hs, before, after)
		}
	}
}

func TestInterop(t *testing.T) {
	need(t)
	for _, impls := range [][2]string{{gotatun, gotatun}, {gotatun, wireguardGo}} {
		for _, init := range []byte{'a', 'b'} {
			name := fmt.Sprintf("%s-%s/%c-initiates", impls[0], impls[1], init)
			t.Run(name, func(t *testing.T) {
				p := newPair(t, pairOpts{implA: impls[0], implB: impls[1], initiator: init})
				// The responder cannot reach the initiator before the
				// handshake: it has no endpoint for it.
				if init == 'a' {
					noPing(t, p.nb, innerA4)
				} else {
					noPing(t, p.na, innerB4)
				}
				p.handshake(t, init)
				ping(t, p.na, innerB4, 5)
				ping(t, p.nb, innerA4, 5)
				ping(t, p.na, innerB6, 5)
				ping(t, p.nb, innerA6, 5)
				transfer(t, p.na, p.nb, innerB4, transferSize, nil)
				transfer(t, p.nb, p.na, innerA4, transferSize, nil)
				// The initiator's endpoint was learnt by the responder.
				resp, initIf, initNS := p.b, p.a, p.link.v4A
				if init == 'b' {
					resp, initIf, initNS = p.a, p.b, p.link.v4B
				}
				ep := resp.peer(initIf.pub).endpoint
				if !strings.HasPrefix(ep, initNS.String()+":") {
					t.Fatalf("%s learnt endpoint %q for the initiator, want %s:port", resp.name, ep, initNS)
				}
			})
		}
	}
}

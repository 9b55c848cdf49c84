//go:build linux

package e2e

import (
	"fmt"
	"net/netip"
	"strconv"
	"testing"
)

const roamSize = 100 << 20

// TestRoaming changes a's outer address, or its listening port, in the
// middle of a TCP transfer from a to b. b must follow a to its new
// endpoint and a must keep sending from wherever it now is; the transfer
// completes intact.
func TestRoaming(t *testing.T) {
	need(t)
	for _, impls := range [][2]string{{gotatun, gotatun}, {wireguardGo, gotatun}, {gotatun, wireguardGo}} {
		t.Run(fmt.Sprintf("address/%s-roams-%s", impls[0], impls[1]), func(t *testing.T) {
			p := newPair(t, pairOpts{implA: impls[0], implB: impls[1], initiator: 'a'})
			ping(t, p.na, innerB4, 3)
			// The new address takes over the subnet when the old one goes.
			p.na.run("sysctl", "-q", "-w", "net.ipv4.conf.all.promote_secondaries=1")
			p.na.run("sysctl", "-q", "-w", "net.ipv4.conf."+p.link.nameA+".promote_secondaries=1")
			newAddr := netip.MustParseAddr("192.168.77.3")
			transfer(t, p.na, p.nb, innerB4, roamSize, func() {
				p.na.run("ip", "addr", "add", newAddr.String()+"/24", "dev", p.link.nameA)
				p.na.run("ip", "addr", "del", p.link.v4A.String()+"/24", "dev", p.link.nameA)
			})
			want := netip.AddrPortFrom(newAddr, portA).String()
			if ep := p.b.peer(p.a.pub).endpoint; ep != want {
				t.Fatalf("b's endpoint for a is %s, want %s", ep, want)
			}
			ping(t, p.nb, innerA4, 3)
		})
	}
	t.Run("port/gotatun-roams-gotatun", func(t *testing.T) {
		p := newPair(t, pairOpts{implA: gotatun, implB: gotatun, initiator: 'a'})
		ping(t, p.na, innerB4, 3)
		const newPort = 51900
		transfer(t, p.na, p.nb, innerB4, roamSize, func() {
			p.a.wg("set", p.a.name, "listen-port", strconv.Itoa(newPort))
		})
		want := netip.AddrPortFrom(p.link.v4A, newPort).String()
		if ep := p.b.peer(p.a.pub).endpoint; ep != want {
			t.Fatalf("b's endpoint for a is %s, want %s", ep, want)
		}
		ping(t, p.nb, innerA4, 3)
	})
}

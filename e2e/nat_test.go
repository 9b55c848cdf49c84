//go:build linux

package e2e

import (
	"net/netip"
	"testing"
	"time"
)

// TestNAT puts a behind a router namespace that masquerades it (with
// random source ports and a short UDP conntrack timeout) and gives it a
// persistent keepalive of one second. When the router forgets the mapping,
// a's next keepalive gets a new one; b follows a to it and the session
// carries traffic both ways.
func TestNAT(t *testing.T) {
	need(t, "iptables", "conntrack")
	for _, impls := range eitherEnd {
		t.Run(impls[0]+"-"+impls[1], func(t *testing.T) {
			na, nr, nb := newNetns(t), newNetns(t), newNetns(t)
			inside := connect(t, na, nr, 81)  // a .1, router .2
			outside := connect(t, nr, nb, 82) // router .1, b .2
			na.run("ip", "route", "add", "default", "via", inside.v4B.String())
			nr.run("sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
			nr.run("iptables", "-t", "nat", "-A", "POSTROUTING", "-o", outside.nameA, "-p", "udp", "-j", "MASQUERADE", "--random")
			nr.run("sysctl", "-q", "-w", "net.netfilter.nf_conntrack_udp_timeout=3")
			nr.run("sysctl", "-q", "-w", "net.netfilter.nf_conntrack_udp_timeout_stream=3")

			p := &pair{na: na, nb: nb, link: outside}
			p.a = startIface(t, na, impls[0])
			p.b = startIface(t, nb, impls[1])
			p.a.conf("setconf", p.a.confText(portA, peerConf{pub: p.b.pub, keepalive: 1,
				allowedIPs: []string{innerB4.String() + "/32"}, endpoint: netip.AddrPortFrom(outside.v4B, portB)}))
			p.b.conf("setconf", p.b.confText(portB, peerConf{pub: p.a.pub, allowedIPs: []string{innerA4.String() + "/32"}}))
			p.a.up(1420, innerA4.String()+"/24")
			p.b.up(1420, innerB4.String()+"/24")

			ping(t, na, innerB4, 3)
			ping(t, nb, innerA4, 3)
			first := p.b.peer(p.a.pub).endpoint
			if ap, err := netip.ParseAddrPort(first); err != nil || ap.Addr() != outside.v4A {
				t.Fatalf("b sees a at %s, want the router's address %s", first, outside.v4A)
			}
			// The keepalive keeps the mapping although the timeout is
			// shorter than the pause.
			time.Sleep(4 * time.Second)
			ping(t, nb, innerA4, 3)

			for round := range 1 {
				before := p.b.peer(p.a.pub).endpoint
				nr.run("conntrack", "-F")
				deadline := time.Now().Add(15 * time.Second)
				for p.b.peer(p.a.pub).endpoint == before {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: b still sends to the forgotten mapping %s", round, before)
					}
					time.Sleep(200 * time.Millisecond)
				}
				t.Logf("round %d: mapping %s replaced by %s", round, before, p.b.peer(p.a.pub).endpoint)
				ping(t, nb, innerA4, 3)
				ping(t, na, innerB4, 3)
			}
			transfer(t, nb, na, innerA4, switchSize/4, nil)
		})
	}
}

//go:build linux

package e2e

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestAllowedIPsChangeUnderTraffic moves a prefix from one peer of hub b
// to another while b pings an address in it: b's packets to the prefix go
// to the new owner at once, and packets the old owner still sends from
// that prefix are dropped by b (and logged at the verbose level, where
// both implementations report them).
func TestAllowedIPsChangeUnderTraffic(t *testing.T) {
	need(t)
	for _, impls := range [][2]string{{gotatun, gotatun}, {gotatun, wireguardGo}, {wireguardGo, gotatun}} {
		hubImpl, spokeImpl := impls[0], impls[1]
		t.Run("hub-"+hubImpl+"/spokes-"+spokeImpl, func(t *testing.T) {
			na, nb, nc := newNetns(t), newNetns(t), newNetns(t)
			linkA := connect(t, na, nb, 83)
			linkC := connect(t, nc, nb, 84)
			a := startIface(t, na, spokeImpl)
			b := startIfaceEnv(t, nb, hubImpl, "LOG_LEVEL=verbose")
			c := startIface(t, nc, spokeImpl)
			const moved = "10.250.0.0/24"
			movedAddr := netip.MustParseAddr("10.250.0.1")
			innerC4 := netip.MustParseAddr("10.200.0.3")
			b.conf("setconf", b.confText(portB,
				peerConf{pub: a.pub, allowedIPs: []string{innerA4.String() + "/32", moved}},
				peerConf{pub: c.pub, allowedIPs: []string{innerC4.String() + "/32"}}))
			a.conf("setconf", a.confText(portA, peerConf{pub: b.pub, allowedIPs: []string{innerB4.String() + "/32"},
				endpoint: netip.AddrPortFrom(linkA.v4B, portB)}))
			c.conf("setconf", c.confText(portA, peerConf{pub: b.pub, allowedIPs: []string{innerB4.String() + "/32"},
				endpoint: netip.AddrPortFrom(linkC.v4B, portB)}))
			a.up(1420, innerA4.String()+"/24", movedAddr.String()+"/32")
			b.up(1420, innerB4.String()+"/24")
			c.up(1420, innerC4.String()+"/24", movedAddr.String()+"/32")
			nb.run("ip", "route", "add", moved, "dev", b.name)
			ping(t, na, innerB4, 2)
			ping(t, nc, innerB4, 2)
			ping(t, nb, movedAddr, 2)
			udpEchoServer(t, na, netip.AddrPortFrom(movedAddr, echoPort))
			udpEchoServer(t, nc, netip.AddrPortFrom(movedAddr, echoPort))

			// Traffic to the prefix while it moves.
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			flow := nb.command(ctx, "ping", "-n", "-q", "-i", "0.02", "-c", "100", movedAddr.String())
			if err := flow.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond)
			b.wg("set", b.name,
				"peer", a.pub.String(), "allowed-ips", innerA4.String()+"/32",
				"peer", c.pub.String(), "allowed-ips", innerC4.String()+"/32,"+moved)

			// Routing follows at once: the next datagrams go to c.
			const count, size = 20, 1000
			txA, txC := b.peer(a.pub).tx, b.peer(c.pub).tx
			udpPing(t, nb, netip.AddrPortFrom(movedAddr, echoPort), size, count)
			dA, dC := b.peer(a.pub).tx-txA, b.peer(c.pub).tx-txC
			t.Logf("after the move b sent %d bytes to a, %d to c", dA, dC)
			if dC < count*size || dA >= size {
				t.Fatalf("after the move b sent %d bytes to a and %d to c; want the %d datagrams to go to c", dA, dC, count)
			}
			flow.Wait()

			// a's packets from the prefix it lost are dropped by b.
			out, err := na.try("ping", "-n", "-c", "3", "-i", "0.2", "-W", "1", "-I", movedAddr.String(), innerB4.String())
			if err == nil {
				t.Fatalf("b answered a packet from %s, no longer a's:\n%s", movedAddr, out)
			}
			deadline := time.Now().Add(5 * time.Second)
			for !strings.Contains(b.out.String(), "disallowed source address") {
				if time.Now().After(deadline) {
					t.Fatalf("b (%s) did not report dropping packets from %s:\n%s", b.impl, movedAddr, b.out.String())
				}
				time.Sleep(100 * time.Millisecond)
			}
			// From its own address a still gets through.
			ping(t, na, innerB4, 3)
			ping(t, nc, innerB4, 3)
		})
	}
}

//go:build linux

package e2e

import (
	"encoding/json"
	"net/netip"
	"os/exec"
	"strings"
	"testing"
)

// linkStats is what `ip -s -j link show` reports of an interface.
type linkStats struct {
	MTU     int `json:"mtu"`
	Stats64 struct {
		RX struct {
			Bytes   uint64 `json:"bytes"`
			Packets uint64 `json:"packets"`
		} `json:"rx"`
		TX struct {
			Bytes   uint64 `json:"bytes"`
			Packets uint64 `json:"packets"`
		} `json:"tx"`
	} `json:"stats64"`
}

func (i *iface) linkStats() linkStats {
	i.t.Helper()
	out := i.ns.run("ip", "-s", "-j", "link", "show", "dev", i.name)
	var s []linkStats
	if err := json.Unmarshal([]byte(out), &s); err != nil || len(s) != 1 {
		i.t.Fatalf("ip -s -j link: %v\n%s", err, out)
	}
	return s[0]
}

// checkTSO checks, where ethtool is installed, that the kernel may hand the
// interface TCP segmentation offload super-packets.
func (i *iface) checkTSO() {
	i.t.Helper()
	if _, err := exec.LookPath("ethtool"); err != nil {
		i.t.Log("ethtool not installed; TSO state not shown")
		return
	}
	out := i.ns.run("ethtool", "-k", i.name)
	if !strings.Contains(out, "tcp-segmentation-offload: on") {
		i.t.Fatalf("%s: TSO is off:\n%s", i.name, out)
	}
}

// superPackets transfers n bytes from a to b through the tunnel and checks
// that the kernel handed a's TUN device TCP super-packets larger than the
// MTU (TSO on the way in), and that they arrived intact.
func superPackets(t *testing.T, p *pair, to netip.Addr, n int64) {
	t.Helper()
	p.a.checkTSO()
	p.b.checkTSO()
	before := p.a.linkStats()
	transfer(t, p.na, p.nb, to, n, nil)
	after := p.a.linkStats()
	pkts := after.Stats64.TX.Packets - before.Stats64.TX.Packets
	bytes := after.Stats64.TX.Bytes - before.Stats64.TX.Bytes
	if pkts == 0 {
		t.Fatal("no packets went through the TUN device")
	}
	avg := bytes / pkts
	t.Logf("sender TUN: %d packets, %d bytes, %d bytes/packet (MTU %d)", pkts, bytes, avg, after.MTU)
	if avg <= uint64(after.MTU) {
		t.Fatalf("no super-packets crossed the tunnel: %d bytes per packet with MTU %d", avg, after.MTU)
	}
	rs := p.b.linkStats()
	if rs.Stats64.RX.Packets > 0 {
		t.Logf("receiver TUN: %d bytes/packet written", rs.Stats64.RX.Bytes/rs.Stats64.RX.Packets)
	}
}

func TestTSOAtMTU1420(t *testing.T) {
	need(t)
	p := newPair(t, pairOpts{implA: gotatun, implB: gotatun, initiator: 'a', mtu: 1420})
	ping(t, p.na, innerB4, 3)
	superPackets(t, p, innerB4, transferSize)
}

func TestIPv6(t *testing.T) {
	need(t)
	for _, impls := range [][2]string{{gotatun, gotatun}, {gotatun, wireguardGo}} {
		t.Run(impls[0]+"-"+impls[1], func(t *testing.T) {
			p := newPair(t, pairOpts{implA: impls[0], implB: impls[1], initiator: 'a', outer6: true})
			ping(t, p.na, innerB6, 3)
			ping(t, p.nb, innerA6, 3)
			ping(t, p.na, innerB4, 3)
			ep := p.b.peer(p.a.pub).endpoint
			if want := "[" + p.link.v6A.String() + "]:"; !strings.HasPrefix(ep, want) {
				t.Fatalf("outer transport not IPv6: endpoint %q", ep)
			}
			if impls[1] == gotatun {
				superPackets(t, p, innerB6, transferSize)
			} else {
				transfer(t, p.na, p.nb, innerB6, transferSize, nil)
			}
			transfer(t, p.nb, p.na, innerA6, transferSize, nil)
		})
	}
}

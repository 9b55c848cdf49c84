//go:build linux

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	// outerMTU is the largest MTU a veth takes, standing in for loopback's
	// 65536: the same largest inner MTU over IPv4.
	outerMTU = 65535
	// maxInnerMTU is the largest inner MTU whose packets, sealed, fit one
	// UDP datagram over IPv4: 65535 less the IPv4 and UDP headers and the
	// 32 bytes WireGuard adds.
	maxInnerMTU = 65535 - 20 - 8 - 32
	// mtuTransfer is the size of each TCP transfer of the MTU tests.
	mtuTransfer = 4 << 20
	// echoPort is the UDP echo server's port.
	echoPort = 7007
)

// jumboPair is two gotatun interfaces over a veth of the largest MTU,
// with IPv4 inside and out, so that any inner MTU can be tried.
func jumboPair(t *testing.T, offloads bool, implB string) *pair {
	t.Helper()
	p := &pair{na: newNetns(t), nb: newNetns(t)}
	p.link = connect(t, p.na, p.nb, 78)
	p.na.run("ip", "link", "set", p.link.nameA, "mtu", strconv.Itoa(outerMTU))
	p.nb.run("ip", "link", "set", p.link.nameB, "mtu", strconv.Itoa(outerMTU))
	var env []string
	if !offloads {
		env = append(env, "GOTATUN_OFFLOADS=off")
	}
	p.a = startIfaceEnv(t, p.na, gotatun, env...)
	p.b = startIfaceEnv(t, p.nb, implB, env...)
	p.a.conf("setconf", p.a.confText(portA, peerConf{pub: p.b.pub, allowedIPs: []string{innerB4.String() + "/32"},
		endpoint: netip.AddrPortFrom(p.link.v4B, portB)}))
	p.b.conf("setconf", p.b.confText(portB, peerConf{pub: p.a.pub, allowedIPs: []string{innerA4.String() + "/32"}}))
	p.a.up(1420, innerA4.String()+"/24")
	p.b.up(1420, innerB4.String()+"/24")
	ping(t, p.na, innerB4, 1)
	udpEchoServer(t, p.na, netip.AddrPortFrom(innerA4, echoPort))
	udpEchoServer(t, p.nb, netip.AddrPortFrom(innerB4, echoPort))
	return p
}

// setMTU sets both interfaces' MTU.
func (p *pair) setMTU(mtu int) {
	p.na.run("ip", "link", "set", p.a.name, "mtu", strconv.Itoa(mtu))
	p.nb.run("ip", "link", "set", p.b.name, "mtu", strconv.Itoa(mtu))
}

// fullSizeUDP checks that UDP datagrams filling the MTU cross the tunnel
// both ways, each way started from either side.
func fullSizeUDP(t *testing.T, p *pair, mtu, count int) {
	t.Helper()
	size := mtu - 20 - 8
	udpPing(t, p.na, netip.AddrPortFrom(innerB4, echoPort), size, count)
	udpPing(t, p.nb, netip.AddrPortFrom(innerA4, echoPort), size, count)
}

// TestMTURange moves TCP and full-size UDP both ways at MTUs from the
// IPv4 minimum to the largest that fits one outer UDP datagram, with the
// kernel offloads and without.
func TestMTURange(t *testing.T) {
	need(t)
	for _, offloads := range []bool{true, false} {
		t.Run(fmt.Sprintf("offloads=%v", offloads), func(t *testing.T) {
			p := jumboPair(t, offloads, gotatun)
			for _, mtu := range []int{576, 1280, 1420, 9000, 34736, maxInnerMTU} {
				p.setMTU(mtu)
				t.Logf("MTU %d", mtu)
				fullSizeUDP(t, p, mtu, 20)
				transfer(t, p.na, p.nb, innerB4, mtuTransfer, nil)
				transfer(t, p.nb, p.na, innerA4, mtuTransfer, nil)
			}
		})
	}
}

// TestMTUChangeUnderLoad changes both interfaces' MTU while TCP flows
// both ways: each new size carries full-size UDP at once, and TCP keeps
// moving after the last change.
func TestMTUChangeUnderLoad(t *testing.T) {
	need(t, "iperf3", "ss")
	p := jumboPair(t, true, gotatun)
	tcpDuring(t, p.na, p.nb, innerB4, 15*time.Second, func() {
		for _, mtu := range []int{9000, maxInnerMTU, 1280, 34736, 576, 1420} {
			p.setMTU(mtu)
			// An echo crosses both ways.
			udpPing(t, p.na, netip.AddrPortFrom(innerB4, echoPort), mtu-20-8, 3)
		}
	})
}

// tcpDuring runs iperf3 TCP both ways at once between from and to (at
// toAddr) for d, calls change a second in, and fails the test unless TCP
// carried bytes both ways after change returned. If change takes too long
// to leave time for that, the test is skipped.
func tcpDuring(t *testing.T, from, to *netns, toAddr netip.Addr, d time.Duration, change func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d+2*time.Minute)
	defer cancel()
	defer iperfServer(ctx, t, to, toAddr)()
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		out, err := from.command(ctx, "iperf3", "-c", toAddr.String(), "--bidir", "-t", strconv.Itoa(int(d.Seconds())), "-i", "1", "-J").Output()
		done <- result{out, err}
	}()
	time.Sleep(time.Second)
	change()
	changed := time.Since(start)
	r := <-done
	if r.err != nil {
		t.Fatalf("iperf3: %v\n%s", r.err, r.out)
	}
	var res struct {
		Error     string `json:"error"`
		Intervals []struct {
			Streams []struct {
				End    float64 `json:"end"`
				Bytes  uint64  `json:"bytes"`
				Sender bool    `json:"sender"`
			} `json:"streams"`
		} `json:"intervals"`
	}
	if err := json.Unmarshal(r.out, &res); err != nil || res.Error != "" {
		t.Fatalf("iperf3 output: %v %s\n%s", err, res.Error, r.out)
	}
	if changed > d-time.Second {
		t.Skipf("the change took %v, longer than the transfer; nothing to check after it", changed)
	}
	// Bytes each way in the intervals that began after the change.
	var after [2]uint64
	for _, iv := range res.Intervals {
		for _, s := range iv.Streams {
			if s.End-1 >= changed.Seconds() {
				dir := 0
				if !s.Sender {
					dir = 1
				}
				after[dir] += s.Bytes
			}
		}
	}
	t.Logf("change done after %v; TCP bytes since: %d out, %d back", changed.Round(time.Millisecond), after[0], after[1])
	if after[0] == 0 || after[1] == 0 {
		t.Fatalf("TCP stalled after the change: %d bytes out, %d back\n%s", after[0], after[1], r.out)
	}
}

// TestLoopbackJumboMTU is the set-up the large-MTU defect was found in: two
// gotatun daemons in one namespace with the tunnel's UDP over loopback
// (MTU 65536), their interfaces moved into a namespace each, both set to
// MTU 34736, then to the largest MTU loopback allows over IPv4 and IPv6.
// TCP and full-size UDP cross both ways at each.
func TestLoopbackJumboMTU(t *testing.T) {
	need(t)
	outer := newNetns(t)
	p := &pair{na: newNetns(t), nb: newNetns(t)}
	p.a = startIface(t, outer, gotatun)
	p.b = startIface(t, outer, gotatun)
	for _, outer6 := range []bool{false, true} {
		lo := "127.0.0.1"
		if outer6 {
			lo = "::1"
		}
		epB := netip.AddrPortFrom(netip.MustParseAddr(lo), portB)
		p.a.conf("setconf", p.a.confText(portA, peerConf{pub: p.b.pub, allowedIPs: []string{innerB4.String() + "/32"}, endpoint: epB}))
		p.b.conf("setconf", p.b.confText(portB, peerConf{pub: p.a.pub, allowedIPs: []string{innerA4.String() + "/32"}}))
		if !outer6 {
			moveLink(t, outer, p.na, p.a.name, innerA4.String()+"/24")
			moveLink(t, outer, p.nb, p.b.name, innerB4.String()+"/24")
			udpEchoServer(t, p.na, netip.AddrPortFrom(innerA4, echoPort))
			udpEchoServer(t, p.nb, netip.AddrPortFrom(innerB4, echoPort))
		}
		largest := maxInnerMTU // the IPv4 total length limit
		if outer6 {
			largest = 65536 - 40 - 8 - 32 // loopback's MTU
		}
		for _, mtu := range []int{34736, largest} {
			t.Logf("outer %s, MTU %d", lo, mtu)
			p.setMTU(mtu)
			fullSizeUDP(t, p, mtu, 5)
			transfer(t, p.na, p.nb, innerB4, mtuTransfer, nil)
			transfer(t, p.nb, p.na, innerA4, mtuTransfer, nil)
		}
		if got := p.b.peer(p.a.pub).endpoint; !strings.Contains(got, lo) {
			t.Fatalf("b's endpoint for a is %s, not over %s", got, lo)
		}
	}
}

//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Addresses of the multihop tests: the client's address inside the entry
// tunnel (what the entry relay assigned) and inside the exit tunnel.
var (
	entryTun4, entryTun6 = netip.MustParseAddr("10.64.0.2"), netip.MustParseAddr("fd64::2")
	exitTun4             = netip.MustParseAddr("10.65.0.2")
	exitRelayTun4        = netip.MustParseAddr("10.65.0.1")
	exitRelayTun6        = netip.MustParseAddr("fd65::1")
)

const (
	relayPort = 51820
	entryMTU  = 1420
	exitMTU   = entryMTU - 80 // what the daemon gives the exit interface
)

// multihopNet is a client, an entry relay and an exit relay, each in its
// own namespace. The client reaches the entry relay over the outer link;
// only the entry relay reaches the exit relay. The entry relay forwards
// what its tunnel delivers; the exit relay routes the client's
// entry-tunnel addresses back through it, so it sees the client there.
type multihopNet struct {
	cli, entryNS, exitNS  *netns
	outer, middle         *veth
	entryRelay, exitRelay *iface
	client                *iface // the daemon; its interface is the exit device
	entryDev              *iface // the client's entry device: a socket, no interface
	entryEP, exitEP       netip.AddrPort
	entryConf             string // the entry relay's configuration
}

func newMultihop(t *testing.T, relays string, v6 bool) *multihopNet {
	t.Helper()
	m := &multihopNet{cli: newNetns(t), entryNS: newNetns(t), exitNS: newNetns(t)}
	m.outer = connect(t, m.cli, m.entryNS, 81)     // client .1, entry relay .2
	m.middle = connect(t, m.entryNS, m.exitNS, 82) // entry relay .1, exit relay .2
	m.entryNS.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
	m.entryNS.run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
	m.exitNS.run("ip", "route", "add", "10.64.0.0/24", "via", m.middle.v4A.String())
	m.exitNS.run("ip", "-6", "route", "add", "fd64::/64", "via", m.middle.v6A.String())
	m.entryEP = netip.AddrPortFrom(m.outer.v4B, relayPort)
	m.exitEP = netip.AddrPortFrom(m.middle.v4B, relayPort)
	if v6 {
		m.entryEP = netip.AddrPortFrom(m.outer.v6B, relayPort)
		m.exitEP = netip.AddrPortFrom(m.middle.v6B, relayPort)
	}

	key := newKey(t) // the client's, for both hops
	m.entryRelay = startIface(t, m.entryNS, relays)
	m.exitRelay = startIface(t, m.exitNS, relays)
	entryName := uniq("ge")
	m.client = startIfaceArgs(t, m.cli, gotatun, uniq("gx"), key, nil,
		"--entry", entryName, "--entry-address", entryTun4.String()+","+entryTun6.String())
	m.entryDev = &iface{t: t, ns: m.cli, name: entryName, impl: gotatun, priv: key, pub: key.PublicKey()}
	t.Cleanup(func() {
		m.client.stop()
		if _, err := os.Lstat(socketPath(entryName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("entry socket %s left behind (%v)", entryName, err)
		}
	})

	m.entryConf = m.entryRelay.confText(relayPort, peerConf{pub: key.PublicKey(), allowedIPs: []string{"10.64.0.2/32", "fd64::2/128"}})
	m.startEntryRelay()
	m.exitRelay.conf("setconf", m.exitRelay.confText(relayPort, peerConf{pub: key.PublicKey(), allowedIPs: []string{"10.65.0.2/32", "fd65::2/128"}}))
	m.exitRelay.up(exitMTU, "10.65.0.1/24", "fd65::1/64")
	host := netip.PrefixFrom(m.exitEP.Addr(), m.exitEP.Addr().BitLen())
	m.entryDev.conf("setconf", m.entryDev.confText(0, peerConf{pub: m.entryRelay.pub, endpoint: m.entryEP, allowedIPs: []string{host.String()}}))
	m.client.conf("setconf", m.client.confText(0, peerConf{pub: m.exitRelay.pub, endpoint: m.exitEP, allowedIPs: []string{"10.65.0.0/24", "fd65::/64"}}))
	if got := strings.TrimSpace(m.cli.run("cat", "/sys/class/net/"+m.client.name+"/mtu")); got != strconv.Itoa(exitMTU) {
		t.Errorf("exit interface MTU %s, want %d", got, exitMTU)
	}
	m.client.up(exitMTU, "10.65.0.2/24", "fd65::2/64")
	return m
}

// startEntryRelay configures the entry relay's interface.
func (m *multihopNet) startEntryRelay() {
	m.entryRelay.conf("setconf", m.entryConf)
	m.entryRelay.up(entryMTU, "10.64.0.1/24", "fd64::1/64")
}

// restartEntryRelay stops the entry relay's daemon and starts a new one
// with the same interface name and configuration.
func (m *multihopNet) restartEntryRelay(t *testing.T) {
	old := m.entryRelay
	old.stop()
	m.entryRelay = startIfaceArgs(t, m.entryNS, old.impl, old.name, old.priv, nil)
	m.startEntryRelay()
}

// capture runs tcpdump on the client's outer link until stop is called,
// which returns the pcap file's contents.
func capture(t *testing.T, n *netns, dev string) (stop func() []byte) {
	t.Helper()
	file := filepath.Join(t.TempDir(), "outer.pcap")
	cmd := n.command(context.Background(), "tcpdump", "-i", dev, "-n", "-s", "0", "-U", "-w", file)
	out := &syncBuffer{}
	cmd.Stderr = out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), "listening on") {
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump did not start: %s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func() []byte {
		time.Sleep(200 * time.Millisecond) // what is in flight
		cmd.Process.Signal(syscall.SIGTERM)
		<-exited
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

// secret is the payload pattern of the pings whose plaintext must never
// show on the outer link.
const secret = "6d756c7469686f702d736563726574" // "multihop-secret"

// checkOuter checks a capture of the client's outer link: only WireGuard
// UDP between the client and the entry relay, no packet larger than the
// entry MTU allows, no fragment, nothing addressed to or from the exit
// relay, and not the pings' plaintext. It returns the packets' count and
// how many data messages of each size the client sent.
func (m *multihopNet) checkOuter(t *testing.T, pcap []byte) (int, map[int]int) {
	t.Helper()
	if len(pcap) < 24 || binary.LittleEndian.Uint32(pcap) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(pcap[20:]) != 1 {
		t.Fatalf("not an Ethernet pcap file (%d bytes)", len(pcap))
	}
	plain, _ := hexBytes(secret)
	if bytes.Contains(pcap, plain) {
		t.Fatal("the inner plaintext shows on the outer link")
	}
	client, entry := m.outer.v4A, m.outer.v4B
	if m.entryEP.Addr().Is6() {
		client, entry = m.outer.v6A, m.outer.v6B
	}
	n, sent := 0, make(map[int]int)
	for rec := pcap[24:]; len(rec) >= 16; {
		size := int(binary.LittleEndian.Uint32(rec[8:]))
		if 16+size > len(rec) {
			t.Fatalf("truncated pcap record")
		}
		frame := rec[16 : 16+size]
		rec = rec[16+size:]
		if len(frame) < 14 {
			continue
		}
		ip := frame[14:]
		var src, dst netip.Addr
		var proto byte
		var l4 []byte
		switch binary.BigEndian.Uint16(frame[12:]) {
		case 0x0806: // ARP
			continue
		case 0x0800:
			hl := int(ip[0]&0xf) * 4
			src, dst, proto, l4 = netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20])), ip[9], ip[hl:]
			if binary.BigEndian.Uint16(ip[6:8])&0x3fff != 0 {
				t.Fatalf("IPv4 fragment on the outer link: %x", ip[:20])
			}
		case 0x86dd:
			src, dst, proto, l4 = netip.AddrFrom16([16]byte(ip[8:24])), netip.AddrFrom16([16]byte(ip[24:40])), ip[6], ip[40:]
			if proto == 0 && dst.IsMulticast() || proto == 58 && len(l4) > 0 && l4[0] >= 130 && l4[0] <= 143 {
				continue // neighbour discovery and multicast listener reports
			}
		default:
			t.Fatalf("unexpected frame type %#04x", binary.BigEndian.Uint16(frame[12:]))
		}
		if src == m.exitEP.Addr() || dst == m.exitEP.Addr() {
			t.Fatalf("the exit relay's address shows on the outer link: %v → %v", src, dst)
		}
		if proto != 17 || len(l4) < 12 {
			t.Fatalf("not UDP on the outer link: protocol %d, %v → %v", proto, src, dst)
		}
		sport, dport := binary.BigEndian.Uint16(l4[0:]), binary.BigEndian.Uint16(l4[2:])
		toRelay := src == client && dst == entry && dport == relayPort
		fromRelay := src == entry && dst == client && sport == relayPort
		if !toRelay && !fromRelay {
			t.Fatalf("UDP %v:%d → %v:%d is not between the client and the entry relay", src, sport, dst, dport)
		}
		if typ := l4[8]; typ < 1 || typ > 4 || l4[9]|l4[10]|l4[11] != 0 {
			t.Fatalf("not a WireGuard message: %x", l4[8:12])
		}
		// A UDP GSO super-packet shows here as one; its datagrams leave
		// as segments.
		seg := firstSegment(l4[8:])
		if seg > entryMTU+32 {
			t.Fatalf("%d-byte WireGuard message on the outer link, more than the entry MTU allows", seg)
		}
		if toRelay && l4[8] == 4 && seg > 32 { // data, not a keepalive
			sent[seg]++
		}
		n++
	}
	return n, sent
}

// firstSegment returns the length of the first WireGuard message in the
// payload of a UDP GSO super-packet: the next data message of the batch
// follows it with the same receiver index and the next counter.
func firstSegment(p []byte) int {
	if len(p) < 16 || p[0] != 4 {
		return len(p)
	}
	next := binary.LittleEndian.Uint64(p[8:16]) + 1
	for s := 32; s+16 <= len(p); s++ {
		if p[s] == 4 && bytes.Equal(p[s:s+8], p[:8]) && binary.LittleEndian.Uint64(p[s+8:s+16]) == next {
			return s
		}
	}
	return len(p)
}

func hexBytes(s string) ([]byte, error) {
	b := make([]byte, len(s)/2)
	for i := range b {
		v, err := strconv.ParseUint(s[2*i:2*i+2], 16, 8)
		if err != nil {
			return nil, err
		}
		b[i] = byte(v)
	}
	return b, nil
}

// pingDF pings addr from n with DF set and the given payload size and
// the secret pattern; it reports whether the pings were answered.
func pingDF(n *netns, addr netip.Addr, size int) (string, error) {
	return n.try("ping", "-n", "-q", "-c", "3", "-i", "0.1", "-W", "2", "-M", "do", "-p", secret, "-s", strconv.Itoa(size), addr.String())
}

// checkFullMTU pings with DF at the exit interface's full MTU, which must
// pass, and one byte more, which must fail at the client.
func (m *multihopNet) checkFullMTU(t *testing.T, addr netip.Addr) {
	t.Helper()
	hdr := 28
	if addr.Is6() {
		hdr = 48
	}
	if out, err := pingDF(m.cli, addr, exitMTU-hdr); err != nil || !strings.Contains(out, " 0% packet loss") {
		t.Fatalf("DF ping at the full exit MTU: %v\n%s", err, out)
	}
	if out, err := pingDF(m.cli, addr, exitMTU-hdr+1); err == nil {
		t.Fatalf("DF ping one byte over the exit MTU passed:\n%s", out)
	}
}

// checkExitSees checks that the exit relay sees the client at its
// entry-tunnel address.
func (m *multihopNet) checkExitSees(t *testing.T, want netip.Addr) {
	t.Helper()
	ep, err := netip.ParseAddrPort(m.exitRelay.peer(m.client.pub).endpoint)
	if err != nil || ep.Addr() != want {
		t.Fatalf("exit relay sees the client at %v (%v), want %v", ep, err, want)
	}
}

func TestMultihop(t *testing.T) {
	for _, relays := range []string{gotatun, wireguardGo} {
		t.Run(relays, func(t *testing.T) {
			need(t, "tcpdump")
			m := newMultihop(t, relays, false)
			stop := capture(t, m.cli, m.outer.nameA)
			ping(t, m.cli, exitRelayTun4, 3)
			m.checkFullMTU(t, exitRelayTun4)
			transfer(t, m.cli, m.exitNS, exitRelayTun4, 16<<20, nil)
			transfer(t, m.exitNS, m.cli, exitTun4, 8<<20, nil)
			if n, _ := m.checkOuter(t, stop()); n < 100 {
				t.Fatalf("only %d packets captured", n)
			}
			m.checkExitSees(t, entryTun4)
			// Both devices answer wg(8): by name, and in `wg show all`.
			if p := m.entryDev.peer(m.entryRelay.pub); p.lastHandshake == 0 || p.rx == 0 {
				t.Fatalf("entry device: %+v", p)
			}
			all := m.cli.run("wg", "show", "all", "latest-handshakes")
			for _, name := range []string{m.client.name, m.entryDev.name} {
				if !strings.Contains(all, name+"\t") {
					t.Fatalf("wg show all lacks %s:\n%s", name, all)
				}
			}
			if relays != gotatun {
				return
			}
			// Deleting the exit interface stops both devices.
			m.cli.run("ip", "link", "del", m.client.name)
			select {
			case <-m.client.exited:
			case <-time.After(10 * time.Second):
				t.Fatal("daemon still running after its interface was deleted")
			}
		})
	}
}

func TestMultihopIPv6(t *testing.T) {
	need(t, "tcpdump")
	m := newMultihop(t, gotatun, true)
	stop := capture(t, m.cli, m.outer.nameA)
	ping(t, m.cli, exitRelayTun6, 3)
	m.checkFullMTU(t, exitRelayTun6)
	transfer(t, m.cli, m.exitNS, exitRelayTun6, 8<<20, nil)
	m.checkOuter(t, stop())
	m.checkExitSees(t, entryTun6)
}

func TestMultihopEntryRestart(t *testing.T) {
	need(t)
	m := newMultihop(t, gotatun, false)
	ping(t, m.cli, exitRelayTun4, 1)
	before := m.entryDev.peer(m.entryRelay.pub).lastHandshake
	transfer(t, m.cli, m.exitNS, exitRelayTun4, 24<<20, func() { m.restartEntryRelay(t) })
	ping(t, m.cli, exitRelayTun4, 3)
	if after := m.entryDev.peer(m.entryRelay.pub).lastHandshake; after <= before {
		t.Fatalf("no new entry handshake after the restart (%d, before %d)", after, before)
	}
}

// With DAITA on the entry peer (set through the entry device's socket),
// every data message on the client's outer link has one size.
func TestMultihopDAITA(t *testing.T) {
	need(t, "tcpdump")
	m := newMultihop(t, gotatun, false)
	m.cli.run(gotatunBin(), "daita", "set", m.entryDev.name, m.entryRelay.pub.String(), "--machine", "02eNpjYEAHjOgCAAA0AAI=")
	stop := capture(t, m.cli, m.outer.nameA)
	for _, size := range []string{"10", "500", "1000"} {
		if out, err := m.cli.try("ping", "-n", "-c", "2", "-i", "0.2", "-W", "5", "-s", size, exitRelayTun4.String()); err != nil {
			t.Fatalf("ping -s %s: %v\n%s", size, err, out)
		}
	}
	transfer(t, m.cli, m.exitNS, exitRelayTun4, 4<<20, nil)
	_, sent := m.checkOuter(t, stop())
	if want := entryMTU + 32; len(sent) != 1 || sent[want] == 0 {
		t.Fatalf("data message sizes to the entry relay %v, want all %d", sent, want)
	}
}

// With a smaller MTU between the relays, the exit hop's full-size IPv4
// datagrams are fragmented there (by the entry relay's forwarding one
// way, by the exit relay's kernel the other), the entry relay tunnels the
// pieces to the client, and the client joins them again. The exit relay
// sends bursts with UDP segmentation offload, which the kernel refuses
// for segments over the path MTU, so it must fall back to plain sends,
// which the kernel fragments. (Over IPv6 only the source may fragment,
// so there the link between the relays must carry the entry MTU.)
func TestMultihopFragments(t *testing.T) {
	need(t)
	m := newMultihop(t, gotatun, false)
	m.entryNS.run("ip", "link", "set", m.middle.nameA, "mtu", "1280")
	m.exitNS.run("ip", "link", "set", m.middle.nameB, "mtu", "1280")
	ping(t, m.cli, exitRelayTun4, 1)
	m.checkFullMTU(t, exitRelayTun4)
	transfer(t, m.exitNS, m.cli, exitTun4, 4<<20, nil)
	transfer(t, m.cli, m.exitNS, exitRelayTun4, 4<<20, nil)
}

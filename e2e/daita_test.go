//go:build linux

package e2e

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/gotatun/gotatun/internal/testmachines"
)

// mullvadMachines writes the Mullvad DAITA machines of the test data to a
// file, one a line, for `gotatun daita set --machine @FILE`.
func mullvadMachines(t *testing.T) string {
	t.Helper()
	out, err := testmachines.Mullvad("../maybenot/testdata/machines-public.txt")
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "machines")
	if err := os.WriteFile(f, []byte(strings.Join(out, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// TestDAITA: two daemons, DAITA turned on at both ends through their UAPI
// sockets with `gotatun daita set`: every data message on the wire, both
// ways, is the MTU plus 32 bytes (keepalives aside), traffic flows, wg(8)
// still reads the interfaces, and `gotatun daita show` reports the
// counters.
func TestDAITA(t *testing.T) {
	need(t, "tcpdump")
	const mtu = 1420
	p := newPair(t, pairOpts{implA: gotatun, implB: gotatun})
	p.handshake(t, 'a')
	machines := mullvadMachines(t)
	for _, s := range []struct {
		i, peer *iface
	}{{p.a, p.b}, {p.b, p.a}} {
		code, out := runGotatun(t, s.i.ns, nil, "daita", "set", s.i.name, s.peer.pub.String(), "--machine", "@"+machines, "--max-decoy-frac", "0.5")
		if code != 0 {
			t.Fatalf("daita set %s: %d %s", s.i.name, code, out)
		}
	}
	stop := capture(t, p.na, p.link.nameA)
	ping(t, p.na, innerB4, 5)
	ping(t, p.nb, innerA6, 5)
	if out, err := p.na.try("ping", "-n", "-q", "-c", "3", "-i", "0.1", "-s", "1000", innerB4.String()); err != nil {
		t.Fatalf("ping -s 1000: %v\n%s", err, out)
	}
	transfer(t, p.na, p.nb, innerB4, 8<<20, nil)
	transfer(t, p.nb, p.na, innerA4, 8<<20, nil)
	pcap := stop()

	sizes := daitaWireSizes(t, pcap, p.link.v4A, p.link.v4B)
	want := mtu + 32
	t.Logf("data messages by size: %v", sizes)
	for dir, m := range sizes {
		for size, n := range m {
			if size != want {
				t.Errorf("%s: %d data messages of %d bytes, want all %d: %v", dir, n, size, want, m)
			}
		}
		if m[want] < 100 {
			t.Errorf("%s: only %d data messages seen", dir, m[want])
		}
	}

	// wg(8) ignores the DAITA lines.
	for _, i := range []*iface{p.a, p.b} {
		if out := i.wg("show", i.name); !strings.Contains(out, "latest handshake") || !strings.Contains(out, "transfer:") {
			t.Fatalf("wg show %s:\n%s", i.name, out)
		}
		i.peers()
	}
	// The counters: padding both ways; decoys from the Mullvad machines,
	// sent by one side and received by the other.
	counters := map[*iface]map[string]uint64{}
	for _, i := range []*iface{p.a, p.b} {
		code, out := runGotatun(t, i.ns, nil, "daita", "show", i.name)
		if code != 0 || !strings.Contains(out, "daita: on, 3 machine(s), max decoy frac 0.5") {
			t.Fatalf("daita show %s: %d\n%s", i.name, code, out)
		}
		counters[i] = showCounters(t, out)
	}
	a, b := counters[p.a], counters[p.b]
	if a["tx padding"] == 0 || b["tx padding"] == 0 || a["rx padding"] == 0 || b["rx padding"] == 0 {
		t.Errorf("padding counters: a %v, b %v", a, b)
	}
	t.Logf("counters: a %v, b %v", a, b)
	if a["tx decoys"]+b["tx decoys"] == 0 {
		t.Errorf("no decoys: a %v, b %v", a, b)
	}
	// What one side sent, the other received (or it is still on its way).
	if b["rx decoys"] > a["tx decoys"] || a["rx decoys"] > b["tx decoys"] {
		t.Errorf("more decoys received than sent: a %v, b %v", a, b)
	}
}

var showRE = regexp.MustCompile(`(padding|decoys): (\d+) B sent, (\d+) B received`)

func showCounters(t *testing.T, out string) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	for _, g := range showRE.FindAllStringSubmatch(out, -1) {
		tx, _ := strconv.ParseUint(g[2], 10, 64)
		rx, _ := strconv.ParseUint(g[3], 10, 64)
		m["tx "+g[1]], m["rx "+g[1]] = tx, rx
	}
	if len(m) != 4 {
		t.Fatalf("no counters in:\n%s", out)
	}
	return m
}

// daitaWireSizes counts the WireGuard data messages (keepalives aside)
// between a and b in an Ethernet pcap, by size, for each direction. A UDP
// GSO super-packet counts as its segments.
func daitaWireSizes(t *testing.T, pcap []byte, a, b netip.Addr) map[string]map[int]int {
	t.Helper()
	if len(pcap) < 24 || binary.LittleEndian.Uint32(pcap) != 0xa1b2c3d4 || binary.LittleEndian.Uint32(pcap[20:]) != 1 {
		t.Fatalf("not an Ethernet pcap file (%d bytes)", len(pcap))
	}
	out := map[string]map[int]int{"a to b": {}, "b to a": {}}
	for rec := pcap[24:]; len(rec) >= 16; {
		size := int(binary.LittleEndian.Uint32(rec[8:]))
		if 16+size > len(rec) {
			t.Fatal("truncated pcap record")
		}
		frame := rec[16 : 16+size]
		rec = rec[16+size:]
		if len(frame) < 14+20 || binary.BigEndian.Uint16(frame[12:]) != 0x0800 {
			continue
		}
		ip := frame[14:]
		src, dst := netip.AddrFrom4([4]byte(ip[12:16])), netip.AddrFrom4([4]byte(ip[16:20]))
		if ip[9] != 17 {
			continue
		}
		dir := ""
		switch {
		case src == a && dst == b:
			dir = "a to b"
		case src == b && dst == a:
			dir = "b to a"
		default:
			continue
		}
		wg := ip[int(ip[0]&0xf)*4+8:]
		if len(wg) < 32 || wg[0] != 4 {
			continue // handshake and cookie messages
		}
		for _, seg := range dataSegments(wg) {
			if seg != 32 {
				out[dir][seg]++
			}
		}
	}
	return out
}

// dataSegments splits a UDP payload of transport data messages (one, or a
// GSO super-packet of equal segments with a shorter last one) into their
// sizes: a segment starts where type 4 and the receiver index repeat.
func dataSegments(p []byte) []int {
	var sizes []int
	for len(p) > 0 {
		n := len(p)
		for s := 32; s+8 <= len(p); s++ {
			if bytes.Equal(p[s:s+8], p[:8]) {
				n = s
				break
			}
		}
		sizes = append(sizes, n)
		p = p[n:]
	}
	return sizes
}

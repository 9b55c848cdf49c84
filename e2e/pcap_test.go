//go:build linux

package e2e

import (
	"encoding/binary"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotatun/gotatun/pcap"
)

// TestPcapCapture runs the daemon with --pcap against wireguard-go, pings
// through the tunnel and reads the capture back, with package pcap and with
// tcpdump -r.
func TestPcapCapture(t *testing.T) {
	need(t, "tcpdump")
	na, nb := newNetns(t), newNetns(t)
	link := connect(t, na, nb, 80)
	file := filepath.Join(t.TempDir(), "tunnel.pcap")
	a := startIfaceArgs(t, na, gotatun, uniq("g"), newKey(t), nil, "--pcap", file)
	b := startIface(t, nb, wireguardGo)
	a.conf("setconf", a.confText(portA, peerConf{pub: b.pub, endpoint: netip.AddrPortFrom(link.v4B, portB), allowedIPs: []string{innerB4.String() + "/32"}}))
	b.conf("setconf", b.confText(portB, peerConf{pub: a.pub, allowedIPs: []string{innerA4.String() + "/32"}}))
	a.up(1420, innerA4.String()+"/24")
	b.up(1420, innerB4.String()+"/24")
	ping(t, na, innerB4, 5)
	a.stop() // flushes the capture

	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, err := pcap.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if r.LinkType() != pcap.LinkTypeRaw {
		t.Fatalf("link type %d", r.LinkType())
	}
	var requests, replies int
	for {
		p, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		d := p.Data
		if len(d) < 28 || d[0]>>4 != 4 || d[9] != 1 {
			continue
		}
		src, dst := netip.AddrFrom4([4]byte(d[12:16])), netip.AddrFrom4([4]byte(d[16:20]))
		icmp := d[int(d[0]&0xf)*4:]
		switch {
		case icmp[0] == 8 && src == innerA4 && dst == innerB4:
			requests++
		case icmp[0] == 0 && src == innerB4 && dst == innerA4:
			replies++
		}
		if total := int(binary.BigEndian.Uint16(d[2:])); total != len(d) {
			t.Fatalf("captured %d bytes of a %d-byte packet", len(d), total)
		}
	}
	if requests < 5 || replies < 5 {
		t.Fatalf("capture holds %d echo requests and %d replies, want at least 5 each", requests, replies)
	}

	out, err := exec.Command("tcpdump", "-n", "-r", file).CombinedOutput()
	if err != nil {
		t.Fatalf("tcpdump -r: %v\n%s", err, out)
	}
	for _, want := range []string{
		innerA4.String() + " > " + innerB4.String() + ": ICMP echo request",
		innerB4.String() + " > " + innerA4.String() + ": ICMP echo reply",
	} {
		if !strings.Contains(string(out), want) {
			t.Fatalf("tcpdump output lacks %q:\n%s", want, out)
		}
	}
}

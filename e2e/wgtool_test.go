//go:build linux

package e2e

import (
	"bufio"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
)

// star is a with two peers, b and c, each in its own namespace.
type star struct {
	na, nb, nc *netns
	a, b, c    *iface
}

var innerC4 = netip.MustParseAddr("10.200.0.3")

func newStar(t *testing.T) *star {
	t.Helper()
	s := &star{na: newNetns(t), nb: newNetns(t), nc: newNetns(t)}
	connect(t, s.na, s.nb, 77)
	connect(t, s.na, s.nc, 78)
	s.a = startIface(t, s.na, gotatun)
	s.b = startIface(t, s.nb, gotatun)
	s.c = startIface(t, s.nc, gotatun)
	s.a.conf("setconf", s.confA(true))
	peerA := peerConf{pub: s.a.pub, allowedIPs: []string{innerA4.String() + "/32"}}
	s.b.conf("setconf", s.b.confText(portB, peerA))
	s.c.conf("setconf", s.c.confText(portB, peerA))
	s.a.up(1420, innerA4.String()+"/24")
	s.b.up(1420, innerB4.String()+"/24")
	s.c.up(1420, innerC4.String()+"/24")
	return s
}

// confA is a's configuration, with or without its peer c.
func (s *star) confA(withC bool) string {
	peers := []peerConf{{pub: s.b.pub, allowedIPs: []string{innerB4.String() + "/32"}, endpoint: netip.MustParseAddrPort(fmt.Sprintf("192.168.77.2:%d", portB))}}
	if withC {
		peers = append(peers, peerConf{pub: s.c.pub, allowedIPs: []string{innerC4.String() + "/32"}, endpoint: netip.MustParseAddrPort(fmt.Sprintf("192.168.78.2:%d", portB))})
	}
	return s.a.confText(portA, peers...)
}

// normalizeConf sorts the [Peer] sections of a wg showconf output, whose
// order is not defined.
func normalizeConf(c string) string {
	sections := strings.Split(strings.TrimSpace(c), "\n\n")
	slices.Sort(sections[1:])
	return strings.Join(sections, "\n\n")
}

// uapiRequest sends one raw request on the interface's socket and returns
// the answer.
func uapiRequest(t *testing.T, ifname, req string) string {
	t.Helper()
	c, err := net.Dial("unix", socketPath(ifname))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	br := bufio.NewReader(c)
	for {
		l, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("answer to %q: %v (so far %q)", req, err, sb.String())
		}
		sb.WriteString(l)
		if l == "\n" {
			return sb.String()
		}
	}
}

func TestWgTool(t *testing.T) {
	need(t)
	s := newStar(t)
	before := time.Now().Add(-time.Second).Unix()
	ping(t, s.na, innerB4, 3)
	ping(t, s.na, innerC4, 3)
	after := time.Now().Add(time.Second).Unix()

	t.Run("latest-handshakes", func(t *testing.T) {
		out := s.a.wg("show", s.a.name, "latest-handshakes")
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(l)
			if len(f) != 2 {
				t.Fatalf("bad line %q", l)
			}
			ts, _ := strconv.ParseInt(f[1], 10, 64)
			if ts < before || ts > after {
				t.Errorf("peer %s: latest handshake %d, want within [%d, %d]", f[0], ts, before, after)
			}
		}
		if show := s.a.wg("show", s.a.name); !strings.Contains(show, "latest handshake: ") || !strings.Contains(show, "transfer: ") {
			t.Errorf("wg show lacks handshake or transfer lines:\n%s", show)
		}
	})

	t.Run("showconf-round-trip", func(t *testing.T) {
		conf := s.a.wg("showconf", s.a.name)
		for _, want := range []string{"PrivateKey = " + s.a.priv.Base64(), fmt.Sprintf("ListenPort = %d", portA),
			"PublicKey = " + s.b.pub.String(), "AllowedIPs = 10.200.0.2/32", "Endpoint = 192.168.77.2:51821",
			"PublicKey = " + s.c.pub.String(), "AllowedIPs = 10.200.0.3/32", "Endpoint = 192.168.78.2:51821"} {
			if !strings.Contains(conf, want) {
				t.Fatalf("showconf lacks %q:\n%s", want, conf)
			}
		}
		s.a.conf("setconf", conf)
		again := s.a.wg("showconf", s.a.name)
		if normalizeConf(again) != normalizeConf(conf) {
			t.Fatalf("showconf after setconf of its own output differs:\n%s\nwas:\n%s", again, conf)
		}
		ping(t, s.na, innerB4, 2)
	})

	t.Run("set", func(t *testing.T) {
		s.a.wg("set", s.a.name, "fwmark", "0x42", "peer", s.b.pub.String(), "persistent-keepalive", "25",
			"allowed-ips", "10.200.0.2/32,10.99.0.0/16,fd00:99::/64")
		dump := s.a.wg("show", s.a.name, "dump")
		head := strings.Split(strings.Split(dump, "\n")[0], "\t")
		if len(head) != 4 || head[0] != s.a.priv.Base64() || head[1] != s.a.pub.String() || head[2] != strconv.Itoa(portA) || head[3] != "0x42" {
			t.Fatalf("interface line %q", head)
		}
		pb := s.a.peer(s.b.pub)
		if pb.keepalive != "25" || sortedList(pb.allowedIPs) != "10.200.0.2/32,10.99.0.0/16,fd00:99::/64" {
			t.Fatalf("peer b after wg set: %+v", pb)
		}
		s.a.wg("set", s.a.name, "fwmark", "0", "peer", s.b.pub.String(), "persistent-keepalive", "off", "allowed-ips", "10.200.0.2/32")
		pb = s.a.peer(s.b.pub)
		if pb.keepalive != "off" || pb.allowedIPs != "10.200.0.2/32" {
			t.Fatalf("peer b after second wg set: %+v", pb)
		}
		psk, err := noise.GeneratePrivateKey(randReader{})
		if err != nil {
			t.Fatal(err)
		}
		// A preshared key on one side only breaks new handshakes, not the
		// current session; set it on both.
		pskFile := t.TempDir() + "/psk"
		writeFile(t, pskFile, psk.Base64())
		s.a.wg("set", s.a.name, "peer", s.b.pub.String(), "preshared-key", pskFile)
		s.b.wg("set", s.b.name, "peer", s.a.pub.String(), "preshared-key", pskFile)
		if got := s.a.peer(s.b.pub).psk; got != psk.Base64() {
			t.Fatalf("preshared key %q", got)
		}
		ping(t, s.na, innerB4, 2)
	})

	t.Run("addconf-setconf", func(t *testing.T) {
		d := newKey(t).PublicKey()
		add := fmt.Sprintf("[Peer]\nPublicKey = %s\nAllowedIPs = 10.200.0.4/32\nEndpoint = [fd00:77::9]:4000\n", d)
		s.a.conf("addconf", add)
		ps := s.a.peers()
		if len(ps) != 3 || ps[d.String()].endpoint != "[fd00:77::9]:4000" || ps[d.String()].allowedIPs != "10.200.0.4/32" {
			t.Fatalf("after addconf: %+v", ps)
		}
		s.a.conf("setconf", s.confA(true))
		ps = s.a.peers()
		if len(ps) != 2 || ps[s.b.pub.String()].pub == "" || ps[s.c.pub.String()].pub == "" {
			t.Fatalf("after setconf: %+v", ps)
		}
	})

	t.Run("syncconf-removes-peer-at-once", func(t *testing.T) {
		// The preshared key set above was dropped by setconf on a's side;
		// put b back in step.
		s.b.wg("set", s.b.name, "peer", s.a.pub.String(), "preshared-key", "/dev/null")
		ping(t, s.na, innerB4, 2)
		ping(t, s.na, innerC4, 2)
		hsB := s.a.peer(s.b.pub).lastHandshake
		s.a.conf("syncconf", s.confA(false))
		noPing(t, s.na, innerC4)
		noPing(t, s.nc, innerA4)
		if _, ok := s.a.peers()[s.c.pub.String()]; ok {
			t.Fatal("c still listed after syncconf")
		}
		// b was left alone: same session, no new handshake.
		ping(t, s.na, innerB4, 3)
		if hs := s.a.peer(s.b.pub).lastHandshake; hs != hsB {
			t.Fatalf("syncconf disturbed b: handshake %d, was %d", hs, hsB)
		}
	})

	t.Run("raw-uapi-errors-change-nothing", func(t *testing.T) {
		get := uapiRequest(t, s.a.name, "get=1\n\n")
		if !strings.HasSuffix(get, "errno=0\n\n") || !strings.Contains(get, fmt.Sprintf("listen_port=%d\n", portA)) {
			t.Fatalf("get: %q", get)
		}
		for _, req := range []string{
			"set=1\nlisten_port=70000\n\n",
			"set=1\nlisten_port=1\nprivate_key=zz\n\n",
			"set=1\nreplace_peers=true\npublic_key=" + strings.Repeat("ab", 32) + "\nendpoint=nohost\n\n",
			"set=1\npublic_key=" + strings.Repeat("ab", 32) + "\nprotocol_version=2\n\n",
		} {
			if ans := uapiRequest(t, s.a.name, req); ans != "errno=-22\n\n" {
				t.Errorf("%q answered %q, want errno=-22", req, ans)
			}
		}
		if again := uapiRequest(t, s.a.name, "get=1\n\n"); stripCounters(again) != stripCounters(get) {
			t.Fatalf("failed sets changed the device:\n%s\nwas:\n%s", again, get)
		}
		ping(t, s.na, innerB4, 2)
	})
}

// stripCounters drops the lines of a get answer that change by themselves.
func stripCounters(get string) string {
	var keep []string
	for _, l := range strings.Split(get, "\n") {
		if strings.HasPrefix(l, "rx_bytes=") || strings.HasPrefix(l, "tx_bytes=") || strings.HasPrefix(l, "last_handshake_time_") {
			continue
		}
		keep = append(keep, l)
	}
	slices.Sort(keep)
	return strings.Join(keep, "\n")
}

type randReader struct{}

func (randReader) Read(b []byte) (int, error) { return rand.Read(b) }

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// sortedList sorts a comma-separated list, for lists whose order is not
// defined.
func sortedList(s string) string {
	f := strings.Split(s, ",")
	slices.Sort(f)
	return strings.Join(f, ",")
}

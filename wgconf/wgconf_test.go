package wgconf

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/gotatun/gotatun/daita"
)

const (
	privB64 = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
	pub1B64 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
	pub2B64 = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
	pskB64  = "FpCyhws9cxwWoV4xELtfJvjJN+zQVRPISllRWgeopVE="
)

const good = `# a comment
[Interface]
PrivateKey = ` + privB64 + `
Address = 10.0.0.2/24, fd00::2/64   # two
Address = 10.0.1.2
DNS = 10.0.0.1, fd00::1, example.com
MTU = 1380
ListenPort = 51820
PostUp = echo hi

[peer]
publickey = ` + pub1B64 + `
PresharedKey = ` + pskB64 + `
Endpoint = 192.0.2.1:51820
AllowedIPs = 0.0.0.0/0, ::/0
PersistentKeepalive = 25

[Peer]
PublicKey = ` + pub2B64 + `
Endpoint = [2001:db8::1]:4500
AllowedIPs = 10.9.0.0/16
`

func TestParse(t *testing.T) {
	c, err := Parse("wg0.conf", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	ifc := c.Interface
	if ifc.PrivateKey.Base64() != privB64 {
		t.Errorf("private key %v", ifc.PrivateKey.Base64())
	}
	wantAddrs := []netip.Prefix{
		netip.MustParsePrefix("10.0.0.2/24"), netip.MustParsePrefix("fd00::2/64"), netip.MustParsePrefix("10.0.1.2/32"),
	}
	if !equal(ifc.Addresses, wantAddrs) {
		t.Errorf("addresses %v, want %v", ifc.Addresses, wantAddrs)
	}
	if !equal(ifc.DNS, []netip.Addr{netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("fd00::1")}) ||
		len(ifc.DNSSearch) != 1 || ifc.DNSSearch[0] != "example.com" {
		t.Errorf("DNS %v search %v", ifc.DNS, ifc.DNSSearch)
	}
	if ifc.MTU != 1380 || ifc.ListenPort == nil || *ifc.ListenPort != 51820 {
		t.Errorf("MTU %d port %v", ifc.MTU, ifc.ListenPort)
	}
	if len(c.Ignored) != 1 || c.Ignored[0] != "line 9: PostUp" {
		t.Errorf("ignored %q", c.Ignored)
	}
	if len(c.Peers) != 2 {
		t.Fatalf("%d peers", len(c.Peers))
	}
	p := c.Peers[0]
	if p.PublicKey.String() != pub1B64 || p.PresharedKey == nil || p.PresharedKey.Base64() != pskB64 ||
		p.Endpoint != "192.0.2.1:51820" || p.PersistentKeepalive != 25*time.Second || len(p.AllowedIPs) != 2 || p.Line != 11 {
		t.Errorf("peer 0: %+v", p)
	}
	if c.Peers[1].Endpoint != "[2001:db8::1]:4500" || c.Peers[1].PresharedKey != nil {
		t.Errorf("peer 1: %+v", c.Peers[1])
	}

	dc, err := c.DeviceConfig(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !dc.ReplacePeers || *dc.PrivateKey != ifc.PrivateKey || *dc.ListenPort != 51820 || len(dc.Peers) != 2 {
		t.Fatalf("device config %+v", dc)
	}
	if *dc.Peers[1].Endpoint != netip.MustParseAddrPort("[2001:db8::1]:4500") || !dc.Peers[1].ReplaceAllowedIPs ||
		*dc.Peers[0].PersistentKeepalive != 25*time.Second {
		t.Errorf("peer configs %+v", dc.Peers)
	}
}

type fakeResolver map[string][]netip.Addr

func (f fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return a, nil
	}
	return nil, errors.New("no such host")
}

func TestDeviceConfigResolves(t *testing.T) {
	text := "[Interface]\nPrivateKey=" + privB64 + "\n[Peer]\nPublicKey=" + pub1B64 + "\nEndpoint=vpn.example:51820\n"
	c, err := Parse("x.conf", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	r := fakeResolver{"vpn.example": {netip.MustParseAddr("2001:db8::5"), netip.MustParseAddr("192.0.2.5")}}
	dc, err := c.DeviceConfig(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	if got := *dc.Peers[0].Endpoint; got != netip.MustParseAddrPort("192.0.2.5:51820") {
		t.Errorf("endpoint %v", got)
	}
	_, err = c.DeviceConfig(context.Background(), fakeResolver{})
	if err == nil || !strings.Contains(err.Error(), "x.conf:5: Endpoint: looking up vpn.example") {
		t.Errorf("unresolvable endpoint: %v", err)
	}
}

func TestDAITA(t *testing.T) {
	const noop = "02eNpjYEAHjOgCAAA0AAI="
	text := "[Interface]\nPrivateKey=" + privB64 + "\n[Peer]\nPublicKey=" + pub1B64 +
		"\nDaitaMachine = " + noop + "\nDaitaMachine = " + noop + "\nDaitaMaxDecoyFrac = 0.5\nDaitaMaxDelayedPackets = 100\n" +
		"[Peer]\nPublicKey=" + pub2B64 + "\n"
	c, err := Parse("d.conf", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	d := c.Peers[0].DAITA
	if d == nil || len(d.Machines) != 2 || d.MaxDecoyFrac != 0.5 || d.MaxDelayedPackets != 100 ||
		d.MinDelayCapacity != daita.DefaultMinDelayCapacity {
		t.Fatalf("DAITA %+v", d)
	}
	if c.Peers[1].DAITA != nil {
		t.Error("DAITA on a peer without Daita keys")
	}
	dc, err := c.DeviceConfig(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if dc.Peers[0].DAITA == nil || !dc.Peers[0].DAITA.Equal(*d) || dc.Peers[1].DAITA != nil {
		t.Errorf("device config DAITA %+v", dc.Peers[0].DAITA)
	}
	bad := []struct{ line, want string }{
		{"DaitaMachine = 02eNpjYEAHjOgCAAA0AAI", "d.conf:5: DaitaMachine: "},
		{"DaitaMaxDelayFrac = 2", "d.conf:5: DaitaMaxDelayFrac: "},
		{"DaitaMaxDelayedPackets = 0", "d.conf:5: DaitaMaxDelayedPackets: \"0\" is not a number from 1"},
	}
	for _, tc := range bad {
		text := "[Interface]\nPrivateKey=" + privB64 + "\n[Peer]\nPublicKey=" + pub1B64 + "\n" + tc.line + "\n"
		if _, err := Parse("d.conf", []byte(text)); err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%s: %v", tc.line, err)
		}
	}
}

func TestErrors(t *testing.T) {
	iface := "[Interface]\nPrivateKey = " + privB64 + "\n"
	peer := "[Peer]\nPublicKey = " + pub1B64 + "\n"
	for _, tc := range []struct{ text, want string }{
		{"", "f.conf: no [Interface] section"},
		{"PrivateKey = x\n", "f.conf:1: PrivateKey: key outside a section"},
		{"[Interface]\n", "f.conf:1: PrivateKey: missing from [Interface]"},
		{"[Interface]\nPrivateKey = abc\n", "f.conf:2: PrivateKey: noise: key must be"},
		{iface + "Address = 10.0.0.300/24\n", `f.conf:3: Address: "10.0.0.300/24" is not an IP prefix`},
		{iface + "Address = 10.0.0.1,,10.0.0.2\n", `f.conf:3: Address: empty element`},
		{iface + "MTU = 70000\n", `f.conf:3: MTU: "70000" is not an MTU`},
		{iface + "MTU = 1400\nmtu = 1300\n", `f.conf:4: mtu: set twice in this section (first on line 3)`},
		{iface + "ListenPort = -1\n", `f.conf:3: ListenPort: "-1" is not a port`},
		{iface + "DNS = 1.1.1.1, bad host!\n", `f.conf:3: DNS: "bad host!" is neither`},
		{iface + "Bogus = 1\n", `f.conf:3: Bogus: unknown key in [Interface]`},
		{iface + "just words\n", `f.conf:3: expected "Key = Value"`},
		{iface + "[Peers]\n", `f.conf:3: Peers: unknown section`},
		{iface + "[Peer\n", `f.conf:3: unterminated section header`},
		{iface + "[Interface]\n", `f.conf:3: second [Interface] section`},
		{iface + "[Peer]\nEndpoint = 1.2.3.4:5\n", `f.conf:3: PublicKey: missing from [Peer]`},
		{iface + peer + "Endpoint = 1.2.3.4\n", `f.conf:5: Endpoint: "1.2.3.4" is not host:port`},
		{iface + peer + "Endpoint = 1.2.3.4:0\n", `f.conf:5: Endpoint: "1.2.3.4:0": port must be`},
		{iface + peer + "AllowedIPs = 10.0.0.1/8\n", `f.conf:5: AllowedIPs: "10.0.0.1/8" has host bits set (did you mean 10.0.0.0/8?)`},
		{iface + peer + "PersistentKeepalive = 1h\n", `f.conf:5: PersistentKeepalive: "1h" is not a number`},
		{iface + peer + "ListenPort = 1\n", `f.conf:5: ListenPort: unknown key in [Peer]`},
		{iface + peer + "\n" + peer, `f.conf:6: PublicKey: same peer as the [Peer] on line 3`},
	} {
		_, err := Parse("f.conf", []byte(tc.text))
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q:\n got %v\nwant %s…", tc.text, err, tc.want)
		}
		var e *Error
		if err != nil && !errors.As(err, &e) {
			t.Errorf("%q: %T is not *Error", tc.text, err)
		}
	}
}

func TestParseFile(t *testing.T) {
	if _, err := ParseFile(t.TempDir() + "/missing.conf"); err == nil {
		t.Error("missing file parsed")
	}
}

func equal[T comparable](a, b []T) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("[Interface]\nPrivateKey=" + privB64 + "\n[Peer]\nPublicKey=" + pub1B64 + "\nDaitaMachine=02eNpjYEAHjOgCAAA0AAI=\nDaitaMaxDecoyFrac=0.1\n"))
	f.Add([]byte("[Interface]\nAddress = ::1/129\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse("fuzz", b)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Error() == "" {
				t.Fatalf("error %v is not an *Error", err)
			}
			return
		}
		if _, err := c.DeviceConfig(context.Background(), fakeResolver{}); err != nil {
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("DeviceConfig error %v is not an *Error", err)
			}
		}
	})
}

package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
	"github.com/gotatun/gotatun/uapi"
)

// serveTestDevice runs a device with one peer behind a UAPI socket named
// ifname in a temporary socket directory, and returns the peer's key.
func serveTestDevice(t *testing.T, ifname string) (*device.Device, noise.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	old := socketDir
	socketDir = dir
	t.Cleanup(func() { socketDir = old })
	d, err := device.New(device.Options{
		TUN:  tun.NewMemory("wgt", 1420, 16),
		Bind: transport.NewNetwork().NewBind(netip.MustParseAddr("192.0.2.1")),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	priv, _ := noise.GeneratePrivateKey(nil)
	peerPriv, _ := noise.GeneratePrivateKey(nil)
	pub := peerPriv.PublicKey()
	if err := d.Apply(device.Config{PrivateKey: &priv, Peers: []device.PeerConfig{{PublicKey: pub}}}); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("unix", filepath.Join(dir, ifname+".sock"))
	if err != nil {
		t.Fatal(err)
	}
	go uapi.Serve(l, d, nil)
	t.Cleanup(func() { l.Close() })
	return d, pub
}

func TestDaitaSetShow(t *testing.T) {
	d, pub := serveTestDevice(t, "wgt0")
	file := filepath.Join(t.TempDir(), "machines")
	noop := "02eNpjYEAHjOgCAAA0AAI="
	pad := "02eNp1ibEJAEAIA5Nf7B3N0v1cSESwEL0m5A6YvBqSgP7WeXfM5UoBW7ICYg=="
	if err := os.WriteFile(file, []byte("# two\n"+pad+"\n\n"+noop+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runDaitaTest("", "set", "wgt0", pub.String(), "--machine", noop, "--machine", "@"+file,
		"--max-decoy-frac", "0.5", "--max-delayed-packets", "64", "--min-delay-capacity", "8")
	if code != 0 {
		t.Fatalf("set: %d %s %s", code, out, errOut)
	}
	s, _ := d.PeerState(pub)
	if s.DAITA == nil || len(s.DAITA.Machines) != 3 || s.DAITA.Machines[1] != pad || s.DAITA.MaxDecoyFrac != 0.5 ||
		s.DAITA.MaxDelayedPackets != 64 || s.DAITA.MinDelayCapacity != 8 {
		t.Fatalf("applied: %+v", s.DAITA)
	}
	code, out, errOut = runDaitaTest("", "show", "wgt0")
	if code != 0 {
		t.Fatalf("show: %d %s", code, errOut)
	}
	for _, want := range []string{"interface: wgt0", "peer: " + pub.String(), "daita: on, 3 machine(s), max decoy frac 0.5, max delay frac 0, delay queue 64 (min capacity 8)",
		"machine: " + pad, "padding: 0 B sent, 0 B received", "decoys: 0 B sent, 0 B received"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	// Every interface when none is named.
	if code, all, _ := runDaitaTest("", "show"); code != 0 || all != out {
		t.Fatalf("show (all): %d\n%s", code, all)
	}
	if code, _, errOut := runDaitaTest("", "set", "wgt0", pub.String(), "off"); code != 0 {
		t.Fatalf("off: %s", errOut)
	}
	if s, _ := d.PeerState(pub); s.DAITA != nil {
		t.Fatal("still on")
	}
	if _, out, _ := runDaitaTest("", "show", "wgt0"); !strings.Contains(out, "daita: off") {
		t.Fatalf("after off:\n%s", out)
	}
}

func TestDaitaSetRefused(t *testing.T) {
	d, pub := serveTestDevice(t, "wgt1")
	other, _ := noise.GeneratePrivateKey(nil)
	for _, tc := range []struct {
		args []string
		code int
		msg  string
	}{
		{[]string{"set", "wgt1"}, 2, "want IFNAME and PEER_PUBLIC_KEY"},
		{[]string{"set", "wgt1", "notakey"}, 2, "peer public key"},
		{[]string{"set", "wgt1", pub.String(), "--max-decoy-frac", "2"}, 1, "max_decoy_frac 2 is outside [0, 1]"},
		{[]string{"set", "wgt1", pub.String(), "--max-delayed-packets", "0"}, 1, "max_delayed_packets 0"},
		{[]string{"set", "wgt1", pub.String(), "--machine", "02bad"}, 1, "machine 0"},
		{[]string{"set", "wgt1", pub.String(), "--machine", "@/nonexistent/file"}, 2, "nonexistent"},
		{[]string{"set", "wgt1", other.PublicKey().String()}, 1, "has no peer"},
		{[]string{"set", "nosuchif", pub.String()}, 1, "no daemon listens"},
		{[]string{"show", "nosuchif"}, 1, "no daemon listens"},
	} {
		code, _, errOut := runDaitaTest("", tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%v: exit %d, %q; want %d and %q", tc.args, code, errOut, tc.code, tc.msg)
		}
	}
	if s, _ := d.PeerState(pub); s.DAITA != nil {
		t.Fatal("a refused set changed the peer")
	}
	if len(d.State().Peers) != 1 {
		t.Fatal("set created a peer")
	}
}

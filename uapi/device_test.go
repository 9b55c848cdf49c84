package uapi

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

// newRealDevice is a device on an in-memory TUN and network.
func newRealDevice(t *testing.T) *device.Device {
	t.Helper()
	d, err := device.New(device.Options{
		TUN:  tun.NewMemory("wgu", 1420, 16),
		Bind: transport.NewNetwork().NewBind(netip.MustParseAddr("192.0.2.1")),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// TestReplacePeersStartsAfresh: as with wireguard-go and the kernel, a set
// with replace_peers drops everything a named peer had: its preshared key,
// endpoint, keepalive and allowed IPs.
func TestReplacePeersStartsAfresh(t *testing.T) {
	dev := newRealDevice(t)
	path, _ := startServer(t, dev)
	c := dial(t, path)
	first := "set=1\nprivate_key=" + hexPriv + "\npublic_key=" + hexPub1 + "\npreshared_key=" + hexPSK +
		"\nendpoint=192.0.2.9:51820\npersistent_keepalive_interval=25\nallowed_ip=10.0.0.0/24\n" +
		"public_key=" + hexPub2 + "\nallowed_ip=10.1.0.0/24\n\n"
	if got := c.do(first); got != "errno=0\n\n" {
		t.Fatal(got)
	}
	if got := c.do("set=1\nreplace_peers=true\npublic_key=" + hexPub1 + "\nallowed_ip=10.2.0.0/24\n\n"); got != "errno=0\n\n" {
		t.Fatal(got)
	}
	get := c.do("get=1\n\n")
	want := "public_key=" + hexPub1 + "\npreshared_key=" + strings.Repeat("0", 64) + "\nprotocol_version=1\n" +
		"last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\npersistent_keepalive_interval=0\n" +
		"allowed_ip=10.2.0.0/24\nerrno=0\n\n"
	if _, peers, ok := strings.Cut(get, "public_key="); !ok || "public_key="+peers != want {
		t.Fatalf("after replace_peers:\n%s\nwant peers:\n%s", get, want)
	}
}

// TestRemoveAllowedIP: allowed_ip=-PREFIX takes one prefix from the peer
// named, and not from another peer that owns it.
func TestRemoveAllowedIP(t *testing.T) {
	dev := newRealDevice(t)
	path, _ := startServer(t, dev)
	c := dial(t, path)
	set := "set=1\nprivate_key=" + hexPriv + "\npublic_key=" + hexPub1 + "\nallowed_ip=10.0.0.0/24\nallowed_ip=10.0.1.0/24\n" +
		"public_key=" + hexPub2 + "\nallowed_ip=10.1.0.0/24\n\n"
	if got := c.do(set); got != "errno=0\n\n" {
		t.Fatal(got)
	}
	if got := c.do("set=1\npublic_key=" + hexPub1 + "\nallowed_ip=-10.0.0.0/24\nallowed_ip=-10.1.0.0/24\n\n"); got != "errno=0\n\n" {
		t.Fatal(got)
	}
	get := c.do("get=1\n\n")
	blocks := map[string]string{} // public key → its lines
	for _, b := range strings.Split(get, "public_key=")[1:] {
		blocks[b[:64]] = b
	}
	p1, p2 := blocks[hexPub1], blocks[hexPub2]
	if strings.Contains(p1, "allowed_ip=10.0.0.0/24") || !strings.Contains(p1, "allowed_ip=10.0.1.0/24") ||
		!strings.Contains(p2, "allowed_ip=10.1.0.0/24") {
		t.Fatalf("after removal:\n%s", get)
	}
}

// TestRealDeviceFailedSetChangesNothing: a transaction the device refuses
// (a low-order public key) after valid lines leaves the device as it was.
func TestRealDeviceFailedSetChangesNothing(t *testing.T) {
	dev := newRealDevice(t)
	path, _ := startServer(t, dev)
	c := dial(t, path)
	if got := c.do("set=1\nprivate_key=" + hexPriv + "\npublic_key=" + hexPub1 + "\nallowed_ip=10.0.0.0/24\n\n"); got != "errno=0\n\n" {
		t.Fatal(got)
	}
	before := c.do("get=1\n\n")
	bad := "set=1\nlisten_port=4444\nreplace_peers=true\npublic_key=" + hexPub2 + "\nallowed_ip=10.0.0.0/24\n" +
		"public_key=" + strings.Repeat("0", 64) + "\n\n"
	if got := c.do(bad); got != "errno=-22\n\n" {
		t.Fatalf("answered %q", got)
	}
	if after := c.do("get=1\n\n"); after != before {
		t.Fatalf("refused set changed the device:\n%s\nwas:\n%s", after, before)
	}
}

package device

import (
	"errors"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
)

func ptr[T any](v T) *T { return &v }

func TestApplyValidation(t *testing.T) {
	nw := transport.NewNetwork()
	a := newNode(t, nw, "192.0.2.1", 51820, NewFakeClock(testEpoch), 1)
	good := mustKey(t, 5).PublicKey()
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: good, AllowedIPs: prefixes("10.1.0.0/16")}}}); err != nil {
		t.Fatal(err)
	}
	before := a.d.State()

	// A low-order point (order 8 on Curve25519).
	var lowOrder noise.PublicKey
	copy(lowOrder[:], []byte{0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f, 0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16, 0x5f, 0x49, 0xb8, 0x00})
	other := mustKey(t, 6).PublicKey()
	cases := []struct {
		name string
		pc   PeerConfig
		want string
	}{
		{"zero key", PeerConfig{}, "public key is zero"},
		{"low order key", PeerConfig{PublicKey: lowOrder}, "public key"},
		{"keepalive too long", PeerConfig{PublicKey: other, PersistentKeepalive: ptr(65536 * time.Second)}, "persistent keepalive"},
		{"keepalive negative", PeerConfig{PublicKey: other, PersistentKeepalive: ptr(-time.Second)}, "persistent keepalive"},
		{"keepalive fraction", PeerConfig{PublicKey: other, PersistentKeepalive: ptr(1500 * time.Millisecond)}, "whole seconds"},
		{"bad prefix", PeerConfig{PublicKey: other, AllowedIPs: []netip.Prefix{netip.PrefixFrom(netip.MustParseAddr("10.0.0.0"), 33)}}, "allowed IP"},
		{"zero prefix", PeerConfig{PublicKey: other, AllowedIPs: []netip.Prefix{{}}}, "allowed IP"},
		{"bad endpoint", PeerConfig{PublicKey: other, Endpoint: ptr(netip.AddrPort{})}, "endpoint"},
		{"endpoint port 0", PeerConfig{PublicKey: other, Endpoint: ptr(netip.MustParseAddrPort("192.0.2.9:0"))}, "port 0"},
	}
	for _, c := range cases {
		// The bad entry comes after good changes, which must not happen.
		cfg := Config{
			ListenPort: ptr(uint16(4000)),
			Peers: []PeerConfig{
				{PublicKey: good, Remove: true},
				{PublicKey: other, AllowedIPs: prefixes("10.9.0.0/16")},
				c.pc,
			},
		}
		err := a.d.Apply(cfg)
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want error mentioning %q", c.name, err, c.want)
		}
		if !strings.Contains(err.Error(), "peer 2") {
			t.Errorf("%s: error %q does not name the entry", c.name, err)
		}
		after := a.d.State()
		if after.ListenPort != before.ListenPort || len(after.Peers) != 1 || after.Peers[0].PublicKey != good {
			t.Fatalf("%s: failed Apply changed the device: %+v", c.name, after)
		}
	}
	// Without a private key the low-order check is done on its own.
	b := newNode(t, nw, "192.0.2.2", 51820, NewFakeClock(testEpoch), 2)
	if err := b.d.Apply(Config{PrivateKey: &noise.PrivateKey{}}); err != nil {
		t.Fatal(err)
	}
	if err := b.d.Apply(Config{Peers: []PeerConfig{{PublicKey: lowOrder}}}); err == nil || !strings.Contains(err.Error(), "low-order") {
		t.Fatalf("low-order key without a private key: %v", err)
	}
	// Keepalive of exactly 65535 s is fine.
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: good, PersistentKeepalive: ptr(65535 * time.Second)}}}); err != nil {
		t.Fatal(err)
	}
}

func TestApplyPeersLifecycle(t *testing.T) {
	nw := transport.NewNetwork()
	a := newNode(t, nw, "192.0.2.1", 51820, NewFakeClock(testEpoch), 1)
	k1, k2, k3 := mustKey(t, 11).PublicKey(), mustKey(t, 12).PublicKey(), mustKey(t, 13).PublicKey()
	psk := noise.PresharedKey{1, 2, 3}
	ep := netip.MustParseAddrPort("192.0.2.50:1234")
	err := a.d.Apply(Config{Peers: []PeerConfig{
		{PublicKey: k1, AllowedIPs: prefixes("10.1.0.0/16", "fd01::/64"), Endpoint: &ep, PresharedKey: &psk, PersistentKeepalive: ptr(25 * time.Second)},
		{PublicKey: k2, AllowedIPs: prefixes("10.2.0.0/16")},
		{PublicKey: k3, UpdateOnly: true, AllowedIPs: prefixes("10.3.0.0/16")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	st, ok := a.d.PeerState(k1)
	if !ok || st.PresharedKey != psk || st.Endpoint != ep || st.PersistentKeepalive != 25*time.Second ||
		!slices.Equal(st.AllowedIPs, prefixes("10.1.0.0/16", "fd01::/64")) || st.ProtocolVersion != 1 {
		t.Fatalf("peer 1 state %+v", st)
	}
	if _, ok := a.d.PeerState(k3); ok {
		t.Fatal("update-only created a peer")
	}
	// Host bits are masked; moving a prefix takes it from its owner.
	err = a.d.Apply(Config{Peers: []PeerConfig{
		{PublicKey: k2, AllowedIPs: prefixes("10.1.2.3/16", "10.5.5.5/32")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := a.d.PeerState(k1)
	st2, _ := a.d.PeerState(k2)
	if !slices.Equal(st1.AllowedIPs, prefixes("fd01::/64")) || !slices.Equal(st2.AllowedIPs, prefixes("10.1.0.0/16", "10.2.0.0/16", "10.5.5.5/32")) {
		t.Fatalf("allowed IPs after move: %v / %v", st1.AllowedIPs, st2.AllowedIPs)
	}
	// Replace allowed IPs.
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: k2, ReplaceAllowedIPs: true, AllowedIPs: prefixes("10.7.0.0/16")}}}); err != nil {
		t.Fatal(err)
	}
	st2, _ = a.d.PeerState(k2)
	if !slices.Equal(st2.AllowedIPs, prefixes("10.7.0.0/16")) {
		t.Fatalf("after replace: %v", st2.AllowedIPs)
	}
	if p, _ := a.d.allowed.Lookup(netip.MustParseAddr("10.1.0.1")); p != nil {
		t.Fatal("replaced prefix still routed")
	}
	// Remove single prefixes: only the peer's own, host bits masked; a
	// prefix removed and added in one change ends up added.
	if err := a.d.Apply(Config{Peers: []PeerConfig{
		{PublicKey: k2, AllowedIPs: prefixes("10.8.0.0/16", "10.9.0.0/16")},
		{PublicKey: k1, RemoveAllowedIPs: prefixes("10.7.0.0/16")},
	}}); err != nil {
		t.Fatal(err)
	}
	if err := a.d.Apply(Config{Peers: []PeerConfig{
		{PublicKey: k2, RemoveAllowedIPs: prefixes("10.8.1.1/16", "10.9.0.0/16", "10.99.0.0/16"), AllowedIPs: prefixes("10.9.0.0/16")},
	}}); err != nil {
		t.Fatal(err)
	}
	st1, _ = a.d.PeerState(k1)
	st2, _ = a.d.PeerState(k2)
	if !slices.Equal(st2.AllowedIPs, prefixes("10.7.0.0/16", "10.9.0.0/16")) || !slices.Equal(st1.AllowedIPs, prefixes("fd01::/64")) {
		t.Fatalf("after removals: %v / %v", st1.AllowedIPs, st2.AllowedIPs)
	}
	if p, ok := a.d.allowed.Lookup(netip.MustParseAddr("10.8.0.1")); ok {
		t.Fatalf("removed prefix still routed (%v)", p)
	}
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: k2, RemoveAllowedIPs: []netip.Prefix{{}}}}}); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "allowed IP to remove 0") {
		t.Fatalf("invalid prefix to remove: %v", err)
	}
	// Remove the PSK.
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: k1, PresharedKey: &noise.PresharedKey{}}}}); err != nil {
		t.Fatal(err)
	}
	if st, _ := a.d.PeerState(k1); !st.PresharedKey.IsZero() {
		t.Fatal("PSK not removed")
	}
	// Remove a peer.
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: k1, Remove: true}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.d.PeerState(k1); ok {
		t.Fatal("peer not removed")
	}
	if p, ok := a.d.allowed.Lookup(netip.MustParseAddr("fd01::1")); ok {
		t.Fatalf("removed peer still routed (%v)", p)
	}
	// Replace peers keeps the named ones (with their sessions) only.
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: k1}, {PublicKey: k3}}}); err != nil {
		t.Fatal(err)
	}
	p2 := a.d.peer(k2)
	if err := a.d.Apply(Config{ReplacePeers: true, Peers: []PeerConfig{{PublicKey: k2}, {PublicKey: k3, Remove: true}}}); err != nil {
		t.Fatal(err)
	}
	ds := a.d.State()
	if len(ds.Peers) != 1 || ds.Peers[0].PublicKey != k2 || a.d.peer(k2) != p2 {
		t.Fatalf("after replace-peers: %+v", ds.Peers)
	}
	// The device's own key is ignored as a peer.
	if err := a.d.Apply(Config{Peers: []PeerConfig{{PublicKey: a.pub, AllowedIPs: prefixes("10.8.0.0/16")}}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.d.PeerState(a.pub); ok {
		t.Fatal("own key added as a peer")
	}
}

func TestApplyPrivateKeyChange(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "before")
	// Setting B's private key to the key of one of its peers removes that
	// peer, as wireguard-go does.
	newKey := mustKey(t, 77)
	c := mustKey(t, 78).PublicKey()
	if err := pr.b.d.Apply(Config{Peers: []PeerConfig{{PublicKey: newKey.PublicKey()}, {PublicKey: c}}}); err != nil {
		t.Fatal(err)
	}
	if err := pr.b.d.Apply(Config{PrivateKey: &newKey}); err != nil {
		t.Fatal(err)
	}
	st := pr.b.d.State()
	if st.PublicKey != newKey.PublicKey() || st.PrivateKey != newKey {
		t.Fatal("key not changed")
	}
	if _, ok := pr.b.d.PeerState(newKey.PublicKey()); ok {
		t.Fatal("peer with our own new key kept")
	}
	if pr.b.peer(pr.a).keypairs.Current() != nil {
		t.Fatal("sessions survived a key change")
	}
	// A still has B's old key: its traffic must not get through, and after
	// A learns the new key the tunnel works again.
	pkt := ipv4Packet("10.0.0.1", "10.0.0.2", []byte("old key"))
	pr.a.inject(pkt)
	pr.b.expectNoPacket(100 * time.Millisecond)
	newPub := newKey.PublicKey()
	if err := pr.a.d.Apply(Config{Peers: []PeerConfig{
		{PublicKey: pr.b.pub, Remove: true},
		{PublicKey: newPub, Endpoint: &pr.b.addr, AllowedIPs: prefixes("10.0.0.2/32", "fd00::2/128")},
	}}); err != nil {
		t.Fatal(err)
	}
	pr.b.pub = newPub
	// A fresh initiation needs a newer timestamp than the last one B took.
	pr.clock.Advance(time.Second)
	pr.ping(t, "after")
	// Removing the private key stops handshakes.
	if err := pr.b.d.Apply(Config{PrivateKey: &noise.PrivateKey{}}); err != nil {
		t.Fatal(err)
	}
	if st := pr.b.d.State(); !st.PublicKey.IsZero() {
		t.Fatal("public key without a private key")
	}
}

func TestListenPortChange(t *testing.T) {
	pr := newPair(t)
	pr.ping(t, "before")
	if err := pr.a.d.Apply(Config{ListenPort: ptr(uint16(6000))}); err != nil {
		t.Fatal(err)
	}
	if got := pr.a.d.State().ListenPort; got != 6000 {
		t.Fatalf("listen port %d", got)
	}
	pr.a.addr = netip.AddrPortFrom(pr.a.addr.Addr(), 6000)
	pr.ping(t, "after rebind")
	// B roamed to the new port.
	if got := pr.b.d.endpointOf(pr.a.pub); got != pr.a.addr {
		t.Fatalf("B's endpoint for A is %v, want %v", got, pr.a.addr)
	}
	// A port in use fails and leaves the device as it was.
	blocker := pr.nw.NewBind(pr.a.addr.Addr())
	if _, _, err := blocker.Open(7000); err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	if err := pr.a.d.Apply(Config{ListenPort: ptr(uint16(7000)), Peers: []PeerConfig{{PublicKey: mustKey(t, 3).PublicKey()}}}); err == nil {
		t.Fatal("listening on a port in use succeeded")
	}
	if st := pr.a.d.State(); st.ListenPort != 6000 || len(st.Peers) != 1 {
		t.Fatalf("failed rebind changed the device: port %d, %d peers", st.ListenPort, len(st.Peers))
	}
	pr.ping(t, "still up")
}

func TestApplyAfterClose(t *testing.T) {
	nw := transport.NewNetwork()
	a := newNode(t, nw, "192.0.2.1", 51820, nil, 1)
	a.d.Close()
	if err := a.d.Apply(Config{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Apply after Close: %v", err)
	}
	if err := a.d.Close(); err != nil {
		t.Fatal(err)
	}
}

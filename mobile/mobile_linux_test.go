package mobile

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/gotatun/gotatun/device"
	"github.com/gotatun/gotatun/noise"
	"github.com/gotatun/gotatun/transport"
	"github.com/gotatun/gotatun/tun"
)

func udp4(src, dst string, payload string) []byte {
	s, d := netip.MustParseAddr(src).As4(), netip.MustParseAddr(dst).As4()
	p := make([]byte, 28+len(payload))
	p[0] = 0x45
	binary.BigEndian.PutUint16(p[2:], uint16(len(p)))
	p[8], p[9] = 64, 17
	copy(p[12:], s[:])
	copy(p[16:], d[:])
	var sum uint32
	for i := 0; i < 20; i += 2 {
		sum += uint32(binary.BigEndian.Uint16(p[i:]))
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(p[10:], ^uint16(sum))
	binary.BigEndian.PutUint16(p[24:], uint16(8+len(payload)))
	copy(p[28:], payload)
	return p
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// The tunnel's "TUN" is one end of a packet socket pair; its peer is a
// device on loopback UDP with a memory TUN.
func TestTunnel(t *testing.T) {
	peerKey, _ := noise.GeneratePrivateKey(nil)
	ourKey, _ := noise.GeneratePrivateKey(nil)
	mem := tun.NewMemory("peer", 1420, 64)
	peer, err := device.New(device.Options{TUN: mem, Bind: transport.NewDefaultBind()})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if err := peer.Apply(device.Config{PrivateKey: &peerKey, Peers: []device.PeerConfig{{
		PublicKey: ourKey.PublicKey(), AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.9.0.1/32")},
	}}}); err != nil {
		t.Fatal(err)
	}

	goroutines, fds := runtime.NumGoroutine(), openFDs(t)
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	app := pair[1]
	defer unix.Close(app)
	conf := fmt.Sprintf("set=1\nprivate_key=%s\npublic_key=%s\nendpoint=127.0.0.1:%d\nallowed_ip=10.9.0.2/32\n",
		ourKey.Hex(), peerKey.PublicKey().Hex(), peer.LocalPort())
	tn, err := TurnOn(conf, pair[0], nil)
	if err != nil {
		t.Fatal(err)
	}
	if v4, _ := tn.Sockets(); v4 < 0 {
		t.Fatal("no IPv4 socket descriptor")
	}

	roundTrip := func(tag string) {
		t.Helper()
		out := udp4("10.9.0.1", "10.9.0.2", "out "+tag)
		if _, err := unix.Write(app, out); err != nil {
			t.Fatal(err)
		}
		select {
		case got := <-mem.Outbound():
			if !bytes.Equal(got, out) {
				t.Fatalf("%s: peer got %x, want %x", tag, got, out)
			}
			mem.Recycle(got)
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: nothing reached the peer", tag)
		}
		in := udp4("10.9.0.2", "10.9.0.1", "in "+tag)
		if err := mem.Inject(in); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 2000)
		unix.SetsockoptTimeval(app, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 10})
		n, err := unix.Read(app, buf)
		if err != nil || !bytes.Equal(buf[:n], in) {
			t.Fatalf("%s: app read %x (%v), want %x", tag, buf[:max(n, 0)], err, in)
		}
	}
	roundTrip("first")

	text, err := tn.Config()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"private_key=" + ourKey.Hex(), "public_key=" + peerKey.PublicKey().Hex(), "allowed_ip=10.9.0.2/32", "rx_bytes="} {
		if !strings.Contains(text, want) {
			t.Fatalf("config lacks %q:\n%s", want, text)
		}
	}
	// A bad change changes nothing.
	if err := tn.SetConfig("public_key=" + peerKey.PublicKey().Hex() + "\npersistent_keepalive_interval=99999999\n"); err == nil {
		t.Fatal("bad keepalive accepted")
	}
	if err := tn.SetConfig("public_key=" + peerKey.PublicKey().Hex() + "\npersistent_keepalive_interval=25\n"); err != nil {
		t.Fatal(err)
	}
	if text, _ := tn.Config(); !strings.Contains(text, "persistent_keepalive_interval=25") {
		t.Fatalf("keepalive not applied:\n%s", text)
	}

	if err := tn.Suspend(); err != nil {
		t.Fatal(err)
	}
	if v4, v6 := tn.Sockets(); v4 != -1 || v6 != -1 {
		t.Fatalf("sockets %d, %d while suspended", v4, v6)
	}
	// The peer ignores initiations closer than 20 ms to the last.
	time.Sleep(2 * noise.HandshakeInitiationRate)
	if err := tn.Resume(); err != nil {
		t.Fatal(err)
	}
	roundTrip("after resume")
	if err := tn.NetworkChanged(); err != nil {
		t.Fatal(err)
	}
	roundTrip("after network change")

	if err := tn.Close(); err != nil {
		t.Fatal(err)
	}
	if err := tn.SetConfig("listen_port=0\n"); Errno(err) != unix.EBADF {
		t.Fatalf("SetConfig after Close: %v", err)
	}
	// The descriptor was closed: the app's end sees the end.
	if n, err := unix.Read(app, make([]byte, 10)); n != 0 || err != nil {
		t.Fatalf("app end read %d (%v) after turn-off, want end of stream", n, err)
	}
	if got := openFDs(t); got != fds+1 {
		t.Errorf("%d descriptors open after turn-off, want %d (the app's end only)", got, fds+1)
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > goroutines && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines {
		t.Errorf("%d goroutines left after turn-off", n-goroutines)
	}
}

func TestTurnOnFailsClosesFD(t *testing.T) {
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[1])
	if _, err := TurnOn("listen_port=banana\n", pair[0], nil); Errno(err) != unix.EINVAL {
		t.Fatalf("bad config: %v (errno %d)", err, Errno(err))
	}
	if n, err := unix.Read(pair[1], make([]byte, 10)); n != 0 || err != nil {
		t.Fatalf("descriptor left open after a failed TurnOn (%d, %v)", n, err)
	}
	if _, err := TurnOn("", -1, nil); err == nil {
		t.Fatal("descriptor -1 accepted")
	}
}

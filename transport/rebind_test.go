package transport

import (
	"net"
	"net/netip"
	"testing"
)

// testRebind checks Rebinder on a Bind of the kernel: a move to a port in
// use fails and leaves the old socket working; a move to a free port
// closes the old receive functions and opens working new ones.
func testRebind(t *testing.T, b Bind) {
	t.Helper()
	rb, ok := b.(Rebinder)
	if !ok {
		t.Fatalf("%T is not a Rebinder", b)
	}
	if _, _, err := rb.Rebind(0); err == nil {
		t.Fatal("Rebind of a closed bind succeeded")
	}
	fns, port, err := b.Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	r := startReceiver(t, fns, b.BatchSize(), 2048)
	client, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	send := func(port uint16, msg string) {
		t.Helper()
		if _, err := client.WriteToUDPAddrPort([]byte(msg), netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)); err != nil {
			t.Fatal(err)
		}
	}

	taken, err := net.ListenUDP("udp4", &net.UDPAddr{})
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	busy := uint16(taken.LocalAddr().(*net.UDPAddr).Port)
	if _, _, err := rb.Rebind(busy); err == nil {
		t.Fatalf("Rebind to port %d in use succeeded", busy)
	}
	send(port, "old port still open")
	if got := r.next(t); string(got.data) != "old port still open" {
		t.Fatalf("got %q", got.data)
	}

	fns2, port2, err := rb.Rebind(0)
	if err != nil {
		t.Fatal(err)
	}
	if port2 == port || port2 == 0 {
		t.Fatalf("moved from %d to %d", port, port2)
	}
	r.wait(t) // the old receive functions return ErrClosed
	r2 := startReceiver(t, fns2, b.BatchSize(), 2048)
	send(port2, "new port")
	if got := r2.next(t); string(got.data) != "new port" {
		t.Fatalf("got %q", got.data)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	r2.wait(t)
}

func TestStdBindRebind(t *testing.T) { testRebind(t, NewStdBind()) }

func TestMemoryBindRebind(t *testing.T) {
	nw := NewNetwork()
	addr := netip.MustParseAddr("192.0.2.1")
	b := nw.NewBind(addr)
	fns, port, err := b.Open(51820)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	other := nw.NewBind(addr)
	if _, _, err := other.Open(51821); err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	rb := b.(Rebinder)
	if _, _, err := rb.Rebind(51821); err == nil {
		t.Fatal("Rebind to a port in use succeeded")
	}
	r := startReceiver(t, fns, b.BatchSize(), 2048)
	peer := nw.NewBind(netip.MustParseAddr("192.0.2.2"))
	if _, _, err := peer.Open(0); err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if err := peer.Send([][]byte{[]byte("old")}, Endpoint{Dst: netip.AddrPortFrom(addr, port)}); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); string(got.data) != "old" {
		t.Fatalf("got %q", got.data)
	}
	fns2, port2, err := rb.Rebind(51822)
	if err != nil || port2 != 51822 {
		t.Fatalf("Rebind: %d %v", port2, err)
	}
	r.wait(t)
	r2 := startReceiver(t, fns2, b.BatchSize(), 2048)
	peer.Send([][]byte{[]byte("old port")}, Endpoint{Dst: netip.AddrPortFrom(addr, port)})
	peer.Send([][]byte{[]byte("new")}, Endpoint{Dst: netip.AddrPortFrom(addr, port2)})
	if got := r2.next(t); string(got.data) != "new" {
		t.Fatalf("got %q", got.data)
	}
	b.Close()
	r2.wait(t)
}

package transport

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"
)

// testSendTo sends one datagram to each of several loopback sockets with
// one SendTo call and checks each arrives at its own socket.
func testSendTo(t *testing.T, b Bind) {
	if _, _, err := b.Open(0); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ms, ok := b.(MultiSender)
	if !ok {
		t.Fatalf("%T is not a MultiSender", b)
	}
	type sink struct {
		c    *net.UDPConn
		want string
	}
	var sinks []sink
	var bufs [][]byte
	var eps []Endpoint
	addrs := []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1", "::1", "127.0.0.1", "::1"}
	for i, a := range addrs {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(a), 0)))
		if err != nil {
			if a == "::1" {
				continue // no IPv6 here
			}
			t.Fatal(err)
		}
		defer c.Close()
		want := fmt.Sprintf("reply %d to %s", i, c.LocalAddr())
		sinks = append(sinks, sink{c, want})
		bufs = append(bufs, []byte(want))
		eps = append(eps, Endpoint{Dst: c.LocalAddr().(*net.UDPAddr).AddrPort()})
	}
	if err := ms.SendTo(bufs, eps); err != nil {
		t.Fatal(err)
	}
	for _, s := range sinks {
		s.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 100)
		n, err := s.c.Read(buf)
		if err != nil {
			t.Fatalf("%s: %v", s.c.LocalAddr(), err)
		}
		if got := string(buf[:n]); got != s.want {
			t.Fatalf("%s got %q, want %q", s.c.LocalAddr(), got, s.want)
		}
	}
	if err := ms.SendTo(bufs, eps[:1]); err == nil && len(bufs) > 1 {
		t.Fatal("SendTo with fewer endpoints than datagrams succeeded")
	}
}

func TestStdBindSendTo(t *testing.T) { testSendTo(t, NewStdBind()) }

func TestMemorySendTo(t *testing.T) {
	nw := NewNetwork()
	b := nw.NewBind(netip.MustParseAddr("192.0.2.1"))
	if _, _, err := b.Open(1); err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var fns []ReceiveFunc
	var eps []Endpoint
	var bufs [][]byte
	for i := range 4 {
		r := nw.NewBind(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}))
		f, port, err := r.Open(0)
		if err != nil {
			t.Fatal(err)
		}
		defer r.Close()
		fns = append(fns, f[0])
		eps = append(eps, Endpoint{Dst: netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}), port)})
		bufs = append(bufs, []byte{byte(i)})
	}
	if err := b.(MultiSender).SendTo(bufs, eps); err != nil {
		t.Fatal(err)
	}
	for i, f := range fns {
		rb := [][]byte{make([]byte, 10)}
		sizes := []int{0}
		reps := []Endpoint{{}}
		n, err := f(rb, sizes, reps)
		if err != nil || n != 1 || sizes[0] != 1 || rb[0][0] != byte(i) {
			t.Fatalf("receiver %d: n=%d err=%v data=%v", i, n, err, rb[0][:sizes[0]])
		}
	}
}

package transport

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// received is one datagram collected by a receiver.
type received struct {
	data []byte
	ep   Endpoint
}

// receiver runs every receive function of an open Bind in its own goroutine
// and collects what arrives until the Bind is closed.
type receiver struct {
	out  chan received
	errs chan error
	wg   sync.WaitGroup
}

func startReceiver(t testing.TB, fns []ReceiveFunc, batch, bufSize int) *receiver {
	t.Helper()
	r := &receiver{out: make(chan received, 4096), errs: make(chan error, len(fns))}
	for _, fn := range fns {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			bufs := make([][]byte, batch)
			for i := range bufs {
				bufs[i] = make([]byte, bufSize)
			}
			sizes := make([]int, batch)
			eps := make([]Endpoint, batch)
			own := slices.Clone(bufs)
			for {
				copy(bufs, own) // the bind may have lent its buffers
				n, err := fn(bufs, sizes, eps)
				if err != nil {
					r.errs <- err
					return
				}
				for i := range n {
					r.out <- received{data: bytes.Clone(bufs[i][:sizes[i]]), ep: eps[i]}
				}
			}
		}()
	}
	return r
}

// wait waits for the receive goroutines to end and checks that every one
// ended with ErrClosed.
func (r *receiver) wait(t testing.TB) {
	t.Helper()
	done := make(chan struct{})
	go func() { r.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("receive functions did not return after Close")
	}
	close(r.errs)
	for err := range r.errs {
		if !errors.Is(err, ErrClosed) {
			t.Errorf("receive ended with %v, want ErrClosed", err)
		}
	}
}

func (r *receiver) next(t testing.TB) received {
	t.Helper()
	select {
	case d := <-r.out:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a datagram")
		return received{}
	}
}

// expectNone checks that nothing arrives for a short while.
func (r *receiver) expectNone(t testing.TB, d time.Duration) {
	t.Helper()
	select {
	case got := <-r.out:
		t.Fatalf("unexpected datagram %q from %v", got.data, got.ep)
	case <-time.After(d):
	}
}

func hasIPv6Loopback() bool {
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func openBind(t testing.TB, b Bind, port uint16) ([]ReceiveFunc, uint16) {
	t.Helper()
	fns, actual, err := b.Open(port)
	if err != nil {
		t.Fatalf("Open(%d): %v", port, err)
	}
	if actual == 0 || (port != 0 && actual != port) {
		t.Fatalf("Open(%d) bound port %d", port, actual)
	}
	return fns, actual
}

// testBindExchange sends datagrams in both directions between two binds
// over IPv4 and IPv6 loopback and checks contents and endpoints.
func testBindExchange(t *testing.T, newBind func() Bind) {
	a, b := newBind(), newBind()
	fnsA, portA := openBind(t, a, 0)
	fnsB, portB := openBind(t, b, 0)
	ra := startReceiver(t, fnsA, a.BatchSize(), 2048)
	rb := startReceiver(t, fnsB, b.BatchSize(), 2048)
	defer func() {
		a.Close()
		b.Close()
		ra.wait(t)
		rb.wait(t)
	}()

	families := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	if hasIPv6Loopback() {
		families = append(families, netip.IPv6Loopback())
	}
	for _, addr := range families {
		var bufs [][]byte
		for i := range 5 {
			bufs = append(bufs, fmt.Appendf(nil, "a->b %v #%d", addr, i))
		}
		if err := a.Send(bufs, Endpoint{Dst: netip.AddrPortFrom(addr, portB)}); err != nil {
			t.Fatalf("Send to %v: %v", addr, err)
		}
		for i := range bufs {
			got := rb.next(t)
			if !bytes.Equal(got.data, bufs[i]) {
				t.Fatalf("datagram %d over %v: got %q want %q", i, addr, got.data, bufs[i])
			}
			if want := netip.AddrPortFrom(addr, portA); got.ep.Dst != want {
				t.Fatalf("datagram %d: from %v, want %v", i, got.ep.Dst, want)
			}
			// Reply to the endpoint exactly as received.
			if i == 0 {
				if err := b.Send([][]byte{[]byte("reply")}, got.ep); err != nil {
					t.Fatalf("reply: %v", err)
				}
			}
		}
		got := ra.next(t)
		if string(got.data) != "reply" || got.ep.Dst != netip.AddrPortFrom(addr, portB) {
			t.Fatalf("reply over %v: got %q from %v", addr, got.data, got.ep.Dst)
		}
	}

	// An IPv4-mapped IPv6 destination goes out over IPv4.
	mapped := netip.AddrPortFrom(netip.AddrFrom16(netip.MustParseAddr("127.0.0.1").As16()), portB)
	if err := a.Send([][]byte{[]byte("mapped")}, Endpoint{Dst: mapped}); err != nil {
		t.Fatalf("Send to %v: %v", mapped, err)
	}
	got := rb.next(t)
	if string(got.data) != "mapped" || got.ep.Dst != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), portA) {
		t.Fatalf("mapped: got %q from %v", got.data, got.ep.Dst)
	}
}

// testBindLifecycle checks double Open, Close unblocking receivers, Send
// after Close, and Open again on a given port.
func testBindLifecycle(t *testing.T, newBind func() Bind) {
	b := newBind()
	fns, port := openBind(t, b, 0)
	if _, _, err := b.Open(0); err == nil {
		t.Fatal("second Open succeeded")
	}
	r := startReceiver(t, fns, b.BatchSize(), 2048)
	time.Sleep(20 * time.Millisecond) // let the receivers block
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	r.wait(t)
	if err := b.Send([][]byte{{1}}, Endpoint{Dst: netip.MustParseAddrPort("127.0.0.1:9")}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}

	// Open again on the same port, then on another one (a rebind).
	fns, _ = openBind(t, b, port)
	r = startReceiver(t, fns, b.BatchSize(), 2048)
	peer := newBind()
	openBind(t, peer, 0)
	defer peer.Close()
	if err := peer.Send([][]byte{[]byte("again")}, Endpoint{Dst: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); string(got.data) != "again" {
		t.Fatalf("after reopen got %q", got.data)
	}
	b.Close()
	r.wait(t)

	fns, port2 := openBind(t, b, 0)
	r = startReceiver(t, fns, b.BatchSize(), 2048)
	if err := peer.Send([][]byte{[]byte("moved")}, Endpoint{Dst: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port2)}); err != nil {
		t.Fatal(err)
	}
	if got := r.next(t); string(got.data) != "moved" {
		t.Fatalf("after rebind got %q", got.data)
	}
	b.Close()
	r.wait(t)
}

// testBindOversize checks that a datagram larger than the receive buffer
// is dropped whole, alone or first in a batch, and the next one arrives.
func testBindOversize(t *testing.T, a, b Bind, bAddr netip.Addr) {
	openBind(t, a, 0)
	fnsB, portB := openBind(t, b, 0)
	rb := startReceiver(t, fnsB, b.BatchSize(), 100)
	defer func() {
		a.Close()
		b.Close()
		rb.wait(t)
	}()
	dst := Endpoint{Dst: netip.AddrPortFrom(bAddr, portB)}
	big := bytes.Repeat([]byte{0xAB}, 500)
	if err := a.Send([][]byte{big}, dst); err != nil {
		t.Fatal(err)
	}
	if err := a.Send([][]byte{big, []byte("small")}, dst); err != nil {
		t.Fatal(err)
	}
	if got := rb.next(t); string(got.data) != "small" {
		t.Fatalf("got %d bytes %q, want only the small datagram", len(got.data), got.data)
	}
	rb.expectNone(t, 50*time.Millisecond)
}

func TestStdBindExchange(t *testing.T)  { testBindExchange(t, NewStdBind) }
func TestStdBindLifecycle(t *testing.T) { testBindLifecycle(t, NewStdBind) }
func TestStdBindOversize(t *testing.T) {
	testBindOversize(t, NewStdBind(), NewStdBind(), netip.MustParseAddr("127.0.0.1"))
}

func TestStdBindInvalidDestination(t *testing.T) {
	b := NewStdBind()
	openBind(t, b, 0)
	defer b.Close()
	if err := b.Send([][]byte{{1}}, Endpoint{}); err == nil {
		t.Fatal("Send to the zero endpoint succeeded")
	}
}

func TestMemoryBindOversize(t *testing.T) {
	nw := NewNetwork()
	bAddr := netip.MustParseAddr("192.0.2.2")
	testBindOversize(t, nw.NewBind(netip.MustParseAddr("192.0.2.1")), nw.NewBind(bAddr), bAddr)
}

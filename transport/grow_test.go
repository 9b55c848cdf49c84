package transport

import (
	"bytes"
	"net/netip"
	"testing"
)

// testBindGrowBuffers checks what a receive function does with a datagram
// larger than the caller's buffers: it returns 0 at once (so the caller can
// grow its buffers after an MTU change) and, if keeps, hands the datagram
// to the next call with larger buffers; a datagram too large twice is
// dropped and the next one delivered.
func testBindGrowBuffers(t *testing.T, a, b Bind, bAddr netip.Addr, keeps bool) {
	openBind(t, a, 0)
	fnsB, portB := openBind(t, b, 0)
	defer a.Close()
	defer b.Close()
	fn := fnsB[0]
	dst := Endpoint{Dst: netip.AddrPortFrom(bAddr, portB)}
	big := bytes.Repeat([]byte{0xAB}, 3000)
	small := make([][]byte, 4)
	large := make([][]byte, 4)
	for i := range small {
		small[i] = make([]byte, 1000)
		large[i] = make([]byte, 4000)
	}
	sizes, eps := make([]int, 4), make([]Endpoint, 4)
	recv := func(bufs [][]byte) (int, [][]byte) {
		t.Helper()
		bufs = append([][]byte(nil), bufs...)
		n, err := fn(bufs, sizes, eps)
		if err != nil {
			t.Fatal(err)
		}
		return n, bufs
	}

	if err := a.Send([][]byte{big}, dst); err != nil {
		t.Fatal(err)
	}
	if n, _ := recv(small); n != 0 {
		t.Fatalf("received %d datagrams into buffers too small", n)
	}
	if keeps {
		n, bufs := recv(large)
		if n != 1 || !bytes.Equal(bufs[0][:sizes[0]], big) {
			t.Fatalf("got %d datagrams (first %d bytes), want the kept one", n, sizes[0])
		}
	}

	// Too large twice: dropped, and the next datagram comes through.
	if err := a.Send([][]byte{big}, dst); err != nil {
		t.Fatal(err)
	}
	if n, _ := recv(small); n != 0 {
		t.Fatalf("received %d datagrams into buffers too small", n)
	}
	if err := a.Send([][]byte{[]byte("next")}, dst); err != nil {
		t.Fatal(err)
	}
	for {
		n, bufs := recv(small)
		if n == 0 {
			continue
		}
		if string(bufs[0][:sizes[0]]) != "next" {
			t.Fatalf("got %q, want the datagram after the dropped one", bufs[0][:sizes[0]])
		}
		break
	}
}

func TestMemoryBindGrowBuffers(t *testing.T) {
	nw := NewNetwork()
	bAddr := netip.MustParseAddr("192.0.2.2")
	testBindGrowBuffers(t, nw.NewBind(netip.MustParseAddr("192.0.2.1")), nw.NewBind(bAddr), bAddr, true)
}

func TestStdBindGrowBuffers(t *testing.T) {
	testBindGrowBuffers(t, NewStdBind(), NewStdBind(), netip.MustParseAddr("127.0.0.1"), false)
}

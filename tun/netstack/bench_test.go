package netstack_test

import (
	"io"
	"net/netip"
	"sync/atomic"
	"testing"

	"github.com/gotatun/gotatun/tun/netstack"
)

// BenchmarkStackTCP moves a TCP stream between two stacks whose TUN sides
// are joined directly (no WireGuard), to show the cost of the stack and
// of this package's Read and Write. One op is 1 MiB; packets/op is how
// many IP packets crossed for it, so allocs/op ÷ packets/op is the
// allocations per packet (mostly gVisor's).
func BenchmarkStackTCP(b *testing.B) {
	mk := func(a string) *netstack.Stack {
		s, err := netstack.New(netstack.Config{Addresses: []netip.Prefix{netip.MustParsePrefix(a)}})
		if err != nil {
			b.Fatal(err)
		}
		return s
	}
	x, y := mk("10.8.0.1/32"), mk("10.8.0.2/32")
	var packets atomic.Int64
	pump := func(from, to *netstack.Stack) {
		bufs := make([][]byte, 128)
		for i := range bufs {
			bufs[i] = make([]byte, 16+1500)
		}
		sizes := make([]int, len(bufs))
		out := make([][]byte, len(bufs))
		for {
			n, err := from.Read(bufs, sizes, 16)
			if err != nil {
				return
			}
			for i := range n {
				out[i] = bufs[i][:16+sizes[i]]
			}
			packets.Add(int64(n))
			if _, err := to.Write(out[:n], 16); err != nil {
				return
			}
		}
	}
	go pump(x, y)
	go pump(y, x)
	defer x.Close()
	defer y.Close()
	ln, err := y.Listen("tcp", ":9")
	if err != nil {
		b.Fatal(err)
	}
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		io.Copy(io.Discard, c)
		c.Close()
	}()
	c, err := x.Dial("tcp", "10.8.0.2:9")
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	chunk := make([]byte, 1<<20)
	c.Write(chunk) // warm up
	packets.Store(0)
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := c.Write(chunk); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(packets.Load())/float64(b.N), "packets/op")
}

package transport

import (
	"net/netip"
	"testing"
)

// benchmarkBind sends a batch of 64 datagrams of 1452 bytes over IPv4
// loopback and receives them, per iteration.
func benchmarkBind(b *testing.B, newBind func() Bind) {
	const batch, size = 64, 1452
	tx, rx := newBind(), newBind()
	if _, _, err := tx.Open(0); err != nil {
		b.Fatal(err)
	}
	defer tx.Close()
	fns, port, err := rx.Open(0)
	if err != nil {
		b.Fatal(err)
	}
	defer rx.Close()
	recv := fns[0] // the IPv4 socket
	dst := Endpoint{Dst: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
	out := make([][]byte, batch)
	for i := range out {
		out[i] = make([]byte, size)
		out[i][0] = byte(i)
	}
	n := max(rx.BatchSize(), 1)
	in := make([][]byte, n)
	for i := range in {
		in[i] = make([]byte, 2048)
	}
	sizes, eps := make([]int, n), make([]Endpoint, n)
	b.SetBytes(batch * size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := tx.Send(out, dst); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < batch; {
			k, err := recv(in, sizes, eps)
			if err != nil {
				b.Fatal(err)
			}
			for i := range k {
				if sizes[i] != size || in[i][0] != byte(got+i) {
					b.Fatalf("datagram %d: %d bytes, first byte %d", got+i, sizes[i], in[i][0])
				}
			}
			got += k
		}
	}
}

func BenchmarkBindStd(b *testing.B) { benchmarkBind(b, NewStdBind) }

package multihop

import (
	"net/netip"
	"testing"

	"github.com/gotatun/gotatun/transport"
)

// BenchmarkPipe sends batches of full-size datagrams through the pipe and
// back: exit device's Send, entry device's TUN Read, entry device's TUN
// Write of the replies, exit device's receive. It must not allocate.
func BenchmarkPipe(b *testing.B) {
	round, bytes := pipeRound(b)
	b.SetBytes(bytes)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		round()
	}
}

func TestPipeAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	round, _ := pipeRound(t)
	if a := testing.AllocsPerRun(50, round); a != 0 {
		t.Fatalf("%v allocations per round trip of a batch", a)
	}
}

// pipeRound returns a function that moves one batch each way through a
// warmed-up pipe, and the bytes it moves.
func pipeRound(b testing.TB) (func(), int64) {
	const batch = 64
	p, recv, port := newTestPipe(b, nil)
	size := ExitMTU(0) + 32 // a full exit-tunnel data message
	msgs := make([][]byte, batch)
	replies := make([][]byte, batch)
	for i := range msgs {
		msgs[i] = make([]byte, size)
		replies[i] = append(make([]byte, 16), reply(b, relay4, netip.AddrPortFrom(client4, port), msgs[i])...)
	}
	readBufs, sizes := make([][]byte, batch), make([]int, batch)
	recvBufs, eps := make([][]byte, batch), make([]transport.Endpoint, batch)
	for i := range readBufs {
		readBufs[i] = make([]byte, 2048)
	}
	own := make([][]byte, batch)
	for i := range own {
		own[i] = make([]byte, 2048)
	}
	ep := transport.Endpoint{Dst: relay4}
	round := func() {
		if err := p.Bind().Send(msgs, ep); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < batch; {
			n, err := p.TUN().Read(readBufs, sizes, 16)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
		if _, err := p.TUN().Write(replies, 16); err != nil {
			b.Fatal(err)
		}
		for got := 0; got < batch; {
			copy(recvBufs, own)
			n, err := recv(recvBufs, sizes, eps)
			if err != nil {
				b.Fatal(err)
			}
			got += n
		}
	}
	// Warm the buffer pools: every queued batch once.
	for range 2 * defaultBatches {
		round()
	}
	if s := p.Stats(); s.Received != s.Sent {
		b.Fatalf("sent %d, received %d", s.Sent, s.Received)
	}
	return round, int64(2 * batch * size)
}
